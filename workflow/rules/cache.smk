rule cache:
    input:
        manifest="results/manifest.parquet",
        faces=all_faces,
    output:
        h5="results/cache/clips.h5",
        skipped="results/cache/skipped.parquet",
    log:
        "logs/cache.log",
    benchmark:
        "results/benchmarks/cache.tsv"
    conda:
        "../../envs/cache.yaml"
    params:
        cache=as_json(config["cache"]),
    shell:
        "python -m video_emotion cache --manifest {input.manifest:q} --faces {input.faces:q} --out {output.h5:q}"
        " --params {params.cache:q} > {log:q} 2>&1"

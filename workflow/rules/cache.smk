rule cache:
    input:
        manifest="results/manifest.parquet",
        faces=all_faces,
    output:
        h5="results/cache/clips.h5",
        skipped="results/cache/skipped.parquet",
    params:
        cache=as_json(config["cache"]),
    conda:
        "../../envs/cache.yaml"
    log:
        "logs/cache.log",
    benchmark:
        "results/benchmarks/cache.tsv"
    shell:
        "python -m video_emotion cache --manifest {input.manifest:q} --faces {input.faces:q} --out {output.h5:q}"
        " --params {params.cache:q} > {log:q} 2>&1"

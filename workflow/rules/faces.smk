rule faces:
    input:
        manifest="results/manifest.parquet",
        frames="results/frames/{shard}",
    output:
        h5="results/faces/{shard}.h5",
        qc="results/faces/{shard}_qc.parquet",
        montage="results/faces/{shard}_montage.png",
    params:
        faces=as_json(config["faces"]),
    conda:
        "../../envs/faces.yaml"
    log:
        "logs/faces/{shard}.log",
    benchmark:
        "results/benchmarks/faces/{shard}.tsv"
    threads: 1
    resources:
        gpu=faces_gpus,
    shell:
        "video-emotion --gpus {resources.gpu} faces --manifest {input.manifest:q} --shard {wildcards.shard} --frames-root {input.frames:q}"
        " --out {output.h5:q} --qc {output.qc:q} --params {params.faces:q} > {log:q} 2>&1"

rule faces:
    input:
        manifest="results/manifest.parquet",
        frames=shard_frames,
    output:
        h5="results/faces/{shard}.h5",
        qc="results/faces/{shard}_qc.parquet",
    log:
        "logs/faces/{shard}.log",
    benchmark:
        "results/benchmarks/faces/{shard}.tsv"
    conda:
        "../../envs/faces.yaml"
    threads: 1
    resources:
        gpu=faces_gpus,
    params:
        faces=as_json(FACES),
        source=faces_source,
    shell:
        "python -m video_emotion --gpus {resources.gpu} faces --manifest {input.manifest:q} --shard {wildcards.shard} {params.source}"
        " --out {output.h5:q} --qc {output.qc:q} --params {params.faces:q} > {log:q} 2>&1"


# Every video's face QC in one table (read by people and the report); also what `--until faces` runs up to.
rule faces_qc:
    input:
        all_faces_qc,
    output:
        "results/faces/qc.parquet",
    log:
        "logs/faces_qc.log",
    conda:
        "../../envs/manifest.yaml"
    shell:
        "python -m video_emotion collect {input:q} --out {output:q} > {log:q} 2>&1"


# QC strips (crops over time, landmarks, detected / tracked / interpolated frames) of the videos whose face was
# found least often: what a person checks first; the report shows them.
rule face_strips:
    input:
        qc=all_faces_qc,
        faces=all_faces,
    output:
        "results/faces/strips.png",
    log:
        "logs/face_strips.log",
    conda:
        "../../envs/faces.yaml"
    params:
        lowest=config["report"]["faces_strips"],
    shell:
        "python -m video_emotion faces-strip --lowest {params.lowest} --qc {input.qc:q}"
        " --faces {input.faces:q} --out {output:q} > {log:q} 2>&1"

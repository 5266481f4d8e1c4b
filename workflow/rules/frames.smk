rule frames:
    input:
        video_path,
    output:
        directory("results/frames/{video_id}"),
    params:
        frames=as_json(config["frames"]),
    conda:
        "../../envs/frames.yaml"
    log:
        "logs/frames/{video_id}.log",
    benchmark:
        "results/benchmarks/frames/{video_id}.tsv"
    group:
        "frames"
    shell:
        "video-emotion frames {input:q} {output:q} --params {params.frames:q} > {log:q} 2>&1"


# Every video's frames meta.json in one table; also what `--until frames` runs up to.
rule frames_index:
    input:
        all_frames,
    output:
        "results/frames/index.parquet",
    conda:
        "../../envs/manifest.yaml"
    log:
        "logs/frames_index.log",
    shell:
        "video-emotion collect {input:q} --out {output:q} > {log:q} 2>&1"

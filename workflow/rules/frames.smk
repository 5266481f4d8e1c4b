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

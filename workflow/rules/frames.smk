# One job per shard (whole subjects, `shard_videos` videos or more): every video of the shard is decoded in one
# process, `threads` ffmpeg runs at a time, into results/frames/{shard}/{video_id}/ (000001.jpg ... and meta.json,
# as for a single video). A process per video cost more in start-up and scheduling than the decoding itself
# (benchmarks/frames.py, benchmarks/dag.py, docs/BENCHMARKS.md).
# frames.keep: false makes the folders temp(): removed once the shard's faces job has read them (the default for
# real datasets; the demo keeps them). The report's face QC comes from the faces stage's own files.
KEEP_FRAMES = DEMO if config["frames"]["keep"] is None else config["frames"]["keep"]
FRAMES_DIR = directory("results/frames/{shard}")


rule frames:
    input:
        videos=shard_videos,
    output:
        FRAMES_DIR if KEEP_FRAMES else temp(FRAMES_DIR),
    log:
        "logs/frames/{shard}.log",
    benchmark:
        "results/benchmarks/frames/{shard}.tsv"
    conda:
        "../../envs/frames.yaml"
    threads: 2
    params:
        frames=as_json({k: config["frames"][k] for k in ("fps", "height")}),
        ids=shard_ids,
    shell:
        "python -m video_emotion frames {input.videos:q} --ids {params.ids} --out {output:q} --workers {threads}"
        " --params {params.frames:q} > {log:q} 2>&1"


# Every video's frames meta.json in one table; also what `--until frames` runs up to.
rule frames_index:
    input:
        all_frames,
    output:
        "results/frames/index.parquet",
    log:
        "logs/frames_index.log",
    conda:
        "../../envs/manifest.yaml"
    shell:
        "python -m video_emotion collect {input:q} --out {output:q} > {log:q} 2>&1"


ruleorder: frames_index > frames

from video_emotion.metrics import run_keys


def attention_checkpoints(wildcards):
    """best.pt of the first model's first seed, one per fold: whose attention maps the report shows."""
    first = {"model": MODELS[0], "seed": config.get("seeds", [0])[0]}
    return [
        path
        for path in all_checkpoints(wildcards)
        if all(run_keys(path).get(key, value) == value for key, value in first.items())
    ]


rule attention:
    input:
        cache="results/cache/clips.h5",
        checkpoints=attention_checkpoints,
    output:
        "results/attention/attention.h5",
    log:
        "logs/attention.log",
    conda:
        "../../envs/train.yaml"
    threads: 1
    params:
        report=as_json(
            {k: v for k, v in config["report"].items() if k.startswith("attention_")}
        ),
    shell:
        "video-emotion --threads {threads} attention --cache {input.cache:q} --checkpoints {input.checkpoints:q}"
        " --out {output:q} --params {params.report:q} > {log:q} 2>&1"

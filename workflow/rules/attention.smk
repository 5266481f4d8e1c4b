def attention_checkpoints(wildcards):
    """best.pt of the first model's first seed, one per fold: whose attention maps the report shows."""
    seed = config.get("seeds", [0])[0]
    first = f"results/models/{MODELS[0]}/"
    return [
        path
        for path in all_checkpoints(wildcards)
        if path.startswith(first) and (f"/seed{seed}/" in path or "/seed" not in path)
    ]


rule attention:
    input:
        cache="results/cache/clips.h5",
        checkpoints=attention_checkpoints,
    output:
        "results/attention/attention.h5",
    params:
        report=as_json({k: v for k, v in config["report"].items() if k.startswith("attention_")}),
    conda:
        "../../envs/train.yaml"
    log:
        "logs/attention.log",
    threads: 1
    shell:
        "video-emotion --threads {threads} attention --cache {input.cache:q} --checkpoints {input.checkpoints:q}"
        " --out {output:q} --params {params.report:q} > {log:q} 2>&1"

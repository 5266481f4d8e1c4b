rule attention:
    input:
        cache="results/cache/clips.h5",
        folds="results/folds.parquet",
        checkpoints=attention_checkpoints,
    output:
        "results/attention/attention.h5",
    params:
        attention=as_json(
            {
                "per_class": config["report"]["attention_per_class"],
                "device": config["report"]["attention_device"],
            }
        ),
    conda:
        "../../envs/train.yaml"
    log:
        "logs/attention.log",
    threads: 1
    shell:
        "video-emotion --threads {threads} attention --cache {input.cache:q} --folds {input.folds:q} --checkpoints {input.checkpoints:q}"
        " --out {output:q} --params {params.attention:q} > {log:q} 2>&1"

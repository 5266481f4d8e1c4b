rule attention:
    input:
        cache="results/cache/clips.h5",
        folds="results/folds.parquet",
        checkpoints=attention_checkpoints,
    output:
        "results/attention/attention.h5",
    log:
        "logs/attention.log",
    conda:
        "../../envs/train.yaml"
    threads: 1
    params:
        report=as_json({k: v for k, v in config["report"].items() if k.startswith("attention_")}),
    shell:
        "python -m video_emotion --threads {threads} attention --cache {input.cache:q} --folds {input.folds:q}"
        " --checkpoints {input.checkpoints:q} --out {output:q} --params {params.report:q} > {log:q} 2>&1"

rule evaluate:
    input:
        cache="results/cache/clips.h5",
        checkpoint="results/models/{model}/fold{fold}/best.pt",
    output:
        "results/predictions/model={model}/fold={fold}/predictions.parquet",
    params:
        evaluate=as_json(config["evaluate"]),
    conda:
        "../../envs/train.yaml"
    log:
        "logs/evaluate/{model}_fold{fold}.log",
    benchmark:
        "results/benchmarks/evaluate/{model}_fold{fold}.tsv"
    threads: 1
    resources:
        gpu=0,
    shell:
        "video-emotion --threads {threads} --gpus {resources.gpu} evaluate --cache {input.cache:q} --checkpoint {input.checkpoint:q}"
        " --fold {wildcards.fold} --out {output:q} --params {params.evaluate:q} > {log:q} 2>&1"


rule metrics:
    input:
        all_predictions,
    output:
        summary="results/metrics/summary.parquet",
        per_fold="results/metrics/per_fold.parquet",
        json="results/metrics/metrics.json",
    params:
        metrics=as_json(config["metrics"]),
    conda:
        "../../envs/manifest.yaml"
    log:
        "logs/metrics.log",
    shell:
        "video-emotion metrics results/predictions --out results/metrics --params {params.metrics:q} > {log:q} 2>&1"

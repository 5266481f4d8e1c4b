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

rule metrics:
    input:
        all_predictions,
    output:
        summary="results/metrics/summary.parquet",
        per_seed="results/metrics/per_seed.parquet",
        per_fold="results/metrics/per_fold.parquet",
        comparisons="results/metrics/comparisons.parquet",
        confusion="results/metrics/confusion.parquet",
        per_class="results/metrics/per_class.parquet",
        per_subject="results/metrics/per_subject.parquet",
        json="results/metrics/metrics.json",
    params:
        metrics=as_json(config["metrics"]),
    conda:
        "../../envs/manifest.yaml"
    log:
        "logs/metrics.log",
    shell:
        "video-emotion metrics {input:q} --out $(dirname {output.summary:q}) --params {params.metrics:q} > {log:q} 2>&1"

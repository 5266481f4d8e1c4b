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
    log:
        "logs/metrics.log",
    conda:
        "../../envs/manifest.yaml"
    params:
        out=subpath(output.summary, parent=True),
        metrics=as_json({**config["metrics"], "official_folds": config["folds"]["scheme"] == "official"}),
    shell:
        "python -m video_emotion metrics {input:q} --out {params.out:q} --params {params.metrics:q} > {log:q} 2>&1"

rule report:
    input:
        metrics="results/metrics/summary.parquet",
        histories=all_histories,
        qc=all_faces_qc,
        cache="results/cache/clips.h5",
    output:
        html="results/report/index.html",
    params:
        report=as_json({**config["report"], "dataset": config["dataset"], "models": MODELS}),
    conda:
        "../../envs/report.yaml"
    log:
        "logs/report.log",
    threads: 1
    shell:
        "video-emotion --threads {threads} report --results results --out results/report"
        " --params {params.report:q} > {log:q} 2>&1"

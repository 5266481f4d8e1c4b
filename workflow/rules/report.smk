rule report:
    input:
        manifest="results/manifest.parquet",
        metrics=rules.metrics.output,
        histories=all_histories,
        checkpoints=all_checkpoints,
        faces=all_faces,
        qc=all_faces_qc,
    output:
        html="results/report/index.html",
        figures=[
            report(
                f"results/report/{png}",
                caption=f"../report/{caption}",
                category="Results",
                labels={"figure": png.removesuffix(".png")},
            )
            for png, caption in REPORT_FIGURES.items()
        ],
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

from video_emotion.metrics import TABLES as METRIC_TABLES
from video_emotion.report_files import FIGURES as REPORT_FIGURES, TABLE_FILES as REPORT_TABLES


rule report:
    input:
        manifest="results/manifest.parquet",
        rejected="results/manifest_rejected.parquet",
        metrics=[f"results/metrics/{table}.parquet" for table in METRIC_TABLES],
        histories=all_histories,
        faces=all_faces,
        qc=all_faces_qc,
        attention="results/attention/attention.h5",
        strips="results/faces/strips.png",
        captions=[workflow.source_path(f"../report/{caption}") for caption in REPORT_FIGURES.values()],
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
        tables=[
            report(
                f"results/report/{table}",
                caption=f"../report/{caption}",
                category="Metric tables",
                labels={"table": table.removesuffix(".html")},
            )
            for table, caption in REPORT_TABLES.items()
        ],
    log:
        "logs/report.log",
    conda:
        "../../envs/report.yaml"
    threads: 1
    params:
        out=subpath(output.html, parent=True),
        report=as_json(
            {
                **config["report"],
                "dataset": config["dataset"],
                "models": MODELS,
                "model_train": config["model_train"],
                "published": config["published"],
            }
        ),
    shell:
        "python -m video_emotion --threads {threads} report --out {params.out:q} --metrics {input.metrics:q}"
        " --histories {input.histories:q} --faces {input.faces:q} --qc {input.qc:q} --manifest {input.manifest:q}"
        " --rejected {input.rejected:q} --attention {input.attention:q} --strips {input.strips:q} --captions {input.captions:q}"
        " --params {params.report:q} > {log:q} 2>&1"

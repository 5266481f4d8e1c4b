checkpoint manifest:
    input:
        DATASET_ROOT,
    output:
        manifest="results/manifest.parquet",
        rejected="results/manifest_rejected.parquet",
    params:
        dataset=as_json(
            {k: config[k] for k in ("dataset", "classes", "dataset_options", "folds")}
        ),
    conda:
        "../../envs/manifest.yaml"
    log:
        "logs/manifest.log",
    shell:
        "video-emotion manifest {input:q} --params {params.dataset:q}"
        " --out {output.manifest:q} --rejected {output.rejected:q} > {log:q} 2>&1"

checkpoint manifest:
    input:
        DATASET_ROOT,
    output:
        manifest="results/manifest.parquet",
        rejected="results/manifest_rejected.parquet",
    params:
        dataset=as_json({k: config[k] for k in ("dataset", "classes", "dataset_options")}),
    conda:
        "../../envs/manifest.yaml"
    log:
        "logs/manifest.log",
    shell:
        "video-emotion manifest {input:q} --params {params.dataset:q}"
        " --out {output.manifest:q} --rejected {output.rejected:q} > {log:q} 2>&1"


# The subject-independent test folds, apart from the video list: a change under `folds:` reruns training and
# what follows, never frames, faces or the cache.
checkpoint folds:
    input:
        manifest="results/manifest.parquet",
    output:
        "results/folds.parquet",
    params:
        folds=as_json(config["folds"]),
    conda:
        "../../envs/manifest.yaml"
    log:
        "logs/folds.log",
    shell:
        "video-emotion folds --manifest {input.manifest:q} --out {output:q} --params {params.folds:q} > {log:q} 2>&1"


# The resolved config of the run (schema defaults, demo preset, config files, --config), for the record.
rule resolved_config:
    output:
        "results/config.yaml",
    params:
        config=as_json(config),
    conda:
        "../../envs/manifest.yaml"
    log:
        "logs/resolved_config.log",
    shell:
        "video-emotion config --params {params.config:q} --out {output:q} > {log:q} 2>&1"

checkpoint manifest:
    input:
        DATASET_ROOT,
    output:
        manifest="results/manifest.parquet",
        rejected="results/manifest_rejected.parquet",
    log:
        "logs/manifest.log",
    conda:
        "../../envs/manifest.yaml"
    params:
        dataset=as_json({k: config[k] for k in ("dataset", "classes", "dataset_options", "shard_videos")}),
    shell:
        "python -m video_emotion manifest {input:q} --params {params.dataset:q}"
        " --out {output.manifest:q} --rejected {output.rejected:q} > {log:q} 2>&1"


# The subject-independent test folds, apart from the video list: a change under `folds:` reruns training and
# what follows, never frames, faces or the cache.
checkpoint folds:
    input:
        manifest="results/manifest.parquet",
    output:
        "results/folds.parquet",
    log:
        "logs/folds.log",
    conda:
        "../../envs/manifest.yaml"
    params:
        folds=as_json(config["folds"]),
    shell:
        "python -m video_emotion folds --manifest {input.manifest:q} --out {output:q} --params {params.folds:q} > {log:q} 2>&1"


# The resolved config of the run (schema defaults, demo preset, config files, --config), for the record.
rule resolved_config:
    output:
        "results/config.yaml",
    log:
        "logs/resolved_config.log",
    conda:
        "../../envs/manifest.yaml"
    params:
        config=as_json(config),
    shell:
        "python -m video_emotion config --params {params.config:q} --out {output:q} > {log:q} 2>&1"

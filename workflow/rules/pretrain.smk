# Pretraining runs (config `pretrain`), for variants that fine-tune from them (model_variants.<name>.init.run).
#
# Each run is this very workflow on its own config, run by a job of this DAG in its own working directory,
# results/pretrain/<run>/ (its own resources/, results/, logs/ and .snakemake/), up to the checkpoints that the
# fine-tuning variants start from. Those checkpoints are the job's declared outputs, so the fine-tuning training jobs
# take them as declared inputs: they wait for them and rerun when they change (and, the init file's content hash
# being part of the training fingerprint, continue from last.pt when the content is the same).
# The run gets this run's model_kwargs (and the variants it pretrains) beneath its own config, so that both build the
# same architectures by default.


def pretrain_targets():
    """run -> {best.pt paths (relative to the run's folder)}, and run -> {models}, {seeds}, from the variants."""
    targets, models, seeds = {}, {}, {}
    prefix = "results/pretrain/"
    for spec in MODEL_SPECS.values():
        init = spec.get("init") or {}
        if "run" in init:
            run = init["run"]
            targets.setdefault(run, set()).add(init["path"][len(f"{prefix}{run}/") :])
            models.setdefault(run, set()).add(init["model"])
            seeds.setdefault(run, set()).add(int(init["seed"]))
    return targets, models, seeds


def pretrain_config(run, models, seeds):
    """The run's own config (before its defaults and presets, which its workflow applies)."""
    variants = {m: v for m, v in config["model_variants"].items() if m in models and "init" not in v}
    own = deep_merge({"model_kwargs": config["model_kwargs"], "model_variants": variants}, config["pretrain"][run])
    own = {**own, "models": sorted(models), "seeds": sorted(seeds), "predict": {"videos": []}}
    own.pop("pretrain", None)
    try:  # stop this run now, naming the pretrain run, rather than inside its job
        resolve(
            deep_merge({}, own),
            load_yaml(_HERE / "../schemas/config.schema.yaml"),
            load_yaml(_HERE / "../presets/demo.yaml"),
        )
    except ConfigError as err:
        raise SystemExit(
            f"video-emotion: pretrain.{run}: {err} (the run's own settings go under pretrain.{run}, "
            f'e.g. --config "pretrain={{{run}: {{dataset_root: /data/...}}}}")'
        ) from None
    return own


SNAKEMAKE_CMD = (
    shlex.quote(sys.executable)
    + " -m snakemake --snakefile "
    + shlex.quote(os.path.join(workflow.basedir, "Snakefile"))
)
_TARGETS, _MODELS_OF, _SEEDS_OF = pretrain_targets()

for _run, _targets in sorted(_TARGETS.items()):

    rule:
        name:
            f"pretrain_{_run}"
        output:
            [f"results/pretrain/{_run}/{t}" for t in sorted(_targets)],
        log:
            f"logs/pretrain/{_run}.log",
        benchmark:
            f"results/benchmarks/pretrain/{_run}.tsv"
        conda:
            "../../envs/manifest.yaml"
        threads: workflow.cores
        params:
            config=as_json(pretrain_config(_run, _MODELS_OF[_run], _SEEDS_OF[_run])),
            folder=f"results/pretrain/{_run}",
            targets=" ".join(shlex.quote(t) for t in sorted(_targets)),
            snakemake=SNAKEMAKE_CMD,
        shell:
            "mkdir -p {params.folder:q} && python -m video_emotion config --params {params.config:q}"
            " --out {params.folder:q}/config.yaml > {log:q} 2>&1"
            " && {params.snakemake} --directory {params.folder:q} --unlock >> {log:q} 2>&1"
            " && {params.snakemake} --directory {params.folder:q} --cores {threads} --rerun-incomplete"
            " {params.targets} >> {log:q} 2>&1"

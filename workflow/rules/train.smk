rule train:
    input:
        cache="results/cache/clips.h5",
        folds="results/folds.parquet",
        init=train_init,
    output:
        best="results/models/{model}/seed{seed}/fold{fold}/best.pt",
        history="results/models/{model}/seed{seed}/fold{fold}/history.parquet",
    log:
        "logs/train/{model}_seed{seed}_fold{fold}.log",
    benchmark:
        "results/benchmarks/train/{model}_seed{seed}_fold{fold}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        gpu=0,
    params:
        train=train_params,
        out="results/models/{model}/seed{seed}/fold{fold}",
        # TensorBoard event files: a log, not an output (deleting them reruns nothing); none if train.tensorboard is false
        tensorboard="results/tensorboard/{model}/seed{seed}/fold{fold}",
    shell:
        "python -m video_emotion --threads {threads} --gpus {resources.gpu} train --cache {input.cache:q} --folds {input.folds:q}"
        " --model {wildcards.model} --fold {wildcards.fold} --out {params.out:q} --nproc {resources.gpu}"
        " --tensorboard {params.tensorboard:q} --params {params.train:q} > {log:q} 2>&1"


# Every training run's history in one table (a source column names the run); also what `--until train` runs up to.
rule train_runs:
    input:
        all_histories,
    output:
        "results/models/histories.parquet",
    log:
        "logs/train_runs.log",
    conda:
        "../../envs/manifest.yaml"
    shell:
        "python -m video_emotion collect {input:q} --out {output:q} > {log:q} 2>&1"

rule train:
    input:
        cache="results/cache/clips.h5",
    output:
        best="results/models/{model}/fold{fold}/best.pt",
        history="results/models/{model}/fold{fold}/history.parquet",
    params:
        train=train_params,
        out="results/models/{model}/fold{fold}",
    conda:
        "../../envs/train.yaml"
    log:
        "logs/train/{model}_fold{fold}.log",
    benchmark:
        "results/benchmarks/train/{model}_fold{fold}.tsv"
    threads: 1
    resources:
        gpu=0,
    shell:
        "video-emotion --threads {threads} --gpus {resources.gpu} train --cache {input.cache:q} --model {wildcards.model}"
        " --fold {wildcards.fold} --out {params.out:q} --nproc {resources.gpu}"
        " --params {params.train:q} > {log:q} 2>&1"

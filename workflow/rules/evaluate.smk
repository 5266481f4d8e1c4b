rule evaluate:
    input:
        cache="results/cache/clips.h5",
        folds="results/folds.parquet",
        checkpoint="results/models/{model}/seed{seed}/fold{fold}/best.pt",
    output:
        "results/predictions/model={model}/seed={seed}/fold={fold}/predictions.parquet",
    log:
        "logs/evaluate/{model}_seed{seed}_fold{fold}.log",
    benchmark:
        "results/benchmarks/evaluate/{model}_seed{seed}_fold{fold}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        gpu=0,
    params:
        evaluate=as_json(config["evaluate"]),
        # the training run's TensorBoard folder (a log; if there), which gets the test UAR and WAR
        tensorboard="results/tensorboard/{model}/seed{seed}/fold{fold}",
    shell:
        "python -m video_emotion --threads {threads} --gpus {resources.gpu} evaluate --cache {input.cache:q}"
        " --folds {input.folds:q} --checkpoint {input.checkpoint:q} --fold {wildcards.fold} --out {output:q}"
        " --tensorboard {params.tensorboard:q} --params {params.evaluate:q} > {log:q} 2>&1"

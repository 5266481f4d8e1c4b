rule predict:
    input:
        video=predict_video,
        checkpoint=predict_checkpoint(),
    output:
        timeline="results/predict/{name}.timeline.parquet",
        plot="results/predict/{name}.timeline.png",
    log:
        "logs/predict/{name}.log",
    conda:
        "../../envs/predict.yaml"
    threads: 2
    shell:
        "python -m video_emotion --threads {threads} predict {input.video:q} --model {input.checkpoint:q}"
        " --out results/predict --name {wildcards.name:q} > {log:q} 2>&1"

# One job for every video listed under predict: videos: the model and the face models load once. A video that
# cannot be read gets an empty timeline saying why (metadata "error"), and the others are still predicted.
rule predict:
    input:
        videos=list(PREDICT.values()),
        checkpoint=predict_checkpoint(),
    output:
        timelines=expand("results/predict/{name}.timeline.parquet", name=PREDICT),
        plots=expand("results/predict/{name}.timeline.png", name=PREDICT),
    log:
        "logs/predict.log",
    conda:
        "../../envs/predict.yaml"
    threads: 2
    params:
        names=list(PREDICT),
    shell:
        "python -m video_emotion --threads {threads} predict {input.videos:q} --name {params.names:q}"
        " --model {input.checkpoint:q} --out results/predict > {log:q} 2>&1"

rule demo_videos:
    output:
        directory("resources/demo"),
    log:
        "logs/demo_videos.log",
    benchmark:
        "results/benchmarks/demo_videos.tsv"
    conda:
        "../../envs/demo.yaml"
    threads: 2
    params:
        demo=as_json(config["demo"]),
    shell:
        "python -m video_emotion demo {output:q} --params {params.demo:q} > {log:q} 2>&1"

rule demo_videos:
    output:
        directory("resources/demo"),
    params:
        demo=as_json(config["demo"]),
    conda:
        "../../envs/demo.yaml"
    log:
        "logs/demo_videos.log",
    benchmark:
        "results/benchmarks/demo_videos.tsv"
    threads: 2
    shell:
        "python -m video_emotion demo {output:q} --params {params.demo:q} > {log:q} 2>&1"

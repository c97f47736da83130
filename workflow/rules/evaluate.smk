rule evaluate:
    """Sweep the method's knob on dev at batch size 1: scores, executed layers, latency vs BERT-base."""
    input:
        data=f"{W}/data/{{task}}.pt",
        model=f"{W}/models/{{task}}/{{method}}/{{seed}}",
        base=f"{W}/models/{{task}}/bert/{{seed}}",
    output:
        sweep=f"{W}/runs/{{task}}/{{method}}/{{seed}}/sweep.csv",
        predictions=f"{W}/runs/{{task}}/{{method}}/{{seed}}/predictions.csv.gz",
    log:
        f"{W}/logs/evaluate/{{task}}/{{method}}/{{seed}}.log",
    benchmark:
        f"{W}/benchmarks/evaluate/{{task}}/{{method}}/{{seed}}.tsv"
    conda:
        "../../environment.yml"
    threads: config["latency"]["threads"]
    resources:
        mem_mb=config["resources"]["evaluate"]["mem_mb"],
        runtime=config["resources"]["evaluate"]["runtime"],
        gpu=config["resources"]["evaluate"]["gpu"],
        timing=1,  # with --resources timing=1, latency jobs never overlap
    params:
        method_params=lambda wc: config["methods"][wc.method],
        latency=config["latency"],
        profile=config["profile"],
    script:
        "../scripts/evaluate.py"

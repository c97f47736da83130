rule train:
    """Train one method on one task with one seed (all its trained variants) into one folder."""
    input:
        unpack(train_inputs),
    output:
        directory(f"{W}/models/{{task}}/{{method}}/{{seed}}"),
    log:
        f"{W}/logs/train/{{task}}/{{method}}/{{seed}}.log",
    benchmark:
        f"{W}/benchmarks/train/{{task}}/{{method}}/{{seed}}.tsv"
    conda:
        "../../environment.yml"
    threads: config["training"]["threads"]
    resources:
        mem_mb=config["resources"]["train"]["mem_mb"],
        runtime=config["resources"]["train"]["runtime"],
        gpu=config["resources"]["train"]["gpu"],
    params:
        method_params=lambda wc: config["methods"][wc.method],
        training=config["training"],
        model=config["model"],
    script:
        "../scripts/train.py"

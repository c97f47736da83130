rule prepare_data:
    """Load (hub / GLUE TSV / synthetic) and tokenise one task once; every later job reads this."""
    output:
        f"{W}/data/{{task}}.pt",
    log:
        f"{W}/logs/prepare_data/{{task}}.log",
    conda:
        "../../environment.yml"
    params:
        data=config["data"],
        model=config["model"],
        warm_worker=config["execution"]["warm_worker"],
    script:
        "../scripts/prepare_data.py"

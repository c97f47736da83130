rule table1:
    """Gather every sweep record; select each method's best point in the speed-up window."""
    input:
        sweeps=all_sweeps(),
    output:
        table="results/table1.csv",
        markdown="results/table1.md",
        sweeps="results/sweeps.csv",
        selected="results/selected_points.csv",
    log:
        "results/logs/table1.log",
    conda:
        "../../environment.yml"
    params:
        tasks=TASKS,
        methods=list(METHODS),
        selection=config["selection"],
        meta={
            "profile": config["profile"],
            "profile_note": config["profile_note"],
            "data": config["data"]["source"],
            "seeds": SEEDS,
        },
    script:
        "../scripts/table1.py"


rule rule_benchmarks:
    """Where a run's time goes: wall time and peak memory per job, split into start-up, training, scoring, timing."""
    input:
        **all_job_records(),
    output:
        jobs="results/rule_benchmarks_jobs.csv",
        summary="results/rule_benchmarks.csv",
    log:
        "results/logs/rule_benchmarks.log",
    conda:
        "../../environment.yml"
    script:
        "../scripts/rule_benchmarks.py"

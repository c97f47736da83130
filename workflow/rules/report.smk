rule table1:
    """Gather every sweep record; select each method's best point in the speed-up window."""
    input:
        sweeps=all_sweeps(),
        # what the health verdicts (dpbert.reporting.health) read: Table 1 marks a degenerate method's cells
        predictions=all_run_files("predictions.csv.gz"),
        diagnostics=all_run_files("diagnostics.json"),
        # FLOPs per example (dpbert.reporting.flops): each dev example's length, and the stage-1
        # model's sizes (N, hidden, intermediate) in its config
        data=[f"{W}/data/{t}.pt" for t in TASKS],
        stage1=[stage1_folder(t, s) for t, m, s in method_jobs() if m == "bert"],
    output:
        table=report(
            f"{R}/table1.csv",
            caption="../report/table1.rst",
            category="Tables",
            labels={"table": "Table 1", "file": "csv: the numbers"},
        ),
        # what a reader reads: each score ± its bootstrap SE, § on a degenerate method's cells
        markdown=report(
            f"{R}/table1.md",
            caption="../report/table1.rst",
            category="Tables",
            labels={"table": "Table 1", "file": "markdown: scores ± SE, § degenerate"},
        ),
        sweeps=f"{R}/sweeps.csv",
        selected=f"{R}/selected_points.csv",
        # paired bootstrap replicates of every cell (from the predictions): the ± in table1.md, and
        # the noise the reproduction report's claims are judged against
        bootstrap=f"{R}/table1_bootstrap.csv.gz",
    log:
        f"{R}/logs/table1.log",
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
        jobs=[[t, m, s] for t, m, s in method_jobs()],
        stage1_jobs=[[t, s] for t, m, s in method_jobs() if m == "bert"],
        method_params={m: config["methods"].get(m) or {} for m in METHODS},
    script:
        "../scripts/table1.py"


rule health:
    """Method health: per (task, method), whether the method is shown to learn, and a verdict."""
    input:
        sweeps=all_sweeps(),
        predictions=all_run_files("predictions.csv.gz"),
        diagnostics=all_run_files("diagnostics.json"),
        selected=rules.table1.output.selected,
    output:
        csv=report(
            f"{R}/health.csv",
            caption="../report/health.rst",
            category="Health",
            labels={
                "report": "method health",
                "file": "csv: one row per task and Table 1 row",
            },
        ),
        markdown=report(
            f"{R}/health.md",
            caption="../report/health.rst",
            category="Health",
            labels={
                "report": "method health",
                "file": "markdown: with the verdict rules",
            },
        ),
    log:
        f"{R}/logs/health.log",
    conda:
        "../../environment.yml"
    params:
        methods=list(METHODS),
        selection=config["selection"],
        meta={"profile": config["profile"], "seeds": SEEDS},
        jobs=[[t, m, s] for t, m, s in method_jobs()],
    script:
        "../scripts/health.py"


rule rule_benchmarks:
    """Where a run's time goes: wall time and peak memory per job, split into start-up, training, scoring, timing."""
    input:
        **all_job_records(),
    output:
        jobs=f"{R}/rule_benchmarks_jobs.csv",
        summary=f"{R}/rule_benchmarks.csv",
    log:
        f"{R}/logs/rule_benchmarks.log",
    conda:
        "../../environment.yml"
    script:
        "../scripts/rule_benchmarks.py"


rule manifest:
    """Stamp every reporting output of the profile: the commit, the config hash and each file's sha256."""
    input:
        f"{R}/table1.csv",
        f"{R}/table1.md",
        f"{R}/sweeps.csv",
        f"{R}/selected_points.csv",
        f"{R}/table1_bootstrap.csv.gz",
        f"{R}/table2.csv",
        f"{R}/table2.md",
        f"{R}/table3.csv",
        f"{R}/table3.md",
        f"{F}/figure3.png",
        f"{F}/figure3.pdf",
        f"{F}/figure3_full.png",
        f"{F}/figure3_full.pdf",
        f"{F}/figure4.png",
        f"{F}/figure4.pdf",
        f"{F}/figure4_layer_freq.csv",
        f"{R}/reproduction.md",
        f"{R}/health.csv",
        f"{R}/health.md",
        f"{R}/serving.csv",
        f"{F}/serving.png",
    output:
        f"{R}/manifest.json",
    log:
        f"{R}/logs/manifest.log",
    conda:
        "../../environment.yml"
    params:
        profile=config["profile"],
    script:
        "../scripts/manifest.py"

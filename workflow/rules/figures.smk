# Reporting rules beyond Table 1 (Table 2, Table 3, Figures 3-4, reproduction report): read records only.
# Inputs are results/sweeps.csv, results/selected_points.csv (both from rule table1), the per-run
# predictions and the prepared data, so `snakemake figures/figure3.png` after a finished run never
# retrains or re-times anything.  Without dpbert / dpbert_soft in the config, table2, table3 and
# figure4 still write valid outputs that say what is missing.


# DPBERT's tasks; Table 3's are MNLI and QNLI as in the paper, else whatever DPBERT ran on.
_DPBERT_TASKS = method_tasks("dpbert") if "dpbert" in METHODS else []
_TABLE3_TASKS = [t for t in ("MNLI", "QNLI") if t in _DPBERT_TASKS] or _DPBERT_TASKS
# Figure 3's panels: reporting.figure3_tasks that the profile runs, else every task (the figure and its caption)
_FIGURE3_TASKS = figure3_panels(config["reporting"]["figure3_tasks"], TASKS)


_REPORT_META = {
    "profile": config["profile"],
    "profile_note": config.get("profile_note", ""),
    "data": config["data"]["source"],
    "seeds": SEEDS,
}


rule table2:
    """Table 2: DPBERT (Table 1 point) vs DPBERT-soft at the closest speed-up, with the paper's numbers."""
    input:
        selected=rules.table1.output.selected,
        sweeps=f"{R}/sweeps.csv",
        paper=os.path.join(
            workflow.basedir,
            "dpbert",
            "reporting",
            "paper_numbers",
            "table2_ablation.csv",
        ),
        # both variants' per-example predictions: the matched pair is chosen on one fold, scored on the other
        predictions=[
            f"{W}/runs/{t}/{m}/{s}/predictions.csv.gz"
            for t, m, s in method_jobs()
            if m in ("dpbert", "dpbert_soft")
            and t in config["reporting"]["table2_tasks"]
        ],
    output:
        table=report(
            f"{R}/table2.csv",
            caption="../report/table2.rst",
            category="Tables",
            labels={"table": "Table 2", "file": "csv: the numbers"},
        ),
        markdown=report(
            f"{R}/table2.md",
            caption="../report/table2.rst",
            category="Tables",
            labels={"table": "Table 2", "file": "markdown: with the paper's numbers"},
        ),
    log:
        f"{R}/logs/table2.log",
    conda:
        "../../environment.yml"
    params:
        tasks=config["reporting"]["table2_tasks"],
        speedup=config["selection"]["speedup"],
        selection=config["selection"],
        jobs=[
            [t, m, s]
            for t, m, s in method_jobs()
            if m in ("dpbert", "dpbert_soft")
            and t in config["reporting"]["table2_tasks"]
        ],
        meta=_REPORT_META,
    script:
        "../scripts/table2.py"


rule table3:
    """Table 3: DPBERT's shortest and longest computational paths (first seed, MNLI/QNLI dev)."""
    input:
        selected=rules.table1.output.selected,
        predictions=[
            f"{W}/runs/{t}/dpbert/{SEEDS[0]}/predictions.csv.gz" for t in _TABLE3_TASKS
        ],
        data=[f"{W}/data/{t}.pt" for t in _TABLE3_TASKS],
    output:
        table=report(
            f"{R}/table3.csv",
            caption="../report/table3.rst",
            category="Tables",
            labels={"table": "Table 3", "file": "csv: the paths"},
        ),
        markdown=report(
            f"{R}/table3.md",
            caption="../report/table3.rst",
            category="Tables",
            labels={
                "table": "Table 3",
                "file": "markdown: the paths, as the paper shows them",
            },
        ),
    log:
        f"{R}/logs/table3.log",
    conda:
        "../../environment.yml"
    params:
        tasks=_TABLE3_TASKS,
        k=config["reporting"]["table3_k"],
        meta={**_REPORT_META, "seed": SEEDS[0]},
    script:
        "../scripts/table3.py"


rule figure3:
    """Figure 3: dev score vs speed-up (SST-2, QNLI), every adaptive method, BERT-base reference, window; each
    Table 1 row's chosen point with its bootstrap SE. Framed on the window (figure3), and over the full range.
    """
    input:
        sweeps=f"{R}/sweeps.csv",
        selected=rules.table1.output.selected,
        # Table 1's paired bootstrap replicates: the chosen points' error bars
        bootstrap=rules.table1.output.bootstrap,
    output:
        png=report(
            f"{F}/figure3.png",
            caption="../report/figure3.rst",
            category="Figures",
            labels={"figure": "Figure 3", "view": "around the selection window"},
        ),
        pdf=f"{F}/figure3.pdf",
        full_png=report(
            f"{F}/figure3_full.png",
            caption="../report/figure3.rst",
            category="Figures",
            labels={"figure": "Figure 3", "view": "full speed-up range"},
        ),
        full_pdf=f"{F}/figure3_full.pdf",
    log:
        f"{R}/logs/figure3.log",
    conda:
        "../../environment.yml"
    params:
        tasks=_FIGURE3_TASKS,
        window=config["selection"]["window"],
        speedup=config["selection"]["speedup"],
        static=sorted(m for m, cls in METHODS.items() if cls.static) + ["bert"],
    script:
        "../scripts/figure3.py"


rule figure4:
    """Figure 4: how often DPBERT executes each layer at its selected point, per task (seeds pooled)."""
    input:
        selected=rules.table1.output.selected,
        sweeps=f"{R}/sweeps.csv",
        predictions=[
            f"{W}/runs/{t}/dpbert/{s}/predictions.csv.gz"
            for t in _DPBERT_TASKS
            for s in SEEDS
        ],
    output:
        png=report(
            f"{F}/figure4.png",
            caption="../report/figure4.rst",
            category="Figures",
            labels={"figure": "Figure 4", "view": "DPBERT's selected point"},
        ),
        pdf=f"{F}/figure4.pdf",
        freq=f"{F}/figure4_layer_freq.csv",
    log:
        f"{R}/logs/figure4.log",
    conda:
        "../../environment.yml"
    params:
        tasks=_DPBERT_TASKS,
        seeds=SEEDS,
    script:
        "../scripts/figure4.py"


rule reproduction:
    """Reproduced vs reported: every paper cell, Table 2, the headline claims answered, caveats."""
    input:
        table1=f"{R}/table1.csv",
        table2=f"{R}/table2.csv",
        bootstrap=rules.table1.output.bootstrap,
        paper=os.path.join(
            workflow.basedir, "dpbert", "reporting", "paper_numbers", "table1_dev.csv"
        ),
    output:
        report(
            f"{R}/reproduction.md",
            caption="../report/reproduction.rst",
            category="Reproduction",
            labels={"report": "reproduced vs reported", "file": "markdown"},
        ),
    log:
        f"{R}/logs/reproduction.log",
    conda:
        "../../environment.yml"
    params:
        meta={
            **_REPORT_META,
            "selection": config["selection"],
            "static_models": static_row_names(),
        },
    script:
        "../scripts/reproduction.py"

from dpbert.run.serving import serving_tasks as _serving_tasks  # noqa: E402

try:
    # serving.tasks, or the profile's first task; a task the profile does not run is refused here
    SERVING_TASKS = _serving_tasks(config["serving"], TASKS)
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None

# (task, method) of every model the serving benchmark may serve: each method's first-seed folder
SERVING_MODELS = [
    (t, m) for m in METHODS for t in method_tasks(m) if t in SERVING_TASKS
]


rule serving:
    """Serving throughput of every Table 1 point at batch sizes 1..64 vs BERT-base (first seed; nothing retrains)."""
    input:
        selected=rules.table1.output.selected,
        data=[f"{W}/data/{t}.pt" for t in SERVING_TASKS],
        models=[
            folder
            for t, m in SERVING_MODELS
            for folder in trained_folders(t, m, SEEDS[0])
        ],
    output:
        csv=f"{R}/serving.csv",
        png=report(
            f"{F}/serving.png",
            caption="../report/serving.rst",
            category="Figures",
            labels={"figure": "Serving", "view": "survival vs batch size"},
        ),
    log:
        f"{R}/logs/serving.log",
    conda:
        "../../environment.yml"
    threads: config["latency"]["threads"]
    resources:
        # it runs models: submitted like run_method, at the method jobs' floors
        mem_mb=config["resources"]["method"]["mem_mb"],
        runtime=config["resources"]["method"]["runtime"],
        gpu=config["resources"]["method"]["gpu"],
    params:
        tasks=SERVING_TASKS,
        model_keys=[f"{t}|{m}" for t, m in SERVING_MODELS],
        model_dirs=[weights_dir(t, m, SEEDS[0]) for t, m in SERVING_MODELS],
        seed=SEEDS[0],
        method_params=config["methods"],
        serving=config["serving"],
        latency=config["latency"],
        profile=config["profile"],
        # one timing phase at a time on this machine (--cores 2); none on a cluster
        timing_lock=f"{W}/timing.lock" if config["latency"]["exclusive"] else None,
        warm_worker=config["execution"]["warm_worker"],
    script:
        "../scripts/serving.py"

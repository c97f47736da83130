# No `benchmark:` here: with the warm worker the job runs in a fork of a long-lived server, outside the
# process Snakemake measures. The job records its own wall time and peak memory in phases.json.
rule run_method:
    """Train one method on one task with one seed (all its variants), then sweep its knob on dev at batch size 1."""
    input:
        unpack(method_inputs),
    output:
        model=directory(f"{W}/models/{{task}}/{{method}}/{{seed}}"),
        sweep=f"{W}/runs/{{task}}/{{method}}/{{seed}}/sweep.csv",
        predictions=f"{W}/runs/{{task}}/{{method}}/{{seed}}/predictions.csv.gz",
        phases=f"{W}/runs/{{task}}/{{method}}/{{seed}}/phases.json",
        diagnostics=f"{W}/runs/{{task}}/{{method}}/{{seed}}/diagnostics.json",
    log:
        f"{W}/logs/run_method/{{task}}/{{method}}/{{seed}}.log",
    # resources.max_runtime: an attempt that reaches its time budget checkpoints and exits non-zero (its
    # outputs are never written); the retry resumes it (dpbert/run/job_resources.py)
    retries: RUN_METHOD_RETRIES
    conda:
        "../../environment.yml"
    threads: config["training"]["threads"]
    resources:
        # estimated per task and method (dpbert.tools.plan's cost model) x resources.*_factor, with floors
        mem_mb=job_resource(lambda wc: f"{wc.task}/{wc.method}/{wc.seed}", "mem_mb"),
        runtime=job_resource(lambda wc: f"{wc.task}/{wc.method}/{wc.seed}", "runtime"),
        gpu=config["resources"]["method"]["gpu"],
    params:
        method_params=lambda wc: config["methods"][wc.method],
        # without training.checkpoint (how often to checkpoint changes no result: run_method.py reads it),
        # and without a precision of fp32 (the default, bit for bit the code before the key: no job reruns)
        training={
            k: v
            for k, v in config["training"].items()
            if k != "checkpoint" and (k, v) != ("precision", "fp32")
        },
        model=config["model"],
        latency={
            k: v
            for k, v in config["latency"].items()
            if (k, v) != ("precision", "fp32")
        },
        profile=config["profile"],
        # the sweep's window search; only the keys it reads, so that changing selection.speedup
        # (a reporting choice) does not rerun the method jobs
        selection={
            k: config["selection"][k]
            for k in (
                "window",
                "min_points_in_window",
                "min_points_in_curve",
                "curve_up_to",
            )
            if k in config["selection"]
        },
        # one timing phase at a time on this machine (--cores 2); none on a cluster
        timing_lock=f"{W}/timing.lock" if config["latency"]["exclusive"] else None,
        warm_worker=config["execution"]["warm_worker"],
    script:
        "../scripts/run_method.py"

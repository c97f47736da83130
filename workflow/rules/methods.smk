# No `benchmark:` here: with the warm worker the job runs in a fork of a long-lived server, outside the
# process Snakemake measures. Each job records its own wall time and peak memory in its phases file.
rule train_variant:
    """Train one variant of one method (a DPBERT target rate, a DACT-BERT tau, ...) on one task with one seed."""
    input:
        unpack(variant_inputs),
    output:
        model=directory(f"{W}/models/{{task}}/{{method}}/{{seed}}/{{variant}}"),
        phases=f"{W}/runs/{{task}}/{{method}}/{{seed}}/train/{{variant}}.json",
    log:
        f"{W}/logs/train_variant/{{task}}/{{method}}/{{seed}}/{{variant}}.log",
    # resources.max_runtime: an attempt that reaches its time budget checkpoints and exits non-zero (its
    # outputs are never written); the retry resumes it (dpbert/run/job_resources.py)
    retries: TRAIN_RETRIES
    conda:
        "../../environment.yml"
    threads: config["training"]["threads"]
    resources:
        # estimated per training job (dpbert.tools.plan's cost model) x resources.*_factor, with floors
        mem_mb=job_resource(training_job_name, "mem_mb"),
        runtime=job_resource(training_job_name, "runtime"),
        gpu=config["resources"]["method"]["gpu"],
    params:
        method_params=lambda wc: config["methods"][wc.method],
        # without training.checkpoint (how often to checkpoint changes no result: train_variant.py reads it),
        # without a precision of fp32 (the default, bit for bit the code before the key: no job reruns),
        # and without variant_seeds, which changes only a job that follows another (rng_start)
        training={
            k: v
            for k, v in config["training"].items()
            if k not in ("checkpoint", "variant_seeds")
            and (k, v) != ("precision", "fp32")
        },
        rng_start=lambda wc: (
            "the job before it" if variant_inputs(wc).get("previous") else "the seed"
        ),
        model=config["model"],
        # checked before training (the sweep times in it)
        latency_precision=config["latency"].get("precision", "fp32"),
        # the window a method's search job searches in (DACT-BERT's tau search); no other training job reads
        # it, so a changed window reruns none of them
        selection=lambda wc: (
            SWEEP_SELECTION
            if wc.variant == method_impl(wc.task, wc.method).search_job
            else None
        ),
        warm_worker=config["execution"]["warm_worker"],
    script:
        "../scripts/train_variant.py"


rule run_method:
    """Sweep one method's trained variants on one task and seed: score and time every knob at batch size 1."""
    input:
        unpack(method_inputs),
    output:
        sweep=f"{W}/runs/{{task}}/{{method}}/{{seed}}/sweep.csv",
        predictions=f"{W}/runs/{{task}}/{{method}}/{{seed}}/predictions.csv.gz",
        phases=f"{W}/runs/{{task}}/{{method}}/{{seed}}/phases.json",
        diagnostics=f"{W}/runs/{{task}}/{{method}}/{{seed}}/diagnostics.json",
    log:
        f"{W}/logs/run_method/{{task}}/{{method}}/{{seed}}.log",
    conda:
        "../../environment.yml"
    threads: config["training"]["threads"]
    resources:
        mem_mb=job_resource(lambda wc: f"{wc.task}/{wc.method}/{wc.seed}", "mem_mb"),
        runtime=job_resource(lambda wc: f"{wc.task}/{wc.method}/{wc.seed}", "runtime"),
        gpu=config["resources"]["method"]["gpu"],
    params:
        method_params=lambda wc: config["methods"][wc.method],
        model_dir=lambda wc: weights_dir(wc.task, wc.method, wc.seed),
        latency={
            k: v
            for k, v in config["latency"].items()
            if (k, v) != ("precision", "fp32")
        },
        profile=config["profile"],
        # the sweep's window search; only the keys it reads, so that changing selection.speedup
        # (a reporting choice) does not rerun the method jobs
        selection=SWEEP_SELECTION,
        # one timing phase at a time on this machine (--cores 2); none on a cluster
        timing_lock=f"{W}/timing.lock" if config["latency"]["exclusive"] else None,
        warm_worker=config["execution"]["warm_worker"],
    script:
        "../scripts/run_method.py"

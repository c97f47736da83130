import atexit
import os
import sys
from pathlib import Path

import yaml

from snakemake.utils import validate

sys.path.insert(0, str(Path(workflow.basedir)))

from dpbert.run.config_check import (
    CacheMissingError,
    check_config,
    check_schema,
    ConfigError,
)  # noqa: E402
from dpbert.run import jobs as _jobs  # noqa: E402
from dpbert.run.canonical import canonical_config  # noqa: E402
from dpbert.run import reproducible as _reproducible  # noqa: E402
from dpbert.run import warm as _warm  # noqa: E402
from dpbert.run import writable as _writable  # noqa: E402
from dpbert.run.job_resources import job_estimates, max_attempts  # noqa: E402
from dpbert.run import offline as _offline  # noqa: E402
from dpbert.run.profiles import figures_dir, results_dir  # noqa: E402
from dpbert.reporting.layout import figure3_panels  # noqa: E402


def _configfile_arg():
    """The --configfile as given (relative to the working directory when under it), for the note's command."""
    files = workflow.config_settings.configfiles
    if not files:
        return None
    path = Path(files[-1]).absolute()
    return (
        str(path.relative_to(Path.cwd()))
        if path.is_relative_to(Path.cwd())
        else str(path)
    )


try:
    # the schema first with a short message (snakemake's own prints the schema and the config: hundreds
    # of lines for one misspelled key), then snakemake's validate, which fills in the defaults
    check_schema(
        config, Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"
    )
    validate(config, "../schemas/config.schema.yaml", set_default=True)
    try:
        METHODS = check_config(config)  # name -> method class, after semantic checks
    except CacheMissingError as exc:
        # a dry run (-n) on a machine whose Hugging Face cache lacks the profile's downloads lists the
        # jobs and their resources, then ends with what a real run still needs; a real run stops here
        if not workflow.output_settings.dryrun:
            raise
        METHODS = exc.methods
        atexit.register(
            print,
            "\n"
            + _offline.dry_run_note(exc.missing, config["profile"], _configfile_arg()),
        )
    # one canonical form of the config (keys sorted but methods:'s row order, numbers in the type their key
    # declares), from which every rule's params are built: Snakemake compares a job's params by their repr,
    # so reordering keys or writing 1 for 1.0 must change none (dpbert/run/canonical.py)
    _canonical = canonical_config(
        config,
        yaml.safe_load(
            (
                Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"
            ).read_text()
        ),
        METHODS,
    )
    config.clear()
    config.update(_canonical)
    # reproducible CPU arithmetic: put the pinning in this process's environment, which every job's
    # process inherits (it must be there before a job imports torch); jobs check it (runtime.setup)
    _pinned = _reproducible.enabled(config)
    _strict = _reproducible.strict(config)
    os.environ.update(
        _reproducible.environment(
            _pinned,
            shim=(
                _reproducible.mkl_vendor_shim(Path(config["workdir"]) / ".reproducible")
                if _pinned and not _strict
                else None
            ),
            strict=_strict,
        )
    )
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None

# per-job runtime / mem_mb from dpbert.tools.plan's cost model, by job name (dpbert/run/job_resources.py), at
# the profile's stored measurement (workflow/costs/) or its typed resources.train_ms / forward_ms
_ESTIMATES = job_estimates(config, workflow.basedir)
JOB_RESOURCES = {
    name: {"runtime": e.runtime, "mem_mb": e.mem_mb} for name, e in _ESTIMATES.items()
}
# under resources.max_runtime a training job longer than the limit runs as several attempts, each resuming
# the last one's checkpoint: train_variant's retries; None (no limit): the executor's own --retries. Never
# inside a cluster job's own Snakemake (remote execution): an attempt ends the job, the submitting Snakemake
# resubmits it with a fresh time limit
_ATTEMPTS = max_attempts(config, _ESTIMATES)
TRAIN_RETRIES = (
    None if _ATTEMPTS is None else (0 if workflow.remote_exec else _ATTEMPTS - 1)
)

W = f"{config['workdir']}/{config['profile']}"
# tables and reports: results/ and figures/ for the default profile (demo), else results/<profile>/ ...
R = results_dir(config["profile"])
F = figures_dir(config["profile"])
TASKS = list(config["tasks"])
SEEDS = [int(s) for s in config["seeds"]]


def warm_off_under_a_cluster():
    """The warm worker forks jobs on this machine: under any executor but the local ones (slurm, ...), and
    in a job's own Snakemake process on a node (--mode remote), every job runs in its own process instead,
    under the scheduler's limits (DPBERT_WARM=0, inherited by the jobs; dpbert/run/warm.py).
    """
    plugin = workflow.executor_plugin
    if not _warm.warm_allowed(
        plugin.name if plugin is not None else None, workflow.exec_mode.name
    ):
        os.environ[_warm.DISABLE_ENV] = "0"


# here for a job's own process on a cluster node; in onstart for the main process (its executor known then)
warm_off_under_a_cluster()


# once the DAG is built, before the first job (not on a dry run, not in a job's own process): the work,
# results and figures folders can be written, or one paragraph naming the folder (dpbert/run/writable.py)
onstart:
    warm_off_under_a_cluster()
    try:
        _writable.check_run_folders(config)
    except ConfigError as exc:
        raise WorkflowError(str(exc)) from None


wildcard_constraints:
    task="|".join(t.replace(".", r"\.").replace("-", r"\-") for t in TASKS),
    method="|".join(METHODS),
    seed=r"\d+",
    variant=r"[^/]+",


def method_tasks(method):
    """Tasks a method covers (DeeBERT has no regression exit, so no STS-B job)."""
    return _jobs.method_tasks(config, method)


def stage1_folder(task, seed):
    """The stage-1 BERT-base model (its training job's folder): what every other method starts from or is timed against."""
    return f"{W}/models/{task}/bert/{seed}/main"


_IMPLS = {}


def method_impl(task, method):
    """The method's object on the task, as its jobs build it (one per task and method)."""
    if (task, method) not in _IMPLS:
        _IMPLS[task, method] = _jobs.method_impl(config, task, method)
    return _IMPLS[task, method]


def trained_folders(task, method, seed):
    """Every folder a method's training jobs write (BERT-base's for a method that trains nothing)."""
    owner = method if METHODS[method].trains else "bert"
    return [
        f"{weights_dir(task, method, seed)}/{v}"
        for v in method_impl(task, owner).training_jobs()
    ]


def variant_inputs(wc):
    """A training job's inputs: the task's data, the stage-1 model (but for BERT-base's own), and the
    training jobs it follows (dpbert.run.jobs.training_dependencies: the one before it when
    training.variant_seeds is chained; every variant for a search job)."""
    inputs = {"data": f"{W}/data/{wc.task}.pt"}
    if wc.method != "bert":
        inputs["base"] = stage1_folder(wc.task, wc.seed)
    impl = method_impl(wc.task, wc.method)
    if wc.variant not in impl.training_jobs():
        raise WorkflowError(
            f"{wc.method} on {wc.task} has no training job '{wc.variant}'; its jobs are "
            f"{', '.join(impl.training_jobs()) or 'none (it trains nothing)'}."
        )
    folder = f"{W}/models/{wc.task}/{wc.method}/{wc.seed}"
    previous = _jobs.previous_job(impl.training_jobs(), wc.variant, config["training"])
    if previous:
        inputs["previous"] = f"{folder}/{previous}"
    inputs["variants"] = [
        f"{folder}/{v}"
        for v in _jobs.training_dependencies(impl, wc.variant, config["training"])
    ]
    return inputs


def training_job_name(wc):
    """A training job's name in JOB_RESOURCES (dpbert.run.costs.plan_jobs)."""
    return f"{wc.task}/{wc.method}/{wc.seed}/{wc.variant}"


def method_inputs(wc):
    """A sweep's inputs: the task's data, the stage-1 model it is timed against, every variant of the method."""
    inputs = {"data": f"{W}/data/{wc.task}.pt"}
    if wc.method != "bert":
        inputs["base"] = stage1_folder(wc.task, wc.seed)
    inputs["models"] = trained_folders(wc.task, wc.method, wc.seed)
    return inputs


def weights_dir(task, method, seed):
    """The folder holding a method's variants: its own, or BERT-base's for a method that trains nothing."""
    owner = method if METHODS[method].trains else "bert"
    return f"{W}/models/{task}/{owner}/{seed}"


def method_jobs():
    """Every run_method job of the config: (task, method, seed); dpbert.tools.plan counts the same list."""
    return _jobs.jobs(config)


def all_sweeps():
    return [f"{W}/runs/{t}/{m}/{s}/sweep.csv" for t, m, s in method_jobs()]


def all_run_files(name):
    """One record file of every method job (predictions.csv.gz, diagnostics.json), in method_jobs() order."""
    return [f"{W}/runs/{t}/{m}/{s}/{name}" for t, m, s in method_jobs()]


def all_job_records():
    """Each job's own record of wall time, peak memory and seconds per phase: every training job's
    (runs/<task>/<method>/<seed>/train/<variant>.json), then every sweep's (phases.json).
    """
    return {
        "phases": [
            f"{W}/runs/{t}/{m}/{s}/train/{v}.json"
            for t, m, s in method_jobs()
            for v in method_impl(t, m).training_jobs()
        ]
        + [f"{W}/runs/{t}/{m}/{s}/phases.json" for t, m, s in method_jobs()],
    }


# the sweep's window search: only the keys it reads, so that changing selection.speedup (a reporting choice)
# reruns no method job (DACT-BERT's tau search, a training job, reads the same keys)
SWEEP_SELECTION = {
    k: config["selection"][k]
    for k in ("window", "min_points_in_window", "min_points_in_curve", "curve_up_to")
    if k in config["selection"]
}


def job_resource(name, key):
    """A resource of one job from JOB_RESOURCES: name(wildcards) gives the job's name there."""
    return lambda wc: JOB_RESOURCES[name(wc)][key]


def static_row_names():
    """Display names of the static rows of Table 1 (one per trained model of a static method: BERT-9L, ...)."""
    from dpbert.data.tasks import get_task
    from dpbert.methods.registry import build_method

    names = ["BERT-base"]
    for name, cls in METHODS.items():
        if cls.static:
            impl = build_method(name, config["methods"][name], get_task(TASKS[0]))
            names += [cls.display_name] + [impl.display_of(v) for v in impl.variants()]
    return sorted(set(names))

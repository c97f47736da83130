"""Serving throughput of every Table 1 operating point at batch sizes 1..64, against BERT-base.

    python -m dpbert.tools.serve_bench --configfile tests/config/micro.yaml --directory RUN
    python -m dpbert.tools.serve_bench --configfile workflow/config/minilm.yaml --batch-sizes 1 8 --orders length
    python -m dpbert.tools.serve_bench --directory RUN --batch-sizes 32 --exact   # each row's decisions alone

Reads a finished run (under --directory, the folder Snakemake ran in): the profile's selected_points.csv,
its prepared data and its models (first seed); retrains nothing. Writes serving.csv (and serving.png)
where the workflow's `serving` rule does (results/<profile>/, figures/<profile>/), unless --out / --figure
say otherwise. Options left out take the profile's `serving:` and `latency:` sections
(dpbert/run/serving.py has the protocol and the columns; docs/benchmarks.md, "Serving").
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path


def run_paths(config: dict, directory: Path, tasks: list[str]) -> dict:
    """Where a finished run of ``config`` under ``directory`` keeps what the benchmark reads, as the
    workflow lays it out (workflow/rules/common.smk: weights_dir): selected points, data, model folders."""
    from dpbert.methods.registry import get_method
    from dpbert.run.jobs import method_tasks
    from dpbert.run.profiles import figures_dir, results_dir

    work = directory / config["workdir"] / config["profile"]
    seed = int(config["seeds"][0])
    model_dirs = {}
    for method in dict.fromkeys(["bert", *config["methods"]]):  # BERT-base always runs (check_config)
        owner = method if get_method(method).trains else "bert"
        for task in method_tasks(config, method):
            if task in tasks:
                model_dirs[(task, method)] = work / "models" / task / owner / str(seed)
    return {
        "selected_csv": directory / results_dir(config["profile"]) / "selected_points.csv",
        "data_paths": {t: work / "data" / f"{t}.pt" for t in tasks},
        "model_dirs": model_dirs,
        "seed": seed,
        "out_csv": directory / results_dir(config["profile"]) / "serving.csv",
        "figure": directory / figures_dir(config["profile"]) / "serving.png",
    }


def main(argv: list[str] | None = None) -> None:
    from snakemake.utils import validate

    from dpbert.run.config_check import ConfigError
    from dpbert.run.profiles import config_dir, resolve_config, workflow_root
    from dpbert.run.serving import ORDERS, run_serving, serving_tasks

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configfile", type=Path, default=Path("workflow/config/config.yaml"),
                    help="the run's profile (as given to snakemake --configfile)")
    ap.add_argument("--directory", type=Path, default=Path("."), help="the folder the run was made in")
    ap.add_argument("--tasks", nargs="+", help="tasks to serve (default: serving.tasks, else the first task)")
    ap.add_argument("--batch-sizes", type=int, nargs="+")
    ap.add_argument("--orders", nargs="+", choices=ORDERS)
    ap.add_argument("--examples", type=int, help="dev examples served (the first ones)")
    ap.add_argument("--repeats", type=int)
    ap.add_argument("--warmup", type=int)
    ap.add_argument("--exact", action=argparse.BooleanOptionalAction, default=None,
                    help="predict_batch's mode (default: serving.exact, false): --exact reads each row's decisions "
                         "and head alone, as batch size 1 does; --no-exact runs them once per layer on the batch")
    ap.add_argument("--device", help="default: latency.device")
    ap.add_argument("--threads", type=int, help="default: latency.threads")
    ap.add_argument("--out", type=Path, help="the CSV (default: results/<profile>/serving.csv under --directory)")
    ap.add_argument("--figure", type=Path, help="the PNG (default: figures/<profile>/serving.png under --directory)")
    args = ap.parse_args(argv)
    try:
        root = workflow_root()
        config = resolve_config([args.configfile], config_dir(root))
        validate(config, str(root / "workflow/schemas/config.schema.yaml"), set_default=True)
        serving = dict(config.get("serving", {}))
        for key in ("batch_sizes", "orders", "examples", "repeats", "warmup", "tasks", "exact"):
            given = getattr(args, key)
            if given is not None:
                serving[key] = given
        tasks = serving_tasks(serving, list(config["tasks"]))
    except ConfigError as exc:
        ap.exit(2, f"{exc}\n")
    latency = dict(config["latency"])
    latency.update({k: v for k, v in (("device", args.device), ("threads", args.threads)) if v is not None})
    paths = run_paths(config, args.directory, tasks)
    if not Path(paths["selected_csv"]).exists():
        ap.exit(2, f"{paths['selected_csv']} does not exist: serve_bench reads a finished run of the profile "
                   f"{config['profile']}; run its table1 rule first, or pass the --directory it ran in.\n")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    df = run_serving(tasks=tasks, selected_csv=paths["selected_csv"], data_paths=paths["data_paths"],
                     model_dirs=paths["model_dirs"], method_params=config["methods"], serving=serving,
                     latency=latency, profile=config["profile"], seed=paths["seed"],
                     out_csv=args.out or paths["out_csv"])
    from dpbert.reporting.figures import serving_figure

    serving_figure(df, args.figure or paths["figure"])
    cols = ["task", "display_name", "chosen_on", "order", "batch_size", "exact", "examples_per_s", "base_examples_per_s",
            "throughput_speedup", "layer_speedup", "survival", "mean_rows_per_call", "prediction_differences",
            "layer_differences"]
    if not df.empty:
        print(df[cols].to_string(index=False, float_format=lambda x: f"{x:.3g}"))


if __name__ == "__main__":
    main()

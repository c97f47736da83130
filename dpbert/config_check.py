"""Checks the JSON schema cannot express, run when the DAG is built: before any job starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dpbert.registry import MethodConfigError, UnknownMethodError, get_method, make_params


class ConfigError(ValueError):
    pass


def check_config(config: dict[str, Any]) -> dict[str, type]:
    """Validate methods, window and sources; return {method name: class} in config order."""
    methods = config.setdefault("methods", {})
    if "bert" not in methods:
        # BERT-base is the denominator of every speed-up and stage 1 of most methods.
        methods["bert"] = {}
        config["methods"] = {"bert": {}, **{k: v for k, v in methods.items() if k != "bert"}}
    resolved = {}
    for name, params in config["methods"].items():
        try:
            cls = get_method(name)
        except UnknownMethodError as exc:
            raise ConfigError(f"config key methods.{name}: {exc}") from None
        try:
            obj = make_params(cls.Params, params or {}, name)
        except (MethodConfigError, TypeError) as exc:
            raise ConfigError(str(exc)) from None
        for key in ("target_rates",):
            for t in getattr(obj, key, []) or []:
                if not 0.0 <= float(t) <= 1.0:
                    raise ConfigError(
                        f"methods.{name}.{key} contains {t}, but a skip-rate target must lie in [0, 1] "
                        "(0 = run every layer, 1 = skip all). The paper's 1.30-1.96x window is t in [0.23, 0.49]."
                    )
        resolved[name] = cls
    lo, hi = config["selection"]["window"]
    if lo > hi:
        raise ConfigError(
            f"selection.window is [{lo}, {hi}] but its minimum is larger than its maximum; write it as "
            f"[{hi}, {lo}] (the paper's window is [1.30, 1.96])."
        )
    data = config["data"]
    if data["source"] == "glue_tsv":
        if not data.get("data_dir"):
            raise ConfigError(
                "data.source is glue_tsv but data.data_dir is not set: point it at the GLUE folder that "
                "holds CoLA/, SST-2/, MNLI/, ... (the layout of the GLUE download)."
            )
        if not Path(data["data_dir"]).is_dir():
            raise ConfigError(
                f"data.data_dir '{data['data_dir']}' does not exist (relative paths are taken from the "
                "directory snakemake runs in). Point it at the GLUE folder holding CoLA/, SST-2/, MNLI/, ..."
            )
    if data["source"] == "glue_tsv":
        from dpbert.data import DataError, check_glue_folder

        for task in config["tasks"]:
            try:
                check_glue_folder(task, data["data_dir"])
            except DataError as exc:
                raise ConfigError(str(exc)) from None
    if data["source"] == "hub" or config["model"]["source"] == "hub":
        from dpbert.hub import HubUnreachableError, hub_reachable, require_hub

        if not hub_reachable():
            what = []
            if data["source"] == "hub":
                what.append("GLUE (data.source: hub)")
            if config["model"]["source"] == "hub":
                what.append(f"the model '{config['model']['name']}' (model.source: hub)")
            try:
                require_hub(
                    " and ".join(what) + f" for profile '{config['profile']}'",
                    "run the offline profiles instead: the default demo, or "
                    "--configfile workflow/config/minilm.yaml with a local GLUE folder",
                )
            except HubUnreachableError as exc:
                raise ConfigError(str(exc)) from None
    return resolved

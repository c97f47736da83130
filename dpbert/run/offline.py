"""Offline clusters: run a hub profile from the local Hugging Face cache when the hub is out of reach.

When HF_HUB_OFFLINE / HF_DATASETS_OFFLINE is set or the hub endpoint does not answer, the config
check (:func:`dpbert.run.config_check.check_config`) asks this module whether everything the profile
downloads is already cached: the backbone (``model.source: hub``), DistilBERT's hub student, GLUE
(``data.source: hub``). If so the run proceeds and the job code reads the cache (transformers with
``local_files_only=True``, datasets in offline mode); if not it stops before any job with one
paragraph naming what is missing, where it looked, and the fix.

Caches: models in the hub cache (``$HF_HOME/hub/models--org--name/snapshots/<rev>/``, ``refs/main``),
GLUE in the datasets cache (``$HF_HOME/datasets/glue/<config>/0.0.0/<hash>/``, written by an online
``datasets.load_dataset("glue", config)``; offline, datasets serves ``load_dataset("glue", config)``
from there). Fill both once on a machine with hub access and the same HF_HOME:

    python -m dpbert.run.offline --configfile workflow/config/paper.yaml --fetch
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt")
# what --fetch downloads of a model repository (the weights in one format, not TF/Flax/ONNX copies)
MODEL_PATTERNS = ["config.json", "tokenizer*", "vocab.txt", "special_tokens_map.json", "model.safetensors*"]


@dataclass(frozen=True)
class Need:
    """One thing a profile downloads from the hub: a model repository or a GLUE config and its splits."""

    kind: str  # model | glue
    name: str  # repo id, or the GLUE config name (cola, mnli, ...)
    why: str  # the config key that asks for it
    splits: tuple[str, ...] = ()  # glue: the hub split names the jobs read

    def describe(self) -> str:
        return f"the model '{self.name}' ({self.why})" if self.kind == "model" else f"GLUE {self.name} ({self.why})"


def hub_needs(config: dict[str, Any], params: dict[str, Any] | None = None) -> list[Need]:
    """What ``config`` downloads from the hub. ``params``: {method: its Params object} (check_config
    builds them); a method with ``student`` and ``hub_name`` fields (DistilBERT) needs ``hub_name``
    when its student is ``hub``, or ``auto`` with ``model.source: hub``."""
    from dpbert.data.tasks import get_task

    needs: list[Need] = []
    model = config.get("model", {})
    if model.get("source") == "hub":
        needs.append(Need("model", model.get("name", ""), "model.source: hub"))
    for method, p in (params or {}).items():
        student, hub_name = getattr(p, "student", None), getattr(p, "hub_name", None)
        wanted = student == "hub" or (student == "auto" and model.get("source") == "hub")
        if isinstance(hub_name, str) and wanted and hub_name not in [n.name for n in needs if n.kind == "model"]:
            needs.append(Need("model", hub_name, f"methods.{method}.student: {student}"))
    data = config.get("data", {})
    if data.get("source") == "hub":
        for task in config.get("tasks", []):
            spec = get_task(task)
            ours = ["train", *spec.dev_splits] + (list(spec.test_splits) if data.get("with_test") else [])
            needs.append(Need("glue", spec.hub_name, "data.source: hub",
                              tuple(s.replace("dev", "validation", 1) for s in ours)))
    return needs


def model_problem(repo_id: str) -> str | None:
    """None when the hub cache holds a loadable copy of ``repo_id`` (config, weights, tokenizer at
    refs/main), else what is missing."""
    from huggingface_hub import constants, try_to_load_from_cache

    def cached(filename: str) -> str | None:
        try:
            found = try_to_load_from_cache(repo_id, filename)
        except (ValueError, OSError):  # an id the hub library refuses, an unreadable cache
            return None
        return found if isinstance(found, str) else None

    if cached("config.json") is None:
        return f"not in the hub cache {constants.HF_HUB_CACHE}"
    missing = []
    weights = next((f for f in WEIGHT_FILES if cached(f)), None)
    if weights is None:
        missing.append("its weights (" + " or ".join(WEIGHT_FILES[::2]) + ")")
    elif weights.endswith(".index.json"):
        try:
            shards = sorted(set(json.loads(Path(cached(weights)).read_text())["weight_map"].values()))
        except (OSError, ValueError, KeyError, AttributeError):
            shards = []
            missing.append(f"a readable {weights}")
        missing += [f"the shard {s}" for s in shards if cached(s) is None]
    if not any(cached(f) for f in TOKENIZER_FILES):
        missing.append("its tokenizer (" + " or ".join(TOKENIZER_FILES) + ")")
    return f"cached in {constants.HF_HUB_CACHE} without " + ", ".join(missing) if missing else None


def glue_problem(name: str, splits: tuple[str, ...] = ()) -> str | None:
    """None when datasets, offline, loads glue/``name`` from its cache with every split in ``splits``."""
    import datasets

    from dpbert.data.hub import datasets_offline

    try:
        with datasets_offline():
            ds = datasets.load_dataset("glue", name)
    except Exception as exc:  # noqa: BLE001  (datasets raises ConnectionError, FileNotFoundError, ValueError, ...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return f"not in the datasets cache {datasets.config.HF_DATASETS_CACHE} ({type(exc).__name__}: {first[:160]})"
    missing = [s for s in splits if s not in ds]
    return f"cached without the split(s) {', '.join(missing)} (it has {', '.join(ds)})" if missing else None


def missing_from_cache(needs: list[Need]) -> list[tuple[Need, str]]:
    out = []
    for need in needs:
        problem = model_problem(need.name) if need.kind == "model" else glue_problem(need.name, need.splits)
        if problem is not None:
            out.append((need, problem))
    return out


def offline_reason() -> str:
    from dpbert.data.hub import hub_endpoint, offline_flag_set

    if offline_flag_set():
        return "HF_HUB_OFFLINE (or HF_DATASETS_OFFLINE) is set"
    return f"the Hugging Face hub ({hub_endpoint()}) cannot be reached from this machine"


def offline_message(missing: list[tuple[Need, str]], profile: str, alternative: str) -> str:
    """One paragraph: why the hub is out of reach, what is not cached and where it looked, the fix."""
    items = "; ".join(f"{need.describe()}: {problem}" for need, problem in missing)
    return (
        f"{offline_reason()[0].upper()}{offline_reason()[1:]}, and profile '{profile}' needs what the local "
        f"Hugging Face cache does not hold: {items}. Fix: fill the cache once on a machine with hub access, "
        f"with the same HF_HOME (python -m dpbert.run.offline --configfile <this profile's config> --fetch), or "
        f"run where the hub is reachable (HF_HUB_OFFLINE unset), or {alternative}."
    )


PLACEHOLDER = "<this profile's config>"


def fetch_command(configfile: str | None) -> str:
    """The command that fills the cache for a profile."""
    return f"python -m dpbert.run.offline --configfile {configfile or PLACEHOLDER} --fetch"


def dry_run_note(missing: list[tuple[Need, str]], profile: str, configfile: str | None) -> str:
    """A few lines for the end of a dry run: what a real run of ``profile`` still needs, and the fix."""
    models = [n.name for n, _ in missing if n.kind == "model"]
    glue = [n.name for n, _ in missing if n.kind == "glue"]
    lacks = "; ".join(part for part in (
        ("models " if len(models) > 1 else "model ") + ", ".join(models) if models else "",
        "GLUE " + ", ".join(glue) if glue else "") if part)
    return (f"Dry run only: a real run of profile '{profile}' stops before its first job, because "
            f"{offline_reason()} and the local Hugging Face cache lacks: {lacks}.\n"
            f"Fill the cache once on a machine with hub access and the same HF_HOME:\n"
            f"    {fetch_command(configfile)}")


def fetch(needs: list[Need]) -> None:
    """Download every need into the local caches (needs the hub)."""
    import datasets
    from huggingface_hub import snapshot_download

    for need in needs:
        print(f"fetching {need.describe()}", file=sys.stderr)
        if need.kind == "model":
            snapshot_download(need.name, allow_patterns=MODEL_PATTERNS)
        else:
            datasets.load_dataset("glue", need.name)


def _resolved_params(config: dict[str, Any]) -> dict[str, Any]:
    from dpbert.methods.interface import make_params
    from dpbert.methods.registry import get_method

    return {name: make_params(get_method(name).Params, given or {}, name)
            for name, given in (config.get("methods") or {}).items()}


def main(argv: list[str] | None = None) -> int:
    import yaml

    parser = argparse.ArgumentParser(
        prog="python -m dpbert.run.offline",
        description="Say whether the local Hugging Face cache holds what a profile downloads; --fetch fills it.")
    parser.add_argument("--configfile", required=True, help="a profile, e.g. workflow/config/paper.yaml")
    parser.add_argument("--fetch", action="store_true", help="download what is missing (needs the hub)")
    args = parser.parse_args(argv)
    config = yaml.safe_load(Path(args.configfile).read_text()) or {}
    needs = hub_needs(config, _resolved_params(config))
    if not needs:
        print(f"{args.configfile} downloads nothing from the hub.")
        return 0
    missing = missing_from_cache(needs)
    if missing and args.fetch:
        fetch([need for need, _ in missing])
        missing = missing_from_cache(needs)
    for need in needs:
        problem = next((p for n, p in missing if n == need), None)
        print(f"{'MISSING' if problem else 'cached '}  {need.describe()}" + (f": {problem}" if problem else ""))
    return 1 if missing else 0


if __name__ == "__main__":
    raise SystemExit(main())

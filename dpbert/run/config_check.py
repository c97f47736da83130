"""Checks the JSON schema cannot express, run when the DAG is built: before any job starts."""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import numbers
import re
import sys
from pathlib import Path
from typing import Any

from dpbert.methods.interface import (
    DEPTH_METADATA,
    NOT_SCALAR,
    MethodConfigError,
    depth_spec,
    make_params,
    parse_scalar,
)
from dpbert.methods.registry import UnknownMethodError, get_method


class ConfigError(ValueError):
    pass


class CacheMissingError(ConfigError):
    """The offline refusal: every other check passed, but the local Hugging Face cache lacks ``missing``
    (``offline.missing_from_cache``). It carries what a dry run needs to plan anyway: ``methods``, what
    check_config would have returned."""

    def __init__(self, message: str, missing: list, methods: dict):
        super().__init__(message)
        self.missing = missing
        self.methods = methods


# ------------------------------------------------------------------ the schema, in a few lines

_TYPE_WORDS = {"number": "a number", "integer": "an integer", "string": "a string", "boolean": "true or false",
               "array": "a list", "object": "a mapping (key: value)", "null": "null"}


def _key(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(the top level)"


def _show(value: Any) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "null"
    elif isinstance(value, (dict, list)):
        text = json.dumps(value, default=str)
    else:
        text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def schema_message(error) -> str:
    """A jsonschema ValidationError as two or three lines: the key, its value, what it must be."""
    key, inst, kind, arg = _key(error.absolute_path), error.instance, error.validator, error.validator_value
    schema = error.schema if isinstance(error.schema, dict) else {}
    if kind == "additionalProperties" and isinstance(inst, dict):
        known = sorted(schema.get("properties", {}))
        bad = min(k for k in inst if k not in known)
        close = difflib.get_close_matches(bad, known, n=1)
        full = bad if key == "(the top level)" else f"{key}.{bad}"
        where = "at the top level" if key == "(the top level)" else f"in {key}"
        lines = [f"config key {full} is unknown" + (f": did you mean '{close[0]}'?" if close else "."),
                 f"The keys {where} are: {', '.join(known)}."]
    else:
        if kind == "type":
            types = [arg] if isinstance(arg, str) else list(arg)
            must = "be " + " or ".join(_TYPE_WORDS.get(t, t) for t in types)
            if isinstance(inst, str) and re.fullmatch(r"\s*[-+]?\d+[eE][-+]?\d+\s*", inst) and (
                    "number" in types or "integer" in types):
                mant, exp = re.split("[eE]", inst.strip())
                must += f" (YAML reads an exponent without a decimal point as text: write {mant}.0e{exp})"
        elif kind == "enum":
            must = "be one of " + ", ".join(_show(v) for v in arg)
            close = difflib.get_close_matches(str(inst), [str(v) for v in arg], n=1)
            must += f" (did you mean {close[0]}?)" if close else ""
        elif kind in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
            must = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}[kind]
            must = f"be {must} {arg}"
        elif kind in ("minItems", "maxItems"):
            must = f"have {'at least' if kind == 'minItems' else 'at most'} {arg} item(s)"
        elif kind == "uniqueItems":
            must = "not repeat a value"
        elif kind == "pattern":
            must = f"match the pattern {arg}"
        else:
            must = "pass the schema check: " + error.message[:160]
        lines = [f"config key {key} is {_show(inst)}, but it must {must}."]
    description = " ".join(str(schema.get("description", "")).split())
    if description and kind != "additionalProperties":
        lines.append(f"({key}: {description if len(description) <= 200 else description[:197] + '...'})")
    lines.append("Fix the config file (or the --config override); workflow/schemas/config.schema.yaml lists every key.")
    return "\n".join(lines)


def _branches(schema: Any) -> list[dict]:
    if not isinstance(schema, dict):
        return []
    alts = schema.get("anyOf") or schema.get("oneOf")
    return [b for alt in alts for b in _branches(alt)] if alts else [schema]


def _types(branch: dict) -> set[str]:
    kind = branch.get("type")
    return {kind} if isinstance(kind, str) else set(kind or ())


def _takes(branch: dict, value: Any) -> bool:
    """Whether one schema branch takes ``value`` by its type (and enum); not its bounds."""
    if "enum" in branch:
        return any(value == e and isinstance(value, bool) == isinstance(e, bool) for e in branch["enum"])
    types = _types(branch)
    if not types:
        return True  # no type: anything (the schema check decides)
    if isinstance(value, bool):
        return "boolean" in types
    if value is None:
        return "null" in types
    if isinstance(value, int):
        return bool(types & {"integer", "number"})
    if isinstance(value, float):
        return "number" in types or ("integer" in types and value.is_integer())
    return isinstance(value, str) and "string" in types


def coerce_strings(value: Any, schema: Any) -> Any:
    """``value`` (``--config`` overrides) with every string that the schema refuses where it stands, but
    whose number / boolean / null reading it takes, replaced by that reading: Snakemake hands nested
    ``--config`` values over as text (``model='{"max_length": 128}'`` gives "128"). A string the schema
    takes as one (an enum's "off") or that reads as nothing of the sort ("abc") is left for the schema
    check and its message."""
    if not isinstance(schema, dict):
        return value
    if isinstance(value, dict):
        out = {}
        for key, v in value.items():
            sub = next((b["properties"][key] for b in _branches(schema) if key in b.get("properties", {})), None)
            if sub is None:
                sub = next((b["additionalProperties"] for b in _branches(schema)
                            if isinstance(b.get("additionalProperties"), dict)), None)
            out[key] = coerce_strings(v, sub)
        return out
    if isinstance(value, list):
        items = next((b["items"] for b in _branches(schema) if isinstance(b.get("items"), dict)), None)
        return [coerce_strings(v, items) for v in value]
    if isinstance(value, str):
        branches = _branches(schema)
        if not branches or any(_takes(b, value) for b in branches):
            return value
        parsed = parse_scalar(value)
        if parsed is not NOT_SCALAR and any(_takes(b, parsed) for b in branches):
            return parsed
    return value


def check_schema(config: dict[str, Any], schema_path: str | Path) -> None:
    """Validate against the schema (as snakemake.utils.validate does) with a short message: the
    schema's own error prints the schema and the config, hundreds of lines for a misspelled key."""
    import yaml
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    schema = yaml.safe_load(Path(schema_path).read_text())
    error = best_match(Draft202012Validator(schema).iter_errors(config))
    if error is not None:
        raise ConfigError(schema_message(error))


# ------------------------------------------------------------------ window, devices, backbone

WINDOW_MAX = 50.0  # a layer speed-up is at most N (one layer of N); 50 leaves room for latency ratios


def check_window(selection: dict[str, Any]) -> None:
    lo, hi = selection["window"]
    if lo > hi:
        raise ConfigError(
            f"selection.window is [{lo}, {hi}] but its minimum is larger than its maximum; write it as "
            f"[{hi}, {lo}] (the paper's window is [1.30, 1.96])."
        )
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo < 1.0 or hi > WINDOW_MAX:
        raise ConfigError(
            f"selection.window is [{lo}, {hi}], but a speed-up window must satisfy 1 <= min <= max <= "
            f"{WINDOW_MAX:g} (finite): a speed-up below 1.0 is slower than BERT-base itself, and the layer "
            "speed-up of an N-layer model is at most N. The paper's window is [1.30, 1.96]."
        )
    up_to = selection.get("curve_up_to")
    if selection.get("min_points_in_curve", 0) > 0 and up_to is not None and up_to <= hi:
        raise ConfigError(
            f"selection.curve_up_to is {up_to:g}, but Figure 3's curve beyond the window searches speed-ups "
            f"in (window max, curve_up_to] = ({hi:g}, {up_to:g}], which is empty; set curve_up_to above "
            f"{hi:g} (unset: twice the window's max), or selection.min_points_in_curve: 0 to turn the curve search off."
        )


DEVICES = ("cpu", "cuda", "cuda:N", "auto", "mps")
_DEVICE = re.compile(r"^(cpu|cuda|cuda:\d+|auto|mps)$")


def check_devices(config: dict[str, Any]) -> None:
    for section in ("training", "latency"):
        device = config.get(section, {}).get("device", "cpu")
        if not isinstance(device, str) or not _DEVICE.match(device):
            close = difflib.get_close_matches(str(device), ["cpu", "cuda", "auto", "mps"], n=1)
            hint = (" (an NVIDIA GPU is 'cuda', or 'cuda:N' for the N-th)" if str(device).lower().startswith("gpu")
                    else f" (did you mean '{close[0]}'?)" if close else "")
            raise ConfigError(
                f"{section}.device is {_show(device)}, but it must be one of {', '.join(DEVICES)}"
                f"{hint}; auto picks cuda when torch sees a GPU, else cpu."
            )


# BertConfig keys the harness sets itself (build_classifier): model.small must not set them.
_SMALL_RESERVED = {"vocab_size": "the tokenizer's vocabulary size", "num_labels": "the task's number of labels",
                   "id2label": "the task's labels", "label2id": "the task's labels"}


def check_small(small: dict[str, Any]) -> int:
    """model.small against transformers.BertConfig: known keys, their types; returns the depth."""
    from transformers import BertConfig

    defaults = BertConfig().to_dict()
    for key, value in small.items():
        if key in _SMALL_RESERVED:
            raise ConfigError(f"model.small.{key} is set, but the harness sets it from {_SMALL_RESERVED[key]}; "
                              "remove it from model.small.")
        if key not in defaults:
            close = difflib.get_close_matches(key, list(defaults), n=1)
            raise ConfigError(
                f"model.small has the unknown key '{key}'" + (f": did you mean '{close[0]}'?" if close else ".")
                + " model.small takes transformers.BertConfig fields (num_hidden_layers, hidden_size, "
                "num_attention_heads, intermediate_size, max_position_embeddings, hidden_dropout_prob, ...)."
            )
        default = defaults[key]
        if isinstance(default, bool):
            ok, what = isinstance(value, bool), "true or false"
        elif isinstance(default, int):
            ok, what = isinstance(value, int) and not isinstance(value, bool), "an integer"
        elif isinstance(default, float):
            ok, what = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
        elif isinstance(default, str):
            ok, what = isinstance(value, str), "a string"
        else:
            ok, what = True, ""
        if not ok:
            raise ConfigError(f"model.small.{key} is {_show(value)}, but it must be {what} "
                              f"(BertConfig's default is {_show(default)}).")
        if key.endswith("_prob") and not 0.0 <= value <= 1.0:
            raise ConfigError(f"model.small.{key} is {value}, but a dropout probability must lie in [0, 1].")
    merged = {**defaults, **small}
    for key in ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size",
                "max_position_embeddings"):
        if merged[key] < 1:
            raise ConfigError(f"model.small.{key} is {merged[key]}, but it must be at least 1.")
    if merged["hidden_size"] % merged["num_attention_heads"]:
        raise ConfigError(
            f"model.small.hidden_size ({merged['hidden_size']}) is not a multiple of num_attention_heads "
            f"({merged['num_attention_heads']}): BERT splits the hidden state evenly across the heads."
        )
    return int(merged["num_hidden_layers"])


def coerce_small_strings(small: dict[str, Any]) -> dict[str, Any]:
    """model.small from ``--config`` with each text whose BertConfig default is a number or a boolean
    read as one ("6" -> 6), as ``coerce_strings`` does where the schema states the type."""
    from transformers import BertConfig

    defaults = BertConfig().to_dict()
    out = {}
    for key, value in small.items():
        default, parsed = defaults.get(key), parse_scalar(value) if isinstance(value, str) else NOT_SCALAR
        kind = bool if isinstance(default, bool) else int if isinstance(default, int) else (
            float if isinstance(default, float) else None)
        fits = parsed is not NOT_SCALAR and kind is not None and (
            isinstance(parsed, bool) if kind is bool else
            (isinstance(parsed, int) and not isinstance(parsed, bool)) if kind is int else
            isinstance(parsed, (int, float)) and not isinstance(parsed, bool))
        out[key] = parsed if fits else value
    return out


def _config_int(path: Path | str | None, key: str) -> int | None:
    """An integer field of a model's config.json; None when the file or the field is absent or unreadable."""
    try:
        return int(json.loads(Path(path).read_text())[key])
    except (OSError, ValueError, KeyError, TypeError):  # absent, unreadable or not a BERT config: left unchecked
        return None


def _config_depth(path: Path | str | None) -> int | None:
    return _config_int(path, "num_hidden_layers")


def _cached_hub_config(name: str) -> str | None:
    """The path of ``name``'s config.json in the local Hugging Face cache, else None (never the network)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(name, "config.json")
    except (ImportError, ValueError, OSError):  # no hub library, an id it refuses, an unreadable cache
        cached = None
    return cached if isinstance(cached, str) else None


def backbone_depth(model: dict[str, Any]) -> tuple[int | None, str]:
    """(layers of the configured backbone, where that number comes from); None: unknown, no check.

    small: model.small.num_hidden_layers; minilm: the installed package's config.json (6 without it);
    local: the folder's config.json, which must exist; hub: the cached config.json, else 12 for
    bert-base-uncased, else unknown. Raises ConfigError for a local folder that is no model."""
    source = model["source"]
    if source == "small":
        return check_small(model.get("small") or {}), "model.small.num_hidden_layers"
    if source == "minilm":
        from dpbert.model.sources import ModelLoadError, minilm_path

        try:
            depth = _config_depth(minilm_path() / "config.json")
        except ModelLoadError:
            depth = None
        return depth or 6, "all-MiniLM-L6-v2"
    if source == "local":
        folder = Path(model.get("name") or "")
        if not (folder / "config.json").is_file():
            raise ConfigError(
                f"model.source is local but model.name '{model.get('name')}' is not a model folder ("
                + ("it does not exist" if not folder.exists() else "no config.json there")
                + "; relative paths are taken from the directory snakemake runs in). Point it at a folder "
                "written by save_pretrained (config.json, model.safetensors, tokenizer files)."
            )
        return _config_depth(folder / "config.json"), f"{folder}/config.json"
    if source == "hub":
        name = model.get("name", "")
        cached = _cached_hub_config(name)
        if cached is not None and (depth := _config_depth(cached)) is not None:
            return depth, f"the cached config of {name}"
        return (12, name) if name == "bert-base-uncased" else (None, name)
    return None, source


def check_depths(params: dict[str, Any], given: dict[str, dict], depth: int, source: str) -> None:
    """Refuse a layer count or index a backbone of ``depth`` layers does not have, whatever the field's
    type (PABEE's patience may exceed it: that only means it never exits). The fields are those
    ``depth_spec`` finds: declared with ``depth_field``, or named like a depth (``depth``, ``exit_layer``,
    ``kept_layers``)."""
    for name, obj in params.items():
        for f in dataclasses.fields(obj):
            spec = depth_spec(f)
            if spec is None:
                continue
            key, (lo, offset, what) = f.name, spec
            value = getattr(obj, key, None)
            if value is None:
                continue
            hi = depth + offset
            many = isinstance(value, (list, tuple))
            for v in value if many else [value]:
                if isinstance(v, numbers.Real) and not isinstance(v, bool) and not lo <= v <= hi:
                    default = "" if key in (given.get(name) or {}) else " (its default; set it for this backbone)"
                    by_name = "" if DEPTH_METADATA in f.metadata else (
                        f" If {key} is no depth, or counts layers another way, declare it in the method's "
                        f"Params with not_a_depth() or depth_field(lowest, highest_offset, what) "
                        "(dpbert/methods/interface.py).")
                    deeper = f", or a backbone of at least {v - offset:g} layers" if v > hi else ""
                    raise ConfigError(
                        f"methods.{name}.{key} {'has' if many else 'is'} {v:g}{default}, but the backbone has "
                        f"{depth} layers ({source}); {key} holds {what}: use values in {lo}..{hi}{deeper}."
                        f"{by_name}"
                    )


def check_window_reach(window: list[float], depth: int, source: str) -> None:
    """Refuse a window whose minimum no point can reach: the layer speed-up of an N-layer backbone is
    N / mean executed layers, at most N (every example leaves after one layer)."""
    lo, hi = window
    if lo > depth:
        raise ConfigError(
            f"selection.window is [{lo:g}, {hi:g}], but the backbone has {depth} layers ({source}), so a layer "
            f"speed-up (N / mean executed layers) is at most {depth}x: no point of any method can reach "
            f"{lo:g}x and every window cell of Table 1 (every method's) would be empty. Lower the window's "
            f"minimum to at most {depth} (the paper's [1.30, 1.96] is for 12 layers), or use a backbone of at least "
            f"{math.ceil(lo)} layers."
        )


def reporting_defaults() -> dict[str, Any]:
    """The schema's default of every ``reporting`` key ({} when the schema is not next to the package)."""
    import yaml

    path = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"
    try:
        props = yaml.safe_load(path.read_text())["properties"]["reporting"]["properties"]
    except (OSError, KeyError, TypeError):
        return {}
    return {key: spec["default"] for key, spec in props.items() if "default" in spec}


def check_reporting_tasks(reporting: dict[str, Any], tasks: list[str], defaults: dict[str, Any]) -> None:
    """Refuse a written ``reporting.table2_tasks`` / ``figure3_tasks`` naming a task the profile does not
    run: the reporting rules would leave it out silently. The schema's default (the paper's tasks) is
    exempt: it stands for "those of the paper's tasks that the profile runs"."""
    for key in ("table2_tasks", "figure3_tasks"):
        named = reporting.get(key)
        if named is None or named == defaults.get(key):
            continue
        unknown = [t for t in named if t not in tasks]
        if unknown:
            lower = {t.lower(): t for t in tasks}
            close = {t: difflib.get_close_matches(str(t).lower(), list(lower), n=1) for t in unknown}
            hint = "; ".join(f"{t!s}: did you mean {lower[c[0]]}?" for t, c in close.items() if c)
            raise ConfigError(
                f"reporting.{key} is {_show(named)}, but {', '.join(map(str, unknown))} "
                f"{'is' if len(unknown) == 1 else 'are'} not in tasks ({', '.join(tasks)}), so the reporting "
                f"would leave {'it' if len(unknown) == 1 else 'them'} out without a word"
                + (f" ({hint})" if hint else "") + f". Name tasks the profile runs, add "
                f"{'it' if len(unknown) == 1 else 'them'} to tasks, or remove reporting.{key} for the paper's "
                f"{_show(defaults.get(key))} (those of them the profile runs)."
            )


def check_method_coverage(config: dict[str, Any]) -> None:
    """Refuse a method that covers none of the profile's tasks (dpbert.run.jobs.method_tasks): it would
    get no job and be missing from every table without a word."""
    from dpbert.data.tasks import TASKS
    from dpbert.run.jobs import method_tasks

    for name in config["methods"]:
        if method_tasks(config, name):
            continue
        covered = [t for t, spec in TASKS.items() if get_method(name).supports_regression or not spec.is_regression]
        raise ConfigError(
            f"methods.{name} covers no task of this profile: tasks is [{', '.join(config['tasks'])}], and "
            f"{name} has no regression head (supports_regression is False), so it would get no job and be "
            f"missing from every table. Add a task it covers ({', '.join(covered)}) to tasks, or remove "
            f"methods.{name}."
        )


def position_limit(model: dict[str, Any]) -> tuple[int | None, str]:
    """(position embeddings of the configured backbone, where that number comes from); None: unknown,
    no check. small: model.small.max_position_embeddings or BertConfig's default; minilm: the package's
    config.json (512 without it); local: the folder's config.json; hub: the cached config.json only."""
    source = model["source"]
    key = "max_position_embeddings"
    if source == "small":
        if key in (model.get("small") or {}):
            return int(model["small"][key]), f"model.small.{key}"
        from transformers import BertConfig

        return int(BertConfig().max_position_embeddings), f"BertConfig's default; model.small.{key} is unset"
    if source == "minilm":
        from dpbert.model.sources import ModelLoadError, minilm_path

        try:
            limit = _config_int(minilm_path() / "config.json", key)
        except ModelLoadError:
            limit = None
        return limit or 512, "all-MiniLM-L6-v2"
    if source == "local":
        path = Path(model.get("name") or "") / "config.json"
        return _config_int(path, key), str(path)
    if source == "hub":
        name = model.get("name", "")
        cached = _cached_hub_config(name)
        return (_config_int(cached, key), f"the cached config of {name}") if cached else (None, name)
    return None, source


def check_max_length(max_length: int, limit: int, source: str) -> None:
    if max_length > limit:
        small = (" or raise model.small.max_position_embeddings"
                 if source.startswith(("model.small", "BertConfig")) else "")
        raise ConfigError(
            f"model.max_length is {max_length}, but the backbone has {limit} position embeddings ({source}): "
            f"an example longer than {limit} tokens would index past them and its job would crash in the "
            f"first batch. Set model.max_length to at most {limit} (the paper uses 128){small}."
        )


def check_vocabulary(data_source: str, model_source: str) -> None:
    """Refuse real GLUE text with the small model: its tokenizer's vocabulary is the synthetic data's
    words (dpbert.model.sources.load_tokenizer: SYNTHETIC_VOCAB), fixed, not built from the data."""
    if model_source == "small" and data_source in ("glue_tsv", "hub"):
        from dpbert.data.synthetic import SYNTHETIC_VOCAB

        raise ConfigError(
            f"data.source is {data_source} (real GLUE text), but model.source is small, whose tokenizer is a "
            f"word-level vocabulary of the synthetic data's {len(SYNTHETIC_VOCAB)} words (SYNTHETIC_VOCAB in "
            "dpbert/data/synthetic.py), not of your data: most real words would become [UNK] and every "
            "method would learn from the few words it knows. Use model.source: minilm (offline; see "
            "workflow/config/minilm.yaml) or a pretrained model (model.source: hub or local), or "
            "data.source: synthetic."
        )


def check_config(config: dict[str, Any]) -> dict[str, type]:
    """Validate methods (their parameters' types and ranges, layers against the backbone's depth),
    window, devices, backbone and data; return {method name: class} in config order. Run after the
    schema (check_schema, then snakemake's validate for the defaults)."""
    methods = config.setdefault("methods", {})
    if "bert" not in methods:
        # BERT-base is the denominator of every speed-up and stage 1 of most methods.
        methods["bert"] = {}
        config["methods"] = {"bert": {}, **{k: v for k, v in methods.items() if k != "bert"}}
    resolved, params = {}, {}
    for name, given in config["methods"].items():
        try:
            cls = get_method(name)
        except UnknownMethodError as exc:
            raise ConfigError(f"config key methods.{name}: {exc}") from None
        try:
            params[name] = make_params(cls.Params, given or {}, name)  # types and ranges: check_params
        except (MethodConfigError, TypeError) as exc:
            raise ConfigError(str(exc)) from None
        resolved[name] = cls
    check_window(config["selection"])
    check_reporting_tasks(config.get("reporting") or {}, config["tasks"], reporting_defaults())
    check_method_coverage(config)
    check_devices(config)
    depth, source = backbone_depth(config["model"])
    if depth is not None:
        check_depths(params, config["methods"], depth, source)
        check_window_reach(config["selection"]["window"], depth, source)
    limit, where = position_limit(config["model"])
    if limit is not None:
        check_max_length(config["model"]["max_length"], limit, where)
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
        from dpbert.data.sources import DataError, check_glue_folder

        for task in config["tasks"]:
            try:
                check_glue_folder(task, data["data_dir"])
            except DataError as exc:
                raise ConfigError(str(exc)) from None
    check_vocabulary(data["source"], config["model"]["source"])
    from dpbert.run import offline

    needs = offline.hub_needs(config, params)
    if needs:
        from dpbert.data.hub import hub_reachable

        if not hub_reachable():  # offline: proceed only if the local cache holds everything (dpbert.run.offline)
            missing = offline.missing_from_cache(needs)
            if missing:
                raise CacheMissingError(offline.offline_message(
                    missing, config["profile"],
                    "run the offline profiles instead: the default demo, or "
                    "--configfile workflow/config/minilm.yaml with a local GLUE folder"), missing, resolved)
            print(f"{offline.offline_reason()}: the jobs read "
                  + ", ".join(n.describe() for n in needs) + " from the local Hugging Face cache.", file=sys.stderr)
    return resolved

"""Which config a run uses, and where a profile's outputs go.

A ``--configfile`` is either a complete profile (every key of ``COMPLETE_KEYS``: used as it is), or
a partial file that names the profile it changes with ``base:`` and its own ``profile:`` name: it is
merged deeply over that profile (mappings key by key, lists and values replaced, a key set to null
removed). A base is any profile file: a name of workflow/config/ (demo is config.yaml, minilm,
paper) or of the test profiles in tests/config/ (micro), or the path of a YAML file (relative to the
partial file's folder, else to the current one), itself complete or layered over its own base. A
partial file without ``base:`` is refused, never mixed with the demo. ``--config`` overrides go on
top of either, their strings read as numbers, booleans or null where the config schema asks for one
(``coerce_overrides``); ``methods.<name>: null`` there, as in a file, drops that method
(``--config methods='{"deebert": null}'``). The Snakefile and ``python -m dpbert.tools.plan`` both resolve a config here.

Outputs: the default profile (demo) writes ``results/`` and ``figures/``; every other profile
``results/<profile>/`` and ``figures/<profile>/``, so no profile overwrites another's tables.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from dpbert.run.config_check import ConfigError

DEFAULT_PROFILE = "demo"
PROFILE_FILES = {DEFAULT_PROFILE: "config.yaml"}  # every other profile: workflow/config/<name>.yaml
# what a complete profile file states (the rest has schema defaults)
COMPLETE_KEYS = ("profile", "tasks", "seeds", "methods", "data", "model", "training", "latency", "selection")
# folders under the demo's results/: no profile may take them as its own results folder
RESERVED_NAMES = ("logs", "glue_test")


def config_dir(basedir: str | Path) -> Path:
    return Path(basedir) / "workflow" / "config"


def workflow_root(start: str | Path | None = None) -> Path:
    """The checkout whose workflow/ (configs, schema) a command-line tool reads: the current folder or
    one above it (the package itself never assumes it sits in a checkout)."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "workflow" / "schemas" / "config.schema.yaml").is_file():
            return folder
    raise ConfigError(f"no workflow/schemas/config.schema.yaml in {here} or a folder above it: run this "
                      "command from the harness's checkout (the folder with the Snakefile), where the "
                      "profiles (workflow/config/) and the config schema live.")


def tests_config_dir(cdir: Path) -> Path:
    """tests/config/ of the checkout whose workflow/config/ is ``cdir``: the test profiles (micro)."""
    return Path(cdir).parent.parent / "tests" / "config"


def profile_files(cdir: Path) -> dict[str, Path]:
    """{profile name: file} of the profiles shipped in workflow/config/, then the test profiles of
    tests/config/ (micro) under names workflow/config/ does not take."""
    cdir = Path(cdir)
    files = {p.stem: p for p in sorted(cdir.glob("*.yaml")) if p.name not in PROFILE_FILES.values()}
    files.update({name: cdir / f for name, f in PROFILE_FILES.items()})
    tests = tests_config_dir(cdir)
    for p in sorted(tests.glob("*.yaml")) if tests.is_dir() else []:
        files.setdefault(p.stem, p)
    return dict(sorted(files.items(), key=lambda kv: (kv[1].parent != cdir, kv[0])))


def _base_file(base: Any, shown: str, origin: Path, known: dict[str, Path]) -> Path:
    """The file a ``base:`` names: a profile name (``known``), or a YAML path relative to ``origin``
    (the partial file's folder), else to the current folder."""
    if isinstance(base, str) and base in known:
        return known[base]
    if isinstance(base, str) and base.endswith((".yaml", ".yml")):
        for path in (origin / base, Path(base)):
            if path.is_file():
                return path
    shipped = [n for n, f in known.items() if f.parent == known[DEFAULT_PROFILE].parent]
    tests = [n for n in known if n not in shipped]
    raise ConfigError(
        f"Config key 'base' in --configfile {shown} is {base!r}, which is neither a profile nor a YAML file. "
        f"Set it to one of {', '.join(shipped)} (workflow/config/)" + (f" or {', '.join(tests)} (tests/config/)"
                                                                       if tests else "")
        + ", or to the path of a profile file (relative to the file that names it), the profile this file "
        "changes; or remove it and give a complete profile.")


def _layered(given: dict[str, Any], shown: str, origin: Path, known: dict[str, Path],
             seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """``given`` merged over the profile its ``base:`` names (itself resolved the same way)."""
    path = _base_file(given["base"], shown, origin, known).resolve()
    if path in seen:
        raise ConfigError(f"--configfile {shown}: the bases form a loop ({' -> '.join(map(str, (*seen, path)))}); "
                          "a base must end in a complete profile.")
    base = _load(path)
    if base.get("base") is not None:
        base = _layered(base, str(path), path.parent, known, (*seen, path))
    base.pop("base", None)
    return layer(base, {k: v for k, v in given.items() if k != "base"})


def _load(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"--configfile {path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"--configfile {path} holds a {type(data).__name__}, not a mapping of config keys; "
                          "a config file is `key: value` lines (see workflow/config/config.yaml).")
    return data


def layer(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` merged deeply into a copy of ``base``: mappings key by key, anything else replaced; None removes."""
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = layer(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _update(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Snakemake's own merge of --configfile files and --config values (mappings deep, None kept)."""
    for key, value in over.items():
        if isinstance(value, Mapping):
            base[key] = _update(base[key] if isinstance(base.get(key), dict) else {}, value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def _refuse_unknown_keys(given: Mapping[str, Any], cdir: Path) -> None:
    """A top-level key the config schema does not know, named with its closest known key."""
    import difflib

    import yaml

    schema_path = cdir.parent / "schemas" / "config.schema.yaml"
    if not schema_path.is_file():
        return
    known = sorted({*yaml.safe_load(schema_path.read_text()).get("properties", {}), "base"})
    unknown = sorted(k for k in given if k not in known)
    if unknown:
        close = difflib.get_close_matches(unknown[0], known, n=1)
        raise ConfigError(f"config key {unknown[0]} is unknown" + (f": did you mean '{close[0]}'?" if close else ".")
                          + f" The keys at the top level are: {', '.join(known)}.")


def coerce_overrides(overrides: Mapping[str, Any], cdir: str | Path) -> dict[str, Any]:
    """``--config`` values with the text Snakemake makes of nested numbers, booleans and null read back
    where the config schema asks for one (``config_check.coerce_strings``), where BertConfig does under
    ``model.small`` and where a method's Params annotation does under ``methods:`` (``coerce_param_strings``)."""
    from dpbert.run.config_check import coerce_small_strings, coerce_strings

    schema_path = Path(cdir).parent / "schemas" / "config.schema.yaml"
    schema = yaml.safe_load(schema_path.read_text()) if schema_path.is_file() else {}
    out = coerce_strings(dict(overrides), schema)
    small = (out.get("model") or {}).get("small") if isinstance(out.get("model"), dict) else None
    if isinstance(small, dict) and any(isinstance(v, str) for v in small.values()):
        out["model"] = {**out["model"], "small": coerce_small_strings(small)}
    methods = out.get("methods")
    if isinstance(methods, dict) and any(isinstance(v, dict) for v in methods.values()):
        from dpbert.methods.interface import coerce_param_strings
        from dpbert.methods.registry import registered

        known = registered()
        out["methods"] = {name: coerce_param_strings(known[name].Params, given)
                          if name in known and isinstance(given, dict) else given for name, given in methods.items()}
    return out


def resolve_config(configfiles: Iterable[str | Path], cdir: str | Path,
                   overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The config of a run: the demo without configfiles, a complete file as it is, a partial one over its base."""
    cdir = Path(cdir)
    files = [Path(f) for f in configfiles]
    known = profile_files(cdir)
    if not files:
        config = _load(known[DEFAULT_PROFILE])
    else:
        given: dict[str, Any] = {}
        for f in files:
            _update(given, _load(f))
        shown = " ".join(str(f) for f in files)
        base = given.get("base")
        if base is not None:
            config = _layered(given, shown, files[0].parent, known)
            if "profile" not in given:
                was = config.get("profile", DEFAULT_PROFILE)
                raise ConfigError(
                    f"--configfile {shown} changes profile '{was}' (base: {base}) but names no profile of its own, "
                    f"so its results would replace {was}'s records ({results_dir(was)}/table1.csv, "
                    f"work/{was}/). Add `profile: <a new name>` (its outputs then go to results/<name>/, "
                    f"figures/<name>/ and work/<name>/), or `profile: {was}` to change {was}'s own records "
                    "on purpose.")
        else:
            _refuse_unknown_keys(given, cdir)  # a misspelt key first: it is why a key is "missing"
            missing = [k for k in COMPLETE_KEYS if k not in given]
            if missing:
                raise ConfigError(
                    f"--configfile {shown} is not a complete profile: it lacks {', '.join(missing)}, and "
                    "a run never fills those in from the demo silently. Add `base: demo` (or "
                    f"{', '.join(n for n in known if n != DEFAULT_PROFILE)}) and `profile: <a new name>` to "
                    "the file to layer it over that profile (merged key by key; null removes a key, e.g. a "
                    "method), or give every one of those keys (workflow/config/config.yaml shows them all).")
            config = given
    if overrides:
        _update(config, coerce_overrides(overrides, cdir))
    config.pop("base", None)
    if isinstance(config.get("methods"), dict):  # `methods.<name>: null` drops a method, in a file or in --config
        # (Snakemake hands a nested null over as the text "null")
        config["methods"] = {name: params for name, params in config["methods"].items()
                             if params is not None and params != "null"}
    name = config.get("profile", DEFAULT_PROFILE)
    if name in RESERVED_NAMES:
        raise ConfigError(
            f"Config key 'profile' is '{name}', a folder of the demo's results/ ({', '.join(RESERVED_NAMES)}). "
            "Choose another profile name: it names the results/<profile>/ and work/<profile>/ folders.")
    return config


def results_dir(profile: str) -> str:
    """Where a profile's tables and reports go: results/ for the default profile, else results/<profile>."""
    return "results" if profile == DEFAULT_PROFILE else f"results/{profile}"


def figures_dir(profile: str) -> str:
    return "figures" if profile == DEFAULT_PROFILE else f"figures/{profile}"

"""The config in one canonical form, so that a job's params change only when a value does.

Snakemake 9 stores each job's params as the sorted list of ``repr(value)`` of every params value
(``snakemake/persistence``: ``_params``) and reruns the job ("Params have changed") when that list
differs from the one it stored. The ``repr`` of a mapping follows its insertion order, and an int's
``repr`` differs from the equal float's, so reordering two lines of ``data:`` or writing ``epochs: 1.0``
for ``epochs: 1`` would rerun every job of the run: hundreds of GPU-hours on the paper profile.

``canonical_config`` gives every mapping its keys in sorted order, except ``methods:`` itself, whose
order is Table 1's row order (each method's own parameters are sorted), and every number the type its
key declares where the config check accepts either (the schema's ``number`` and a method parameter
annotated ``float`` take an int: it becomes a float; the schema's ``integer`` takes a float with no
fraction: it becomes an int). Strings are never read as numbers here: a ``--config`` value such as
``lr="1e-5"`` is read by ``profiles.coerce_overrides`` before this, and a quoted number in a file is
refused by the config check. Lists keep their order (the order of ``tasks:`` or a grid is meaningful).
The Snakefile applies it once, after the schema's defaults are filled and the config is checked, so
that every rule's params, being built from the config, are canonical.
"""

from __future__ import annotations

import numbers
import types
from collections.abc import Mapping
from typing import Any, Union, get_args, get_origin, get_type_hints

# the mappings whose order means something: ``methods:`` is Table 1's row order (dpbert.run.jobs)
KEEP_ORDER: tuple[tuple[str, ...], ...] = (("methods",),)


def sorted_keys(value: Any, keep_order: tuple[tuple[str, ...], ...] = KEEP_ORDER,
                path: tuple[str, ...] = ()) -> Any:
    """``value`` rebuilt with every mapping's keys sorted (those at a path in ``keep_order`` keep their
    order; their values are still sorted within). Lists keep their order; nothing is shared with ``value``."""
    if isinstance(value, Mapping):
        keys = list(value) if path in keep_order else sorted(value, key=str)
        return {k: sorted_keys(value[k], keep_order, (*path, str(k))) for k in keys}
    if isinstance(value, (list, tuple)):
        return [sorted_keys(v, keep_order, path) for v in value]
    return value


def _number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def as_declared(value: Any, takes_float: bool, takes_int: bool) -> Any:
    """One number in the type its key declares: an int where only floats are declared becomes a float,
    a float without a fraction where only ints are declared becomes an int; anything else is kept."""
    if not _number(value):
        return value
    if takes_float and not takes_int and not isinstance(value, float):
        return float(value)
    if takes_int and not takes_float and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _branches(schema: Any) -> list[dict]:
    if not isinstance(schema, dict):
        return []
    alts = schema.get("anyOf") or schema.get("oneOf")
    return [b for alt in alts for b in _branches(alt)] if alts else [schema]


def _schema_types(branches: list[dict]) -> set[str]:
    out: set[str] = set()
    for b in branches:
        kind = b.get("type")
        out |= {kind} if isinstance(kind, str) else set(kind or ())
    return out


def schema_numbers(value: Any, schema: Any) -> Any:
    """``value`` with each number in the type its place in the JSON ``schema`` declares (``number``: float,
    ``integer``: int), through properties, additionalProperties, items and anyOf / oneOf branches."""
    branches = _branches(schema)
    if not branches:
        return value
    if isinstance(value, Mapping):
        out = {}
        for key, v in value.items():
            sub = next((b["properties"][key] for b in branches if key in (b.get("properties") or {})), None)
            if sub is None:
                sub = next((b["additionalProperties"] for b in branches
                            if isinstance(b.get("additionalProperties"), dict)), None)
            out[key] = schema_numbers(v, sub)
        return out
    if isinstance(value, (list, tuple)):
        items = next((b["items"] for b in branches if isinstance(b.get("items"), dict)), None)
        return [schema_numbers(v, items) for v in value]
    kinds = _schema_types(branches)
    return as_declared(value, "number" in kinds, "integer" in kinds)


def _annotation_takes(tp: Any) -> tuple[bool, bool]:
    """(takes a float, takes an int) for a Params annotation: ``float``, ``float | None``, ``list[float]`` ..."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        pairs = [_annotation_takes(a) for a in get_args(tp)]
        return any(p[0] for p in pairs), any(p[1] for p in pairs)
    if origin in (list, tuple) or tp in (list, tuple):
        args = get_args(tp)
        return _annotation_takes(args[0]) if args else (False, False)
    return tp is float, tp is int


def param_numbers(values: Mapping[str, Any], params_cls: type | None) -> dict[str, Any]:
    """A method's config entry with each number in the type its ``Params`` field is annotated with
    (``float``, ``float | None``, ``list[float]``: float); keys the class does not annotate are kept."""
    try:
        hints = get_type_hints(params_cls) if params_cls is not None else {}
    except (NameError, TypeError, AttributeError):
        hints = {}
    out = {}
    for key, v in values.items():
        if key not in hints:
            out[key] = v
            continue
        takes_float, takes_int = _annotation_takes(hints[key])
        out[key] = ([as_declared(x, takes_float, takes_int) for x in v] if isinstance(v, (list, tuple))
                    else as_declared(v, takes_float, takes_int))
    return out


def canonical_config(config: Mapping[str, Any], schema: Mapping[str, Any] | None = None,
                     methods: Mapping[str, type] | None = None) -> dict[str, Any]:
    """The config with sorted keys (``methods:`` keeps its order) and numbers in their declared types:
    by the JSON ``schema`` of the config, and under ``methods.<name>`` by the ``Params`` annotations of
    ``methods`` ({name: method class}, as ``check_config`` returns). Equal configs give equal ``repr``s
    of every part, whatever the order of their keys or the spelling of their numbers."""
    out = schema_numbers(dict(config), schema) if schema else dict(config)
    if isinstance(out.get("methods"), Mapping):
        out["methods"] = {
            name: param_numbers(given, getattr((methods or {}).get(name), "Params", None))
            if isinstance(given, Mapping) else given
            for name, given in out["methods"].items()
        }
    return sorted_keys(out)

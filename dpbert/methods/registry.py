"""Method discovery: every ``@register``-ed class of ``dpbert.methods`` and ``baselines``, by name.

The interface (dpbert.methods.interface) imports no implementation; this module imports them all
the first time a method is looked up, so a new baseline is one module in ``baselines/`` plus one
config entry.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from dpbert.data.tasks import TaskSpec
from dpbert.methods.interface import _REGISTRY, Method


class UnknownMethodError(ValueError):
    pass


def _load_all() -> None:
    import baselines  # noqa: F401  (imports every module in baselines/)
    import dpbert.methods.bert_base  # noqa: F401
    import dpbert.methods.dpbert  # noqa: F401


def registered() -> dict[str, type[Method]]:
    _load_all()
    return dict(_REGISTRY)


def get_method(name: str) -> type[Method]:
    methods = registered()
    if name not in methods:
        close = difflib.get_close_matches(name, list(methods), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise UnknownMethodError(
            f"unknown method '{name}'.{hint} Registered methods: {', '.join(sorted(methods))}. A new "
            "method is a module in baselines/ with a class decorated by @register (see README, "
            "'Add a baseline')."
        )
    return methods[name]


def static_method_names(methods: Iterable[str] | None = None) -> frozenset[str]:
    """The methods (of ``methods``, else of every registered one) with one speed-up for every input
    (``Method.static``): the one list of static methods, for selection, figures and reports."""
    names = registered() if methods is None else methods
    return frozenset(m for m in names if get_method(m).static)


def static_display_names() -> frozenset[str]:
    """Display names of the static rows of Table 1 (registered methods with ``static``)."""
    return frozenset(get_method(m).display_name for m in static_method_names())


def build_method(name: str, params: dict[str, Any] | None, task: TaskSpec) -> Method:
    return get_method(name)(params, task)

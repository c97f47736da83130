"""Baselines: one module per method, each registering itself with ``dpbert.methods.interface.register``.

Importing this package imports every module in this folder, so a new baseline needs no edit here.
"""

import importlib
import pkgutil

for _info in pkgutil.iter_modules(__path__):
    if not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")

"""Importing this package registers every model in models.registry.MODELS.

Modules are listed explicitly; a module file that does not exist yet is skipped, but an error
*inside* a module propagates (we never hide a broken model)."""
from __future__ import annotations

import importlib
import importlib.util

ZOO_MODULES = ("lnln", "emt_dlfr", "self_mm", "cenet", "conki", "tfn", "mult", "baselines")

for _name in ZOO_MODULES:
    _full = f"{__name__}.{_name}"
    if importlib.util.find_spec(_full) is not None:
        importlib.import_module(_full)

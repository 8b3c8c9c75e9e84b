"""Start-up check of the installed Qt binding.

PySide6 6.12.0 on CPython 3.11 drops a reference to None on every call of a method that returns
nothing (measured: 100 `QLabel.setText` calls lower `sys.getrefcount(None)` by 100). A GUI makes
thousands of such calls, so None's count reaches zero and the interpreter aborts ("none_dealloc")
or hangs at a random moment. Python >= 3.12 is unaffected (None is immortal there). pyproject pins
PySide6 below 6.12; this check catches environments installed some other way.
"""
from __future__ import annotations

import sys

_PROBE_CALLS = 200


def none_refcount_leak() -> int:
    """How many references to None `_PROBE_CALLS` void Qt calls lose (0 for a sound binding)."""
    from PySide6.QtCore import QObject

    probe = QObject()
    before = sys.getrefcount(None)
    for _ in range(_PROBE_CALLS):
        probe.setObjectName("probe")  # a void method: returns None
    after = sys.getrefcount(None)
    return max(0, before - after)


def binding_problem() -> str | None:
    """A one-line explanation when the installed PySide6 cannot run the app safely, else None."""
    if sys.version_info >= (3, 12):
        return None  # None is immortal: a lost reference cannot free it
    lost = none_refcount_leak()
    if lost < _PROBE_CALLS // 2:
        return None
    import PySide6

    return (f"PySide6 {PySide6.__version__} loses a reference to None on every Qt call under Python "
            f"{sys.version_info.major}.{sys.version_info.minor} and would crash the app; install "
            "another release: pip install 'PySide6>=6.6,<6.12'")

"""The installed Qt binding must not lose references to None (PySide6 6.12.0 on Python 3.11 does,
which crashed or hung the app and the test run at a random point)."""
from __future__ import annotations

import sys

import pytest

from app.qt_binding import _PROBE_CALLS, binding_problem, none_refcount_leak


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="None is immortal on Python >= 3.12")
def test_void_qt_calls_keep_none_alive():
    assert none_refcount_leak() < _PROBE_CALLS // 2
    assert binding_problem() is None


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="None is immortal on Python >= 3.12")
def test_gui_refuses_to_start_on_a_leaking_binding(monkeypatch, capsys):
    import app.main
    import app.qt_binding

    monkeypatch.setattr(app.qt_binding, "none_refcount_leak", lambda: _PROBE_CALLS)
    assert app.main.main(["--no-preload"]) == 2
    assert "PySide6" in capsys.readouterr().err

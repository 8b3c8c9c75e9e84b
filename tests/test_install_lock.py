"""The environment the suite runs in is the locked one (issue 10: 'a fresh machine is not the
tested machine'): every pin of requirements.lock is what is installed."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _check_lock():
    spec = importlib.util.spec_from_file_location("check_lock", ROOT / "scripts" / "check_lock.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_installed_versions_are_the_locked_ones():
    check = _check_lock()
    pins = check.read_lock(ROOT / "requirements.lock")
    for core in ("torch", "numpy", "librosa", "pyside6", "faster-whisper", "mediapipe", "ray"):
        assert core in pins, f"{core} is not pinned in requirements.lock"
    assert check.differences(pins) == []


def test_lock_differences_are_reported(tmp_path):
    check = _check_lock()
    lock = tmp_path / "lock.txt"
    lock.write_text("# comment\nnumpy==0.0.1\nno-such-package-xyz==1.0\n", encoding="utf-8")
    diffs = check.differences(check.read_lock(lock))
    assert any(d.startswith("numpy: locked 0.0.1") for d in diffs)
    assert "no-such-package-xyz: locked 1.0, installed nothing" in diffs
    assert sys.version_info >= (3, 10)

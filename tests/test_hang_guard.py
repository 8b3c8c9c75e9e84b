"""tests/hang_guard.py: a test stuck in native code while holding the GIL (what QMediaPlayer.stop()
did when it deadlocked) fails within a bounded time, with a stack dump, and the run goes on.

The stuck test relocks a plain pthread mutex through ctypes.PyDLL, which keeps the GIL held during
the call just as a PySide call does: neither of pytest-timeout's methods can end it."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.app_support import ROOT

STUCK_TESTS = '''
import ctypes

def test_before():
    pass

def test_stuck_in_native_code_holding_the_gil():
    libc = ctypes.PyDLL(None)
    mutex = ctypes.create_string_buffer(64)
    libc.pthread_mutex_init(mutex, None)
    libc.pthread_mutex_lock(mutex)
    libc.pthread_mutex_lock(mutex)  # a normal mutex relocked by its owner: blocks for good

def test_after():
    pass
'''

TIMEOUT_S = 3
GRACE_S = 2


def run_pytest(tmp_path: Path, *extra: str, limit_s: float = 120) -> tuple[subprocess.CompletedProcess, float]:
    (tmp_path / "test_stuck.py").write_text(STUCK_TESTS)
    # The same timeout settings as pyproject.toml, scaled down.
    (tmp_path / "pytest.ini").write_text(f"[pytest]\ntimeout = {TIMEOUT_S}\ntimeout_method = signal\n")
    env = {**os.environ, "MSA_HANG_GUARD_GRACE_S": str(GRACE_S), "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "pytest", "-p", "tests.hang_guard", "-p", "no:cacheprovider", "-q",
           "-c", str(tmp_path / "pytest.ini"), "--rootdir", str(tmp_path), *extra, str(tmp_path)]
    t = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=limit_s)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the run hung: still running after {limit_s} s\n{exc.stdout}\n{exc.stderr}")
    return proc, time.monotonic() - t


def test_stuck_test_fails_alone_and_the_run_goes_on_under_xdist(tmp_path):
    pytest.importorskip("xdist", reason="pytest-xdist is in the test extra (pip install -e '.[test]')")
    proc, took = run_pytest(tmp_path, "-n", "1")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert re.search(r"crashed while running .*test_stuck_in_native_code_holding_the_gil", out), out
    assert re.search(r"1 failed, 2 passed", out), out
    # The stack dump points at the line where it was stuck.
    assert "test_stuck.py\", line 12 in test_stuck_in_native_code_holding_the_gil" in out, out
    assert took < 90, f"took {took:.0f} s"


def test_stuck_test_ends_the_run_with_a_stack_dump_without_xdist(tmp_path):
    proc, took = run_pytest(tmp_path, "-p", "no:xdist")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "Timeout (0:00:05)!" in out, out
    assert "test_stuck.py\", line 12 in test_stuck_in_native_code_holding_the_gil" in out, out
    assert took < 60, f"took {took:.0f} s"

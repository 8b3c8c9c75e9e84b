"""A per-test hard time limit that works even when the test is stuck in native code.

pytest-timeout's "signal" method raises in the main thread, which only happens when that thread
next runs Python code; its "thread" method needs the GIL for its timer thread. A test stuck in C++
while holding the GIL (a PySide call waiting on a Qt mutex, as QMediaPlayer.stop() once did) defeats
both, and the suite hangs until CI's limit. `faulthandler.dump_traceback_later` runs on a C thread
that needs no GIL: at the limit it prints every thread's Python stack and ends the process.

So each test gets that watchdog at its pytest-timeout limit (marker, --timeout, PYTEST_TIMEOUT or
the ini value) plus GRACE_S, leaving pytest-timeout the first chance to fail a Python-level hang
cleanly. Run under pytest-xdist (scripts/test.sh uses `-n 1`), the ended process is a worker: xdist
reports that one test as failed ("worker crashed") and carries on with a fresh worker. Without
xdist the run ends there, with the stack dump, instead of hanging.

Only one faulthandler watchdog can be armed per process, so pytest's own `faulthandler_timeout`
must stay unset (pyproject.toml); this one prints the same stacks.
"""
from __future__ import annotations

import faulthandler
import os
import sys

import pytest

# Seconds past pytest-timeout's limit; the environment variable lets the guard's own test be quick.
GRACE_S = float(os.environ.get("MSA_HANG_GUARD_GRACE_S", "60"))
_state: dict[str, int] = {}


def pytest_configure(config) -> None:  # noqa: ARG001
    # Dump to a copy of the real stderr taken now: during a test fd 2 is pytest's capture file,
    # which is lost when the process ends.
    stream = sys.__stderr__ if sys.__stderr__ is not None else sys.stderr
    _state["fd"] = os.dup(stream.fileno())


def pytest_unconfigure(config) -> None:  # noqa: ARG001
    faulthandler.cancel_dump_traceback_later()
    fd = _state.pop("fd", None)
    if fd is not None:
        os.close(fd)


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_timeout_set_timer(item, settings):  # noqa: ARG001
    """pytest-timeout's hook: arm the watchdog too, then let pytest-timeout arm its own timer."""
    fd = _state.get("fd")
    if fd is not None and settings.timeout:
        faulthandler.dump_traceback_later(float(settings.timeout) + GRACE_S, exit=True, file=fd)
    return None


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_timeout_cancel_timer(item):  # noqa: ARG001
    faulthandler.cancel_dump_traceback_later()
    return None

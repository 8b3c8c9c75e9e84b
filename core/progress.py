"""Progress reporting and cooperative cancellation shared by every long-running stage.

Stages call `ctx.report(stage, fraction)` often and `ctx.check()` between units of work; the UI or CLI
supplies the callback and flips the cancel flag from another thread.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable

from core.errors import Cancelled

ProgressCallback = Callable[[str, float, str], None]  # (stage, fraction 0..1, message)


class CancelToken:
    """Thread-safe flag; `threading.Event` so a worker can also wait on it."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


@dataclass
class RunContext:
    """Passed through the whole pipeline: progress sink + cancel flag + collected warnings."""

    progress: ProgressCallback | None = None
    cancel: CancelToken = field(default_factory=CancelToken)
    warnings: list[str] = field(default_factory=list)

    def report(self, stage: str, fraction: float, message: str = "") -> None:
        self.check()
        if self.progress is not None:
            self.progress(stage, max(0.0, min(1.0, float(fraction))), message)

    def check(self) -> None:
        if self.cancel.cancelled:
            raise Cancelled("cancelled by user")

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

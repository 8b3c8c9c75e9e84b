"""Progress on stderr for CLI commands: one status line rewritten in place on a terminal, one line
per finished stage otherwise (logs stay readable). Thread-safe: stages report from worker threads."""
from __future__ import annotations

import sys
import threading
import time


class StageProgress:
    """Callable usable as core.progress.ProgressCallback."""

    def __init__(self, enabled: bool = True, stream=None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled and self.stream is not None
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._state: dict[str, float] = {}
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._last_draw = 0.0

    def __call__(self, stage: str, fraction: float, message: str = "") -> None:
        if not self.enabled:
            return
        with self._lock:
            previous = self._state.get(stage, -1.0)
            self._state[stage] = fraction
            if self.tty:
                now = time.monotonic()
                if fraction >= 1.0 or now - self._last_draw > 0.1:
                    self._last_draw = now
                    self._draw(stage, fraction, message)
            elif fraction >= 1.0 > previous:
                elapsed = time.monotonic() - self._started
                self.stream.write(f"[{elapsed:6.1f}s] {stage} done {message}\n".rstrip() + "\n")
                self.stream.flush()

    def _draw(self, stage: str, fraction: float, message: str) -> None:
        width = 24
        filled = int(round(fraction * width))
        done = " ".join(s for s, f in self._state.items() if f >= 1.0 and s != stage)
        line = f"\r{stage:>8} [{'#' * filled}{'.' * (width - filled)}] {fraction * 100:3.0f}% {message[:40]}"
        if done:
            line += f"  (done: {done})"
        self.stream.write(line[:150].ljust(150))
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()

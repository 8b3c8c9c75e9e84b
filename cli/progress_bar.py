"""A stage-aware progress bar on stderr for CLI commands (one tqdm bar per pipeline stage)."""
from __future__ import annotations

import sys
import threading

from tqdm import tqdm


class StageProgress:
    """Callable usable as core.progress.ProgressCallback; thread-safe (stages report from threads)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled and sys.stderr is not None
        self._bars: dict[str, tqdm] = {}
        self._lock = threading.Lock()

    def __call__(self, stage: str, fraction: float, message: str = "") -> None:
        if not self.enabled:
            return
        with self._lock:
            bar = self._bars.get(stage)
            if bar is None:
                bar = tqdm(total=100, desc=f"{stage:>8}", file=sys.stderr, leave=True,
                           bar_format="{desc} |{bar:30}| {percentage:3.0f}% {postfix}",
                           position=len(self._bars), dynamic_ncols=True)
                self._bars[stage] = bar
            target = int(round(fraction * 100))
            if target > bar.n:
                bar.update(target - bar.n)
            if message:
                bar.set_postfix_str(message[:60], refresh=False)
            bar.refresh()

    def close(self) -> None:
        with self._lock:
            for bar in self._bars.values():
                bar.close()
            self._bars.clear()

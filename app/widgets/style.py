"""Shared colours and pyqtgraph defaults, so every panel speaks the same visual language."""
from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtGui import QColor

POSITIVE = "#2e9d5b"
NEGATIVE = "#d1495b"
NEUTRAL = "#8a8f98"
PLAYHEAD = "#1f3a93"
MASKED = "#e07b00"
MODALITY_COLORS = {"text": "#4e79a7", "audio": "#f28e2b", "visual": "#9c6ade"}
MODALITY_LABELS = {"text": "Text", "audio": "Audio", "visual": "Visual"}
# |score| below this is drawn as neutral (MOSI-style sentiment has no hard zero).
NEUTRAL_BAND = 0.1


def setup_pyqtgraph() -> None:
    pg.setConfigOptions(antialias=True, background="w", foreground="#333333")


def polarity_color(score: float, alpha: int = 255) -> QColor:
    hexcol = POSITIVE if score > NEUTRAL_BAND else NEGATIVE if score < -NEUTRAL_BAND else NEUTRAL
    c = QColor(hexcol)
    c.setAlpha(alpha)
    return c


def qcolor(hexcol: str, alpha: int = 255) -> QColor:
    c = QColor(hexcol)
    c.setAlpha(alpha)
    return c


def fmt_time(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    m, s = divmod(seconds, 60.0)
    return f"{int(m):d}:{s:05.2f}"


def plain_axes(plot: pg.PlotWidget, left_width: int | None = 52) -> None:
    """No SI-prefix rescaling ("x0.001", "ms") and, optionally, a fixed left-axis width so plots
    stacked above each other share their x pixels (timeline and contribution bars line up)."""
    for name in ("left", "bottom"):
        axis = plot.getAxis(name)
        # pyqtgraph 0.14 consults only the enable-ranges (not the flag) when labels have no units.
        axis.setSIPrefixEnableRanges(())
        axis.enableAutoSIPrefix(False)
    if left_width is not None:
        plot.getAxis("left").setWidth(left_width)

"""Per-modality Shapley contributions: stacked bars per segment (x-aligned with the timeline) and
one bar per modality for the whole recording.

Stacking: positive contributions stack upwards from 0 and negative ones downwards, so each bar's
top minus bottom equals the segment's score minus the all-masked baseline (Shapley efficiency)."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from app.widgets.style import MODALITY_COLORS, MODALITY_LABELS, PLAYHEAD, plain_axes, qcolor
from core.shapley import MODALITY_ORDER


def stack_bottoms(matrix: np.ndarray) -> np.ndarray:
    """(N, M) contributions -> (N, M) bar bottoms, positives stacked up and negatives down."""
    bottoms = np.zeros_like(matrix, dtype=np.float64)
    pos = np.zeros(matrix.shape[0])
    neg = np.zeros(matrix.shape[0])
    for j in range(matrix.shape[1]):
        v = matrix[:, j]
        bottoms[:, j] = np.where(v >= 0, pos, neg + v)
        pos = pos + np.where(v >= 0, v, 0.0)
        neg = neg + np.where(v < 0, v, 0.0)
    return bottoms


class SegmentContributionsPlot(pg.PlotWidget):
    def __init__(self, parent=None, title: str = "Shapley contributions per segment") -> None:
        super().__init__(parent=parent)
        self.setObjectName("segmentContributions")
        self.plotItem.setTitle(title, size="10pt")
        self.setLabel("left", "contribution")
        self.setLabel("bottom", "time", units="s")
        self.setMouseEnabled(x=True, y=False)
        self.showGrid(x=True, y=True, alpha=0.15)
        self.setMinimumHeight(130)
        plain_axes(self)
        self.plotItem.addLine(y=0, pen=pg.mkPen("#999999", width=1))
        legend = self.plotItem.addLegend(offset=(-10, 2), labelTextSize="8pt")  # named items join it
        legend.setColumnCount(3)
        legend.setBrush(pg.mkBrush(255, 255, 255, 200))
        self.bars: dict[str, pg.BarGraphItem] = {}
        for m in MODALITY_ORDER:
            bar = pg.BarGraphItem(x0=[], x1=[], y0=[], height=[], brush=qcolor(MODALITY_COLORS[m], 200),
                                  pen=pg.mkPen("#ffffff", width=0.5), name=MODALITY_LABELS[m])
            self.addItem(bar)
            self.bars[m] = bar
        self.cursor = pg.InfiniteLine(pos=0, angle=90, movable=False, pen=pg.mkPen(PLAYHEAD, width=1))
        self.addItem(self.cursor)
        self.matrix = np.zeros((0, len(MODALITY_ORDER)))

    def set_data(self, starts: np.ndarray, ends: np.ndarray, matrix: np.ndarray, gap: float = 0.04) -> None:
        self.matrix = np.asarray(matrix, dtype=np.float64).reshape(-1, len(MODALITY_ORDER))
        starts = np.asarray(starts, dtype=np.float64)
        ends = np.asarray(ends, dtype=np.float64)
        # A small inset keeps neighbouring segments visually separate.
        inset = np.minimum(gap, (ends - starts) * 0.1)
        bottoms = stack_bottoms(self.matrix)
        for j, m in enumerate(MODALITY_ORDER):
            self.bars[m].setOpts(x0=starts + inset, x1=ends - inset, y0=bottoms[:, j],
                                 height=np.abs(self.matrix[:, j]))
        if self.matrix.size:
            top = float(np.max(np.abs(self.matrix).sum(axis=1)))
            lim = max(0.25, top * 1.15)
            # Extra headroom on top keeps the legend row clear of the bars.
            self.setYRange(-lim, lim * 1.45, padding=0)

    def set_cursor(self, t: float) -> None:
        self.cursor.setValue(float(t))


class RecordingContributionsPlot(pg.PlotWidget):
    """Horizontal bars: duration-weighted mean Shapley value of each modality."""

    def __init__(self, parent=None, title: str = "Whole recording") -> None:
        super().__init__(parent=parent)
        self.setObjectName("recordingContributions")
        self.plotItem.setTitle(title, size="10pt")
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        self.setMinimumWidth(220)
        self.setMinimumHeight(130)
        plain_axes(self, left_width=None)
        self.plotItem.addLine(x=0, pen=pg.mkPen("#999999", width=1))
        ticks = [(i, MODALITY_LABELS[m]) for i, m in enumerate(MODALITY_ORDER)]
        self.getAxis("left").setTicks([ticks])
        self.setLabel("bottom", "mean contribution")
        self.bar = pg.BarGraphItem(x0=[], y=[], height=0.6, width=[], brush=None)
        self.addItem(self.bar)
        self._labels: list[pg.TextItem] = []
        self.values: dict[str, float] = {}

    def set_values(self, values: dict[str, float]) -> None:
        self.values = dict(values)
        v = np.array([values.get(m, 0.0) for m in MODALITY_ORDER], dtype=np.float64)
        self.bar.setOpts(
            x0=np.minimum(v, 0.0), y=np.arange(len(v)), height=0.6, width=np.abs(v),
            brushes=[qcolor(MODALITY_COLORS[m], 220) for m in MODALITY_ORDER], pen=None,
        )
        for item in self._labels:
            self.removeItem(item)
        self._labels = []
        lim = max(0.25, float(np.max(np.abs(v))) * 1.6 if v.size else 0.25)
        for i, val in enumerate(v):
            label = pg.TextItem(f"{val:+.2f}", color="#222222", anchor=(0 if val >= 0 else 1, 0.5))
            label.setPos(float(val), float(i))
            self.addItem(label)
            self._labels.append(label)
        self.setXRange(-lim, lim, padding=0)
        self.setYRange(-0.6, len(v) - 0.4, padding=0)


class ContributionsPanel(QWidget):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("contributionsPanel")
        self.segments = SegmentContributionsPlot()
        self.recording = RecordingContributionsPlot()
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.summary.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        right = QVBoxLayout()
        right.addWidget(self.recording, 1)
        right.addWidget(self.summary)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.segments, 3)
        lay.addLayout(right, 1)

    def set_session(self, session) -> None:
        starts, ends = session.starts_ends()
        self.segments.set_data(starts, ends, session.contributions_matrix())
        self.recording.set_values(session.recording_contributions())
        base = np.mean([s.base_score for s in session.segments]) if session.segments else float("nan")
        self.summary.setText(
            f"Recording score {session.recording_score():+.2f}; all-masked baseline {base:+.2f}.\n"
            "Score = baseline + text + audio + visual (exact Shapley)."
        )

    def clear(self) -> None:
        self.segments.set_data(np.zeros(0), np.zeros(0), np.zeros((0, 3)))
        self.recording.set_values({})
        self.summary.setText("")

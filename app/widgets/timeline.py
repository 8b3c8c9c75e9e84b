"""Sentiment timeline: per-segment score in [-3, 3] as polarity-coloured bars + a step line, an
optional confidence band and masked-prediction overlay, and a playhead synced with the player."""
from __future__ import annotations

from typing import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal

from app.widgets.style import MASKED, PLAYHEAD, plain_axes, polarity_color, qcolor

GAP_S = 0.05  # segments further apart than this are not joined by the step line


def step_xy(starts: np.ndarray, ends: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Step-line vertices; NaN breaks the line across gaps between segments."""
    xs: list[float] = []
    ys: list[float] = []
    for i, (s, e, v) in enumerate(zip(starts, ends, values)):
        if i and s - ends[i - 1] > GAP_S:
            xs.append(np.nan)
            ys.append(np.nan)
        xs += [s, e]
        ys += [v, v]
    return np.array(xs, dtype=np.float64), np.array(ys, dtype=np.float64)


class SentimentTimeline(pg.PlotWidget):
    seekRequested = Signal(float)  # seconds; emitted on click or playhead drag
    hovered = Signal(int)  # segment index under the mouse (-1: none)

    def __init__(self, parent=None, title: str = "Sentiment", y_range: float = 3.0) -> None:
        super().__init__(parent=parent)
        self.setObjectName("sentimentTimeline")
        self.plotItem.setTitle(title, size="10pt")
        self.setLabel("left", "score")
        self.setLabel("bottom", "time", units="s")
        self.setYRange(-y_range, y_range, padding=0.05)
        self.setMouseEnabled(x=True, y=False)
        self.showGrid(x=True, y=True, alpha=0.15)
        self.setMinimumHeight(150)
        plain_axes(self)
        self.plotItem.addLine(y=0, pen=pg.mkPen("#999999", width=1))
        self.legend = self.plotItem.addLegend(offset=(-10, 2), labelTextSize="8pt")
        self.legend.setColumnCount(2)
        self.legend.setBrush(pg.mkBrush(255, 255, 255, 200))

        self.starts = np.zeros(0)
        self.ends = np.zeros(0)
        self.values = np.zeros(0)
        self.masked_values: np.ndarray | None = None
        self.hover_provider: Callable[[int], str] | None = None
        self.hover_index = -1
        self.hover_text = ""

        self._band = pg.BarGraphItem(x0=[], x1=[], y0=[], height=[], brush=qcolor("#1f3a93", 40), pen=pg.mkPen(None))
        self._bars = pg.BarGraphItem(x0=[], x1=[], y0=[], height=[], brush=None, pen=None)
        self._line = pg.PlotDataItem(pen=pg.mkPen("#333333", width=2), connect="finite", name="full (T+A+V)")
        self._masked = pg.PlotDataItem(
            pen=pg.mkPen(MASKED, width=2, style=Qt.PenStyle.DashLine), connect="finite", name="masked"
        )
        for item in (self._band, self._bars, self._line, self._masked):
            self.addItem(item)
        self._masked.setVisible(False)
        self.legend.removeItem(self._masked)

        self.playhead = pg.InfiniteLine(pos=0, angle=90, movable=True, pen=pg.mkPen(PLAYHEAD, width=2))
        self.playhead.setZValue(20)
        self.addItem(self.playhead)
        self.playhead.sigDragged.connect(lambda line: self.seekRequested.emit(max(0.0, float(line.value()))))

        self._label = pg.TextItem(color="#222222", anchor=(0, 0), fill=qcolor("#ffffff", 220))
        self._label.setZValue(30)
        self._label.setVisible(False)
        self.addItem(self._label, ignoreBounds=True)

        self.scene().sigMouseClicked.connect(self._on_click)
        self.scene().sigMouseMoved.connect(self._on_move)

    # ------------------------------------------------------------------------------ data
    def set_data(
        self,
        starts: np.ndarray,
        ends: np.ndarray,
        values: np.ndarray,
        confidence: tuple[np.ndarray, np.ndarray] | None = None,
        x_range: tuple[float, float] | None = None,
    ) -> None:
        self.starts = np.asarray(starts, dtype=np.float64)
        self.ends = np.asarray(ends, dtype=np.float64)
        self.values = np.asarray(values, dtype=np.float64)
        n = len(self.values)
        # pyqtgraph 0.14 fails on an empty per-bar pens list, so empty data gets pens=None.
        self._bars.setOpts(
            x0=self.starts, x1=self.ends, y0=np.zeros(n), height=self.values,
            brushes=[polarity_color(v, 110) for v in self.values] if n else None,
            pens=[pg.mkPen(polarity_color(v, 200), width=1) for v in self.values] if n else None,
            pen=None, brush=None,
        )
        x, y = step_xy(self.starts, self.ends, self.values)
        self._line.setData(x, y)
        if confidence is not None and n:
            low, high = (np.asarray(c, dtype=np.float64) for c in confidence)
            self._band.setOpts(x0=self.starts, x1=self.ends, y0=low, height=high - low)
            self._band.setVisible(True)
        else:
            self._band.setOpts(x0=[], x1=[], y0=[], height=[])
            self._band.setVisible(False)
        if x_range is not None:
            self.setXRange(*x_range, padding=0)
        elif n:
            self.setXRange(0.0, float(self.ends.max()), padding=0.01)
        self._refresh_masked()

    def set_masked(self, values: np.ndarray | None, label: str = "masked") -> None:
        """Overlay the prediction under a modality mask (None hides it)."""
        self.masked_values = None if values is None else np.asarray(values, dtype=np.float64)
        self._masked.opts["name"] = label
        self._refresh_masked()

    def _refresh_masked(self) -> None:
        show = self.masked_values is not None and len(self.masked_values) == len(self.values)
        self.legend.removeItem(self._masked)
        if show:
            x, y = step_xy(self.starts, self.ends, self.masked_values)
            self._masked.setData(x, y)
            self.legend.addItem(self._masked, self._masked.opts["name"])
        self._masked.setVisible(bool(show))

    def clear_data(self) -> None:
        self.set_data(np.zeros(0), np.zeros(0), np.zeros(0))
        self.set_masked(None)

    # --------------------------------------------------------------------------- playhead
    def set_playhead(self, t: float) -> None:
        """Move the cursor without emitting seekRequested (player -> plot direction)."""
        self.playhead.blockSignals(True)
        self.playhead.setValue(float(t))
        self.playhead.blockSignals(False)

    @property
    def playhead_time(self) -> float:
        return float(self.playhead.value())

    # ----------------------------------------------------------------------------- mouse
    def index_at(self, x: float) -> int:
        hits = np.flatnonzero((self.starts <= x) & (x < self.ends))
        return int(hits[-1]) if hits.size else -1

    def _view_x(self, scene_pos) -> float | None:
        vb = self.plotItem.vb
        if not vb.sceneBoundingRect().contains(scene_pos):
            return None
        return float(vb.mapSceneToView(scene_pos).x())

    def _on_click(self, ev) -> None:
        if ev.button() != Qt.MouseButton.LeftButton:
            return
        x = self._view_x(ev.scenePos())
        if x is not None:
            self.seek_to(x)

    def seek_to(self, x: float) -> None:
        """A click at time x (also used by tests): move the cursor and ask the player to seek."""
        x = max(0.0, x)
        self.set_playhead(x)
        self.seekRequested.emit(x)

    def _on_move(self, scene_pos) -> None:
        x = self._view_x(scene_pos)
        idx = -1 if x is None else self.index_at(x)
        self.show_hover(idx, x)

    def show_hover(self, idx: int, x: float | None = None) -> None:
        if idx == self.hover_index:
            return
        self.hover_index = idx
        if idx < 0 or self.hover_provider is None:
            self.hover_text = ""
            self._label.setVisible(False)
        else:
            self.hover_text = self.hover_provider(idx)
            self._label.setText(self.hover_text)
            (x0, x1), (y0, y1) = self.plotItem.vb.viewRange()
            left = float(self.starts[idx])
            # Keep the label inside the view: flip it to the left half near the right edge.
            anchor_right = left > x0 + 0.6 * (x1 - x0)
            self._label.setAnchor((1, 0) if anchor_right else (0, 0))
            self._label.setPos(float(self.ends[idx]) if anchor_right else left, y1)
            self._label.setVisible(True)
        self.hovered.emit(idx)

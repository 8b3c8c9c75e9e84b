"""Robustness panel: modality toggles, masked vs full prediction over time, the degradation table
for all 8 mask combinations, and the random-missing-rate curve of this recording."""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.widgets.style import MASKED, MODALITY_COLORS, MODALITY_LABELS, plain_axes
from app.widgets.timeline import step_xy
from core.shapley import MODALITY_ORDER, mask_key

MASK_ORDER = ("TAV", "TA_", "T_V", "_AV", "T__", "_A_", "__V", "___")


def describe_mask(key: str) -> str:
    present = [MODALITY_LABELS[m] for m, c in zip(MODALITY_ORDER, key) if c != "_"]
    return " + ".join(present) if present else "none (baseline)"


class ModalityToggles(QWidget):
    """Three checkable buttons; unchecking one masks that modality everywhere (file and live)."""

    keepChanged = Signal(frozenset)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("modalityToggles")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(4)
        lay.addWidget(QLabel("Modalities:"))
        self.buttons: dict[str, QToolButton] = {}
        for m in MODALITY_ORDER:
            b = QToolButton()
            b.setText(MODALITY_LABELS[m])
            b.setCheckable(True)
            b.setChecked(True)
            b.setToolTip(f"Uncheck to mask the {m} modality and re-score from cached features")
            color = MODALITY_COLORS[m]
            b.setStyleSheet(
                f"QToolButton {{ padding: 3px 8px; border: 1px solid {color}; border-radius: 4px; }}"
                f"QToolButton:checked {{ background: {color}; color: white; }}"
            )
            b.toggled.connect(self._emit)
            lay.addWidget(b)
            self.buttons[m] = b

    @property
    def keep(self) -> frozenset[str]:
        return frozenset(m for m, b in self.buttons.items() if b.isChecked())

    def set_keep(self, keep: frozenset[str]) -> None:
        for m, b in self.buttons.items():
            b.blockSignals(True)
            b.setChecked(m in keep)
            b.blockSignals(False)
        self._emit()

    def _emit(self, *_args) -> None:
        self.keepChanged.emit(self.keep)


class RobustnessPanel(QWidget):
    computeCurveRequested = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("robustnessPanel")
        self.header = QLabel("Toggle modalities in the toolbar to see how the prediction degrades.")
        self.header.setWordWrap(True)

        self.compare = pg.PlotWidget()
        self.compare.setObjectName("maskedVsFull")
        self.compare.plotItem.setTitle("Full vs masked prediction", size="10pt")
        self.compare.setLabel("bottom", "time", units="s")
        self.compare.setLabel("left", "score")
        self.compare.setYRange(-3, 3, padding=0.05)
        self.compare.showGrid(x=True, y=True, alpha=0.15)
        self.compare.setMouseEnabled(x=True, y=False)
        self.compare.plotItem.addLine(y=0, pen=pg.mkPen("#999999"))
        plain_axes(self.compare)
        self.compare.plotItem.addLegend(offset=(-10, 5), labelTextSize="8pt")
        self.full_curve = pg.PlotDataItem(pen=pg.mkPen("#333333", width=2), connect="finite", name="full (T+A+V)")
        self.masked_curve = pg.PlotDataItem(
            pen=pg.mkPen(MASKED, width=2, style=Qt.PenStyle.DashLine), connect="finite", name="masked"
        )
        self.compare.addItem(self.full_curve)
        self.compare.addItem(self.masked_curve)

        self.table = QTableWidget(len(MASK_ORDER), 5)
        self.table.setObjectName("maskTable")
        self.table.setHorizontalHeaderLabels(["Mask", "Present", "MAE", "Corr", "Sign agr."])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.setMinimumWidth(330)

        self.curve_plot = pg.PlotWidget()
        self.curve_plot.setObjectName("missingRateCurve")
        self.curve_plot.plotItem.setTitle("Random missing rate (seeds 1-3)", size="10pt")
        self.curve_plot.setLabel("bottom", "missing rate r")
        self.curve_plot.setLabel("left", "vs full prediction")
        self.curve_plot.showGrid(x=True, y=True, alpha=0.15)
        self.curve_plot.setXRange(0, 0.9, padding=0.03)
        self.curve_plot.setMouseEnabled(x=False, y=False)
        plain_axes(self.curve_plot)
        self.curve_plot.plotItem.addLegend(offset=(-10, 5), labelTextSize="8pt")
        self.mae_curve = pg.PlotDataItem(pen=pg.mkPen("#d1495b", width=2), symbol="o", symbolSize=5,
                                         symbolBrush="#d1495b", name="MAE")
        self.sign_curve = pg.PlotDataItem(pen=pg.mkPen("#2e9d5b", width=2), symbol="s", symbolSize=5,
                                          symbolBrush="#2e9d5b", name="sign agreement")
        self.mae_err = pg.ErrorBarItem(pen=pg.mkPen("#d1495b"), beam=0.015)
        for item in (self.mae_err, self.mae_curve, self.sign_curve):
            self.curve_plot.addItem(item)
        self.curve_status = QLabel("")
        self.curve_button = QToolButton()
        self.curve_button.setText("Compute curve")
        self.curve_button.clicked.connect(self.computeCurveRequested.emit)
        curve_box = QWidget()
        cl = QVBoxLayout(curve_box)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.addWidget(self.curve_plot, 1)
        row = QHBoxLayout()
        row.addWidget(self.curve_status, 1)
        row.addWidget(self.curve_button)
        cl.addLayout(row)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.compare)
        split.addWidget(self.table)
        split.addWidget(curve_box)
        split.setSizes([500, 340, 340])
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.header)
        lay.addWidget(split, 1)
        self.current_key = "TAV"
        self.curve: list[dict[str, float]] = []

    def set_comparison(self, starts, ends, full: np.ndarray, masked: np.ndarray, keep: frozenset[str],
                       summary: dict[str, float]) -> None:
        self.current_key = mask_key(keep)
        self.full_curve.setData(*step_xy(starts, ends, full))
        if self.current_key == "TAV":
            self.masked_curve.setData([], [])
            self.header.setText("All modalities present. Uncheck Text / Audio / Visual in the toolbar to mask them.")
        else:
            self.masked_curve.setData(*step_xy(starts, ends, masked))
            self.header.setText(
                f"Mask {self.current_key} ({describe_mask(self.current_key)} present): "
                f"MAE {summary['mae']:.3f}, Corr {_fmt(summary['corr'])}, "
                f"sign agreement {summary['sign_agreement'] * 100:.0f}% vs the full prediction."
                + ("" if math.isfinite(summary["corr"]) else
                   "  (Corr needs at least two segments whose scores vary.)")
            )
        if len(ends):
            self.compare.setXRange(0, float(np.max(ends)), padding=0.01)
        self._highlight()

    def set_table(self, table: dict[str, dict[str, float]]) -> None:
        for row, key in enumerate(MASK_ORDER):
            stats = table.get(key, {})
            cells = [key, describe_mask(key), _fmt(stats.get("mae")), _fmt(stats.get("corr")),
                     _fmt_pct(stats.get("sign_agreement"))]
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if col >= 2:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row, col, item)
        self._highlight()

    def _highlight(self) -> None:
        for row, key in enumerate(MASK_ORDER):
            color = QColor("#fff2b3") if key == self.current_key else QColor(0, 0, 0, 0)
            for col in range(self.table.columnCount()):
                item = self.table.item(row, col)
                if item is not None:
                    item.setBackground(QBrush(color))

    def set_curve(self, curve: list[dict[str, float]]) -> None:
        self.curve = list(curve)
        if not curve:
            self.mae_curve.setData([], [])
            self.sign_curve.setData([], [])
            self.mae_err.setData(x=np.zeros(0), y=np.zeros(0), height=np.zeros(0))
            return
        r = np.array([c["rate"] for c in curve])
        mae = np.array([c["mae"] for c in curve])
        sign = np.array([c["sign_agreement"] for c in curve])
        std = np.nan_to_num(np.array([c.get("mae_std", 0.0) for c in curve]))
        self.mae_curve.setData(r, mae)
        self.sign_curve.setData(r, sign)
        self.mae_err.setData(x=r, y=mae, height=2 * std)
        top = float(np.nanmax(np.concatenate([mae + std, sign, [1.0]])))
        self.curve_plot.setYRange(0, top * 1.1, padding=0)
        self.curve_status.setText(f"MAE at r=0.5: {_value_at(curve, 0.5, 'mae')}; at r=0.9: {_value_at(curve, 0.9, 'mae')}")

    def set_curve_busy(self, busy: bool, message: str = "") -> None:
        self.curve_button.setEnabled(not busy)
        self.curve_status.setText(message or ("computing…" if busy else self.curve_status.text()))

    def clear(self) -> None:
        self.full_curve.setData([], [])
        self.masked_curve.setData([], [])
        self.set_table({})
        self.set_curve([])
        self.curve_status.setText("")


def _fmt(v) -> str:
    return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.3f}"


def _fmt_pct(v) -> str:
    return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v * 100:.0f}%"


def _value_at(curve, rate: float, key: str) -> str:
    for c in curve:
        if abs(c["rate"] - rate) < 1e-6:
            return _fmt(c[key])
    return "–"

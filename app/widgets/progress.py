"""One progress bar per analysis stage plus a Cancel button."""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFrame, QGridLayout, QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout

# Canonical order and labels; core stages may use longer names ("audio features"), mapped here.
STAGES = [
    ("load", "Load models"),
    ("decode", "Decode"),
    ("asr", "Speech recognition"),
    ("segment", "Segmentation"),
    ("audio", "Audio features"),
    ("visual", "Face features"),
    ("text", "Text features"),
    ("model", "Model"),
    ("shapley", "Shapley"),
]
ALIASES = {
    "audio features": "audio",
    "visual features": "visual",
    "frames": "visual",
    "video": "visual",
    "vad": "segment",
    "transcribe": "asr",
}


def canonical_stage(stage: str) -> str:
    s = stage.strip().lower()
    return ALIASES.get(s, s)


class StageProgress(QFrame):
    cancelRequested = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("stageProgress")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.title = QLabel("<b>Analysing…</b>")
        self.message = QLabel("")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancelRequested.emit)
        self.grid = QGridLayout()
        self.grid.setHorizontalSpacing(8)
        self.grid.setVerticalSpacing(2)
        self.bars: dict[str, QProgressBar] = {}
        for stage, label in STAGES:
            self._add_row(stage, label)
        top = QHBoxLayout()
        top.addWidget(self.title)
        top.addWidget(self.message, 1)
        top.addWidget(self.cancel_button)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addLayout(self.grid)

    def _add_row(self, stage: str, label: str) -> QProgressBar:
        row = len(self.bars)
        bar = QProgressBar()
        bar.setRange(0, 1000)
        bar.setTextVisible(True)
        bar.setFormat("%p%")
        bar.setMaximumHeight(16)
        self.grid.addWidget(QLabel(label), row // 3, (row % 3) * 2)
        self.grid.addWidget(bar, row // 3, (row % 3) * 2 + 1)
        self.bars[stage] = bar
        return bar

    def reset(self, title: str = "Analysing…") -> None:
        self.title.setText(f"<b>{title}</b>")
        self.message.setText("")
        self.cancel_button.setEnabled(True)
        for bar in self.bars.values():
            bar.setValue(0)

    def update_stage(self, stage: str, fraction: float, message: str = "") -> None:
        key = canonical_stage(stage)
        bar = self.bars.get(key) or self._add_row(key, stage.capitalize())
        # Stages such as ASR report per segment and may restart at 0 for a sub-step; never go back.
        bar.setValue(max(bar.value(), int(round(fraction * 1000))))
        if message:
            self.message.setText(f"{stage}: {message}"[:120])

    def value(self, stage: str) -> float:
        return self.bars[canonical_stage(stage)].value() / 1000.0

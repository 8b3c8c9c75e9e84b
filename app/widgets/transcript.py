"""Transcript list: one row per segment (time, text, score). The current segment is highlighted,
clicking a row seeks there, and editing a text cell asks for that segment to be re-run."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

from app.widgets.style import fmt_time, polarity_color

COL_TIME, COL_TEXT, COL_SCORE = 0, 1, 2
HIGHLIGHT = QColor("#fff2b3")


class TranscriptTable(QTableWidget):
    seekRequested = Signal(float)
    textEdited = Signal(int, str)  # segment index, new text

    def __init__(self, parent=None) -> None:
        super().__init__(0, 3, parent)
        self.setObjectName("transcript")
        self.setHorizontalHeaderLabels(["Time", "Text (double-click to edit)", "Score"])
        header = self.horizontalHeader()
        header.setSectionResizeMode(COL_TIME, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(COL_TEXT, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(COL_SCORE, QHeaderView.ResizeMode.ResizeToContents)
        self.verticalHeader().setVisible(False)
        self.setWordWrap(True)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked | QAbstractItemView.EditTrigger.EditKeyPressed
        )
        self.current = -1
        self._starts: list[float] = []
        self._texts: list[str] = []
        self._filling = False
        self.cellClicked.connect(self._on_click)
        self.itemChanged.connect(self._on_item_changed)

    def set_segments(self, segments) -> None:
        self._filling = True
        try:
            self.setRowCount(len(segments))
            self._starts = [s.start for s in segments]
            self._texts = [s.text for s in segments]
            for i, s in enumerate(segments):
                t = QTableWidgetItem(f"{fmt_time(s.start)}–{fmt_time(s.end)}")
                t.setFlags(t.flags() & ~Qt.ItemFlag.ItemIsEditable)
                txt = QTableWidgetItem(s.text or "")
                txt.setToolTip("; ".join(s.warnings) if s.warnings else s.text)
                sc = QTableWidgetItem(f"{s.score:+.2f}")
                sc.setFlags(sc.flags() & ~Qt.ItemFlag.ItemIsEditable)
                sc.setForeground(QBrush(polarity_color(s.score)))
                sc.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                for col, item in ((COL_TIME, t), (COL_TEXT, txt), (COL_SCORE, sc)):
                    self.setItem(i, col, item)
            self.resizeRowsToContents()
            prev, self.current = self.current, -1
            self.set_current(prev if 0 <= prev < len(segments) else -1)
        finally:
            self._filling = False

    def set_current(self, index: int | None) -> None:
        index = -1 if index is None else index
        if index == self.current:
            return
        for row in (self.current, index):
            if 0 <= row < self.rowCount():
                color = HIGHLIGHT if row == index else QColor(0, 0, 0, 0)
                for col in range(self.columnCount()):
                    item = self.item(row, col)
                    if item is not None:
                        item.setBackground(QBrush(color))
        self.current = index
        if 0 <= index < self.rowCount():
            self.scrollToItem(self.item(index, COL_TEXT), QAbstractItemView.ScrollHint.EnsureVisible)

    def _on_click(self, row: int, col: int) -> None:  # noqa: ARG002
        if 0 <= row < len(self._starts):
            self.seekRequested.emit(float(self._starts[row]))

    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if self._filling or item.column() != COL_TEXT:
            return
        row, text = item.row(), item.text().strip()
        if 0 <= row < len(self._texts) and text != self._texts[row].strip():
            self._texts[row] = text
            self.textEdited.emit(row, text)

    def edit_text(self, row: int, text: str) -> None:
        """Programmatic edit (tests, scripting): same path as typing into the cell."""
        self.item(row, COL_TEXT).setText(text)

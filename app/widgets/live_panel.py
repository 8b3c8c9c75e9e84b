"""Live mode page: device choosers, preview, scrolling timeline, contributions and transcript log."""
from __future__ import annotations

import time
from collections import deque
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, QSignalBlocker, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.live_controller import LiveConfig
from app.widgets.contributions import SegmentContributionsPlot
from app.widgets.style import fmt_time
from app.widgets.timeline import SentimentTimeline
from app.widgets.video_player import VideoCanvas
from core.shapley import mask_key

CAMERA_NONE = "__none__"
CAMERA_URL = "__url__"
MIC_NONE = "__none__"
MIC_FILE = "__file__"
VISIBLE_SECONDS = 30.0
SETTINGS_GROUP = "live"


def list_cameras() -> list[tuple[str, str]]:
    """(label, OpenCV spec) for each camera Qt knows about."""
    from PySide6.QtMultimedia import QMediaDevices

    out = []
    for i, dev in enumerate(QMediaDevices.videoInputs()):
        ident = bytes(dev.id().data()).decode(errors="replace")
        # V4L2 ids look like /dev/video2; OpenCV wants the index.
        spec = ident.removeprefix("/dev/video") if ident.startswith("/dev/video") else str(i)
        out.append((dev.description(), spec))
    return out


def list_microphones() -> list[tuple[str, str, str]]:
    """(label, device name, backend) of each microphone that exists: with PulseAudio, Qt's list plus
    every PulseAudio capture source (the fake mic shows up there); else PortAudio's inputs.

    Nothing is listed on a guess: PortAudio without any input still offers a "default" device
    that fails at Start ("Error querying device -1"), and PulseAudio without a capture source
    would record the monitor of a speaker."""
    from PySide6.QtMultimedia import QMediaDevices

    from core.live_sources import list_pulse_sources, portaudio_inputs, pulseaudio_available

    if not pulseaudio_available():
        names = portaudio_inputs()
        default = [("Default microphone (PortAudio)", "default", "sounddevice")] if names else []
        return default + [(f"{name} (PortAudio)", name, "sounddevice") for name in names]
    out: list[tuple[str, str, str]] = []
    for dev in QMediaDevices.audioInputs():
        ident = bytes(dev.id().data()).decode(errors="replace")
        out.append((dev.description(), ident, "parec"))
    seen = {name for _label, name, _backend in out}
    out += [(f"{name} (PulseAudio)", name, "parec") for name in list_pulse_sources() if name not in seen]
    return out


def _find_data(combo: QComboBox, data) -> int:
    """Index of the item holding `data`, else -1. (QComboBox.findData does not find Python
    tuples, the microphone items' data.)"""
    return next((i for i in range(combo.count()) if combo.itemData(i) == data), -1)


def _select_data(combo: QComboBox, data) -> bool:
    """Select the item holding `data`; False (selection unchanged) when there is none."""
    index = _find_data(combo, data)
    if index >= 0:
        combo.setCurrentIndex(index)
    return index >= 0


class LivePanel(QWidget):
    startRequested = Signal(object)  # LiveConfig
    stopRequested = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("livePanel")
        self.camera_combo = QComboBox()
        self.camera_url = QLineEdit()
        self.camera_url.setPlaceholderText("tcp://127.0.0.1:5000, rtsp://…, or a video file")
        self.camera_browse = QPushButton("…")
        self.camera_browse.setMaximumWidth(30)
        self.camera_browse.clicked.connect(self._browse_camera_file)
        self.mic_combo = QComboBox()
        self.window_spin = QDoubleSpinBox()
        self.window_spin.setRange(1.0, 15.0)
        self.window_spin.setValue(4.0)
        self.window_spin.setSuffix(" s")
        self.hop_spin = QDoubleSpinBox()
        self.hop_spin.setRange(0.25, 5.0)
        self.hop_spin.setValue(1.0)
        self.hop_spin.setSuffix(" s")
        self.record_box = QCheckBox("Record to file")
        self.record_path = QLineEdit()
        self.record_path.setPlaceholderText("~/msa-live-<date>.mkv")
        self.device_message = QLabel("")
        self.device_message.setWordWrap(True)
        self.device_message.setStyleSheet("color: #8a5a00;")
        self.refresh_button = QPushButton("Refresh devices")
        self.refresh_button.clicked.connect(self.refresh_devices)
        self.start_button = QPushButton("Start live analysis")
        self.start_button.setObjectName("liveStart")
        self.start_button.clicked.connect(self._on_start_stop)

        form = QFormLayout()
        cam_row = QHBoxLayout()
        cam_row.addWidget(self.camera_url, 1)
        cam_row.addWidget(self.camera_browse)
        form.addRow("Camera", self.camera_combo)
        form.addRow("", cam_row)
        form.addRow("Microphone", self.mic_combo)
        form.addRow("Window", self.window_spin)
        form.addRow("Hop", self.hop_spin)
        form.addRow(self.record_box, self.record_path)
        box = QGroupBox("Devices")
        bl = QVBoxLayout(box)
        bl.addLayout(form)
        bl.addWidget(self.device_message)
        bl.addWidget(self.refresh_button)
        bl.addWidget(self.start_button)
        bl.addStretch(1)

        self.preview = VideoCanvas(placeholder="Camera preview")
        self.preview.setObjectName("livePreview")
        self.status = QLabel("Idle")
        self.status.setObjectName("liveStatus")
        self.log = QListWidget()
        self.log.setObjectName("liveTranscript")
        self.log.setMaximumHeight(140)
        left = QSplitter(Qt.Orientation.Vertical)
        left.addWidget(box)
        pv = QWidget()
        pvl = QVBoxLayout(pv)
        pvl.setContentsMargins(0, 0, 0, 0)
        pvl.addWidget(self.preview, 1)
        pvl.addWidget(self.status)
        left.addWidget(pv)
        left.setSizes([300, 300])

        self.timeline = SentimentTimeline(title="Live sentiment (one bar per hop, window ending there)")
        self.timeline.setObjectName("liveTimeline")
        self.contrib = SegmentContributionsPlot(title="Live Shapley contributions")
        self.contrib.setObjectName("liveContributions")
        self.contrib.setXLink(self.timeline)
        self.timeline.setXRange(0, VISIBLE_SECONDS, padding=0)
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.timeline)
        right.addWidget(self.contrib)
        right.addWidget(self.log)
        right.setSizes([300, 200, 120])

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setSizes([360, 840])
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(split)

        self.results: deque = deque(maxlen=600)
        self.keep = frozenset({"text", "audio", "visual"})
        self.microphones_found = 0
        self.camera_combo.currentIndexChanged.connect(self._on_camera_choice)
        self.refresh_devices()

    # -------------------------------------------------------------------------- devices
    def refresh_devices(self) -> None:
        """List the devices again, keeping the current choices that still exist."""
        camera, mic = self.camera_combo.currentData(), self.mic_combo.currentData()
        cams = list_cameras()
        mics = list_microphones()
        with QSignalBlocker(self.camera_combo), QSignalBlocker(self.mic_combo):
            self.camera_combo.clear()
            for label, spec in cams:
                self.camera_combo.addItem(label, spec)
            self.camera_combo.addItem("Stream URL or video file", CAMERA_URL)
            self.camera_combo.addItem("No camera", CAMERA_NONE)
            self.mic_combo.clear()
            for label, name, backend in mics:
                self.mic_combo.addItem(label, (name, backend))
            self.mic_combo.addItem("Audio of the camera file or stream", (MIC_FILE, "file"))
            self.mic_combo.addItem("No microphone", (MIC_NONE, ""))
        self.microphones_found = len(mics)
        missing = [what for what, found in (("camera", cams), ("microphone", mics)) if not found]
        if missing:
            self.device_message.setText(
                f"No {' or '.join(missing)} found on this computer. You can still use a stream URL "
                "(e.g. tcp://127.0.0.1:5000 from ffmpeg) or a video file as the camera, and its audio "
                "as the microphone."
            )
        else:
            self.device_message.setText("")
        _select_data(self.camera_combo, camera)
        self._on_camera_choice()
        if mic is not None and self._mic_fits_camera(tuple(mic)):
            _select_data(self.mic_combo, tuple(mic))

    def _on_camera_choice(self, *_args) -> None:
        is_url = self.camera_combo.currentData() == CAMERA_URL
        self.camera_url.setEnabled(is_url)
        self.camera_browse.setEnabled(is_url)
        mic = self.mic_combo.currentData()
        if self.microphones_found == 0 or not self._mic_fits_camera(mic):
            _select_data(self.mic_combo, self.default_mic())

    def default_mic(self) -> tuple[str, str]:
        """The first microphone found; with none, the camera's own audio when the camera is a
        file or stream (so Start works with the defaults on a machine without a microphone)."""
        if self.microphones_found:
            return self.mic_combo.itemData(0)
        return (MIC_FILE, "file") if self.camera_combo.currentData() == CAMERA_URL else (MIC_NONE, "")

    def _mic_fits_camera(self, mic) -> bool:
        """Only a file or stream camera has audio of its own."""
        return mic is not None and (mic[0] != MIC_FILE or self.camera_combo.currentData() == CAMERA_URL)

    # -------------------------------------------------------------------------- remembered choices
    def save_choices(self, settings: QSettings) -> None:
        """Remember the devices and the window/hop (called when a start succeeded)."""
        mic_name, mic_backend = self.mic_combo.currentData() or (MIC_NONE, "")
        for key, value in (("camera", self.camera_combo.currentData()), ("camera_url", self.camera_url.text().strip()),
                           ("mic_name", mic_name), ("mic_backend", mic_backend),
                           ("window", self.window_spin.value()), ("hop", self.hop_spin.value())):
            settings.setValue(f"{SETTINGS_GROUP}/{key}", value)
        settings.sync()

    def restore_choices(self, settings: QSettings) -> None:
        """Choose what `save_choices` remembered, where those devices still exist."""
        def value(key: str, default, kind):
            return settings.value(f"{SETTINGS_GROUP}/{key}", default, type=kind)

        self.camera_url.setText(value("camera_url", "", str))
        _select_data(self.camera_combo, value("camera", "", str))
        self._on_camera_choice()
        mic = (value("mic_name", "", str), value("mic_backend", "", str))
        if mic[0] and self._mic_fits_camera(mic):
            _select_data(self.mic_combo, mic)
        self.window_spin.setValue(value("window", self.window_spin.value(), float))
        self.hop_spin.setValue(value("hop", self.hop_spin.value(), float))

    def _browse_camera_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Video file as camera", "", "Video (*.mp4 *.mkv *.avi *.mov *.mpg *.webm)")
        if path:
            self.camera_url.setText(path)

    def select_camera_url(self, url: str) -> None:
        _select_data(self.camera_combo, CAMERA_URL)
        self.camera_url.setText(url)

    def select_mic(self, name: str, backend: str = "parec") -> None:
        if not _select_data(self.mic_combo, (name, backend)):
            self.mic_combo.addItem(f"{name} ({backend})", (name, backend))
            self.mic_combo.setCurrentIndex(self.mic_combo.count() - 1)

    def current_config(self) -> LiveConfig:
        cam = self.camera_combo.currentData()
        camera = None if cam == CAMERA_NONE else (self.camera_url.text().strip() or None) if cam == CAMERA_URL else cam
        mic_name, backend = self.mic_combo.currentData() or (MIC_NONE, "")
        cfg = LiveConfig(camera=camera, window=self.window_spin.value(), hop=self.hop_spin.value())
        if mic_name == MIC_NONE:
            cfg.mic = None
        elif mic_name == MIC_FILE:
            cfg.mic, cfg.mic_backend, cfg.audio_file = None, "file", camera
        else:
            cfg.mic, cfg.mic_backend = mic_name, backend
        if self.record_box.isChecked():
            default = Path.home() / f"msa-live-{time.strftime('%Y%m%d-%H%M%S')}.mkv"
            cfg.record_path = self.record_path.text().strip() or str(default)
        return cfg

    def _on_start_stop(self) -> None:
        if self.start_button.text().startswith("Stop"):
            self.stopRequested.emit()
        else:
            self.startRequested.emit(self.current_config())

    def set_running(self, running: bool, starting: bool = False) -> None:
        self.start_button.setText("Stop" if running else "Starting…" if starting else "Start live analysis")
        self.start_button.setEnabled(not starting)
        for w in (self.camera_combo, self.camera_url, self.mic_combo, self.window_spin, self.hop_spin,
                  self.record_box, self.record_path, self.refresh_button):
            w.setEnabled(not running and not starting)
        if not running and not starting:
            self._on_camera_choice()

    # -------------------------------------------------------------------------- results
    def clear_results(self) -> None:
        self.results.clear()
        self.log.clear()
        self.timeline.clear_data()
        self.contrib.set_data(np.zeros(0), np.zeros(0), np.zeros((0, 3)))

    def add_result(self, result) -> None:
        self.results.append(result)
        self.log.insertItem(0, f"{fmt_time(result.window_end)}  {result.score:+.2f}  {result.text or '(silence)'}")
        while self.log.count() > 50:
            self.log.takeItem(self.log.count() - 1)
        self.redraw()

    def set_keep(self, keep: frozenset[str]) -> None:
        self.keep = frozenset(keep)
        self.redraw()

    def redraw(self) -> None:
        rs = list(self.results)
        if not rs:
            return
        hop = max(1e-3, rs[-1].window_end - rs[-2].window_end) if len(rs) > 1 else 1.0
        ends = np.array([r.window_end for r in rs])
        starts = np.maximum(ends - hop, 0.0)
        scores = np.array([r.score for r in rs])
        t_end = float(ends[-1])
        x_range = (max(0.0, t_end - VISIBLE_SECONDS), max(VISIBLE_SECONDS, t_end) + 0.5)
        self.timeline.hover_provider = lambda i: self._hover(rs, i)
        self.timeline.set_data(starts, ends, scores, x_range=x_range)
        key = mask_key(self.keep)
        if key != "TAV":
            self.timeline.set_masked(np.array([r.score_for(key) for r in rs]), label=f"masked ({key})")
        else:
            self.timeline.set_masked(None)
        self.timeline.set_playhead(t_end)
        matrix = np.array([[r.contributions.get(m, 0.0) for m in ("text", "audio", "visual")] for r in rs])
        self.contrib.set_data(starts, ends, matrix)
        self.contrib.set_cursor(t_end)

    @staticmethod
    def _hover(rs, i: int) -> str:
        r = rs[i]
        c = "  ".join(f"{m[0].upper()} {r.contributions.get(m, 0.0):+.2f}" for m in ("text", "audio", "visual"))
        return (f"window {r.window_start:.1f}-{r.window_end:.1f} s  score {r.score:+.2f}\n"
                f"\u201c{r.text or '(silence)'}\u201d\nShapley: {c}\nlag {r.lag_seconds:.2f} s")

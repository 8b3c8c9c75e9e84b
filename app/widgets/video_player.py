"""Video player (QtMultimedia) with a face-landmark overlay, play/pause and a seek slider.

Frames arrive through a QVideoSink and are painted by `VideoCanvas` ourselves (instead of a
QVideoWidget) so the landmark overlay is drawn on the same surface, and so `grab()` captures the
frame for screenshots on every platform. The live preview reuses VideoCanvas.

Sound only when an audio output device exists. With none (no audio server: CI, containers, remote
sessions) Qt's FFmpeg backend still starts an audio-renderer thread, which fails to open a sink
("No audio device detected") and creates and deletes one again and again on that thread. Deleting it
disconnects it from our QAudioOutput, and because that QAudioOutput was created from Python its
`disconnectNotify` is a PySide override that needs the GIL, called while Qt holds a signal-slot
mutex. The GUI thread calling `QMediaPlayer.stop()` holds the GIL (PySide does not release it there)
and waits for that mutex: a deadlock (seen in gdb: GUI thread in QObject::disconnect ->
QBasicMutex::lockInternal, "QFFmpeg::AudioRenderer" in ~QObject -> PyGILState_Ensure). Without an
audio output attached the backend starts no audio renderer, so there is nothing to deadlock with;
there was nothing to play the sound on anyway. tests/test_app_player_stress.py opens, plays and
closes the player 200 times without an audio server.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from PySide6.QtCore import Q_ARG, QMetaObject, QPointF, QRectF, Qt, QUrl, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtMultimedia import QAudioOutput, QMediaDevices, QMediaPlayer, QVideoFrame, QVideoSink
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QSizePolicy, QSlider, QStyle, QToolButton, QVBoxLayout, QWidget

from app.widgets.style import fmt_time


class VideoCanvas(QWidget):
    """Paints a QImage letterboxed into the widget, plus optional normalised (x, y) landmarks."""

    def __init__(self, parent=None, placeholder: str = "No video") -> None:
        super().__init__(parent)
        self.setObjectName("videoCanvas")
        self.setMinimumSize(240, 180)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.image: QImage | None = None
        self.landmarks: np.ndarray | None = None
        self.placeholder = placeholder
        self.caption = ""

    def set_image(self, image: QImage | None) -> None:
        self.image = image if image is not None and not image.isNull() else None
        self.update()

    def set_bgr(self, frame: np.ndarray) -> None:
        """An OpenCV BGR frame (live preview)."""
        h, w = frame.shape[:2]
        rgb = np.ascontiguousarray(frame[:, :, ::-1])
        self.set_image(QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy())

    def set_landmarks(self, landmarks: np.ndarray | None) -> None:
        self.landmarks = landmarks
        self.update()

    def image_rect(self) -> QRectF:
        if self.image is None:
            return QRectF()
        iw, ih = self.image.width(), self.image.height()
        scale = min(self.width() / iw, self.height() / ih)
        w, h = iw * scale, ih * scale
        return QRectF((self.width() - w) / 2, (self.height() - h) / 2, w, h)

    def paintEvent(self, event) -> None:  # noqa: N802, ARG002 - Qt override
        p = QPainter(self)
        p.fillRect(self.rect(), QColor("#111418"))
        if self.image is None:
            p.setPen(QColor("#9aa0a6"))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self.placeholder)
            p.end()
            return
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        rect = self.image_rect()
        p.drawImage(rect, self.image)
        if self.landmarks is not None and len(self.landmarks):
            p.setRenderHint(QPainter.RenderHint.Antialiasing)
            p.setPen(QPen(QColor(80, 255, 160, 210), 1.6))
            pts = [QPointF(rect.x() + x * rect.width(), rect.y() + y * rect.height()) for x, y in self.landmarks]
            p.drawPoints(pts)
        if self.caption:
            p.setPen(QColor("#ffffff"))
            p.drawText(self.rect().adjusted(8, 6, -8, -6), Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft, self.caption)
        p.end()


class VideoPlayer(QWidget):
    positionChanged = Signal(float)  # seconds
    durationChanged = Signal(float)
    errorOccurred = Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("videoPlayer")
        self.canvas = VideoCanvas(placeholder="Open a video (File ▸ Open, or drop a file here)")
        self.player = QMediaPlayer(self)
        self.audio = QAudioOutput(self)
        self._attach_audio_if_available()
        self.sink = QVideoSink(self)
        self.player.setVideoSink(self.sink)
        self.sink.videoFrameChanged.connect(self._on_frame)
        self.landmark_provider: Callable[[float], np.ndarray | None] | None = None
        self.frames_shown = 0

        self.play_button = QToolButton()
        self.play_button.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_MediaPlay))
        self.play_button.setToolTip("Play / pause (Space)")
        self.play_button.clicked.connect(self.toggle_play)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 0)
        self.slider.sliderMoved.connect(lambda ms: self.seek(ms / 1000.0))
        self.time_label = QLabel("0:00.00 / 0:00.00")
        self.overlay_box = QCheckBox("Face landmarks")
        self.overlay_box.setToolTip("Draw the MediaPipe face mesh used for the visual features")
        self.overlay_box.toggled.connect(lambda _: self._update_overlay(self.position))

        controls = QHBoxLayout()
        controls.setContentsMargins(0, 0, 0, 0)
        controls.addWidget(self.play_button)
        controls.addWidget(self.slider, 1)
        controls.addWidget(self.time_label)
        controls.addWidget(self.overlay_box)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.canvas, 1)
        lay.addLayout(controls)

        self.player.positionChanged.connect(self._on_position)
        self.player.durationChanged.connect(self._on_duration)
        self.player.playbackStateChanged.connect(self._on_state)
        self.player.errorOccurred.connect(lambda _e, msg: self.errorOccurred.emit(msg))
        self.player.mediaStatusChanged.connect(self._on_media_status)
        self._duration = 0.0
        self._priming = False

    # ------------------------------------------------------------------------- control
    def _attach_audio_if_available(self) -> None:
        """Route sound to the default device when there is one, else play silently (module doc).
        Called only while no media is loaded, when the backend has no renderer threads running."""
        has_device = bool(QMediaDevices.audioOutputs())
        if has_device and self.player.audioOutput() is None:
            self.player.setAudioOutput(self.audio)
        elif not has_device and self.player.audioOutput() is not None:
            self.player.setAudioOutput(None)

    def load(self, path: str) -> None:
        self.unload()
        self._attach_audio_if_available()  # a device may have appeared or gone since the last file
        self.frames_shown = 0
        self.canvas.set_image(None)
        self.canvas.set_landmarks(None)
        self.canvas.placeholder = "Loading…"
        self.player.setSource(QUrl.fromLocalFile(path))

    def unload(self) -> None:
        self.player.stop()
        self.player.setSource(QUrl())
        self.canvas.set_image(None)

    def release(self) -> None:
        """Stop and drop the media on the way out (window close). Queued, so the event loop calls
        QMediaPlayer's slots from C++ without holding the GIL: with an audio output attached, a
        stop() called from Python holds the GIL while it waits for the audio renderer thread,
        which needs the GIL to finish tearing down (module doc) — a deadlock seen 2 times in 9
        closes under Xvfb with a PulseAudio server."""
        QMetaObject.invokeMethod(self.player, "stop", Qt.ConnectionType.QueuedConnection)
        QMetaObject.invokeMethod(self.player, "setSource", Qt.ConnectionType.QueuedConnection, Q_ARG(QUrl, QUrl()))
        self.canvas.set_image(None)

    def play(self) -> None:
        self.player.play()

    def pause(self) -> None:
        self.player.pause()

    def toggle_play(self) -> None:
        if self.player.playbackState() == QMediaPlayer.PlaybackState.PlayingState:
            self.pause()
        else:
            self.play()

    def seek(self, seconds: float) -> None:
        self.player.setPosition(int(max(0.0, seconds) * 1000))
        # positionChanged may lag behind a seek while paused; tell listeners right away.
        self._on_position(self.player.position())

    @property
    def position(self) -> float:
        return self.player.position() / 1000.0

    @property
    def duration(self) -> float:
        return self._duration

    @property
    def is_playing(self) -> bool:
        return self.player.playbackState() == QMediaPlayer.PlaybackState.PlayingState

    # ------------------------------------------------------------------------ callbacks
    def _on_media_status(self, status) -> None:
        if status == QMediaPlayer.MediaStatus.LoadedMedia:
            self.canvas.placeholder = "Audio only" if not self.player.hasVideo() else "Loading…"
            self.canvas.update()
            if self.player.hasVideo() and not self.is_playing and self.frames_shown == 0:
                # A freshly loaded, paused player renders nothing; play muted until the first
                # frame arrives and pause there, so the user sees a picture, not a black box.
                self._priming = True
                self.audio.setMuted(True)
                self.player.play()
        elif status == QMediaPlayer.MediaStatus.InvalidMedia:
            self.canvas.placeholder = "This file cannot be played"
            self.canvas.update()

    def _on_frame(self, frame: QVideoFrame) -> None:
        if not frame.isValid():
            return
        image = frame.toImage()
        if image.isNull():
            return
        if self._priming:
            self._priming = False
            self.player.pause()
            self.audio.setMuted(False)
            if self.player.position() > 0:
                self.player.setPosition(0)
        self.frames_shown += 1
        self.canvas.set_image(image)
        self._update_overlay(self.position)

    def _update_overlay(self, t: float) -> None:
        if self.overlay_box.isChecked() and self.landmark_provider is not None:
            self.canvas.set_landmarks(self.landmark_provider(t))
        elif self.canvas.landmarks is not None:
            self.canvas.set_landmarks(None)

    def _on_position(self, ms: int) -> None:
        if not self.slider.isSliderDown():
            self.slider.blockSignals(True)
            self.slider.setValue(int(ms))
            self.slider.blockSignals(False)
        self.time_label.setText(f"{fmt_time(ms / 1000)} / {fmt_time(self._duration)}")
        self._update_overlay(ms / 1000.0)
        self.positionChanged.emit(ms / 1000.0)

    def _on_duration(self, ms: int) -> None:
        self._duration = ms / 1000.0
        self.slider.setRange(0, int(ms))
        self.time_label.setText(f"{fmt_time(self.position)} / {fmt_time(self._duration)}")
        self.durationChanged.emit(self._duration)

    def _on_state(self, state) -> None:
        icon = QStyle.StandardPixmap.SP_MediaPause if state == QMediaPlayer.PlaybackState.PlayingState else QStyle.StandardPixmap.SP_MediaPlay
        self.play_button.setIcon(self.style().standardIcon(icon))

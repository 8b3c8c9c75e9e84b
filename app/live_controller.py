"""Live mode glue: capture sources + analysis.live.LiveAnalyzer, bridged to Qt signals.

Sources and the analyzer run on their own threads; this object re-emits their results as Qt
signals (delivered on the GUI thread) and keeps only the newest preview frame, which a GUI timer
paints at ~15 fps, so a fast camera can never flood the event loop.

`stop()` also aborts a start still in progress (loading models, opening devices): the start thread
notices at its next step and releases what it opened, so closing the window while live mode is
starting leaves nothing running. `wait_finished()` waits for the start and the post-stop work.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal

from core.errors import MSAError
from models.defaults import DEFAULT_MODEL


class _StartAborted(Exception):
    """stop() was called while start() was still loading models or opening devices."""


@dataclass
class LiveConfig:
    camera: str | None = None  # device index, stream URL or video file; None = no camera
    mic: str | None = "default"  # "default", a PulseAudio/PortAudio device name, or None
    mic_backend: str = "auto"  # auto | sounddevice | parec | file
    # With mic_backend="file": play this media file's audio; None or the camera itself = the
    # camera file's or stream's own audio, decoded with its picture.
    audio_file: str | None = None
    window: float = 4.0
    hop: float = 1.0
    record_path: str | None = None
    model: str = DEFAULT_MODEL
    device: str = "auto"


class LiveController(QObject):
    started = Signal()
    stopped = Signal()
    failed = Signal(str)
    resultReady = Signal(object)  # analysis.live.LiveResult
    warning = Signal(str)
    recordingSaved = Signal(list)  # paths written by the recorder

    def __init__(self, cache, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.cache = cache
        self.config: LiveConfig | None = None
        self.analyzer = None
        self.components = None
        self.camera = None
        self.mic = None
        self.recorder = None
        self._latest_frame: tuple[np.ndarray, float] | None = None
        self._latest_landmarks: np.ndarray | None = None
        self._frame_lock = threading.Lock()
        self._starting = False
        self._start_thread: threading.Thread | None = None
        self._abort_start = threading.Event()
        # Guards the hand-over of the started parts against a concurrent stop().
        self._parts_lock = threading.Lock()
        self.recorded_files: list[Path] = []
        self._finishing: threading.Thread | None = None
        self.plot_lags: list[float] = []

    # ------------------------------------------------------------------------- lifecycle
    @property
    def running(self) -> bool:
        return self.analyzer is not None and self.analyzer.running

    def start(self, config: LiveConfig) -> None:
        """Load models and open devices on a worker thread; `started` or `failed` follows."""
        if self.running or self._starting:
            return
        problem = self._config_problem(config)
        if problem:
            self.failed.emit(problem)
            return
        self._starting = True
        self.config = config
        self._abort_start = abort = threading.Event()
        self._start_thread = threading.Thread(target=self._start_worker, args=(config, abort), name="live-start",
                                              daemon=True)
        self._start_thread.start()

    def _start_worker(self, config: LiveConfig, abort: threading.Event) -> None:
        from analysis.live import LiveAnalyzer
        from core.live_sources import CameraAudioSource, LiveRecorder

        def check() -> None:
            if abort.is_set():
                raise _StartAborted()

        analyzer = components = camera = mic = recorder = None
        try:
            check()
            engine = self.cache.engine(config.model, config.device)
            check()
            analyzer = LiveAnalyzer.from_analyzer(
                self.cache.analyzer(engine), window=config.window, hop=config.hop,
                on_result=self.resultReady.emit, on_error=self.warning.emit, on_landmarks=self._on_landmarks,
            )
            components = analyzer.components
            check()
            analyzer.warm_up()
            check()
            recorder = LiveRecorder(config.record_path) if config.record_path else None
            live, rec = analyzer, recorder  # non-optional names for the closures below

            def on_frame(frame: np.ndarray, t: float) -> None:
                live.push_frame(frame, t)
                with self._frame_lock:
                    self._latest_frame = (frame, t)
                if rec is not None:
                    rec.add_frame(frame, t)

            def on_audio(samples: np.ndarray, t: float) -> None:
                live.push_audio(samples, t)
                if rec is not None:
                    rec.add_audio(samples, t)

            camera, mic = self._make_sources(config, on_frame, on_audio)
            for src in (camera, mic):
                if src is not None:
                    src.start()
            self._check_sources(camera, mic, abort=abort)
            # Start scoring only once the devices deliver: the analyzer's first hop then waits
            # for the face tracker's warm-in on real frames instead of racing the camera's connect.
            analyzer.start()
            with self._parts_lock:
                check()  # past this point stop() sees the parts and stops them itself
                self.analyzer, self.components, self.camera, self.mic, self.recorder = (
                    analyzer, components, camera, mic, recorder)
                self.plot_lags = []
                self._starting = False
        except _StartAborted:
            self._release(camera, mic, analyzer, recorder, components)
            self._starting = False
            self.stopped.emit()
            return
        except Exception as exc:  # MSAError for user-facing problems; device libraries raise anything
            self._release(camera, mic, analyzer, recorder, components)
            self._starting = False
            self.failed.emit(str(exc) if isinstance(exc, MSAError) else f"{exc.__class__.__name__}: {exc}")
            return
        self.started.emit()
        if isinstance(camera, CameraAudioSource) and not camera.has_audio:
            self.warning.emit(f"{camera.spec} has no audio track: analysing the picture only")

    @staticmethod
    def _config_problem(config: LiveConfig) -> str | None:
        """What makes `config` unable to start, found before any model loads; None when fine."""
        if config.mic_backend != "file":
            return "choose a camera or a microphone first" if config.camera is None and config.mic is None else None
        if not (config.audio_file or config.camera):
            return "choose a video file or a stream URL as the camera first: its audio is the microphone"
        if config.audio_file in (None, config.camera) and str(config.camera).strip().isdigit():
            return (f"camera {config.camera} is a device: its audio is not available; choose a microphone, "
                    "or a video file or a stream URL as the camera")
        return None

    @staticmethod
    def _make_sources(config: LiveConfig, on_frame, on_audio):
        """(camera, microphone) sources for `config`, not started yet. The camera's own audio
        (mic_backend "file" with the camera as audio_file) comes from the camera source itself."""
        from core.live_sources import ArrayAudioSource, CameraAudioSource, CameraSource, MicSource

        if config.mic_backend == "file":
            audio_file = config.audio_file or config.camera
            if audio_file == config.camera:
                return CameraAudioSource(audio_file, on_frame, on_audio), None
            camera = CameraSource(config.camera, on_frame) if config.camera is not None else None
            return camera, ArrayAudioSource.from_media(audio_file, on_audio, loop=True)
        camera = CameraSource(config.camera, on_frame) if config.camera is not None else None
        mic = None
        if config.mic is not None:
            device = None if config.mic in ("", "default") else config.mic
            mic = MicSource(on_audio, device=device, backend=config.mic_backend)
        return camera, mic

    @staticmethod
    def _release(camera, mic, analyzer, recorder, components) -> None:
        """Undo a start that failed or was aborted half-way."""
        for part in (camera, mic, analyzer):
            if part is not None:
                part.stop(0.5)
        if recorder is not None:
            recorder.close()
        if components is not None:
            components.close()

    @staticmethod
    def _check_sources(camera, mic, timeout: float = 12.0, abort: threading.Event | None = None) -> None:
        """Fail start() with a readable message when a device cannot be opened, instead of
        running with a dead source (connection refused, busy camera, unknown PulseAudio source)."""
        from core.live_sources import LiveSourceError

        deadline = time.monotonic() + timeout
        while camera is not None and not camera.opened.is_set() and camera.error is None:
            if abort is not None and abort.is_set():
                raise _StartAborted()
            if time.monotonic() > deadline:
                raise LiveSourceError(f"camera {camera.spec!r} did not open within {timeout:.0f} s")
            time.sleep(0.05)
        if camera is not None and camera.error:
            raise LiveSourceError(camera.error)
        if mic is not None:
            time.sleep(0.3)  # parec exits at once for an unknown source
            if mic.error:
                raise LiveSourceError(mic.error)

    def stop(self, timeout: float = 1.0) -> bool:
        """Stop sources and analysis; True when every thread ended within `timeout` seconds.

        Finishing the recording (muxing with ffmpeg) and releasing the face tracker happen on a
        background thread afterwards, so the UI is back at once; `recordingSaved` follows.
        A start still in progress is aborted (see the module docstring)."""
        deadline = time.monotonic() + timeout
        ok = True
        with self._parts_lock:
            self._abort_start.set()
            camera, mic = self.camera, self.mic
            analyzer, recorder, components = self.analyzer, self.recorder, self.components
            self.analyzer = self.camera = self.mic = self.recorder = self.components = None
        for src in (camera, mic):
            if src is not None:
                ok &= src.stop(max(0.05, deadline - time.monotonic()))
        if analyzer is not None:
            ok &= analyzer.stop(max(0.05, deadline - time.monotonic()))
        with self._frame_lock:
            self._latest_frame = None
        if recorder is not None or components is not None:
            self._finishing = threading.Thread(
                target=self._finish, args=(analyzer, recorder, components), name="live-finish", daemon=True
            )
            self._finishing.start()
        if analyzer is not None:
            self.stopped.emit()
        return ok

    def _finish(self, analyzer, recorder, components) -> None:
        if analyzer is not None:
            # A hop still inside ASR ends on its own (its result is dropped); the face tracker
            # must not be closed under the visual thread.
            analyzer.stop(timeout=10.0)
        if components is not None:
            components.close()
        if recorder is not None:
            self.recorded_files = recorder.close()
            self.recordingSaved.emit([str(p) for p in self.recorded_files])

    def wait_finished(self, timeout: float = 30.0) -> bool:
        """Block until an aborted start and the post-stop work (recording mux) are done; for
        tests and app exit. True when nothing of live mode is still running."""
        from app.workers import join_thread

        deadline = time.monotonic() + timeout
        return all([join_thread(t, deadline) for t in self.threads()])

    def threads(self) -> list[threading.Thread]:
        """The controller's own threads (start, post-stop work) that may still run."""
        return [t for t in (self._start_thread, self._finishing) if t is not None]

    # --------------------------------------------------------------------------- polling
    def _on_landmarks(self, t: float, landmarks: np.ndarray | None) -> None:  # noqa: ARG002
        self._latest_landmarks = landmarks

    def take_frame(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Newest preview frame (or None when unchanged) and the newest face landmarks."""
        with self._frame_lock:
            item, self._latest_frame = self._latest_frame, None
        return (item[0] if item else None), self._latest_landmarks

    def source_errors(self) -> list[str]:
        errs = []
        for name, src in (("camera", self.camera), ("microphone", self.mic)):
            if src is not None and src.error:
                errs.append(f"{name}: {src.error}")
        return errs

    def record_plot_lag(self, result) -> float:
        """Lag from the window's last captured sample to now (the moment the score is plotted)."""
        lag = time.monotonic() - result.captured_at
        self.plot_lags.append(lag)
        del self.plot_lags[:-600]
        return lag

"""Background work for the GUI: analysis jobs and short tasks, bridged to Qt signals.

The analyzer (engine + pipeline + feature cache) is plain Python (analysis/); it runs on Python threads and report
through Qt signals, which Qt delivers on the GUI thread (queued connections), so the UI never blocks
and never touches widgets from a worker thread.

Why threads and not a process: extraction is dominated by native code that releases the GIL
(CTranslate2, MediaPipe, librosa/numpy, torch), and a thread can hand the cached features
(hundreds of MB for long files) to the UI without pickling. Cancellation is cooperative via
RunContext.cancel; the UI returns to idle at once and ignores anything a cancelled job still emits.

Shutdown: every worker can be asked to stop (`cancel()`) and its thread waited for (`join_thread`).
The window asks when it closes and app.main waits before the interpreter exits: a thread still inside CTranslate2,
MediaPipe or torch while the process tears down its native libraries aborts it ("terminate called
without an active exception"), and one still running Python code at interpreter shutdown prints
tracebacks ("cannot schedule new futures after interpreter shutdown").
"""
from __future__ import annotations

import threading
import time
import traceback
from typing import Any, Callable

from PySide6.QtCore import QObject, Signal

from core.errors import Cancelled, MSAError
from models.defaults import DEFAULT_MODEL


class ModelCache:
    """Keeps loaded pipelines/engines: loading Whisper/MiniLM/MediaPipe/a checkpoint takes seconds,
    switching back and forth between models should not."""

    def __init__(self) -> None:
        from analysis.analyzer import DEFAULT_CACHE, resolve_cache

        self._engines: dict[tuple[str, str, str | None], Any] = {}
        self._pipelines: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        # The feature cache every analysis policy shares (analysis.analyzer): re-opening a file
        # or analysing it again with another model skips the extraction.
        self.feature_cache = resolve_cache(DEFAULT_CACHE)

    def engine(self, model: str, device: str = "auto", checkpoint: str | None = None):
        from core.devices import resolve_device
        from analysis.engine import InferenceEngine

        key = (model.lower(), resolve_device(device), checkpoint)
        with self._lock:
            if key not in self._engines:
                self._engines[key] = InferenceEngine(model, checkpoint, device=key[1])
            return self._engines[key]

    def preload(self, model: str, device: str = "auto", cancel: threading.Event | None = None) -> None:
        """Import and load everything an analysis needs (torch, transformers, Whisper, MediaPipe).

        Run on a background thread right after the window appears: these imports hold the GIL
        for long stretches, which is harmless while the user is choosing a file but would make
        the UI stutter if it happened during the first analysis. `cancel` is checked between the
        steps (each is one uninterruptible load), so closing the window stops it within one step."""
        import numpy as np

        from core import segmentation

        def check() -> None:
            if cancel is not None and cancel.is_set():
                raise Cancelled("preloading cancelled")

        def warm_audio() -> None:
            # librosa JIT-compiles its numba kernels on first use: seconds of GIL-holding compile.
            noise = (np.random.default_rng(0).standard_normal(16000) * 0.01).astype(np.float32)
            pipeline.audio_extractor.extract(noise)
            segmentation.speech_regions(noise, sr=16000)

        def warm_visual() -> None:
            with pipeline.new_visual_extractor() as extractor:
                extractor.load()

        check()
        engine = self.engine(model, device)
        check()
        pipeline = self.pipeline(engine.spec, engine.device)
        for step in (lambda: pipeline.text_encoder.encode(["warm up"]), lambda: pipeline.asr.model,
                     warm_visual, warm_audio):
            check()
            step()

    def analyzer(self, engine):
        """An Analyzer on a loaded engine, with the cached pipeline for its spec and the feature cache."""
        from analysis.analyzer import Analyzer

        return Analyzer(engine, self.pipeline(engine.spec, engine.device), self.feature_cache)

    def pipeline(self, spec, device: str = "cpu"):
        from core.pipeline import FeaturePipeline

        key = (spec.fingerprint(), device)
        with self._lock:
            if key not in self._pipelines:
                # Landmarks are kept for the video overlay (478 x 2 floats per visual frame).
                self._pipelines[key] = FeaturePipeline(spec, device=device, keep_landmarks=True)
            return self._pipelines[key]


def join_thread(thread: threading.Thread | None, deadline: float) -> bool:
    """Wait for `thread` until the monotonic `deadline`; True when it is not running (any more)."""
    if thread is None:
        return True
    thread.join(max(0.0, deadline - time.monotonic()))
    return not thread.is_alive()


class Task(QObject):
    """Run `fn()` on a daemon thread; `done(result)` or `failed(message)` arrive on the GUI thread.

    `cancel`, when given, asks `fn` to stop early (it then raises core.errors.Cancelled, and
    neither signal follows)."""

    done = Signal(object)
    failed = Signal(str)

    def __init__(self, fn: Callable[[], Any], name: str = "task", parent: QObject | None = None,
                 cancel: Callable[[], None] | None = None) -> None:
        super().__init__(parent)
        self.fn = fn
        self.name = name
        self._cancel = cancel
        self.thread: threading.Thread | None = None
        self.finished_at: float | None = None

    def start(self) -> "Task":
        self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self.thread.start()
        return self

    def cancel(self) -> None:
        if self._cancel is not None:
            self._cancel()

    def _run(self) -> None:
        try:
            out = self.fn()
        except Cancelled:
            self.finished_at = time.monotonic()
            return
        except MSAError as exc:
            self.finished_at = time.monotonic()
            self.failed.emit(str(exc))
            return
        except Exception as exc:  # programming errors: show the type, log the traceback
            traceback.print_exc()
            self.finished_at = time.monotonic()
            self.failed.emit(f"{exc.__class__.__name__}: {exc}")
            return
        self.finished_at = time.monotonic()
        self.done.emit(out)

    def is_running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()


class AnalysisJob(QObject):
    """Analyzer.run on a worker thread with per-stage progress and cooperative cancel."""

    progress = Signal(str, float, str)  # stage, fraction, message
    finished = Signal(object)  # AnalysisSession
    failed = Signal(str)
    cancelled = Signal()

    def __init__(
        self,
        path: str,
        cache: ModelCache,
        model: str = DEFAULT_MODEL,
        device: str = "auto",
        transcript: str | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        from core.progress import RunContext

        self.path = path
        self.cache = cache
        self.model = model
        self.device = device
        self.transcript = transcript
        self.ctx = RunContext(progress=self._on_progress)
        self.thread: threading.Thread | None = None
        self.cancel_requested_at: float | None = None
        self.ended_at: float | None = None

    def _on_progress(self, stage: str, fraction: float, message: str) -> None:
        self.progress.emit(stage, fraction, message)

    def start(self) -> "AnalysisJob":
        self.thread = threading.Thread(target=self._run, name="analysis", daemon=True)
        self.thread.start()
        return self

    def cancel(self) -> None:
        if self.cancel_requested_at is None:
            self.cancel_requested_at = time.monotonic()
        self.ctx.cancel.cancel()

    def is_running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def _run(self) -> None:
        from analysis.session_model import AnalysisSession

        try:
            self.ctx.report("load", 0.0, f"loading model {self.model}")
            # The cache's lock may be held by the preload for seconds: look at the flag again after.
            engine = self.cache.engine(self.model, self.device)
            self.ctx.check()
            analyzer = self.cache.analyzer(engine)
            self.ctx.report("load", 1.0, "models ready")
            run = analyzer.run(self.path, transcript=self.transcript, ctx=self.ctx)
            session = AnalysisSession(run.result, run.features, engine=engine, pipeline=analyzer.pipeline,
                                      source_path=self.path)
        except Cancelled:
            self.ended_at = time.monotonic()
            self.cancelled.emit()
            return
        except MSAError as exc:
            self.ended_at = time.monotonic()
            self.failed.emit(str(exc))
            return
        except Exception as exc:
            traceback.print_exc()
            self.ended_at = time.monotonic()
            self.failed.emit(f"{exc.__class__.__name__}: {exc}")
            return
        self.ended_at = time.monotonic()
        if self.ctx.cancel.cancelled:
            self.cancelled.emit()
        else:
            self.finished.emit(session)

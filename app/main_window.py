"""Main window: wires the panels to the view-models and workers. No analysis logic here.

Lifecycle: closing the window asks every worker to stop (analysis job, background tasks, live
mode, the player) without blocking the UI; `wait_for_workers()` then waits for their threads, which
app.main does after the event loop ends and before the interpreter exits (see app/workers.py).

Model chooser: the panels only ever show a result scored by the model and device the toolbar
shows. A switch re-scores the cached features in the background; an analysis that finishes after
the chooser changed is re-scored before it is shown; of several quick switches the last one wins.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.live_controller import LiveController
from analysis.session_model import ALL, AnalysisSession
from app.widgets.contributions import ContributionsPanel
from app.widgets.live_panel import LivePanel
from app.widgets.progress import StageProgress
from app.widgets.robustness import ModalityToggles, RobustnessPanel
from app.widgets.style import setup_pyqtgraph
from app.widgets.timeline import SentimentTimeline
from app.widgets.transcript import TranscriptTable
from app.widgets.video_player import VideoPlayer
from app.workers import AnalysisJob, ModelCache, Task, join_thread
from core.shapley import mask_key
from core.transcripts import TranscriptChoice, choose_transcript
from models.defaults import DEFAULT_MODEL

MEDIA_FILTER = "Media (*.mp4 *.m4v *.mov *.mkv *.webm *.avi *.mpg *.mpeg *.wav *.flac *.mp3 *.ogg *.m4a);;All files (*)"
SESSION_SUFFIX = ".msasession"
MAX_RECENT = 8


class MainWindow(QMainWindow):
    sessionChanged = Signal(object)  # AnalysisSession | None
    busyChanged = Signal(bool)

    def __init__(
        self,
        settings: QSettings | None = None,
        model: str = DEFAULT_MODEL,
        device: str = "auto",
        cache: ModelCache | None = None,
        preload: bool = True,
    ) -> None:
        super().__init__()
        setup_pyqtgraph()
        self.setWindowTitle("MSA Studio")
        self.resize(1360, 900)
        self.setAcceptDrops(True)
        self.settings = settings or QSettings("MSA Studio", "msa-studio")
        self.cache = cache or ModelCache()
        self.session: AnalysisSession | None = None
        self.job: AnalysisJob | None = None
        self.jobs: list[AnalysisJob] = []  # every job whose thread may still run, cancelled ones too
        self.tasks: list[Task] = []
        # A finished analysis held back while it is re-scored for a model chosen during it.
        self._pending_session: AnalysisSession | None = None
        self._rescore_generation = 0
        self.keep = ALL
        self._transcript = TranscriptChoice(None, "asr")  # of the analysis running or shown last
        self.last_error = ""
        self._last_cancelled: AnalysisJob | None = None

        # Worker threads run Python code too (tokenisers, feature assembly): switch the GIL more
        # often than the 5 ms default so the event loop gets its share promptly.
        sys.setswitchinterval(0.001)
        self._build_panels()
        self._build_toolbar(model, device)
        self._build_menus()
        self._connect()
        self._set_idle_view()
        self.preload_task: Task | None = None
        if preload:
            self.preload_models()

    # =========================================================================== building
    def _build_panels(self) -> None:
        self.player = VideoPlayer()
        self.transcript = TranscriptTable()
        self.timeline = SentimentTimeline(title="Sentiment per segment (click to seek, hover for details)")
        self.contributions = ContributionsPanel()
        self.contributions.segments.setXLink(self.timeline)
        self.robustness = RobustnessPanel()
        self.progress = StageProgress()
        self.banner = QLabel("")
        self.banner.setObjectName("banner")
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet("QLabel#banner { background: #fff4e5; color: #7a4b00; padding: 4px 8px; border: 1px solid #f0c36d; }")

        # Left column: player, timeline and per-segment contributions share one width, so the bars
        # line up with the timeline (x axes linked, equal left-axis widths). Right column: transcript
        # and the whole-recording contributions.
        left = QSplitter(Qt.Orientation.Vertical)
        left.addWidget(self.player)
        left.addWidget(self.timeline)
        left.addWidget(self.contributions.segments)
        left.setSizes([360, 230, 190])
        recording_box = QWidget()
        rb = QVBoxLayout(recording_box)
        rb.setContentsMargins(0, 0, 0, 0)
        rb.addWidget(self.contributions.recording, 1)
        rb.addWidget(self.contributions.summary)
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.transcript)
        right.addWidget(recording_box)
        right.setSizes([480, 300])
        main_split = QSplitter(Qt.Orientation.Horizontal)
        main_split.addWidget(left)
        main_split.addWidget(right)
        main_split.setSizes([860, 480])

        page = QWidget()
        page.setObjectName("recordingPage")
        lay = QVBoxLayout(page)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.progress)
        lay.addWidget(self.banner)
        lay.addWidget(main_split, 1)

        self.live_panel = LivePanel()
        self.live_panel.restore_choices(self.settings)
        self.live = LiveController(self.cache, self)
        self.tabs = QTabWidget()
        self.tabs.addTab(page, "Recording")
        self.tabs.addTab(self.robustness, "Robustness")
        self.tabs.addTab(self.live_panel, "Live")
        self.setCentralWidget(self.tabs)

        self.status_label = QLabel("")
        self.lag_label = QLabel("")
        self.lag_label.setObjectName("lagLabel")
        self.statusBar().addWidget(self.status_label, 1)
        self.statusBar().addPermanentWidget(self.lag_label)
        self.preview_timer = QTimer(self)
        self.preview_timer.setInterval(66)  # ~15 fps preview; the analyzer sees every frame anyway
        self.preview_timer.timeout.connect(self._paint_preview)

    def _build_toolbar(self, model: str, device: str) -> None:
        from core.devices import available_devices
        from models.registry import model_names

        tb = self.addToolBar("Main")
        tb.setObjectName("mainToolbar")
        tb.setMovable(False)
        self.open_action = QAction("Open…", self)
        self.open_action.setShortcut(QKeySequence.StandardKey.Open)
        tb.addAction(self.open_action)
        tb.addSeparator()
        tb.addWidget(QLabel(" Model: "))
        self.model_combo = QComboBox()
        self.model_combo.setObjectName("modelCombo")
        for name in model_names():
            self.model_combo.addItem(name, name)
        idx = self.model_combo.findData(model.lower())
        self.model_combo.setCurrentIndex(max(0, idx))
        tb.addWidget(self.model_combo)
        tb.addWidget(QLabel(" Device: "))
        self.device_combo = QComboBox()
        self.device_combo.setObjectName("deviceCombo")
        devices = available_devices()
        for d in devices:
            self.device_combo.addItem(d, d)
        preferred = devices[-1] if device == "auto" else device
        self.device_combo.setCurrentIndex(max(0, self.device_combo.findData(preferred)))
        tb.addWidget(self.device_combo)
        tb.addSeparator()
        self.toggles = ModalityToggles()
        tb.addWidget(self.toggles)

    def _build_menus(self) -> None:
        m = self.menuBar().addMenu("&File")
        m.addAction(self.open_action)
        self.recent_menu = m.addMenu("Open &recent")
        self.open_session_action = m.addAction("Open &session…")
        self.save_session_action = m.addAction("&Save session…")
        self.save_session_action.setShortcut(QKeySequence.StandardKey.Save)
        m.addSeparator()
        ex = m.addMenu("&Export")
        self.export_json_action = ex.addAction("Results as &JSON…")
        self.export_csv_action = ex.addAction("Results as &CSV…")
        self.export_png_action = ex.addAction("&PNG of every plot…")
        self.export_report_action = ex.addAction("&Report (HTML, to share)…")
        self.sidecar_action = m.addAction("Use &transcript files next to recordings")
        self.sidecar_action.setCheckable(True)
        self.sidecar_action.setChecked(self.settings.value("use_sidecar_transcripts", True, type=bool))
        # triggered (a user click), not toggled: `--no-sidecar` unticks it for one run without saving
        self.sidecar_action.triggered.connect(lambda on: self.settings.setValue("use_sidecar_transcripts", on))
        m.addSeparator()
        quit_action = m.addAction("&Quit")
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        v = self.menuBar().addMenu("&Mode")
        v.addAction("&Recording (file)").triggered.connect(lambda: self.tabs.setCurrentIndex(0))
        v.addAction("R&obustness").triggered.connect(lambda: self.tabs.setCurrentIndex(1))
        v.addAction("&Live (camera + microphone)").triggered.connect(lambda: self.tabs.setCurrentIndex(2))
        h = self.menuBar().addMenu("&Help")
        h.addAction("&About").triggered.connect(self._about)
        self._refresh_recent_menu()

    def _connect(self) -> None:
        self.open_action.triggered.connect(self._open_dialog)
        self.open_session_action.triggered.connect(self._open_session_dialog)
        self.save_session_action.triggered.connect(self._save_session_dialog)
        self.export_json_action.triggered.connect(lambda: self._export_dialog("json"))
        self.export_csv_action.triggered.connect(lambda: self._export_dialog("csv"))
        self.export_png_action.triggered.connect(self._export_png_dialog)
        self.export_report_action.triggered.connect(self._export_report_dialog)
        self.progress.cancelRequested.connect(self.cancel_analysis)

        self.player.positionChanged.connect(self.on_position)
        self.player.errorOccurred.connect(lambda msg: self.status(f"player: {msg}"))
        self.player.landmark_provider = self._landmarks_at
        self.timeline.seekRequested.connect(self.seek)
        self.transcript.seekRequested.connect(self.seek)
        self.transcript.textEdited.connect(self.edit_segment_text)
        self.timeline.hover_provider = lambda i: self.session.hover_text(i) if self.session else ""

        self.toggles.keepChanged.connect(self.set_keep)
        self.model_combo.currentIndexChanged.connect(lambda _i: self.switch_model())
        self.device_combo.currentIndexChanged.connect(lambda _i: self.switch_model())
        self.robustness.computeCurveRequested.connect(self.compute_missing_curve)

        self.live_panel.startRequested.connect(self.start_live)
        self.live_panel.stopRequested.connect(self.stop_live)
        self.live.started.connect(self._on_live_started)
        self.live.stopped.connect(self._on_live_stopped)
        self.live.failed.connect(self._on_live_failed)
        self.live.warning.connect(lambda msg: self.status(f"live: {msg}"))
        self.live.resultReady.connect(self._on_live_result)
        self.live.recordingSaved.connect(lambda paths: self.status(f"Recorded {', '.join(paths)}"))

    # ============================================================================ helpers
    def status(self, text: str) -> None:
        self.status_label.setText(text)

    @property
    def model_name(self) -> str:
        return str(self.model_combo.currentData())

    @property
    def device_name(self) -> str:
        return str(self.device_combo.currentData())

    def is_busy(self) -> bool:
        return (self.job is not None and self.job.is_running()) or any(t.is_running() for t in self.tasks)

    def _run_task(self, fn, on_done, name: str, on_fail=None, cancel=None) -> Task:
        # No Qt parent: a task may outlive the window (closing mid-task must not delete the
        # QObject a worker thread is about to emit from); self.tasks keeps it alive.
        task = Task(fn, name=name, cancel=cancel)
        self.tasks = [t for t in self.tasks if t.is_running()] + [task]

        def failed(msg: str) -> None:
            self.last_error = msg
            self.status(f"{name} failed: {msg}")
            if on_fail is not None:
                on_fail(msg)

        task.done.connect(on_done)
        task.failed.connect(failed)
        return task.start()

    def _set_idle_view(self) -> None:
        self.progress.setVisible(False)
        self.banner.setVisible(False)
        self._set_session_actions()

    def _set_session_actions(self) -> None:
        has = self.session is not None
        for a in (self.save_session_action, self.export_json_action, self.export_csv_action, self.export_png_action,
                  self.export_report_action):
            a.setEnabled(has)

    def preload_models(self) -> Task:
        """Load the chosen model and the extractors in the background (see ModelCache.preload)."""
        model, device = self.model_name, self.device_name
        self.status(f"Loading {model} and the feature extractors in the background…")

        def done(_):
            if not self.is_busy():
                self.status("Ready: open a recording (File ▸ Open, drag and drop) or switch to Live")

        stop = threading.Event()
        self.preload_task = self._run_task(lambda: self.cache.preload(model, device, cancel=stop), done,
                                           "preloading models", cancel=stop.set)
        return self.preload_task

    # ======================================================================== opening files
    def _open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a recording", self._last_dir(), MEDIA_FILTER + f";;Sessions (*{SESSION_SUFFIX})")
        if path:
            self.open_path(path)

    def _open_session_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a session", self._last_dir(), f"Sessions (*{SESSION_SUFFIX})")
        if path:
            self.open_path(path)

    def _last_dir(self) -> str:
        recent = self.recent_files()
        return str(Path(recent[0]).parent) if recent else str(Path.home())

    def open_paths(self, paths: list[str]) -> None:
        """`msa-studio A B C`: A opens; B and C wait at the top of File ▸ Open recent."""
        for extra in reversed(paths[1:]):
            self._remember(extra)
        if paths:
            self.open_path(paths[0])

    def open_path(self, path: str) -> None:
        path = str(path)
        if not Path(path).exists():
            self._error(f"File not found: {path}")
            return
        self._remember(path)
        self.tabs.setCurrentIndex(0)
        if path.endswith(SESSION_SUFFIX):
            self.open_session(path)
        else:
            self.analyze(path)

    def analyze(self, path: str) -> None:
        if self.job is not None and self.job.is_running():
            self.cancel_analysis()
        self._pending_session = None
        self._clear_session()
        self.player.load(path)
        self.progress.reset(f"Analysing {Path(path).name}…")
        self.progress.setVisible(True)
        self._transcript = choose_transcript(path, use_sidecar=self.sidecar_action.isChecked())
        job = AnalysisJob(path, self.cache, model=self.model_name, device=self.device_name,
                          transcript=self._transcript.transcript)
        job.progress.connect(self._on_job_progress)
        job.finished.connect(self._on_job_finished)
        job.failed.connect(self._on_job_failed)
        job.cancelled.connect(self._on_job_cancelled)
        self.job = job
        self.jobs = [j for j in self.jobs if j.is_running()] + [job]
        self.status(f"Analysing {path} with {self.model_name} on {self.device_name}…")
        self.busyChanged.emit(True)
        job.start()

    def cancel_analysis(self) -> None:
        """Cancel: the UI is idle immediately; the worker stops at its next check (< 1 s)."""
        job = self.job
        if job is None:
            if self._pending_session is not None:  # cancelled while re-scoring it for a new model
                self._pending_session = None
                self._rescore_generation += 1
                self.progress.setVisible(False)
                self.status("Analysis cancelled")
                self.busyChanged.emit(False)
            return
        job.cancel()
        self.job = None
        self.progress.setVisible(False)
        self.status("Analysis cancelled")
        self.busyChanged.emit(False)
        self._last_cancelled = job

    def _on_job_progress(self, stage: str, fraction: float, message: str) -> None:
        if self.sender() is self.job:
            self.progress.update_stage(stage, fraction, message)

    def _on_job_finished(self, session: AnalysisSession) -> None:
        if self.sender() is not self.job:
            return  # a cancelled or superseded job finishing late
        self.job = None
        if not self._scored_as_chosen(session):
            # The chooser changed during the analysis: show the result only once it is re-scored.
            self._pending_session = session
            self.progress.update_stage("model", 1.0, f"re-scoring with {self.model_name}")
            self._rescore(session)
            return
        self._show_analysed(session)

    def _show_analysed(self, session: AnalysisSession) -> None:
        self._pending_session = None
        self.progress.setVisible(False)
        self.busyChanged.emit(False)
        self.set_session(session)
        self.status(f"Analysed {Path(session.source_path).name}: {len(session.segments)} segments, "
                    f"{self._transcript.describe()}")
        self.compute_missing_curve()

    def _on_job_failed(self, message: str) -> None:
        if self.sender() is not self.job:
            return
        self.job = None
        self.progress.setVisible(False)
        self.busyChanged.emit(False)
        if self._transcript.origin == "sidecar":
            message += f"\n(It used {self._transcript.describe()}; File ▸ Use transcript files… turns that off.)"
        self._error(message)

    def _on_job_cancelled(self) -> None:
        if self.sender() is self.job:
            self.job = None
            self.progress.setVisible(False)
            self.busyChanged.emit(False)

    def open_session(self, path: str) -> None:
        try:
            session = AnalysisSession.load(path)
        except Exception as exc:  # MSAError for bad files; anything else is shown too, not raised
            self._error(str(exc))
            return
        self._clear_session()
        media = session.source_path
        if media and Path(media).exists():
            self.player.load(media)
        else:
            self.player.unload()
            self.player.canvas.placeholder = "Recording not found (results and features are loaded)"
        self._show_chooser_of(session)  # the model the saved result came from, if this build has it
        self.set_session(session)
        self.status(f"Opened session {Path(path).name} (no re-extraction)")
        # Load the model in the background so masks, edits and the missing-rate curve work.
        name, device = self.model_name, self.device_name

        def load():
            engine = self.cache.engine(name, device)
            pipeline = self.cache.pipeline(session.features.spec, engine.device)
            return engine, pipeline

        def done(pair):
            engine, pipeline = pair
            if self.session is not session or session.engine is not None:
                return  # another file is shown, or a model switch meanwhile set the engine
            session.pipeline = session.pipeline or pipeline
            if engine.model_name == session.model_name:
                session.engine = engine
                self.compute_missing_curve()
            else:  # a model this build does not have: score with the chosen one instead
                self._rescore(session)

        self._run_task(load, done, "loading model")

    def _model_names(self) -> list[str]:
        return [self.model_combo.itemData(i) for i in range(self.model_combo.count())]

    # =========================================================================== session
    def _clear_session(self) -> None:
        self.session = None
        self.transcript.set_segments([])
        self.timeline.clear_data()
        self.contributions.clear()
        self.robustness.clear()
        self.banner.setVisible(False)
        self._set_session_actions()
        self.sessionChanged.emit(None)

    def set_session(self, session: AnalysisSession) -> None:
        self.session = session
        self.refresh_panels()
        self._set_session_actions()
        self.sessionChanged.emit(session)

    def refresh_panels(self) -> None:
        s = self.session
        if s is None:
            return
        starts, ends = s.starts_ends()
        self.timeline.set_data(starts, ends, s.scores(ALL), confidence=s.confidences(),
                               x_range=(0.0, max(s.duration, float(ends.max()) if len(ends) else 1.0)))
        self.transcript.set_segments(s.segments)
        self.contributions.set_session(s)
        self.robustness.set_table(s.mask_table() if s.segments else {})
        if s.cached_missing_curve is not None:
            self.robustness.set_curve(s.cached_missing_curve)
        self._apply_keep()
        warnings = list(s.result.warnings)
        self.banner.setText("⚠ " + "\n⚠ ".join(warnings) if warnings else "")
        self.banner.setVisible(bool(warnings))
        self.on_position(self.player.position)

    # ============================================================================= sync
    def on_position(self, t: float) -> None:
        self.timeline.set_playhead(t)
        self.contributions.segments.set_cursor(t)
        if self.session is not None:
            self.transcript.set_current(self.session.segment_index_at(t))

    def seek(self, t: float) -> None:
        self.player.seek(t)
        self.on_position(t)

    def _landmarks_at(self, t: float):
        return self.session.landmarks_at(t) if self.session is not None else None

    # ============================================================================ masks
    def set_keep(self, keep: frozenset[str]) -> None:
        self.keep = frozenset(keep)
        self._apply_keep()
        self.live_panel.set_keep(self.keep)

    def _apply_keep(self) -> None:
        s = self.session
        if s is None:
            return
        key = mask_key(self.keep)
        full = s.scores(ALL)
        masked = s.scores(self.keep)
        self.timeline.set_masked(None if key == "TAV" else masked, label=f"masked ({key})")
        starts, ends = s.starts_ends()
        self.robustness.set_comparison(starts, ends, full, masked, self.keep, s.degradation(self.keep))

    def compute_missing_curve(self) -> None:
        s = self.session
        if s is None or s.engine is None or not s.segments:
            return
        self.robustness.set_curve_busy(True)

        engine = s.engine

        def done(curve):
            self.robustness.set_curve_busy(False)
            if self.session is s and s.engine is engine:  # not for a model switched away from
                self.robustness.set_curve(curve)

        self._run_task(lambda: s.missing_curve(engine=engine), done, "missing-rate curve",
                       on_fail=lambda msg: self.robustness.set_curve_busy(False, f"failed: {msg}"))

    # ======================================================================= model switch
    def _scored_as_chosen(self, s: AnalysisSession) -> bool:
        """Whether `s` holds scores of the model (and device) the toolbar shows."""
        from core.devices import resolve_device

        if s.model_name != self.model_name:
            return False
        return s.engine is None or s.engine.device == resolve_device(self.device_name)

    def switch_model(self) -> None:
        s = self.session or self._pending_session
        if s is None:
            if self.job is not None:
                self.status(f"The analysis will be scored with {self.model_name} when it finishes")
            return
        if self._scored_as_chosen(s) and s.engine is not None:
            self._rescore_generation += 1  # back to the shown model: drop a re-score in flight
            self.status(f"Scored with {self.model_name} on {self.device_name}")
            return
        self._rescore(s)

    def _rescore(self, s: AnalysisSession) -> None:
        """Score `s`'s cached features with the chosen model in the background (no re-extraction);
        the result is applied only if nothing was chosen since (the newest choice wins)."""
        from analysis.analyzer import Analyzer

        model, device = self.model_name, self.device_name
        self._rescore_generation += 1
        generation = self._rescore_generation
        self.status(f"Re-scoring cached features with {model} on {device}…")

        def work():
            engine = self.cache.engine(model, device)
            pipeline = s.pipeline or self.cache.pipeline(s.features.spec, engine.device)
            return engine, pipeline, Analyzer(engine, cache=None).rescore(s.features)

        def done(out):
            if generation != self._rescore_generation:
                return  # another model was chosen meanwhile; its re-score is on its way
            engine, pipeline, result = out
            s.apply_rescore(result, engine)
            s.pipeline = pipeline
            if s is self._pending_session:
                self._show_analysed(s)
            elif s is self.session:
                self.refresh_panels()
                self.compute_missing_curve()
            self.status(f"Re-scored with {model} on {device} (no re-extraction)")

        def failed(msg: str) -> None:
            if generation != self._rescore_generation:
                return
            # Keep the result on screen and put the chooser back to the model that made it.
            self._show_chooser_of(s)
            self._error(f"Could not score with {model} on {device}: {msg}")
            if s is self._pending_session:
                self._show_analysed(s)

        self._run_task(work, done, "model switch", on_fail=failed)

    def _show_chooser_of(self, s: AnalysisSession) -> None:
        """Set the toolbar to the model (and device) that scored `s`, without re-scoring."""
        for combo, value in ((self.model_combo, s.model_name), (self.device_combo, s.engine.device if s.engine else None)):
            index = combo.findData(value)
            if index >= 0:
                combo.blockSignals(True)
                combo.setCurrentIndex(index)
                combo.blockSignals(False)

    # ====================================================================== text edits
    def edit_segment_text(self, index: int, text: str) -> None:
        s = self.session
        if s is None:
            return
        self.status(f"Re-running segment {index + 1} with the edited text…")

        def work():
            if s.pipeline is None:
                engine = s.engine or self.cache.engine(self.model_name, self.device_name)
                s.engine = engine
                s.pipeline = self.cache.pipeline(s.features.spec, engine.device)
            s.edit_segment_text(index, text)
            return s

        def done(sess):
            if self.session is sess:
                self.refresh_panels()
                self.status(f"Segment {index + 1} re-scored: {sess.segments[index].score:+.2f}")
                self.compute_missing_curve()

        self._run_task(work, done, "segment edit")

    # ============================================================================ export
    def _export_dialog(self, kind: str) -> None:
        if self.session is None:
            return
        stem = Path(self.session.source_path or "result").stem
        path, _ = QFileDialog.getSaveFileName(self, f"Export {kind.upper()}", f"{stem}.{kind}", f"{kind.upper()} (*.{kind})")
        if path:
            self.export(kind, path)

    def export(self, kind: str, path: str) -> Path:
        assert self.session is not None
        out = self.session.export_json(path) if kind == "json" else self.session.export_csv(path)
        self.status(f"Exported {out}")
        return out

    def _export_report_dialog(self) -> None:
        if self.session is None:
            return
        stem = Path(self.session.source_path or "report").stem
        path, _ = QFileDialog.getSaveFileName(self, "Export report", f"{stem}.html", "HTML report (*.html)")
        if path:
            self.export_report(path)

    def export_report(self, path: str) -> Task:
        """Write the HTML report on a worker thread (charts and the missing-rate curve take a moment)."""
        assert self.session is not None
        session = self.session
        self.status(f"Writing the report {path}…")
        device = self.device_name

        def work():
            return session.write_report(path, load_engine=lambda model: self.cache.engine(model, device))

        return self._run_task(work, lambda out: self.status(f"Exported report {out}"), "report", on_fail=self._error)

    def _save_session_dialog(self) -> None:
        if self.session is None:
            return
        stem = Path(self.session.source_path or "session").stem
        path, _ = QFileDialog.getSaveFileName(self, "Save session", f"{stem}{SESSION_SUFFIX}", f"Sessions (*{SESSION_SUFFIX})")
        if path:
            if not path.endswith(SESSION_SUFFIX):
                path += SESSION_SUFFIX
            self.save_session(path)

    def save_session(self, path: str) -> Path:
        assert self.session is not None
        out = self.session.save(path)
        self._remember(str(out))
        self.status(f"Saved session {out}")
        return out

    def _export_png_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for the PNG files", self._last_dir())
        if folder:
            paths = self.export_pngs(folder)
            self.status(f"Wrote {len(paths)} PNG files to {folder}")

    def plot_widgets(self) -> dict[str, QWidget]:
        return {
            "timeline": self.timeline,
            "contributions_segments": self.contributions.segments,
            "contributions_recording": self.contributions.recording,
            "robustness_masked_vs_full": self.robustness.compare,
            "robustness_mask_table": self.robustness.table,
            "robustness_missing_rate": self.robustness.curve_plot,
        }

    def export_pngs(self, folder: str) -> list[Path]:
        """One PNG per plot. The Robustness page is shown while grabbing so widgets have real sizes."""
        folder_p = Path(folder)
        folder_p.mkdir(parents=True, exist_ok=True)
        current = self.tabs.currentIndex()
        out = []
        for name, widget in self.plot_widgets().items():
            self.tabs.setCurrentIndex(1 if name.startswith("robustness") else 0)
            path = folder_p / f"{name}.png"
            widget.grab().save(str(path))
            out.append(path)
        self.tabs.setCurrentIndex(current)
        return out

    # ====================================================================== recent files
    def recent_files(self) -> list[str]:
        value = self.settings.value("recent_files", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def _remember(self, path: str) -> None:
        path = str(Path(path).resolve())
        items = [p for p in self.recent_files() if p != path]
        self.settings.setValue("recent_files", [path] + items[: MAX_RECENT - 1])
        self.settings.sync()
        self._refresh_recent_menu()

    def _refresh_recent_menu(self) -> None:
        self.recent_menu.clear()
        files = self.recent_files()
        for p in files:
            act = self.recent_menu.addAction(Path(p).name)
            act.setToolTip(p)
            act.setEnabled(os.path.exists(p))
            act.triggered.connect(lambda _=False, p=p: self.open_path(p))
        self.recent_menu.setEnabled(bool(files))

    # =================================================================== drag and drop
    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        for url in event.mimeData().urls():
            if url.isLocalFile():
                self.open_path(url.toLocalFile())
                event.acceptProposedAction()
                return

    # ============================================================================= live
    def start_live(self, config) -> None:
        config.model, config.device = self.model_name, self.device_name
        self.live_panel.clear_results()
        self.live_panel.set_running(False, starting=True)
        self.live_panel.status.setText("Loading models and opening devices…")
        self.live.start(config)

    def stop_live(self) -> None:
        t = time.monotonic()
        ok = self.live.stop(timeout=1.0)
        self.status(f"Live analysis stopped in {time.monotonic() - t:.2f} s" + ("" if ok else " (a thread is still finishing)"))

    def _on_live_started(self) -> None:
        self.live_panel.set_running(True)
        self.live_panel.status.setText("Live: waiting for the first window…")
        self.status("")  # an earlier failed start's message no longer applies
        self.live_panel.save_choices(self.settings)
        self.preview_timer.start()

    def _on_live_stopped(self) -> None:
        self.preview_timer.stop()
        self.live_panel.set_running(False)
        self.live_panel.status.setText("Stopped")

    def _on_live_failed(self, message: str) -> None:
        self.preview_timer.stop()
        self.live_panel.set_running(False)
        self.live_panel.status.setText(f"Could not start: {message}")
        self._error(f"Live mode: {message}")

    def _on_live_result(self, result) -> None:
        self.live_panel.add_result(result)
        lag = self.live.record_plot_lag(result)
        lags = np.array(self.live.plot_lags[-30:])
        self.lag_label.setText(f"live lag {lag:.2f} s (mean {lags.mean():.2f}, max {lags.max():.2f})")
        face = "face" if result.has_face else "no face"
        self.live_panel.status.setText(
            f"window {result.window_start:.1f}-{result.window_end:.1f} s  score {result.score:+.2f}  {face}  "
            f"level {result.level_db:.0f} dB  ASR {result.timings.get('asr', 0.0):.2f} s"
        )

    def _paint_preview(self) -> None:
        frame, landmarks = self.live.take_frame()
        if frame is not None:
            self.live_panel.preview.set_bgr(frame)
            self.live_panel.preview.set_landmarks(landmarks)
        errors = self.live.source_errors()
        if errors:
            self.status("; ".join(errors))

    # ============================================================================ misc
    def _error(self, message: str) -> None:
        self.last_error = message
        self.status(message)
        if os.environ.get("MSA_STUDIO_NO_DIALOGS"):
            return  # tests and scripted runs: no modal dialogs
        QMessageBox.warning(self, "MSA Studio", message)

    def _about(self) -> None:
        QMessageBox.about(self, "About MSA Studio",
                          "MSA Studio: multimodal (text, audio, face) sentiment analysis of recordings and live input.")

    def closeEvent(self, event) -> None:  # noqa: N802
        self.request_stop()
        super().closeEvent(event)

    def request_stop(self) -> None:
        """Ask every worker to stop; returns at once (live sources get up to 1 s)."""
        if self.job is not None:
            self.cancel_analysis()
        for job in self.jobs:
            job.cancel()
        for task in self.tasks:
            task.cancel()
        self._rescore_generation += 1  # a re-score finishing now is not shown any more
        self.live.stop(timeout=1.0)
        self.preview_timer.stop()
        self.player.release()

    def wait_for_workers(self, timeout: float) -> bool:
        """Wait until every worker thread has ended (a recording finishes muxing, a cancelled
        analysis unwinds, a preload finishes its current step); False if any is still running
        after `timeout` seconds. Call after request_stop() (closing the window calls it)."""
        deadline = time.monotonic() + timeout
        for thread in self._worker_threads():
            join_thread(thread, deadline)
        return not self.running_workers()

    def running_workers(self) -> list[str]:
        """Names of the worker threads still running."""
        return [t.name for t in self._worker_threads() if t.is_alive()]

    def _worker_threads(self) -> list[threading.Thread]:
        threads = [j.thread for j in self.jobs] + [t.thread for t in self.tasks] + self.live.threads()
        return [t for t in threads if t is not None]

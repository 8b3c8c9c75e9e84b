"""The main window, offscreen (pytest-qt): open a generated clip, analysis completes in a worker while
the event loop keeps running, every panel fills, seek sync both ways, toggles change predictions,
model switch / text edits re-score without re-extraction, cancel stops within 1 s, exports are valid."""
from __future__ import annotations

import json
import os
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MSA_STUDIO_NO_DIALOGS", "1")
os.environ.setdefault("QT_LOGGING_RULES", "qt.multimedia.*=false")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PySide6.QtCore import QMimeData, QPoint, QPointF, QSettings, Qt, QTimer, QUrl  # noqa: E402
from PySide6.QtGui import QDropEvent  # noqa: E402

from app.main_window import MainWindow  # noqa: E402
from analysis.session_model import ALL  # noqa: E402
from models.defaults import DEFAULT_MODEL  # noqa: E402
from tests.app_support import SCREENSHOT_DIR, assert_not_blank, shared_model_cache, two_sentence_clip  # noqa: E402
from tests.media_factory import cached_speech, requires_espeak, write_media  # noqa: E402

pytestmark = requires_espeak


def pump_until(qapp, predicate, timeout: float, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        qapp.processEvents()
        if predicate():
            return True
        time.sleep(step)
    qapp.processEvents()
    return bool(predicate())


def close_window(w: MainWindow) -> None:
    """Close as the app does: the window asks its workers to stop, then they are waited for, so no
    cancelled job or background task of one test runs on into the next."""
    w.close()
    assert w.wait_for_workers(120), f"still running: {w.running_workers()}"


def new_window(tmp_path_factory, preload: bool = False, ini=None) -> MainWindow:
    """A window with its own settings file (`ini`: reuse one, as a restarted app would)."""
    ini = ini or tmp_path_factory.mktemp("settings") / "msa.ini"
    w = MainWindow(settings=QSettings(str(ini), QSettings.Format.IniFormat), cache=shared_model_cache(),
                   device="cpu", preload=preload)
    w.resize(1360, 900)
    w.show()
    return w


@pytest.fixture(scope="module")
def loaded(qapp, tmp_path_factory):
    """A window that analysed the two-sentence clip through the real AnalysisJob."""
    w = new_window(tmp_path_factory, preload=True)
    clip = two_sentence_clip()
    # As a user would: the window loads the models in the background while they pick a file.
    assert pump_until(qapp, lambda: not w.preload_task.is_running(), 300), w.last_error
    # Event-loop heartbeat: the largest gap between 50 ms ticks while the worker runs.
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(50)
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start()
    w.open_path(str(clip))
    assert w.job is not None and w.progress.isVisible()
    ok = pump_until(qapp, lambda: w.session is not None or (w.job is None and w.last_error), 600)
    timer.stop()
    assert ok and w.session is not None, f"analysis did not complete: {w.last_error}"
    gaps = np.diff(ticks) if len(ticks) > 1 else np.array([0.0])
    w._test_max_ui_gap = float(gaps.max())
    # The missing-rate curve is computed in the background right after the analysis.
    pump_until(qapp, lambda: bool(w.robustness.curve), 120)
    yield w, clip
    close_window(w)


def test_analysis_completes_and_panels_fill(qapp, loaded):
    w, clip = loaded
    s = w.session
    n = len(s.segments)
    assert n >= 2
    assert not w.progress.isVisible()
    # Progress bars were driven per stage by the worker.
    for stage in ("decode", "asr", "text", "model"):
        assert w.progress.value(stage) > 0.0, stage
    assert w.transcript.rowCount() == n
    assert w.transcript.item(0, 1).text() == s.segments[0].text
    np.testing.assert_allclose(w.timeline.values, s.scores(ALL))
    assert w.contributions.segments.matrix.shape == (n, 3)
    assert set(w.contributions.recording.values) == {"text", "audio", "visual"}
    assert w.robustness.table.item(0, 0).text() == "TAV"
    assert w.robustness.table.item(7, 2).text() not in ("", "–")
    assert len(w.robustness.curve) == 10
    assert "UNTRAINED" in w.banner.text() or not s.untrained
    assert pump_until(qapp, lambda: w.player.frames_shown > 0, 10)  # the player shows a frame
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOT_DIR / "offscreen_recording_two_segments.png"
    w.grab().save(str(shot))
    assert_not_blank(shot)
    assert w.recent_files()[0].endswith(clip.name)
    assert any(a.text() == clip.name for a in w.recent_menu.actions())


def test_ui_stays_responsive_during_analysis(loaded):
    w, _clip = loaded
    # 50 ms ticks; a frozen UI would show gaps of seconds (the analysis itself takes >5 s).
    assert w._test_max_ui_gap < 1.0, f"event loop blocked for {w._test_max_ui_gap:.2f} s"


def test_click_on_timeline_seeks_player_and_highlights_transcript(qapp, loaded):
    w, _ = loaded
    s = w.session
    target = s.segments[1].start + 0.3
    w.timeline.seek_to(target)
    assert pump_until(qapp, lambda: abs(w.player.position - target) < 0.15, 5), w.player.position
    assert w.transcript.current == 1
    assert w.timeline.playhead_time == pytest.approx(target, abs=1e-6)


def test_real_mouse_click_on_plot_seeks(qapp, loaded, qtbot):
    w, _ = loaded
    target = w.session.segments[0].start + 1.0
    vb = w.timeline.plotItem.vb
    scene_pt = vb.mapViewToScene(QPointF(target, 0.0))
    view_pt = w.timeline.mapFromScene(scene_pt)
    qtbot.mouseClick(w.timeline.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(int(view_pt.x()), int(view_pt.y())))
    assert pump_until(qapp, lambda: abs(w.player.position - target) < 0.2, 5), w.player.position
    assert w.transcript.current == 0


def test_player_moves_cursor(qapp, loaded):
    w, _ = loaded
    w.seek(0.2)
    pump_until(qapp, lambda: abs(w.timeline.playhead_time - 0.2) < 0.05, 3)
    w.player.play()
    try:
        assert pump_until(qapp, lambda: w.timeline.playhead_time > 0.6, 10), w.timeline.playhead_time
    finally:
        w.player.pause()
    assert w.timeline.playhead_time == pytest.approx(w.player.position, abs=0.3)
    assert w.contributions.segments.cursor.value() == pytest.approx(w.timeline.playhead_time, abs=1e-6)


def test_transcript_click_seeks(qapp, loaded, qtbot):
    w, _ = loaded
    rect = w.transcript.visualItemRect(w.transcript.item(1, 0))
    qtbot.mouseClick(w.transcript.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    start = w.session.segments[1].start
    assert pump_until(qapp, lambda: abs(w.player.position - start) < 0.15, 5), w.player.position
    assert w.transcript.current == 1


def test_hover_shows_segment_text_and_numbers(qapp, loaded):
    w, _ = loaded
    seg = w.session.segments[1]
    scene_pt = w.timeline.plotItem.vb.mapViewToScene(QPointF((seg.start + seg.end) / 2, 0.0))
    w.timeline.scene().sigMouseMoved.emit(scene_pt)
    qapp.processEvents()
    assert w.timeline.hover_index == 1
    assert seg.text in w.timeline.hover_text
    assert f"{seg.score:+.2f}" in w.timeline.hover_text


def test_toggles_mask_modalities_and_rescore(qapp, loaded):
    w, _ = loaded
    s = w.session
    full = s.scores(ALL)
    try:
        w.toggles.buttons["text"].setChecked(False)
        qapp.processEvents()
        keep = frozenset({"audio", "visual"})
        assert w.keep == keep
        assert w.timeline.masked_values is not None
        np.testing.assert_allclose(w.timeline.masked_values, s.scores(keep))
        assert not np.allclose(w.timeline.masked_values, full)
        assert w.robustness.current_key == "_AV"
        assert "_AV" in w.robustness.header.text()
        _, ys = w.robustness.masked_curve.getData()
        np.testing.assert_allclose(ys[np.isfinite(ys)], np.repeat(s.scores(keep), 2))
        w.toggles.buttons["visual"].setChecked(False)
        qapp.processEvents()
        np.testing.assert_allclose(w.timeline.masked_values, s.scores(frozenset({"audio"})))
    finally:
        w.toggles.set_keep(ALL)
        qapp.processEvents()
    assert w.timeline.masked_values is None or not w.timeline._masked.isVisible()


def test_exports(qapp, loaded, tmp_path):
    w, _ = loaded
    data = json.loads(w.export("json", str(tmp_path / "r.json")).read_text())
    assert len(data["segments"]) == len(w.session.segments)
    lines = w.export("csv", str(tmp_path / "r.csv")).read_text().strip().splitlines()
    assert len(lines) == len(w.session.segments) + 1 and lines[0].startswith("segment,")
    pngs = w.export_pngs(str(tmp_path / "png"))
    assert {p.name for p in pngs} >= {"timeline.png", "contributions_segments.png", "robustness_missing_rate.png"}
    for p in pngs:
        assert_not_blank(p)


def test_session_file_reopens_without_extraction(qapp, loaded, tmp_path, tmp_path_factory, monkeypatch):
    w, _ = loaded
    path = w.save_session(str(tmp_path / "s.msasession"))
    import core.pipeline

    monkeypatch.setattr(core.pipeline.FeaturePipeline, "extract",
                        lambda *a, **k: (_ for _ in ()).throw(AssertionError("re-extracted")))
    w2 = new_window(tmp_path_factory)
    try:
        w2.open_path(str(path))
        assert w2.session is not None and w2.job is None
        np.testing.assert_allclose(w2.timeline.values, w.timeline.values)
        assert w2.transcript.rowCount() == w.transcript.rowCount()
        assert pump_until(qapp, lambda: bool(w2.robustness.curve), 120)  # engine loaded lazily
    finally:
        close_window(w2)


def test_model_switch_rescores_from_cache(qapp, loaded, monkeypatch):
    w, _ = loaded
    from models.registry import model_names

    target = next((m for m in ("tfn", "mult", "late-fusion") if m in model_names()), None)
    if target is None:
        pytest.skip("no second untrained-capable model registered")
    import core.pipeline

    monkeypatch.setattr(core.pipeline.FeaturePipeline, "extract",
                        lambda *a, **k: (_ for _ in ()).throw(AssertionError("re-extracted")))
    before = w.timeline.values.copy()
    w.model_combo.setCurrentIndex(w.model_combo.findData(target))
    try:
        assert pump_until(qapp, lambda: w.session.model_name == target and not w.is_busy(), 120), w.last_error
        assert not np.allclose(w.timeline.values, before)
        assert w.transcript.rowCount() == len(before)
    finally:
        w.model_combo.setCurrentIndex(w.model_combo.findData(DEFAULT_MODEL))
        pump_until(qapp, lambda: w.session.model_name == DEFAULT_MODEL and not w.is_busy(), 120)


def second_model() -> str:
    from models.registry import model_names

    target = next((m for m in ("tfn", "mult", "late-fusion") if m in model_names()), None)
    if target is None:
        pytest.skip("no second untrained-capable model registered")
    return target


def record_shown_models(w: MainWindow, monkeypatch) -> list[tuple[str, str]]:
    """(model of the result on screen, model in the chooser) at every panel refresh."""
    shown: list[tuple[str, str]] = []
    refresh = w.refresh_panels

    def recording_refresh() -> None:
        refresh()
        if w.session is not None:
            shown.append((w.session.model_name, w.model_name))

    monkeypatch.setattr(w, "refresh_panels", recording_refresh)
    return shown


def expected_scores(session, model: str) -> np.ndarray:
    from analysis.analyzer import Analyzer

    result = Analyzer(shared_model_cache().engine(model, "cpu"), cache=None).rescore(session.features)
    return np.array([seg.score for seg in result.segments])


def test_model_switch_during_analysis_shows_the_chosen_model(qapp, tmp_path_factory, monkeypatch):
    # The issue: the chooser said the new model while the old model's result was shown.
    target = second_model()
    w = new_window(tmp_path_factory)
    shown = record_shown_models(w, monkeypatch)
    try:
        w.open_path(str(two_sentence_clip()))
        job = w.job
        assert job is not None and job.model == DEFAULT_MODEL
        w.model_combo.setCurrentIndex(w.model_combo.findData(target))
        assert job.is_running()  # chosen during the analysis
        assert pump_until(qapp, lambda: w.session is not None and not w.is_busy(), 300), w.last_error
        assert w.model_name == target and w.session.model_name == target
        assert shown and all(on_screen == chosen for on_screen, chosen in shown), shown
        np.testing.assert_allclose(w.timeline.values, expected_scores(w.session, target), atol=1e-5)
    finally:
        close_window(w)


def test_quick_model_switches_show_the_last_choice(qapp, loaded, monkeypatch):
    w, _ = loaded
    target = second_model()
    shown = record_shown_models(w, monkeypatch)
    others = [m for m in (target, "mult", "late-fusion", target) if m in w._model_names()]
    try:
        for name in others:  # several choices before the first re-score can finish
            w.model_combo.setCurrentIndex(w.model_combo.findData(name))
        assert pump_until(qapp, lambda: not w.is_busy(), 120), w.last_error
        assert w.session.model_name == w.model_name == others[-1]
        assert all(on_screen == chosen for on_screen, chosen in shown), shown
        np.testing.assert_allclose(w.timeline.values, expected_scores(w.session, others[-1]), atol=1e-5)
    finally:
        w.model_combo.setCurrentIndex(w.model_combo.findData(DEFAULT_MODEL))
        pump_until(qapp, lambda: w.session.model_name == DEFAULT_MODEL and not w.is_busy(), 120)


def test_model_that_cannot_score_puts_the_chooser_back(qapp, loaded, monkeypatch):
    from core.errors import MSAError

    w, _ = loaded
    target = second_model()
    load_engine = w.cache.engine

    def engine(model, device="auto", checkpoint=None):
        if model == target:
            raise MSAError(f"checkpoint for {model} is unreadable")
        return load_engine(model, device, checkpoint)

    monkeypatch.setattr(w.cache, "engine", engine)
    before = w.timeline.values.copy()
    w.model_combo.setCurrentIndex(w.model_combo.findData(target))
    assert pump_until(qapp, lambda: not w.is_busy(), 60)
    assert w.model_name == w.session.model_name == DEFAULT_MODEL
    assert "unreadable" in w.last_error
    np.testing.assert_allclose(w.timeline.values, before)


def test_opened_session_sets_the_chooser_to_its_model(qapp, loaded, tmp_path, tmp_path_factory):
    w, _ = loaded
    target = second_model()
    w.model_combo.setCurrentIndex(w.model_combo.findData(target))
    try:
        assert pump_until(qapp, lambda: w.session.model_name == target and not w.is_busy(), 120), w.last_error
        path = w.save_session(str(tmp_path / "other_model.msasession"))
    finally:
        w.model_combo.setCurrentIndex(w.model_combo.findData(DEFAULT_MODEL))
        pump_until(qapp, lambda: w.session.model_name == DEFAULT_MODEL and not w.is_busy(), 120)
    w2 = new_window(tmp_path_factory)  # its chooser starts on the default model
    try:
        w2.open_path(str(path))
        assert w2.session.model_name == target and w2.model_name == target
        assert pump_until(qapp, lambda: w2.session.engine is not None and not w2.is_busy(), 120), w2.last_error
        assert w2.session.model_name == w2.model_name == target
    finally:
        close_window(w2)


def test_edit_transcript_reruns_segment(qapp, loaded):
    w, _ = loaded
    new_text = "I hate this, it is the worst thing ever"
    other = w.session.segments[1].score
    w.transcript.edit_text(0, new_text)
    assert pump_until(qapp, lambda: w.session.segments[0].text == new_text and not w.is_busy(), 60), w.last_error
    assert w.transcript.item(0, 1).text() == new_text
    assert w.session.segments[1].score == pytest.approx(other)
    assert w.timeline.values[0] == pytest.approx(w.session.segments[0].score)


def test_cancel_stops_within_one_second(qapp, tmp_path, tmp_path_factory):
    # A longer clip so the analysis is still running when we cancel.
    speech = np.array(cached_speech("This recording is long enough to cancel in the middle of the analysis.", 16000))
    wave = np.concatenate([speech, np.zeros(16000, np.float32)] * 4)
    clip = write_media(tmp_path / "long.mp4", duration=len(wave) / 16000, wave_data=wave, fps=15)
    w = new_window(tmp_path_factory)
    try:
        w.open_path(str(clip))
        job = w.job
        seen: list[str] = []
        job.progress.connect(lambda stage, f, m: seen.append(stage))
        assert pump_until(qapp, lambda: any(s not in ("load",) for s in seen), 120), seen
        w.progress.cancel_button.click()
        assert w.job is None and not w.progress.isVisible()  # the UI is idle at once
        assert pump_until(qapp, lambda: not job.is_running(), 5)
        assert job.ended_at is not None and job.cancel_requested_at is not None
        took = job.ended_at - job.cancel_requested_at
        assert took <= 1.0, f"worker stopped {took:.2f} s after cancel (stages seen: {sorted(set(seen))})"
        assert w.session is None
    finally:
        close_window(w)


def test_drop_a_file_starts_analysis(qapp, tmp_path_factory):
    w = new_window(tmp_path_factory)
    try:
        clip = two_sentence_clip()
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(clip))])
        ev = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.NoModifier)
        w.dropEvent(ev)
        assert w.job is not None and w.job.path == str(clip)
        w.cancel_analysis()
        assert pump_until(qapp, lambda: not w._last_cancelled.is_running(), 10)
    finally:
        close_window(w)


def test_missing_file_gives_message_not_crash(qapp, tmp_path_factory, tmp_path):
    w = new_window(tmp_path_factory)
    try:
        w.open_path(str(tmp_path / "nope.mp4"))
        assert "not found" in w.last_error
        bad = tmp_path / "bad.mp4"
        bad.write_text("this is not a video")
        w.open_path(str(bad))
        assert pump_until(qapp, lambda: w.job is None, 60)
        assert w.session is None and w.last_error
    finally:
        close_window(w)


ENTRY_SNIPPET = """
import sys
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
app = QApplication(['msa-studio'])
from app.main import main
from app.main_window import MainWindow

def inspect_and_quit():
    ws = [w for w in app.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
    print('WINDOWS', len(ws), 'TAB', ws[0].tabs.currentIndex(), 'CAMERA', ws[0].live_panel.camera_url.text())
    app.quit()

QTimer.singleShot(500, inspect_and_quit)
sys.exit(main(['--live', '--device', 'cpu', '--no-preload', '--camera', 'tcp://127.0.0.1:5999']))
"""


def test_gui_entry_point_starts_and_quits():
    """`msa-studio` without arguments calls app.main.main(). Run in a child process: quitting the
    application object would stop pytest-qt's event processing for every later test."""
    import subprocess
    import sys

    from tests.app_support import ROOT

    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run([sys.executable, "-c", ENTRY_SNIPPET], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "WINDOWS 1 TAB 2 CAMERA tcp://127.0.0.1:5999" in proc.stdout, proc.stdout + proc.stderr[-2000:]


def test_stop_while_live_mode_is_starting_leaves_nothing_running(qapp, tmp_path_factory):
    # Closing the window while live mode loads its models must not let it start afterwards.
    from app.live_controller import LiveConfig

    clip = str(two_sentence_clip())
    w = new_window(tmp_path_factory)
    stopped: list[bool] = []
    w.live.stopped.connect(lambda: stopped.append(True))
    try:
        w.start_live(LiveConfig(camera=clip, mic=None, mic_backend="file", audio_file=clip))
        assert w.live._starting and not w.live_panel.start_button.isEnabled()  # "Starting…"
        w.live.stop(timeout=1.0)
        assert w.live.wait_finished(120)
        assert pump_until(qapp, lambda: not w.live._starting, 120)
        assert not w.live.running and w.live.analyzer is None and w.live.camera is None
        assert pump_until(qapp, lambda: bool(stopped), 5)  # the Live tab goes back to idle
        assert w.live_panel.start_button.isEnabled() and w.live_panel.start_button.text().startswith("Start live")
    finally:
        close_window(w)


def test_live_tab_without_devices_explains_and_rejects_dead_camera(qapp, tmp_path_factory):
    from PySide6.QtMultimedia import QMediaDevices

    from tests.app_support import free_port

    w = new_window(tmp_path_factory)
    try:
        panel = w.live_panel
        if not QMediaDevices.videoInputs():
            assert "No camera" in panel.device_message.text()
            assert "stream URL" in panel.device_message.text()
        # Nothing listens on this port: start must fail with a message, not hang or crash.
        panel.select_camera_url(f"tcp://127.0.0.1:{free_port()}")
        panel.mic_combo.setCurrentIndex(panel.mic_combo.findData(("__none__", "")))
        panel.start_button.click()
        assert pump_until(qapp, lambda: "Could not start" in panel.status.text(), 120), panel.status.text()
        assert "camera" in w.last_error.lower()
        assert not w.live.running and panel.start_button.text().startswith("Start")
    finally:
        close_window(w)


@pytest.fixture()
def no_audio_devices(monkeypatch):
    """The machine of issue 12: PortAudio without any input device and no PulseAudio server (this
    build machine is one; forced here so the test means the same on a machine with a microphone)."""
    import core.live_sources as sources

    monkeypatch.setattr(sources, "pulseaudio_available", lambda: False)
    monkeypatch.setattr(sources, "portaudio_inputs", lambda: [])


def live_clip() -> str:
    """A talking head with speech: a GRID clip when the data is there."""
    from tests.media_factory import grid_clips

    clips = grid_clips()
    return str(clips[0] if clips else two_sentence_clip())


def start_and_wait(qapp, w: MainWindow) -> bool:
    """Press Start; True when live mode runs, False when the start failed."""
    w.live_panel.start_button.click()
    assert pump_until(qapp, lambda: w.live.running or "Could not" in w.live_panel.status.text(), 120), \
        w.live_panel.status.text()
    return w.live.running


def test_live_on_a_video_file_starts_with_the_default_choices(qapp, tmp_path_factory, no_audio_devices):
    from app.widgets.live_panel import MIC_FILE
    from tests.app_support import free_port

    clip = live_clip()
    w = new_window(tmp_path_factory)
    panel = w.live_panel
    try:
        assert panel.microphones_found == 0
        assert "microphone" in panel.device_message.text()
        # A first try that fails leaves its message in the status bar (a stream nobody serves).
        panel.select_camera_url(f"tcp://127.0.0.1:{free_port()}")
        assert not start_and_wait(qapp, w)
        assert "camera" in w.status_label.text().lower()
        # The user picks a video file as the camera and changes nothing else.
        panel.select_camera_url(clip)
        assert panel.mic_combo.currentData() == (MIC_FILE, "file")  # its own audio, chosen by default
        assert start_and_wait(qapp, w), panel.status.text()
        assert w.status_label.text() == "", "the failed start's message is still in the status bar"
        # The file's sound reaches the analysis, not only its picture.
        assert pump_until(qapp, lambda: any(r.level_db > -50 for r in panel.results), 90), \
            [round(r.level_db) for r in panel.results]
        assert w.live.camera is not None and w.live.camera.samples > 16000
        assert "no audio" not in w.status_label.text()
    finally:
        if w.live.running:
            panel.start_button.click()
        close_window(w)


def test_live_remembers_the_choices_of_the_last_start_that_worked(qapp, tmp_path_factory, no_audio_devices):
    from app.widgets.live_panel import CAMERA_URL, MIC_NONE
    from tests.app_support import free_port

    clip = live_clip()
    ini = tmp_path_factory.mktemp("settings") / "msa.ini"
    w = new_window(tmp_path_factory, ini=ini)
    panel = w.live_panel
    try:
        panel.select_camera_url(clip)
        panel.mic_combo.setCurrentIndex(panel.mic_combo.findText("No microphone"))
        panel.window_spin.setValue(3.0)
        panel.hop_spin.setValue(0.5)
        assert start_and_wait(qapp, w), panel.status.text()
        panel.start_button.click()  # Stop
        # Choices of a start that fails are not remembered.
        panel.select_camera_url(f"tcp://127.0.0.1:{free_port()}")
        panel.window_spin.setValue(6.0)
        assert not start_and_wait(qapp, w)
    finally:
        if w.live.running:
            panel.start_button.click()
        close_window(w)
    again = new_window(tmp_path_factory, ini=ini)
    try:
        restored = again.live_panel
        assert restored.camera_combo.currentData() == CAMERA_URL and restored.camera_url.text() == clip
        assert restored.mic_combo.currentData() == (MIC_NONE, "")
        assert (restored.window_spin.value(), restored.hop_spin.value()) == (3.0, 0.5)
        config = restored.current_config()
        assert (config.camera, config.mic, config.window, config.hop) == (clip, None, 3.0, 0.5)
    finally:
        close_window(again)


def test_live_on_a_video_file_without_sound_runs_on_the_picture_and_says_so(qapp, tmp_path_factory, tmp_path,
                                                                             no_audio_devices):
    from tests.media_factory import make_video

    silent = str(make_video(tmp_path / "silent.mp4", duration=2.0, audio=False))
    w = new_window(tmp_path_factory)
    panel = w.live_panel
    try:
        panel.select_camera_url(silent)  # the default microphone: the file's own audio, which it lacks
        assert start_and_wait(qapp, w), panel.status.text()
        assert pump_until(qapp, lambda: "no audio track" in w.status_label.text(), 10), w.status_label.text()
        assert pump_until(qapp, lambda: w.live.camera is not None and w.live.camera.frames > 10, 10)
    finally:
        if w.live.running:
            panel.start_button.click()
        close_window(w)

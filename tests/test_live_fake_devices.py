"""Live mode on fake devices started and stopped by the fixtures:
camera = ffmpeg streaming a GRID clip (a real face) to a local TCP port, read by OpenCV;
microphone = PulseAudio module-pipe-source fed with espeak-ng speech in real time, read with parec.

First the core (sources + LiveAnalyzer), then the whole window offscreen (pytest-qt): choose the
devices in the Live tab, start, watch the timeline scroll, read the lag in the status bar, record
to a file, stop within 1 s. A screenshot of the live page goes to artifacts/screenshots/."""
from __future__ import annotations

import os
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MSA_STUDIO_NO_DIALOGS", "1")
os.environ.setdefault("QT_LOGGING_RULES", "qt.multimedia.*=false")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from analysis.live import LiveAnalyzer, PipelineLiveComponents  # noqa: E402
from core.live_sources import CameraSource, MicSource  # noqa: E402
from tests.app_support import (  # noqa: E402
    SCREENSHOT_DIR,
    assert_not_blank,
    shared_model_cache,
    start_fake_camera,
    start_fake_mic,
    stop_process,
)
from tests.media_factory import requires_espeak  # noqa: E402

pytestmark = requires_espeak
# The 1.5 s product target is measured by benchmarks/pipeline.py (timed targets do not belong in
# tests on a shared CI machine); here a lag above 10 s means the live loop is broken, not slow.
MAX_LAG_S = float(os.environ.get("MSA_LIVE_MAX_LAG", "10"))  # steady state; see test_live_core


@pytest.fixture(scope="module")
def fake_mic(tmp_path_factory):
    mic = start_fake_mic(tmp_path_factory.mktemp("pulse"))
    mic.start_feeding()
    yield mic
    mic.stop()


@pytest.fixture()
def fake_camera(tmp_path):
    cam = start_fake_camera(tmp_path)
    yield cam
    stop_process(cam.proc)


@pytest.fixture()
def pulse_env(fake_mic, monkeypatch):
    # parec (and any PulseAudio client we start) talks to the private fake-mic server.
    monkeypatch.setenv("PULSE_SERVER", fake_mic.server)
    return fake_mic


def test_fake_devices_feed_the_live_analyzer(fake_camera, pulse_env):
    cache = shared_model_cache()
    engine = cache.engine("lnln", "cpu")
    comps = PipelineLiveComponents(cache.pipeline(engine.spec, engine.device))
    comps.warm_up()
    results = []
    analyzer = LiveAnalyzer(engine, comps, window=4.0, hop=1.0, on_result=results.append)
    analyzer.warm_up()
    cam = CameraSource(fake_camera.url, analyzer.push_frame)
    mic = MicSource(analyzer.push_audio, device=pulse_env.source, backend="parec")
    analyzer.start()
    cam.start()
    mic.start()
    t_start = time.monotonic()
    try:
        deadline = t_start + 40
        while time.monotonic() < deadline and (len(results) < 8 or not any(r.text for r in results)):
            time.sleep(0.1)
            assert cam.error is None and mic.error is None, (cam.error, mic.error)
    finally:
        elapsed = time.monotonic() - t_start
        t = time.monotonic()
        ok = analyzer.stop(1.0) & cam.stop(1.0) & mic.stop(1.0)
        stop_s = time.monotonic() - t
        comps.close()
    assert ok and stop_s <= 1.0, f"stopping took {stop_s:.2f} s"
    assert cam.frames > 10 * elapsed, f"camera delivered {cam.frames} frames in {elapsed:.1f} s"
    assert mic.samples / 16000 > 0.6 * elapsed, f"microphone delivered {mic.samples / 16000:.1f} s in {elapsed:.1f} s"
    assert len(results) >= 6
    joined = " ".join(r.text.lower() for r in results)
    assert any(w in joined for w in ("love", "happy", "terrible", "hate", "awful")), joined
    if fake_camera.has_face:
        assert any(r.has_face for r in results)
    lags = np.array([r.lag_seconds for r in results])[1:]  # steady state: after the first hop
    assert np.percentile(lags, 95) <= MAX_LAG_S, f"lag p95 {np.percentile(lags, 95):.2f} s: {lags.round(2)}"


@pytest.mark.parametrize("with_sound", [True, False], ids=["stream-with-sound", "stream-without-sound"])
def test_one_stream_gives_the_camera_its_own_audio(tmp_path, with_sound):
    # ffmpeg's tcp listener serves a single client: picture and sound must come through one connection.
    from core.live_sources import CameraAudioSource
    from tests.app_support import two_sentence_clip
    from tests.media_factory import grid_clips

    clips = grid_clips()
    cam = start_fake_camera(tmp_path, clip=clips[0] if clips else two_sentence_clip(), audio=with_sound)
    frames, sound = [], []
    src = CameraAudioSource(cam.url, lambda f, t: frames.append(f.shape), lambda a, t: sound.append(len(a)))
    try:
        src.start()
        assert src.opened.wait(15), src.error
        t0 = time.monotonic()
        time.sleep(3.0)
        elapsed = time.monotonic() - t0
        t = time.monotonic()
        assert src.stop(1.0)
        stop_s = time.monotonic() - t
    finally:
        src.stop(1.0)
        stop_process(cam.proc)
    assert src.error is None and stop_s <= 1.0
    assert src.has_audio is with_sound
    assert len(frames) > 10 * elapsed and len(frames[0]) == 3
    seconds_of_sound = sum(sound) / 16000
    if with_sound:
        assert seconds_of_sound > 0.6 * elapsed, f"{seconds_of_sound:.2f} s of sound in {elapsed:.1f} s"
    else:
        assert seconds_of_sound == 0


def pump_wait(qtbot, predicate, timeout_s: float) -> bool:
    try:
        qtbot.waitUntil(predicate, timeout=int(timeout_s * 1000))
        return True
    except Exception:  # pytest-qt's TimeoutError: report the state instead
        return bool(predicate())


def test_live_tab_end_to_end(qapp, qtbot, fake_camera, pulse_env, tmp_path, tmp_path_factory):
    from PySide6.QtCore import QSettings

    from app.main_window import MainWindow
    from core.media import probe

    ini = tmp_path_factory.mktemp("settings") / "msa.ini"
    w = MainWindow(settings=QSettings(str(ini), QSettings.Format.IniFormat), cache=shared_model_cache(),
                   device="cpu", preload=False)
    qtbot.addWidget(w)
    w.resize(1360, 900)
    w.show()
    w.tabs.setCurrentIndex(2)
    panel = w.live_panel
    panel.refresh_devices()
    panel.select_camera_url(fake_camera.url)
    panel.select_mic(pulse_env.source, "parec")
    panel.record_box.setChecked(True)
    record_to = tmp_path / "live.mkv"
    panel.record_path.setText(str(record_to))
    panel.start_button.click()
    try:
        qtbot.waitUntil(lambda: w.live.running or "Could not" in panel.status.text(), timeout=120_000)
        assert w.live.running, panel.status.text()
        ok = pump_wait(qtbot, lambda: len(panel.results) >= 6 and any(r.text for r in panel.results), 60)
        analyzer = w.live.analyzer
        assert ok, (f"results={len(panel.results)} texts={[r.text for r in panel.results]} "
                    f"status={panel.status.text()!r} errors={w.live.source_errors()} "
                    f"analyzer_error={analyzer.last_error if analyzer else None} "
                    f"audio_total={analyzer.audio.total if analyzer else None} "
                    f"frames={analyzer.frames_seen if analyzer else None}")
        # Steady-state lag, measured when each score was plotted; taken before the test itself
        # blocks the GUI thread (toggling, grabbing a screenshot).
        plotted = np.array(w.live.plot_lags)[1:]
        # The same toggles as file mode: masking text overlays the masked live prediction.
        w.toggles.buttons["text"].setChecked(False)
        qtbot.waitUntil(lambda: panel.timeline.masked_values is not None, timeout=5_000)
        qtbot.wait(1500)  # one more hop, so the screenshot shows the overlay and a scrolled axis
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        shot = SCREENSHOT_DIR / "offscreen_live_tab.png"
        w.grab().save(str(shot))
    finally:
        w.toggles.set_keep(frozenset({"text", "audio", "visual"}))
        t = time.monotonic()
        panel.start_button.click()  # "Stop"
        stop_s = time.monotonic() - t
    assert stop_s <= 1.0, f"stop took {stop_s:.2f} s"
    assert not w.live.running
    assert_not_blank(shot)
    rs = list(panel.results)
    np.testing.assert_allclose(panel.timeline.values[-len(rs):], [r.score for r in rs])
    assert panel.contrib.matrix.shape == (len(rs), 3)
    assert panel.timeline.playhead_time == pytest.approx(rs[-1].window_end)
    assert "live lag" in w.lag_label.text()
    assert np.percentile(plotted, 95) <= MAX_LAG_S, f"speech-to-plot lag {plotted.round(2)}"
    assert panel.preview.image is not None  # camera preview was painted
    assert panel.log.count() >= 6
    assert w.live.wait_finished(30)
    recorded = w.live.recorded_files
    assert recorded and recorded[0].exists()
    info = probe(str(recorded[0]))
    assert info.duration > 3.0 and (info.has_video or info.has_audio)
    w.close()
    assert w.wait_for_workers(60), w.running_workers()

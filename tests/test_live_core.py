"""analysis.live without devices: ring buffers, the analyzer's schedule, and the real pipeline on a
real-time audio stream + a video file played as a camera, with the live lag measured.

The lag benchmark writes artifacts/live_lag.json (per-hop lag and stage timings)."""
from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

from core.errors import MSAError
from analysis.live import AudioRing, LiveAnalyzer, PipelineLiveComponents, VisualRing
from core.live_sources import ArrayAudioSource, CameraSource, parse_camera_spec
from tests.app_support import ROOT, face_clip, shared_model_cache, wait_for
from tests.media_factory import cached_speech, requires_espeak

# Lag is judged on the steady state: the first hop after start also pays one-off costs (first real
# face for MediaPipe, first long decode) and is reported separately. The 1.5 s product target is measured by benchmarks/pipeline.py (timed targets do not belong in
# tests on a shared CI machine); here a lag above 10 s means the live loop is broken, not slow.
MAX_LAG_S = float(os.environ.get("MSA_LIVE_MAX_LAG", "10"))


def test_audio_ring_keeps_the_newest_samples_across_wraparound():
    ring = AudioRing(seconds=1.0, sample_rate=10)  # capacity 10 samples
    ring.write(np.arange(4, dtype=np.float32), t_end=1.0)
    out, t = ring.latest(1.0)
    np.testing.assert_array_equal(out, [0, 0, 0, 0, 0, 0, 0, 1, 2, 3])  # zero-padded at the front
    assert t == 1.0
    ring.write(np.arange(4, 13, dtype=np.float32), t_end=2.0)  # wraps around
    out, t = ring.latest(0.5)
    np.testing.assert_array_equal(out, [8, 9, 10, 11, 12])
    out, _ = ring.latest(5.0)  # more than the capacity: the whole ring, oldest first
    np.testing.assert_array_equal(out, np.arange(3, 13))
    ring.write(np.arange(100, 125, dtype=np.float32), t_end=3.0)  # a block larger than the ring
    np.testing.assert_array_equal(ring.latest(1.0)[0], np.arange(115, 125))
    assert ring.total == 38 and ring.last_time == 3.0


def test_visual_ring_is_bounded_and_sliced_by_time():
    ring = VisualRing(seconds=2.0, rate_hz=10.0)
    for i in range(100):
        ring.add(i * 0.1, np.full(3, i, np.float32), face=i % 2 == 0)
    assert len(ring) <= 2.0 * 10 + 4  # bounded memory
    times, rows, faces = ring.between(9.0, 9.45)
    np.testing.assert_allclose(times, [9.0, 9.1, 9.2, 9.3, 9.4])
    assert [int(r[0]) for r in rows] == [90, 91, 92, 93, 94]
    assert faces.tolist() == [True, False, True, False, True]


def test_bad_window_settings_are_user_errors():
    with pytest.raises(MSAError, match="hop"):
        LiveAnalyzer(engine=None, components=_Rate10(), window=1.0, hop=2.0)
    with pytest.raises(MSAError):
        LiveAnalyzer(engine=None, components=_Rate10(), window=0.0, hop=1.0)


def test_camera_specs():
    assert parse_camera_spec("0") == 0
    assert parse_camera_spec(2) == 2
    assert parse_camera_spec("tcp://127.0.0.1:5000") == "tcp://127.0.0.1:5000"
    with pytest.raises(MSAError):
        parse_camera_spec("  ")


class _Rate10:
    visual_rate_hz = 10.0


# ----------------------------------------------------------------------- real pipeline


@pytest.fixture(scope="module")
def live_parts():
    cache = shared_model_cache()
    engine = cache.engine("lnln", "cpu")
    components = PipelineLiveComponents(cache.pipeline(engine.spec, engine.device))
    components.warm_up()
    yield engine, components
    components.close()  # release the MediaPipe landmarker before interpreter shutdown


def test_short_context_asr_transcribes_a_window(live_parts):
    _engine, comps = live_parts
    wave = np.zeros(4 * 16000, np.float32)
    speech = np.array(cached_speech("I really love this wonderful movie.", 16000, pad=0.2))[: len(wave)]
    wave[: len(speech)] = speech
    t = time.monotonic()
    text = comps.transcribe(wave).lower()
    took = time.monotonic() - t
    context_states = comps.pipeline.asr.encode(wave).encoder_output.shape[1]
    assert context_states <= 50 * 12, f"the encoder ran a {context_states / 50:.0f} s context for a 4 s window"
    assert "love" in text and "movie" in text, text
    assert took < 2.0, f"ASR on a 4 s window took {took:.2f} s"
    assert comps.transcribe(np.zeros(4 * 16000, np.float32)) == ""


@requires_espeak
def test_live_stream_scores_each_hop_within_the_lag_budget(live_parts, tmp_path):
    engine, comps = live_parts
    results = []
    analyzer = LiveAnalyzer(engine, comps, window=4.0, hop=1.0, on_result=results.append)
    analyzer.warm_up()
    speech = [np.array(cached_speech(s, 16000, pad=0.4)) for s in
              ("I really love this wonderful movie, it makes me so happy.", "This is terrible, I hate it, what an awful day.")]
    mic = ArrayAudioSource(np.concatenate(speech), analyzer.push_audio, loop=True)
    clip, has_face = face_clip(tmp_path)
    cam = CameraSource(str(clip), analyzer.push_frame)  # a video file paced like a webcam
    analyzer.start()
    mic.start()
    cam.start()
    try:
        wait_for(lambda: len(results) >= 8, timeout=30, interval=0.1)
    finally:
        t = time.monotonic()
        stopped = analyzer.stop(timeout=1.0)
        stop_s = time.monotonic() - t
        mic.stop()
        cam.stop()
    assert stopped and stop_s <= 1.0, f"stop took {stop_s:.2f} s"
    assert len(results) >= 6, f"only {len(results)} windows analysed"
    lags = np.array([r.lag_seconds for r in results])
    steady = lags[1:]
    report = {
        "window_s": 4.0, "hop_s": 1.0, "count": int(lags.size), "first_hop_lag_s": float(lags[0]),
        "mean_lag_s": float(steady.mean()), "p95_lag_s": float(np.percentile(steady, 95)),
        "max_lag_s": float(steady.max()),
        "asr_s_mean": float(np.mean([r.timings.get("asr", 0.0) for r in results])),
        "model_s_mean": float(np.mean([r.timings.get("model", 0.0) for r in results])),
        "texts": [r.text for r in results],
    }
    (ROOT / "artifacts").mkdir(exist_ok=True)
    (ROOT / "artifacts" / "live_lag.json").write_text(json.dumps(report, indent=2))
    assert report["p95_lag_s"] <= MAX_LAG_S, report
    # Windows advance by one hop and the text follows the speech.
    ends = np.array([r.window_end for r in results])
    assert np.all(np.diff(ends) > 0.5)
    joined = " ".join(r.text.lower() for r in results)
    assert "love" in joined or "terrible" in joined, joined
    assert all(-3.0 <= r.score <= 3.0 for r in results)
    assert all(set(r.contributions) == {"text", "audio", "visual"} for r in results)
    assert all(len(r.mask_scores) == 8 for r in results)
    if has_face:
        assert any(r.has_face for r in results)
    # Shapley efficiency holds per window, so the live contribution bars add up to the score.
    r = results[-1]
    assert r.base_score + sum(r.contributions.values()) == pytest.approx(r.score, abs=1e-3)
    assert len(analyzer.results) <= analyzer.results.maxlen


def test_a_hop_starts_on_the_first_audio_block_after_its_tick(monkeypatch):
    """Blocks arrive every 80 ms: every hop's window ends with a block captured just before the hop
    started, not one up to a block old (ticks fall between blocks; the age would be 0-80 ms)."""
    from types import SimpleNamespace

    analyzer = LiveAnalyzer(engine=None, components=SimpleNamespace(visual_rate_hz=10.0), window=1.0, hop=0.3)
    ages = []
    monkeypatch.setattr(analyzer, "analyze_now", lambda: ages.append(time.monotonic() - analyzer.audio.last_time))
    mic = ArrayAudioSource(np.zeros(16000, np.float32), analyzer.push_audio, block_s=0.08, loop=True)
    mic.start()
    analyzer.start()
    try:
        wait_for(lambda: len(ages) >= 10, timeout=15)
    finally:
        analyzer.stop(timeout=1.0)
        mic.stop()
    assert len(ages) >= 10, ages
    assert np.median(ages) < 0.02 and max(ages) < 0.07, ages  # without the wait: median ~0.04


def test_silent_input_is_not_sent_to_asr(live_parts):
    engine, comps = live_parts
    analyzer = LiveAnalyzer(engine, comps, window=2.0, hop=1.0)
    analyzer.t0 = time.monotonic()
    analyzer.push_audio(np.zeros(2 * 16000, np.float32))
    result = analyzer.analyze_now()
    assert result is not None
    assert result.text == "" and not result.has_speech and "asr" not in result.timings
    assert not result.has_face  # no camera


def test_media_file_as_microphone_plays_in_real_time(tmp_path):
    from tests.media_factory import make_video

    clip = make_video(tmp_path / "a.mp4", duration=1.0, tone_hz=440.0)
    got = []
    src = ArrayAudioSource.from_media(str(clip), lambda x, t: got.append((len(x), t)))
    t0 = time.monotonic()
    src.start()
    assert src._thread is not None
    src._thread.join(5)
    took = time.monotonic() - t0
    total = sum(n for n, _ in got)
    assert abs(total - 16000) <= 1600  # one second of audio at 16 kHz
    assert took >= 0.8, f"a 1 s file was delivered in {took:.2f} s: not paced like a microphone"
    assert all(b[1] >= a[1] for a, b in zip(got, got[1:]))


# ------------------------------------------------------------- a camera with its own audio


def _file_with_picture_and_sound(tmp_path):
    """A GRID clip when the data is there (an MPEG program stream: seeking it back to 0 skips a
    group of pictures), else a generated one-second MPEG clip with a tone."""
    from tests.media_factory import grid_clips, make_video

    clips = grid_clips()
    return clips[0] if clips else make_video(tmp_path / "tone.mpg", duration=1.0, fps=25, tone_hz=440.0)


def test_camera_with_its_own_audio_loops_a_file_without_losing_frames(tmp_path):
    import itertools

    import av

    from core.live_sources import CameraAudioSource

    clip = _file_with_picture_and_sound(tmp_path)
    with av.open(str(clip)) as container:  # what one pass must deliver
        expected = sum(len(p.decode()) for p in container.demux(container.streams.video[0]))
    frames_per_pass: dict[int, int] = {}
    audio_per_pass: dict[int, int] = {}
    ticks = itertools.count(0.0, 1000.0)  # a clock far ahead at every call: no pacing waits

    def on_frame(frame, t):
        frames_per_pass[src.passes] = frames_per_pass.get(src.passes, 0) + 1

    def on_audio(samples, t):
        audio_per_pass[src.passes] = audio_per_pass.get(src.passes, 0) + len(samples)

    src = CameraAudioSource(str(clip), on_frame, on_audio, clock=lambda: next(ticks))
    src.start()
    try:
        assert src.opened.wait(10), src.error
        deadline = time.monotonic() + 30
        while src.passes < 3 and time.monotonic() < deadline and src.error is None:
            time.sleep(0.01)
    finally:
        assert src.stop(1.0)
    assert src.error is None and src.passes >= 3
    assert src.has_audio
    # Every pass delivers the whole file: the first, and the ones after looping back.
    assert [frames_per_pass[i] for i in range(3)] == [expected] * 3
    assert audio_per_pass[1] == pytest.approx(audio_per_pass[0], abs=2000)


def test_camera_with_its_own_audio_plays_a_file_in_real_time(tmp_path):
    from core.live_sources import CameraAudioSource
    from tests.media_factory import make_video

    clip = make_video(tmp_path / "tone.mp4", duration=1.0, fps=20, tone_hz=440.0)
    frame_times, audio = [], []
    src = CameraAudioSource(str(clip), lambda f, t: frame_times.append(t), lambda a, t: audio.append((len(a), t)))
    t0 = time.monotonic()
    src.start()
    time.sleep(2.5)
    t = time.monotonic()
    assert src.stop(1.0)
    stop_s, elapsed = time.monotonic() - t, t - t0
    assert src.error is None and stop_s < 1.0
    # Paced like a camera and a microphone: about one second of picture and sound per second.
    assert 0.7 * 20 * elapsed <= len(frame_times) <= 20 * elapsed + 2, (len(frame_times), elapsed)
    seconds_of_sound = sum(n for n, _ in audio) / 16000
    assert 0.7 * elapsed <= seconds_of_sound <= elapsed + 0.2, (seconds_of_sound, elapsed)
    assert all(b >= a for a, b in zip(frame_times, frame_times[1:]))


def test_camera_with_its_own_audio_explains_what_it_cannot_open(tmp_path):
    from core.live_sources import CameraAudioSource, LiveSourceError

    def ignore(*_args):
        return None

    with pytest.raises(LiveSourceError, match="device"):
        CameraAudioSource("0", ignore, ignore)
    with pytest.raises(LiveSourceError, match="not found"):
        CameraAudioSource(str(tmp_path / "gone.mp4"), ignore, ignore).start()
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 100)
    src = CameraAudioSource(str(broken), ignore, ignore)
    src.start()
    assert src._thread is not None
    src._thread.join(10)
    assert src.error and "cannot open camera" in src.error and not src.opened.is_set()


def test_portaudio_counts_only_devices_that_capture(monkeypatch):
    try:
        import sounddevice as sd
    except (ImportError, OSError):
        pytest.skip("sounddevice or the PortAudio library is not installed")
    from core.live_sources import portaudio_inputs

    monkeypatch.setattr(sd, "query_devices", lambda: [{"name": "Speakers", "max_input_channels": 0},
                                                      {"name": "USB mic", "max_input_channels": 1}])
    assert portaudio_inputs() == ["USB mic"]

    def no_device():
        raise sd.PortAudioError("Error querying device -1")

    monkeypatch.setattr(sd, "query_devices", no_device)
    assert portaudio_inputs() == []

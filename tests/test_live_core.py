"""core.live without devices: ring buffers, the analyzer's schedule, and the real pipeline on a
real-time audio stream + a video file played as a camera, with the live lag measured.

The lag benchmark writes artifacts/live_lag.json (per-hop lag and stage timings)."""
from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

from core.errors import MSAError
from core.live import AudioRing, LiveAnalyzer, PipelineLiveComponents, VisualRing
from core.live_sources import ArrayAudioSource, CameraSource, parse_camera_spec
from tests.app_support import ROOT, face_clip, shared_model_cache
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
        deadline = time.monotonic() + 30
        while len(results) < 8 and time.monotonic() < deadline:
            time.sleep(0.1)
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

"""Acoustic extractor ("librosa-v1") and the per-segment track slicer."""
from __future__ import annotations

import time

import numpy as np
import pytest

from core.errors import Cancelled, FeatureSpecMismatch, MediaError
from core.extractors import EXTRACTORS
from core.extractors.audio import LibrosaAudioExtractor
from core.extractors.slicing import slice_track
from core.feature_spec import v1_spec
from core.progress import RunContext

SR = 16000


def col(ext: LibrosaAudioExtractor, name: str) -> int:
    return ext.columns.index(name)


@pytest.fixture(scope="module")
def ext() -> LibrosaAudioExtractor:
    return LibrosaAudioExtractor.from_spec(v1_spec().audio)


def sine(freq: float, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    """Gliding 'vowel' with pauses plus a noise floor: voiced/unvoiced changes at many places."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f = 120 + 60 * np.sin(2 * np.pi * 0.3 * t)
    tone = 0.3 * np.sin(2 * np.pi * np.cumsum(f) / SR) * (np.sin(2 * np.pi * 0.7 * t) > 0)
    return (tone + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


# ------------------------------------------------------------------ contract
def test_dims_and_columns_match_the_v1_spec(ext: LibrosaAudioExtractor) -> None:
    spec = v1_spec().audio
    assert "librosa-v1" in EXTRACTORS
    assert EXTRACTORS.get("librosa-v1") is LibrosaAudioExtractor
    assert ext.dim == spec.dim == 69
    assert len(ext.columns) == len(set(ext.columns)) == 69
    assert ext.rate_hz == spec.rate_hz == 25.0
    tr = ext.extract(sine(200, 1.0))
    assert tr.features.shape == (1 + SR // 640, 69)
    assert tr.features.dtype == np.float32
    np.testing.assert_allclose(tr.times, np.arange(len(tr.times)) * 0.04)


def test_from_spec_rejects_wrong_dim() -> None:
    with pytest.raises(FeatureSpecMismatch, match="audio.dim"):
        LibrosaAudioExtractor.from_spec(v1_spec().with_modality("audio", dim=74).audio)


# ----------------------------------------------------------- signal sanity
def test_sine_is_voiced_with_correct_f0(ext: LibrosaAudioExtractor) -> None:
    f = ext.extract(sine(200, 2.0)).features[2:-2]  # edges see zero padding
    assert np.median(f[:, col(ext, "f0_hz")]) == pytest.approx(200, abs=3)
    assert f[:, col(ext, "voiced")].mean() > 0.95
    assert np.median(f[:, col(ext, "spectral_centroid_hz")]) == pytest.approx(200, abs=30)
    assert np.median(f[:, col(ext, "zcr")]) == pytest.approx(400 / SR, abs=0.005)
    # 0.5 amplitude sine: RMS = 0.354 -> -9 dB (a Hann-windowed frame reads a few dB lower)
    assert -16 < np.median(f[:, col(ext, "log_rms_db")]) < -8


def test_noise_is_unvoiced_flat_and_bright(ext: LibrosaAudioExtractor) -> None:
    noise = (0.1 * np.random.default_rng(0).standard_normal(2 * SR)).astype(np.float32)
    f_noise = ext.extract(noise).features
    f_sine = ext.extract(sine(200, 2.0)).features
    assert f_noise[:, col(ext, "voiced")].mean() < 0.05
    assert np.all(f_noise[f_noise[:, col(ext, "voiced")] == 0, col(ext, "f0_hz")] == 0)
    for name in ("spectral_flatness", "zcr", "spectral_centroid_hz", "spectral_bandwidth_hz"):
        assert np.median(f_noise[:, col(ext, name)]) > 5 * np.median(f_sine[:, col(ext, name)]) + 1e-3, name


def test_silence_is_finite_and_unvoiced(ext: LibrosaAudioExtractor) -> None:
    f = ext.extract(np.zeros(2 * SR, np.float32)).features
    assert np.isfinite(f).all()
    assert np.all(f[:, col(ext, "voiced")] == 0) and np.all(f[:, col(ext, "f0_hz")] == 0)
    # -100 dB floor up to float rounding (librosa 0.11 + numpy 2.4 give -100.00001)
    np.testing.assert_allclose(f[:, col(ext, "log_rms_db")], -100.0, atol=1e-3)


def test_tone_onset_shows_as_flux(ext: LibrosaAudioExtractor) -> None:
    y = np.concatenate([np.zeros(SR, np.float32), sine(300, 1.0)])
    flux = ext.extract(y).features[:, col(ext, "spectral_flux_db")]
    onset = SR // 640  # frame centred where the tone starts
    assert flux[onset - 1 : onset + 2].max() > 10
    assert np.abs(flux[: onset - 2]).max() == 0


@pytest.mark.parametrize("n", [0, 1, 300, 639, 640, 1023, 1024, 1700])
def test_short_inputs_never_crash(ext: LibrosaAudioExtractor, n: int) -> None:
    tr = ext.extract(np.random.default_rng(n).uniform(-0.1, 0.1, n))
    expected = 0 if n == 0 else 1 + n // 640
    assert tr.features.shape == (expected, 69)
    assert len(tr.times) == expected
    assert np.isfinite(tr.features).all()


def test_bad_samples_and_shapes(ext: LibrosaAudioExtractor) -> None:
    y = sine(200, 0.5)
    y[100:200] = np.nan
    y[300] = np.inf
    assert np.isfinite(ext.extract(y).features).all()
    with pytest.raises(MediaError, match="mono"):
        ext.extract(np.zeros((2, 1000), np.float32))
    with pytest.raises(MediaError):
        ext.extract(np.array(["a", "b"]))


def test_int16_pcm_is_scaled_like_float(ext: LibrosaAudioExtractor) -> None:
    y = speechlike(2.0)  # has a noise floor, so int16 quantisation noise does not dominate any band
    pcm = np.round(y * 32767).astype(np.int16)
    a, b = ext.extract(pcm).features, ext.extract(y).features
    assert np.max(np.abs(a - b) / (np.abs(b).max(axis=0) + 1e-6)) < 0.02
    assert not np.allclose(a, ext.extract(pcm.astype(np.float32)).features)  # i.e. it was rescaled


# ------------------------------------------------------------------ chunking
def test_chunked_equals_whole() -> None:
    y = speechlike(12.0)
    whole = LibrosaAudioExtractor(chunk_seconds=None).extract(y)
    seen: list[float] = []
    ctx = RunContext(progress=lambda stage, frac, msg: seen.append(frac))
    chunked = LibrosaAudioExtractor(chunk_seconds=1.3).extract(y, ctx)
    assert len(seen) >= 10 and seen[-1] == 1.0  # one report per chunk
    np.testing.assert_array_equal(whole.times, chunked.times)
    scale = np.abs(whole.features).max(axis=0) + 1e-6
    assert np.max(np.abs(whole.features - chunked.features) / scale) < 1e-4
    v = LibrosaAudioExtractor(chunk_seconds=None).columns.index("voiced")
    assert 0.2 < whole.features[:, v].mean() < 0.8  # the signal really has voicing changes


def test_cancel_stops_extraction() -> None:
    ctx = RunContext()
    ctx.cancel.cancel()
    with pytest.raises(Cancelled):
        LibrosaAudioExtractor(chunk_seconds=1.0).extract(speechlike(3.0), ctx)


def test_real_time_factor_is_small(ext: LibrosaAudioExtractor) -> None:
    y = speechlike(60.0, seed=1)
    t0 = time.perf_counter()
    ext.extract(y)
    rtf = (time.perf_counter() - t0) / 60.0
    assert rtf < 0.05  # measured ~0.004-0.012 on a busy 2-core box


# ------------------------------------------------------------------- slicing
def test_slice_selects_half_open_window() -> None:
    times = np.arange(10) * 0.1
    feats = np.arange(20, dtype=np.float32).reshape(10, 2)
    out, mask = slice_track(times, feats, 0.2, 0.5, max_len=50)
    np.testing.assert_array_equal(out, feats[2:5])
    assert mask.all() and mask.shape == (3,)


def test_slice_pools_to_max_len() -> None:
    times = np.arange(10, dtype=float)
    feats = np.arange(10, dtype=np.float32)[:, None]
    out, mask = slice_track(times, feats, 0, 100, max_len=4)
    # bins of sizes 3,2,3,2 (floor(i*4/10)): [0,1,2] [3,4] [5,6,7] [8,9]
    np.testing.assert_allclose(out[:, 0], [1.0, 3.5, 6.0, 8.5])
    assert mask.all() and out.shape == (4, 1) and out.dtype == np.float32


def test_slice_pooling_ignores_masked_rows() -> None:
    times = np.arange(8, dtype=float)
    feats = np.full((8, 3), 5.0, dtype=np.float32)
    mask = np.array([True, False, False, False, True, True, False, False])
    feats[~mask] = 123.0  # garbage in invalid rows must not leak
    out, out_mask = slice_track(times, feats, 0, 8, max_len=4, mask=mask)
    np.testing.assert_array_equal(out_mask, [True, False, True, False])
    np.testing.assert_array_equal(out[out_mask], 5.0)
    np.testing.assert_array_equal(out[~out_mask], 0.0)


def test_slice_short_window_zeroes_masked_rows() -> None:
    out, mask = slice_track(np.arange(3.0), np.ones((3, 2)), 0, 3, max_len=10, mask=[True, False, True])
    np.testing.assert_array_equal(mask, [True, False, True])
    np.testing.assert_array_equal(out[1], 0.0)


@pytest.mark.parametrize("start,end", [(5.0, 6.0), (0.3, 0.3), (0.5, 0.2)])
def test_slice_empty_window_gives_one_masked_zero_row(start: float, end: float) -> None:
    out, mask = slice_track(np.arange(5) * 0.1, np.ones((5, 4)), start, end, max_len=8)
    assert out.shape == (1, 4) and not out.any()
    assert mask.shape == (1,) and not mask[0]


def test_slice_empty_track_and_bad_shapes() -> None:
    out, mask = slice_track(np.zeros(0), np.zeros((0, 69)), 0, 1, max_len=200)
    assert out.shape == (1, 69) and not mask.any()
    with pytest.raises(ValueError):
        slice_track(np.arange(3.0), np.ones((4, 2)), 0, 1, max_len=2)
    with pytest.raises(ValueError):
        slice_track(np.arange(3.0), np.ones((3, 2)), 0, 1, max_len=0)


def test_slice_real_audio_track_respects_spec_max_len(ext: LibrosaAudioExtractor) -> None:
    tr = ext.extract(speechlike(12.0))  # 301 frames at 25 Hz
    spec = v1_spec().audio
    out, mask = slice_track(tr.times, tr.features, 1.0, 11.0, spec.max_len)
    assert out.shape == (spec.max_len, spec.dim) and mask.all()
    # pooling keeps the window mean (bins are near-equal, so only approximately)
    inside = tr.features[(tr.times >= 1.0) & (tr.times < 11.0)]
    np.testing.assert_allclose(out.mean(0), inside.mean(0), rtol=0.05, atol=0.5)

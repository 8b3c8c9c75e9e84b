"""Feature cache: content-keyed, spec-keyed, atomic, bounded, and safe against corrupt entries."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from core.feature_cache import (
    extract_cached,
    FeatureCache,
    cache_key,
    decode_features,
    encode_features,
    file_digest,
)
from core.errors import MSAError
from core.feature_spec import default_spec
from core.pipeline import RecordingFeatures
from core.progress import RunContext
from core.types import AudioTrack, MediaInfo, Segment, SegmentFeatures, VisualTrack, Word
from tests.media_factory import cached_audio, cached_video, requires_espeak


def _recording(path: str = "/x/a.mp4", n_segments: int = 3, landmarks: bool = True, seed: int = 0) -> RecordingFeatures:
    rng = np.random.default_rng(seed)
    spec = default_spec()
    segs, feats = [], []
    for i in range(n_segments):
        segs.append(Segment(float(i), float(i) + 0.9, f"word {i} é", [Word("word", i, i + 0.4, 0.9)], "asr"))
        ta, tv, tt = 5 + i, 3 + i, 4 + i
        feats.append(SegmentFeatures(
            text=rng.standard_normal((tt, spec.text.dim)).astype(np.float32),
            text_ids=rng.integers(0, 30000, tt).astype(np.int64),
            audio=rng.standard_normal((ta, spec.audio.dim)).astype(np.float32),
            audio_mask=rng.random(ta) > 0.3,
            visual=rng.standard_normal((tv, spec.visual.dim)).astype(np.float32),
            visual_mask=rng.random(tv) > 0.5,
        ))
    n_v = 30
    visual = VisualTrack(
        times=np.arange(n_v) / 10.0,
        features=rng.standard_normal((n_v, spec.visual.dim)).astype(np.float32),
        face_mask=rng.random(n_v) > 0.5,
        landmarks=rng.random((n_v, 478, 2)).astype(np.float32) if landmarks else None,
    )
    audio = AudioTrack(times=np.arange(75) / 25.0, features=rng.standard_normal((75, spec.audio.dim)).astype(np.float32))
    info = MediaInfo(path=path, duration=3.0, has_audio=True, has_video=True, video_fps=25.0, width=320,
                     height=240, audio_sample_rate=16000, audio_channels=1, container="mov,mp4", size_bytes=1234)
    return RecordingFeatures(info, spec, segs, feats, audio, visual, ["a warning"])


def _assert_same(a: RecordingFeatures, b: RecordingFeatures) -> None:
    assert a.spec == b.spec
    assert [(s.start, s.end, s.text, s.source, [w.__dict__ for w in s.words]) for s in a.segments] == \
           [(s.start, s.end, s.text, s.source, [w.__dict__ for w in s.words]) for s in b.segments]
    assert len(a.features) == len(b.features)
    for fa, fb in zip(a.features, b.features):
        for name in ("text", "text_ids", "audio", "audio_mask", "visual", "visual_mask"):
            x, y = getattr(fa, name), getattr(fb, name)
            assert x.dtype == y.dtype and np.array_equal(x, y), name
    np.testing.assert_array_equal(a.audio_track.features, b.audio_track.features)
    np.testing.assert_array_equal(a.visual_track.face_mask, b.visual_track.face_mask)
    if a.visual_track.landmarks is None:
        assert b.visual_track.landmarks is None
    else:
        np.testing.assert_array_equal(a.visual_track.landmarks, b.visual_track.landmarks)
    assert a.warnings == b.warnings


def test_roundtrip_is_exact_and_renames_the_recording() -> None:
    rec = _recording()
    back = decode_features(encode_features(rec), path="/elsewhere/b.mp4")
    _assert_same(rec, back)
    assert back.info.path == "/elsewhere/b.mp4"
    assert back.info.duration == rec.info.duration
    no_tracks = RecordingFeatures(rec.info, rec.spec, [], [], None, None, [])
    back = decode_features(encode_features(no_tracks))
    assert back.audio_track is None and back.visual_track is None and back.features == []


@pytest.mark.parametrize("garbage", [b"", b"not a zip", b"PK\x03\x04" + b"\x00" * 40])
def test_garbage_entries_raise_msaerror(garbage: bytes) -> None:
    with pytest.raises(MSAError, match="corrupt feature cache entry"):
        decode_features(garbage)


def test_key_follows_content_spec_and_transcript(tmp_path: Path) -> None:
    a = tmp_path / "a.wav"
    a.write_bytes(b"RIFF" + os.urandom(5000))
    copy = tmp_path / "renamed copy.wav"
    shutil.copy(a, copy)
    spec = default_spec()
    key = cache_key(file_digest(a), spec)
    assert cache_key(file_digest(copy), spec) == key  # same bytes, other name: same key
    other_spec = spec.with_modality("visual", rate_hz=5.0)
    assert cache_key(file_digest(a), other_spec) != key
    assert cache_key(file_digest(a), spec, transcript="hello") != key
    assert cache_key(file_digest(a), spec, transcript="hello") != cache_key(file_digest(a), spec, transcript="bye")
    assert cache_key(file_digest(a), spec, options={"keep_landmarks": True}) != key
    # A transcript path is keyed by its content, not its name.
    t1, t2 = tmp_path / "t1.srt", tmp_path / "t2.srt"
    t1.write_text("hello there")
    t2.write_text("hello there")
    assert cache_key(file_digest(a), spec, transcript=str(t1)) == cache_key(file_digest(a), spec, transcript=str(t2))
    # Editing the media file changes the key (mtime/size change also invalidates the digest memo).
    time.sleep(0.01)
    with open(copy, "ab") as fh:
        fh.write(b"x")
    assert cache_key(file_digest(copy), spec) != key


def test_get_put_hit_miss_and_spec_isolation(tmp_path: Path) -> None:
    media = tmp_path / "m.bin"
    media.write_bytes(os.urandom(2000))
    cache = FeatureCache(tmp_path / "cache")
    spec = default_spec()
    assert cache.get(media, spec) is None
    rec = _recording(str(media))
    entry = cache.put(media, rec)
    assert entry.is_file() and not list(entry.parent.glob("*.tmp"))
    hit = cache.get(media, spec)
    assert hit is not None
    _assert_same(rec, hit)
    assert cache.get(media, spec.with_modality("audio", max_len=100)) is None
    assert (cache.stats.hits, cache.stats.misses, cache.stats.writes) == (1, 2, 1)


def test_corrupt_entry_is_a_miss_and_is_removed(tmp_path: Path) -> None:
    media = tmp_path / "m.bin"
    media.write_bytes(os.urandom(2000))
    cache = FeatureCache(tmp_path / "cache")
    entry = cache.put(media, _recording(str(media)))
    blob = entry.read_bytes()
    entry.write_bytes(blob[: len(blob) // 2])  # e.g. disk full during a copy of the cache folder
    assert cache.get(media, default_spec()) is None
    assert not entry.exists()
    assert cache.stats.corrupt == 1


def test_entry_with_another_spec_under_the_key_is_rejected(tmp_path: Path) -> None:
    media = tmp_path / "m.bin"
    media.write_bytes(os.urandom(100))
    cache = FeatureCache(tmp_path / "cache")
    spec = default_spec()
    key = cache.key_for(media, spec)
    other = _recording(str(media))
    other.spec = spec.with_modality("audio", max_len=7)
    cache.put_by_key(key, other)  # a hand-copied or colliding entry
    assert cache.get(media, spec) is None
    assert cache.stats.corrupt == 1


def test_eviction_keeps_the_folder_bounded_lru(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path / "cache", max_bytes=None)
    files = []
    for i in range(4):
        f = tmp_path / f"m{i}.bin"
        f.write_bytes(os.urandom(100) + bytes([i]))
        files.append(f)
        cache.put(f, _recording(str(f), landmarks=False, seed=i))
    one = cache.size_bytes() // 4
    # Touch m0 so it is the most recently used; m1 is then the oldest.
    base = time.time() - 100
    for i, f in enumerate(files):
        os.utime(cache.entry_path(cache.key_for(f, default_spec())), (base + i, base + i))
    assert cache.get(files[0], default_spec()) is not None
    cache.max_bytes = int(one * 2.5)
    removed = cache.evict()
    assert removed == 2
    left = {f.name for f in files if cache.entry_path(cache.key_for(f, default_spec())).exists()}
    assert left == {"m0.bin", "m3.bin"}
    # A single entry larger than the limit is still kept right after it was written.
    cache.max_bytes = 10
    big = tmp_path / "big.bin"
    big.write_bytes(b"big")
    entry = cache.put(big, _recording(str(big)))
    assert entry.exists() and len(cache.entries()) == 1


class _CountingPipeline:
    """Stands in for FeaturePipeline: records how often extraction really runs."""

    def __init__(self, keep_landmarks: bool = False) -> None:
        self.spec = default_spec()
        self.keep_landmarks = keep_landmarks
        self.asr_options: dict = {}
        self.calls = 0

    def extract(self, path, transcript=None, ctx=None):
        self.calls += 1
        ctx.warn("the audio track is silent")
        rec = _recording(str(path))
        rec.warnings = ctx.warnings
        return rec


def test_extract_cached_extracts_once_and_replays_warnings(tmp_path: Path) -> None:
    media = Path(cached_audio(".wav", duration=1.0))
    cache = FeatureCache(tmp_path / "cache")
    pipe = _CountingPipeline()
    rec1, cached1 = extract_cached(pipe, str(media), None, RunContext(), cache)
    ctx2 = RunContext()
    rec2, cached2 = extract_cached(pipe, str(media), None, ctx2, cache)
    assert (cached1, cached2, pipe.calls) == (False, True, 1)
    assert "the audio track is silent" in ctx2.warnings and rec2.warnings is ctx2.warnings
    _assert_same(rec1, rec2)
    # Pipeline options that change the output are part of the key.
    lm_pipe = _CountingPipeline(keep_landmarks=True)
    extract_cached(lm_pipe, str(media), None, RunContext(), cache)
    assert lm_pipe.calls == 1
    # No cache: always extracts.
    extract_cached(pipe, str(media), None, RunContext(), None)
    assert pipe.calls == 2


def test_extract_cached_checks_the_file_before_hashing(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(MSAError, match="empty"):
        extract_cached(_CountingPipeline(), str(empty), None, RunContext(), FeatureCache(tmp_path / "c"))


def test_unwritable_cache_only_warns(tmp_path: Path) -> None:
    media = Path(cached_audio(".wav", duration=1.0))
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    ctx = RunContext()
    rec, cached = extract_cached(_CountingPipeline(), str(media), None, ctx, FeatureCache(blocker))
    assert not cached and rec.features
    assert any("features not cached" in w for w in ctx.warnings)


@requires_espeak
def test_analyzer_cache_real_pipeline_hit_gives_identical_result(tmp_path: Path) -> None:
    from analysis.analyzer import Analyzer
    from analysis.engine import InferenceEngine
    from core.pipeline import FeaturePipeline

    engine = InferenceEngine("late-fusion", device="cpu")
    pipeline = FeaturePipeline(engine.spec)
    clip = Path(cached_video(".mp4", duration=2.5, speech_text="what a wonderful day"))
    renamed = tmp_path / "same content.mp4"
    shutil.copy(clip, renamed)
    cache = FeatureCache(tmp_path / "cache")
    analyzer = Analyzer(engine, pipeline, cache=cache)
    run1 = analyzer.run(str(clip))
    first, rec1 = run1.result, run1.features
    calls = []
    original = pipeline.extract
    pipeline.extract = lambda *a, **k: calls.append(a) or original(*a, **k)
    run2 = analyzer.run(str(renamed))
    second, rec2 = run2.result, run2.features
    assert calls == [] and cache.stats.hits == 1
    assert (run1.from_cache, run2.from_cache) == (False, True)
    assert [(s.text, s.score, s.contributions) for s in first.segments] == \
           [(s.text, s.score, s.contributions) for s in second.segments]
    assert "wonderful" in first.segments[0].text.lower()
    assert second.recording.path == str(renamed)
    _assert_same(rec1, rec2)

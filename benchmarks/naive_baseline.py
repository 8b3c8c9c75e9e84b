"""The naive baseline: the same extractors and model, run the way MMSA-FET-style tools run them.

What differs from `core.pipeline.FeaturePipeline` (and is therefore what the ratio measures):

* decode: `librosa.load(path, sr=16000)` — for containers libsndfile cannot read (mp4, mkv, ...)
  librosa falls back to audioread, which pipes the whole file through an ffmpeg subprocess as s16
  PCM and then resamples with soxr; the optimised path decodes + resamples in-process with PyAV;
* ASR: the same Whisper on the whole wave (MMSA-FET needs a transcript; we give both the same one),
  but no voice-activity pre-pass, so silence is transcribed too;
* visual: every native frame (25 fps) at full resolution, decoded with OpenCV, through the same
  MediaPipe landmarker — instead of 10 fps frames downscaled to <= 640 px;
* audio: the audio features recomputed per segment on the segment's samples (one extractor call per
  utterance, as when each utterance is its own clip) instead of one whole-track pass sliced per
  segment;
* text: one MiniLM call per segment (no batching);
* model: one forward pass per segment and per modality mask (8 x N calls) instead of batches.

Everything runs sequentially in one thread, as those scripts do. The output is a list of
SegmentResult like the real pipeline's, so the benchmark can sanity-check that both agree.
"""
from __future__ import annotations

import time
import warnings
from collections import defaultdict
from contextlib import contextmanager
from typing import Any

import numpy as np

SR = 16000


class StageClock:
    """Wall time per stage; thread-safe; nested/overlapping calls of one stage are merged."""

    def __init__(self) -> None:
        import threading

        self._spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
        self._lock = threading.Lock()

    @contextmanager
    def __call__(self, stage: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, t0, time.perf_counter())

    def reset(self) -> None:
        with self._lock:
            self._spans.clear()

    def add(self, stage: str, t0: float, t1: float) -> None:
        with self._lock:
            self._spans[stage].append((t0, t1))

    def totals(self) -> dict[str, float]:
        out = {}
        with self._lock:
            items = {k: sorted(v) for k, v in self._spans.items()}
        for stage, spans in items.items():
            total, cur_start, cur_end = 0.0, None, None
            for a, b in spans:  # union of intervals
                if cur_end is None or a > cur_end:
                    if cur_end is not None:
                        total += cur_end - cur_start
                    cur_start, cur_end = a, b
                else:
                    cur_end = max(cur_end, b)
            if cur_end is not None:
                total += cur_end - cur_start
            out[stage] = total
        return out


def load_naive_models(model: str, checkpoint: str | None = None) -> dict[str, Any]:
    """The same extractors/model the pipeline uses, built once (load time is not benchmarked)."""
    from analysis.engine import InferenceEngine
    from core.extractors.asr import WhisperASR
    from core.extractors.text import MiniLMTextEncoder

    engine = InferenceEngine(model, checkpoint, device="cpu", allow_untrained=True)
    return {
        "engine": engine,
        "asr": WhisperASR(),
        "text": MiniLMTextEncoder(max_len=engine.spec.text.max_len, device="cpu"),
    }


def _read_all_frames_naive(path: str, clock: StageClock, extractor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every frame, full resolution, OpenCV decode -> MediaPipe, one by one."""
    import cv2

    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        return np.zeros(0), np.zeros((0, extractor.dim), np.float32), np.zeros(0, bool)
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    times, rows, found = [], [], []
    i = 0
    try:
        while True:
            with clock("video decode"):
                ok, bgr = cap.read()
                if ok:
                    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            if not ok:
                break
            t = i / fps
            with clock("visual"):
                feats, face, _ = extractor.process_frame(rgb, t)
            times.append(t)
            rows.append(feats)
            found.append(face)
            i += 1
    finally:
        cap.release()
    feats = np.stack(rows).astype(np.float32) if rows else np.zeros((0, extractor.dim), np.float32)
    return np.asarray(times, np.float64), feats, np.asarray(found, bool)


def naive_analyze(path: str, models: dict[str, Any], clock: StageClock) -> list:
    """Analyse one file the naive way; per-stage wall times land in `clock`."""
    import librosa

    from core.extractors import build_extractor
    from core.extractors.slicing import slice_track
    from core.types import Segment, SegmentFeatures

    engine = models["engine"]
    spec = engine.spec
    with clock("decode"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # librosa's "PySoundFile failed. Trying audioread instead."
        y, _ = librosa.load(path, sr=SR, mono=True)
    duration = len(y) / SR
    with clock("asr"):
        segments = models["asr"].transcribe(y)
    if not segments:  # nothing recognised: fixed 4 s windows, like the pipeline's fallback
        segments = [Segment(s, min(duration, s + 4.0), "", source="window") for s in np.arange(0, duration, 4.0)]

    with build_extractor("visual", spec.visual) as face:
        v_times, v_feats, v_mask = _read_all_frames_naive(path, clock, face)

    features = []
    for seg in segments:
        with clock("text"):
            text, ids = models["text"].encode([seg.text])[0]
        with clock("audio"):
            part = y[int(seg.start * SR): max(int(seg.end * SR), int(seg.start * SR) + 1)]
            # one extractor call per utterance, as when each utterance is its own clip: librosa-v1
            # in one chunk, whisper-tiny-enc-v2 with its own encoder pass (a second encode); each
            # extractor takes the runtime options it knows, as in core.pipeline
            extractor = build_extractor("audio", spec.audio, asr=models["asr"], chunk_seconds=None)
            track = extractor.extract(part)
            a, a_mask = slice_track(track.times + seg.start, track.features, seg.start, seg.end + 1e-6,
                                    spec.audio.max_len)
        v, vm = slice_track(v_times, v_feats, seg.start, seg.end, spec.visual.max_len, mask=v_mask)
        features.append(SegmentFeatures(text=np.asarray(text, np.float32), text_ids=np.asarray(ids, np.int64),
                                        audio=a, audio_mask=a_mask, visual=v, visual_mask=vm))

    results = []
    engine.batch_size = 1  # one forward pass per segment and mask
    instrument_engine(engine, clock)
    for seg, feat in zip(segments, features):
        results.extend(engine.analyze([seg], [feat]))
    return results


def instrument_engine(engine, clock: StageClock) -> None:
    """Time the engine's forward passes ("model", all 8 masks) and the Shapley arithmetic
    ("shapley") into `clock`. Calling it again only redirects the timings to the new clock."""
    import analysis.engine as engine_mod

    engine._bench_clock = clock
    if not getattr(engine, "_bench_instrumented", False):
        forward = engine._forward_many

        def timed_forward(*args, **kwargs):
            with engine._bench_clock("model"):
                return forward(*args, **kwargs)

        engine._forward_many = timed_forward
        engine._bench_instrumented = True
    engine_mod._bench_clock = clock
    if not hasattr(engine_mod, "_bench_original_shapley"):
        original = engine_mod.shapley_values
        engine_mod._bench_original_shapley = original

        def timed_shapley(*args, **kwargs):
            with engine_mod._bench_clock("shapley"):
                return original(*args, **kwargs)

        engine_mod.shapley_values = timed_shapley

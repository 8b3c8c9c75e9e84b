"""Rolling live analysis: microphone + camera streams -> one sentiment score per hop.

Data flow (all Qt-free; the app wraps `on_result` in a Qt signal):

    capture threads --push_audio()--> AudioRing (16 kHz, bounded)
                    --push_frame()--> latest-frame slot --visual thread--> VisualRing (features, bounded)
    analysis thread, every `hop` s: last `window` s of audio + visual features
        -> ASR -> text/audio features -> engine.analyze (score + exact Shapley) -> LiveResult

Why a separate visual thread: face landmarking costs ~10-20 ms per frame, so running it on every
frame of a 4 s window at each hop would cost more than the hop itself; doing it once per frame as
frames arrive (at the spec's visual rate) spreads the work and leaves only slicing for the hop.

Lag is measured per result as (time the result is emitted) - (capture time of the window's last
audio sample); the UI re-measures it at the moment the score is plotted using `captured_at`.
Memory is bounded: the rings hold `window + margin` seconds, results are kept in a bounded deque.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np

from core.errors import MSAError
from core.extractors.asr import SpeechPass
from core.types import Segment, SegmentFeatures

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
# Windows quieter than this (dBFS RMS) are not sent to ASR: Whisper hallucinates on silence
# ("Thank you.") and skipping it saves ~0.5 s of CPU per hop.
SILENCE_DB = -50.0
# A hop starts on the first audio block that arrives after its tick (waiting at most this long),
# so its window ends with a sample captured just now, not one a block old: microphones deliver
# blocks of 10-100 ms (the file and array sources 50 ms), which the lag would otherwise include.
FRESH_AUDIO_WAIT_S = 0.1


# ----------------------------------------------------------------------------------- results


@dataclass
class LiveResult:
    index: int
    window_start: float  # seconds on the session clock (0 = start())
    window_end: float
    text: str
    score: float  # fused score in [-3, 3], all modalities present
    contributions: dict[str, float]  # exact Shapley values per modality
    lag_seconds: float  # emit time - capture time of the window's last sample
    captured_at: float = 0.0  # clock() time of the window's last sample (for re-measuring lag)
    base_score: float = 0.0
    unimodal: dict[str, float] = field(default_factory=dict)
    mask_scores: dict[str, float] = field(default_factory=dict)  # "TAV", "TA_", ... -> score
    has_face: bool = False
    has_speech: bool = False
    level_db: float = -100.0
    timings: dict[str, float] = field(default_factory=dict)  # stage -> seconds
    warnings: list[str] = field(default_factory=list)

    def score_for(self, keep_key: str) -> float:
        """Score with only the modalities of `keep_key` ("T_V" ...) present; computed anyway for
        Shapley, so the UI's modality toggles cost nothing in live mode."""
        return float(self.mask_scores.get(keep_key, self.score))


# --------------------------------------------------------------------------------- components


class LiveComponents(Protocol):
    """What the analyzer needs from the feature pipeline; see core.live_components for the real one.

    - `listen(audio16k) -> (text, speech)`: the words and the Whisper pass they came from
    - `frame_features(frame_bgr) -> (vector (Dv,), face_found, landmarks (478, 2) | None)`
    - `segment_features(text, audio16k, speech, visual_times, visual_rows, visual_mask, start, end)
       -> SegmentFeatures` (same layout the pipeline makes for a file segment; the audio rows reuse
       `speech`, so the window is encoded once)
    - `visual_rate_hz`
    """

    visual_rate_hz: float

    def listen(self, audio: np.ndarray) -> tuple[str, Any]: ...

    def frame_features(self, frame_bgr: np.ndarray) -> tuple[np.ndarray, bool, np.ndarray | None]: ...

    def segment_features(
        self,
        text: str,
        audio: np.ndarray,
        speech: Any,
        visual_times: np.ndarray,
        visual_rows: np.ndarray,
        visual_mask: np.ndarray,
        start: float,
        end: float,
    ) -> SegmentFeatures: ...


# -------------------------------------------------------------------------------------- rings


class AudioRing:
    """Fixed-capacity mono float32 ring; remembers the capture time of the newest sample."""

    def __init__(self, seconds: float, sample_rate: int = SAMPLE_RATE) -> None:
        self.sample_rate = int(sample_rate)
        self.capacity = max(1, int(round(seconds * sample_rate)))
        self._buf = np.zeros(self.capacity, dtype=np.float32)
        self._write = 0  # next write position
        self.total = 0  # samples ever written
        self.last_time: float | None = None
        self._lock = threading.Lock()

    def write(self, samples: np.ndarray, t_end: float) -> None:
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        if x.size == 0:
            return
        n_in = x.size
        if x.size > self.capacity:
            x = x[-self.capacity :]
        with self._lock:
            first = min(x.size, self.capacity - self._write)
            self._buf[self._write : self._write + first] = x[:first]
            rest = x.size - first
            if rest:
                self._buf[:rest] = x[first:]
            self._write = (self._write + x.size) % self.capacity
            self.total += n_in
            self.last_time = float(t_end)

    def latest(self, seconds: float) -> tuple[np.ndarray, float | None]:
        """The newest `seconds` of audio (zero-padded at the front when less was captured) and the
        capture time of its last sample."""
        n = min(self.capacity, max(1, int(round(seconds * self.sample_rate))))
        out = np.zeros(n, dtype=np.float32)
        with self._lock:
            have = min(n, self.total, self.capacity)
            if have:
                idx = (self._write - have + np.arange(have)) % self.capacity
                out[n - have :] = self._buf[idx]
            return out, self.last_time


@dataclass
class _VisualRow:
    t: float
    vector: np.ndarray
    face: bool


class VisualRing:
    """Per-frame visual feature rows for the last few seconds."""

    def __init__(self, seconds: float, rate_hz: float) -> None:
        self._rows: deque[_VisualRow] = deque(maxlen=max(4, int(np.ceil(seconds * rate_hz)) + 4))
        self._lock = threading.Lock()

    def add(self, t: float, vector: np.ndarray, face: bool) -> None:
        with self._lock:
            self._rows.append(_VisualRow(float(t), np.asarray(vector, dtype=np.float32), bool(face)))

    def between(self, t0: float, t1: float) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
        with self._lock:
            rows = [r for r in self._rows if t0 <= r.t <= t1]
        return (
            np.array([r.t for r in rows], dtype=np.float64),
            [r.vector for r in rows],
            np.array([r.face for r in rows], dtype=bool),
        )

    def __len__(self) -> int:
        return len(self._rows)


# ----------------------------------------------------------------------------------- analyzer


class LiveAnalyzer:
    """Rolling-window analysis. Feed it with `push_audio` / `push_frame` from capture threads.

    `engine` is an analysis.engine.InferenceEngine (anything with `analyze(segments, features)`);
    `LiveAnalyzer.from_analyzer(analyzer)` builds one from an Analyzer.
    Callbacks run on the analyzer's threads; keep them short (the app emits a Qt signal).
    """

    def __init__(
        self,
        engine,
        components: LiveComponents,
        window: float = 4.0,
        hop: float = 1.0,
        sample_rate: int = SAMPLE_RATE,
        on_result: Callable[[LiveResult], None] | None = None,
        on_error: Callable[[str], None] | None = None,
        on_landmarks: Callable[[float, np.ndarray | None], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_results: int = 600,
    ) -> None:
        if window <= 0 or hop <= 0:
            raise MSAError("live window and hop must be positive")
        if hop > window:
            raise MSAError(f"live hop ({hop} s) must not exceed the window ({window} s)")
        self.engine = engine
        self.components = components
        self.window = float(window)
        self.hop = float(hop)
        self.sample_rate = int(sample_rate)
        self.on_result = on_result
        self.on_error = on_error
        self.on_landmarks = on_landmarks
        self.clock = clock
        margin = 2.0
        self.audio = AudioRing(self.window + margin, self.sample_rate)
        self.visual = VisualRing(self.window + margin, max(1.0, components.visual_rate_hz))
        self.results: deque[LiveResult] = deque(maxlen=max_results)
        self.t0: float | None = None
        self._stop = threading.Event()
        self._frame_ready = threading.Event()
        self._audio_written = threading.Event()
        self._frame_lock = threading.Lock()
        self._pending_frame: tuple[np.ndarray, float] | None = None
        self._last_visual_t = -1e9
        self._threads: list[threading.Thread] = []
        self._index = 0
        self.frames_seen = 0
        self.frames_featurized = 0
        self.last_error: str | None = None

    @classmethod
    def from_analyzer(cls, analyzer, **options: Any) -> "LiveAnalyzer":
        """Live analysis with an analysis.analyzer.Analyzer's engine and pipeline (the same
        extractors and loaded weights as file analysis); `options` as for the constructor."""
        return cls(analyzer.engine, PipelineLiveComponents(analyzer.pipeline), **options)

    # ---------------------------------------------------------------------------- feeding
    def push_audio(self, samples: np.ndarray, t_end: float | None = None) -> None:
        """`samples`: mono float32 at `sample_rate`; `t_end`: clock() time of the last sample."""
        self.audio.write(samples, self.clock() if t_end is None else t_end)
        self._audio_written.set()

    def push_frame(self, frame_bgr: np.ndarray, t: float | None = None) -> None:
        """Latest-wins: if the visual thread is busy the previous pending frame is dropped, so a
        slow featurizer lowers the visual rate instead of growing a queue (bounded memory/lag)."""
        t = self.clock() if t is None else t
        self.frames_seen += 1
        if t - self._last_visual_t < 1.0 / max(self.components.visual_rate_hz, 1e-6) - 1e-3:
            return
        self._last_visual_t = t
        with self._frame_lock:
            self._pending_frame = (frame_bgr, t)
        self._frame_ready.set()

    # --------------------------------------------------------------------------- lifecycle
    def warm_up(self) -> None:
        """Run the components and one full engine.analyze on a silent window before start():
        first calls load weights and build kernels (the engine's text re-encoder for masked
        text, torch's first forward), which would otherwise make the first hops seconds late."""
        warm = getattr(self.components, "warm_up", None)
        if warm is not None:
            warm(self.window)
        feats = self.components.segment_features(
            "", np.zeros(int(self.window * self.sample_rate), np.float32), None, np.zeros(0), [],
            np.zeros(0, bool), 0.0, self.window,
        )
        self.engine.analyze([Segment(0.0, self.window, "", source="window")], [feats])

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def start(self) -> None:
        if self.running:
            return
        self._stop.clear()
        self.t0 = self.clock()
        self._threads = [
            threading.Thread(target=self._visual_loop, name="live-visual", daemon=True),
            threading.Thread(target=self._analysis_loop, name="live-analysis", daemon=True),
        ]
        for t in self._threads:
            t.start()

    def stop(self, timeout: float = 1.0) -> bool:
        """Signal both threads and join them; True when they ended within `timeout` seconds.

        A hop that is mid-way through ASR cannot be interrupted, but its result is discarded
        and the thread is a daemon, so a late finish never blocks application exit."""
        self._stop.set()
        self._frame_ready.set()
        self._audio_written.set()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        return not self.running

    def session_time(self, t: float) -> float:
        return t - (self.t0 if self.t0 is not None else t)

    # ------------------------------------------------------------------------------ threads
    def _visual_loop(self) -> None:
        while not self._stop.is_set():
            if not self._frame_ready.wait(0.2):
                continue
            self._frame_ready.clear()
            with self._frame_lock:
                item, self._pending_frame = self._pending_frame, None
            if item is None or self._stop.is_set():
                continue
            frame, t = item
            try:
                vec, face, landmarks = self.components.frame_features(frame)
            except Exception as exc:  # a bad frame must not kill live mode
                self._report_error(f"visual features failed: {exc}")
                continue
            self.visual.add(t, vec, face)
            self.frames_featurized += 1
            if self.on_landmarks is not None:
                self.on_landmarks(t, landmarks if face else None)

    def _camera_warm(self) -> bool:
        """True once the face tracker has processed a few real frames, or when no camera is
        sending: MediaPipe builds its landmark/blendshape graphs on the first real face, which
        costs a second or more and would otherwise land on (and delay) the first hop."""
        if self.frames_featurized >= 10:  # ~1 s of frames at the 10 Hz visual rate
            return True
        return self.frames_seen == 0 and self.clock() - (self.t0 or 0.0) > 1.0

    def _analysis_loop(self) -> None:
        start = self.t0 or self.clock()
        while not self._stop.is_set() and not self._camera_warm() and self.clock() - start < 5.0:
            self._stop.wait(0.05)
        next_tick = max(start + self.hop, self.clock())
        while not self._stop.is_set():
            delay = next_tick - self.clock()
            if delay > 0 and self._stop.wait(delay):
                break
            self._await_fresh_audio()
            if self._stop.is_set():
                break
            try:
                result = self.analyze_now()
            except Exception as exc:
                self._report_error(f"live analysis failed: {exc}")
                result = None
            if self._stop.is_set():
                break
            if result is not None:
                self.results.append(result)
                if self.on_result is not None:
                    self.on_result(result)
            # If a hop overran, skip the missed ticks: analysing stale windows only adds lag.
            next_tick += self.hop
            now = self.clock()
            if next_tick < now:
                next_tick = now + 0.05

    def _await_fresh_audio(self) -> None:
        """Until the next audio block arrives (FRESH_AUDIO_WAIT_S at most); at once when no audio
        is coming (camera only, or before the first block)."""
        self._audio_written.clear()
        if self.audio.total:
            self._audio_written.wait(FRESH_AUDIO_WAIT_S)

    def _report_error(self, message: str) -> None:
        self.last_error = message
        log.warning(message)
        if self.on_error is not None:
            self.on_error(message)

    # ----------------------------------------------------------------------------- one hop
    def analyze_now(self) -> LiveResult | None:
        """Analyse the newest window (public so tests/benchmarks can drive it synchronously)."""
        timings: dict[str, float] = {}
        t_start = self.clock()
        audio, t_end = self.audio.latest(self.window)
        if t_end is None:
            if len(self.visual) == 0:
                return None  # nothing captured yet
            t_end = t_start  # camera only: the window ends now
        t_begin = t_end - self.window

        rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if audio.size else 0.0
        level_db = 20.0 * np.log10(max(rms, 1e-5))
        has_speech = self.audio.total > 0 and level_db > SILENCE_DB
        text, speech = "", None
        if has_speech:
            t = self.clock()
            text, speech = self.components.listen(audio)
            timings["asr"] = self.clock() - t

        t = self.clock()
        vt, vrows, vmask = self.visual.between(t_begin, t_end)
        feats = self.components.segment_features(
            text, audio if self.audio.total else np.zeros(0, np.float32), speech, vt - t_begin, vrows, vmask,
            0.0, self.window,
        )
        timings["features"] = self.clock() - t

        t = self.clock()
        seg = Segment(start=self.session_time(t_begin), end=self.session_time(t_end), text=text, source="window")
        seg_result = self.engine.analyze([seg], [feats])[0]
        timings["model"] = self.clock() - t

        emitted = self.clock()
        timings["total"] = emitted - t_start
        self._index += 1
        return LiveResult(
            index=self._index,
            window_start=seg.start,
            window_end=seg.end,
            text=text,
            score=seg_result.score,
            contributions=dict(seg_result.contributions),
            lag_seconds=emitted - t_end,
            captured_at=t_end,
            base_score=seg_result.base_score,
            unimodal=dict(seg_result.unimodal),
            mask_scores=dict(seg_result.mask_scores),
            has_face=bool(vmask.any()) if vmask.size else False,
            has_speech=has_speech,
            level_db=float(level_db),
            timings=timings,
            warnings=list(seg_result.warnings),
        )

    # ------------------------------------------------------------------------------ stats
    def lag_stats(self) -> dict[str, float]:
        lags = np.array([r.lag_seconds for r in self.results], dtype=np.float64)
        if lags.size == 0:
            return {"count": 0, "mean": float("nan"), "p95": float("nan"), "max": float("nan")}
        return {
            "count": int(lags.size),
            "mean": float(lags.mean()),
            "p95": float(np.percentile(lags, 95)),
            "max": float(lags.max()),
        }


# ------------------------------------------------------------------------ pipeline components


class PipelineLiveComponents:
    """LiveComponents backed by a core.pipeline.FeaturePipeline: the same extractors (and loaded
    weights) as file analysis, so live windows and file segments get identical features.

    ASR runs Whisper with greedy decoding and no word timestamps: the live window only needs its
    text, and the timestamp alignment would cost time every hop."""

    def __init__(self, pipeline, clock: Callable[[], float] = time.monotonic) -> None:
        self.pipeline = pipeline
        self.spec = pipeline.spec
        self.visual_rate_hz = float(self.spec.visual.rate_hz or 10.0)
        self.clock = clock
        self._visual = None
        self._visual_lock = threading.Lock()

    def warm_up(self, window_s: float = 4.0) -> None:
        """Load every model now (seconds) rather than on the first hop (which would blow the lag).

        ASR is warmed with a window of the real length: CTranslate2 prepares its kernels per
        input shape, so warming with another length leaves ~2 s of set-up for the first hop."""
        _ = self.pipeline.asr.model
        self.pipeline.text_encoder.encode(["warm up"])
        n = int(window_s * SAMPLE_RATE)
        t = np.arange(n) / SAMPLE_RATE
        # A voiced-sounding signal (150 Hz harmonics, syllable-rate envelope) so the decoder runs too.
        tone = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 6)) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t))
        wave = (0.1 * tone).astype(np.float32)
        asr = self.pipeline.asr
        for _ in range(2):  # encoder and decoder directly: VAD may not call the tone speech
            asr.decode(asr.encode(wave), word_timestamps=False, live=True)
        self.frame_features(np.zeros((64, 64, 3), np.uint8))

    def listen(self, audio: np.ndarray) -> tuple[str, SpeechPass]:
        """The window's words and the Whisper pass they came from: the same VAD pieces and
        short-context encoder as file analysis (core.extractors.asr), without word times. The
        pass's encoder states are the window's audio features (segment_features reuses them)."""
        wave = np.asarray(audio, dtype=np.float32).reshape(-1)
        if wave.size < SAMPLE_RATE // 10 or not np.any(wave):
            return "", SpeechPass([], [])
        speech = self.pipeline.asr.run(wave, word_timestamps=False, live=True)
        return " ".join(s.text for s in speech.segments).strip(), speech

    def transcribe(self, audio: np.ndarray) -> str:
        return self.listen(audio)[0]

    def frame_features(self, frame_bgr: np.ndarray) -> tuple[np.ndarray, bool, np.ndarray | None]:
        with self._visual_lock:
            if self._visual is None:
                from core.extractors import build_extractor

                # The spec's extractor (face v1 or v2), so live rows have the columns the model expects.
                self._visual = build_extractor("visual", self.spec.visual, keep_landmarks=True)
            rgb = np.ascontiguousarray(np.asarray(frame_bgr)[:, :, ::-1]) if np.ndim(frame_bgr) == 3 else frame_bgr
            return self._visual.process_frame(rgb, self.clock())

    def segment_features(
        self,
        text: str,
        audio: np.ndarray,
        speech: SpeechPass | None,
        visual_times: np.ndarray,
        visual_rows: list[np.ndarray],
        visual_mask: np.ndarray,
        start: float,
        end: float,
    ) -> SegmentFeatures:
        """The window's model inputs, assembled by the file pipeline's own code
        (FeaturePipeline.assemble_segment), so live rows and file rows agree column for column."""
        from core.types import VisualTrack

        audio_track = None
        if audio is not None and len(audio):
            # a silent window was never heard: an empty pass gives the Whisper extractor no rows
            audio_track = self.pipeline.audio_extractor.extract(audio, speech=speech or SpeechPass([], []))
        visual_track = None
        if len(visual_rows):
            visual_track = VisualTrack(np.asarray(visual_times), np.stack(visual_rows), np.asarray(visual_mask))
        encoded = self.pipeline.text_encoder.encode([text])[0]
        return self.pipeline.assemble_segment(audio_track, visual_track, Segment(start, end, text, source="window"),
                                              encoded)

    def close(self) -> None:
        with self._visual_lock:
            if self._visual is not None:
                self._visual.close()
                self._visual = None

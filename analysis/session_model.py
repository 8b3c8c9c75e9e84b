"""View-model of one analysed recording (Qt-free, so tests drive it directly; the GUI's panels
read it, hence it lives in the analysis layer below app/).

Holds the AnalysisResult and the cached RecordingFeatures and answers everything the panels ask:
scores under a modality mask, the degradation table, the missing-rate curve, per-recording
contributions, the segment at a time, face landmarks at a time. Every re-score works on cached
features; nothing here decodes media or runs ASR/face tracking again.
"""
from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from core.errors import MSAError
from core.shapley import MODALITY_ORDER, mask_key
from core.uncertainty import prediction_interval

if TYPE_CHECKING:
    from analysis.engine import InferenceEngine
    from core.pipeline import FeaturePipeline, RecordingFeatures
    from core.result import AnalysisResult

ALL = frozenset(MODALITY_ORDER)
MASK_KEYS = ("TAV", "TA_", "T_V", "_AV", "T__", "_A_", "__V", "___")


class AnalysisSession:
    def __init__(
        self,
        result: "AnalysisResult",
        features: "RecordingFeatures",
        engine: "InferenceEngine | None" = None,
        pipeline: "FeaturePipeline | None" = None,
        source_path: str | None = None,
    ) -> None:
        _require_same_length(result, features)
        self.result = result
        self.features = features
        self.engine = engine
        self.pipeline = pipeline
        self.source_path = source_path or str(result.recording.path)
        self._mask_cache: dict[str, np.ndarray] = {}
        # (engine, curve): a curve is only valid for the engine that computed it.
        self._missing_curve: tuple[Any, list[dict[str, float]]] | None = None
        # One missing-rate curve computation at a time (the Robustness tab's and a report's): two at
        # once would load the text encoder twice on two threads, which transformers' lazy imports
        # do not survive ("cannot import name 'AutoModel'").
        self._curve_lock = threading.Lock()

    # ------------------------------------------------------------------------------ basics
    @property
    def segments(self):
        return self.result.segments

    @property
    def duration(self) -> float:
        d = float(self.result.recording.duration or 0.0)
        if self.segments:
            d = max(d, max(s.end for s in self.segments))
        return d

    @property
    def model_name(self) -> str:
        return str(self.result.model.name)

    @property
    def untrained(self) -> bool:
        return self.result.untrained

    @property
    def has_video(self) -> bool:
        return bool(self.result.recording.has_video)

    def starts_ends(self) -> tuple[np.ndarray, np.ndarray]:
        return self.result.times()

    def confidences(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(low, high) of every segment's calibrated interval; None unless every segment has one."""
        return self.result.confidence()

    def segment_index_at(self, t: float) -> int | None:
        """The segment containing t; between segments, None."""
        for i, s in enumerate(self.segments):
            if s.start <= t < s.end:
                return i
        if self.segments and abs(t - self.segments[-1].end) < 1e-6:
            return len(self.segments) - 1
        return None

    # ------------------------------------------------------------------------------ masks
    def scores(self, keep: frozenset[str] = ALL) -> np.ndarray:
        """Per-segment score with only `keep` modalities present.

        Shapley analysis already scored all 8 masks per segment (SegmentResult.mask_scores), so a
        toggle normally costs a dictionary lookup; if a result lacks them (older session) the
        engine re-scores the cached features."""
        key = mask_key(frozenset(keep))
        if key == "TAV":
            return self.result.scores()
        if key not in self._mask_cache:
            if self.result.has_mask_scores(key):
                self._mask_cache[key] = self.result.scores(key)
            else:
                self._mask_cache[key] = np.asarray(self._require_engine().score(self.features.features, frozenset(keep)), dtype=np.float64)
        return self._mask_cache[key]

    def all_mask_scores(self) -> dict[str, np.ndarray]:
        return {k: self.scores(keep_of(k)) for k in MASK_KEYS}

    def mask_table(self) -> dict[str, dict[str, float]]:
        """MAE / Corr / sign agreement of every mask combination against the full prediction."""
        from analysis.robustness import mask_degradation_table

        return mask_degradation_table(self.all_mask_scores())

    def degradation(self, keep: frozenset[str]) -> dict[str, float]:
        from analysis.robustness import degradation_summary

        return degradation_summary(self.scores(ALL), self.scores(keep))

    def missing_curve(self, rates=None, seeds=(1, 2, 3), engine: "InferenceEngine | None" = None) -> list[dict[str, float]]:
        """Random-missing-rate curve (LNLN protocol, seeded) on this recording; cached.

        `engine`: the engine to use (default: the session's); the GUI passes the one current when
        it started; a curve is kept with the engine that computed it, so one finishing after a model
        switch is never taken for the new model's."""
        engine = engine or self._require_engine()
        with self._curve_lock:
            cached = self.cached_missing_curve
            if cached is not None and engine is self.engine:
                return cached
            from analysis.robustness import random_missing_curve

            kwargs: dict[str, Any] = {"seeds": tuple(seeds)}
            if rates is not None:
                kwargs["rates"] = rates
            curve = random_missing_curve(engine, self.features.features, **kwargs)
            self._missing_curve = (engine, curve)
            return curve

    @property
    def cached_missing_curve(self) -> list[dict[str, float]] | None:
        if self._missing_curve is None or self._missing_curve[0] is not self.engine:
            return None
        return self._missing_curve[1]

    def recording_contributions(self) -> dict[str, float]:
        from analysis.robustness import recording_contributions

        return recording_contributions(self.segments)

    def recording_score(self) -> float:
        from analysis.robustness import recording_score

        return recording_score(self.segments)

    def contributions_matrix(self) -> np.ndarray:
        """(N, 3) Shapley values in MODALITY_ORDER."""
        return np.array(
            [[s.contributions.get(m, 0.0) for m in MODALITY_ORDER] for s in self.segments], dtype=np.float64
        ).reshape(len(self.segments), len(MODALITY_ORDER))

    # -------------------------------------------------------------------------- re-scoring
    def _require_engine(self) -> "InferenceEngine":
        if self.engine is None:
            raise MSAError("no model loaded for this session; choose a model first")
        return self.engine

    def _invalidate(self) -> None:
        self._mask_cache.clear()
        self._missing_curve = None

    def rescore(self, engine: "InferenceEngine") -> None:
        """Switch model/device: score the cached features with `engine` (no re-extraction)."""
        from analysis.analyzer import Analyzer

        self.apply_rescore(Analyzer(engine, cache=None).rescore(self.features), engine)

    def apply_rescore(self, result: "AnalysisResult", engine: "InferenceEngine") -> None:
        """Adopt a result that `engine` computed from this session's features (the GUI computes
        it on a worker thread and applies it on the GUI thread only if it is still wanted)."""
        _require_same_length(result, self.features)
        self.result = result
        self.engine = engine
        self._invalidate()

    def edit_segment_text(self, index: int, text: str) -> None:
        """Replace one segment's transcript and re-run that segment (text re-encoded; audio and
        visual rows re-sliced from the cached tracks)."""
        if not 0 <= index < len(self.segments):
            raise MSAError(f"no segment {index}")
        if self.pipeline is None:
            raise MSAError("editing text needs the feature pipeline (open the recording, not only a result)")
        engine = self._require_engine()
        old = self.features.segments[index]
        seg = replace(old, text=text.strip(), words=[], source="transcript")
        feat = self.pipeline.features_for_segments(self.features, [seg])[0]
        new_result = engine.analyze([seg], [feat])[0]
        self.features.segments[index] = seg
        self.features.features[index] = feat
        self.result.segments[index] = new_result
        self._invalidate()

    # ------------------------------------------------------------------------------ media
    def landmarks_at(self, t: float) -> np.ndarray | None:
        """(478, 2) normalised face landmarks of the visual frame nearest to t, if a face was there."""
        track = self.features.visual_track
        if track is None or track.landmarks is None or len(track.times) == 0:
            return None
        i = int(np.clip(np.searchsorted(track.times, t), 0, len(track.times) - 1))
        if i > 0 and abs(track.times[i - 1] - t) < abs(track.times[i] - t):
            i -= 1
        rate = self.features.spec.visual.rate_hz or 10.0
        if abs(track.times[i] - t) > 1.5 / rate or not bool(track.face_mask[i]):
            return None
        return track.landmarks[i]

    # ----------------------------------------------------------------------------- export
    def export_json(self, path: str | Path) -> Path:
        self.result.to_json(path)
        return Path(path)

    def export_csv(self, path: str | Path) -> Path:
        self.result.to_csv(path)
        return Path(path)

    def write_report(self, path: str | Path, load_engine: "Callable[[str], InferenceEngine] | None" = None) -> Path:
        """The shareable HTML report (analysis.report), with the missing-rate curve the app computed, or
        computed now from the cached features. Runs on a worker thread (File ▸ Export ▸ Report).
        `load_engine(model)`: where to get the model while the session has none yet (the app passes its
        ModelCache, so the report does not load a second copy)."""
        from core.output_paths import check_output_files
        from analysis.report import ReportInputs, missing_curve_for, write_recording_report

        check_output_files([("report", path)], [self.source_path])
        with self._curve_lock:  # waits for a curve the app is computing, then uses it
            precomputed = self.cached_missing_curve  # only one the current model computed
            engine = self.engine
            if engine is None and load_engine is not None and precomputed is None:
                try:
                    engine = load_engine(self.model_name)
                except MSAError:
                    engine = None  # the report says why there is no curve
            curve = missing_curve_for(self.result, precomputed=precomputed, features=self.features,
                                      engine=engine)
        source = f"MSA Studio app, analysis of {Path(self.source_path).name}" if self.source_path else "MSA Studio app"
        return write_recording_report(path, self.result, ReportInputs(missing_curve=curve, source=source))

    def save(self, path: str | Path) -> Path:
        from core.session import save_session

        save_session(path, self.result, self.features)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "AnalysisSession":
        from core.session import load_session

        result, features = load_session(path)
        return cls(result, features, source_path=str(result.recording.path))

    def hover_text(self, index: int) -> str:
        """The text the timeline shows when hovering a segment."""
        s = self.segments[index]
        parts = [f"{s.start:.2f}-{s.end:.2f} s   score {s.score:+.2f}"]
        iv = prediction_interval(s.confidence)
        if iv is not None:
            parts[0] += f"   {iv.percent} interval [{iv.low:+.2f}, {iv.high:+.2f}]"
        parts.append(f"\u201c{s.text or '(no words)'}\u201d")
        contrib = "  ".join(f"{m[0].upper()} {s.contributions.get(m, 0.0):+.2f}" for m in MODALITY_ORDER)
        parts.append(f"Shapley: {contrib}   base {s.base_score:+.2f}")
        if s.unimodal:
            parts.append("unimodal: " + "  ".join(f"{m[0].upper()} {v:+.2f}" for m, v in s.unimodal.items()))
        if s.warnings:
            parts.append("; ".join(s.warnings))
        return "\n".join(parts)


def _require_same_length(result: "AnalysisResult", features: "RecordingFeatures") -> None:
    if len(result.segments) != len(features.features):
        raise MSAError(f"result has {len(result.segments)} segments but the features have {len(features.features)}")


def keep_of(key: str) -> frozenset[str]:
    from core.shapley import keep_from_key

    return keep_from_key(key)


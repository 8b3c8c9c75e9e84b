"""The random-missing-rate curve shown in a report: handed over, computed, or explained.

The curve (analysis.robustness.random_missing_curve, LNLN protocol) needs the model *and* the recording's
features, which a result JSON does not hold. So a report gets it, in this order:

1. precomputed: the GUI has usually computed it already (the Robustness tab);
2. computed from features in hand: a session file, or the GUI's session;
3. computed from the feature cache: a result whose recording (same content, same feature spec, same
   transcript) was analysed with the cache on (`batch` does by default);
4. otherwise absent, and the report says why and how to get it (never an error).

Before computing, the model is checked against the result: it must reproduce the result's scores on
these features (to 1e-3), or the curve would describe another model than the rest of the report.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from core.errors import MSAError

if TYPE_CHECKING:
    from analysis.engine import InferenceEngine
    from core.feature_cache import FeatureCache
    from core.pipeline import RecordingFeatures
    from core.result import AnalysisResult

SEEDS = (1, 2, 3)  # the GUI's seeds (analysis/session_model.py), so both give the same curve
SCORE_TOLERANCE = 1e-3
PROTOCOL = ("LNLN protocol on this recording: at each missing rate r that share of every modality's "
            "steps is dropped at random (text tokens become [UNK]); mean ± std over seeds {seeds}, "
            "measured against the full prediction")


@dataclass(frozen=True)
class MissingCurve:
    rows: list[dict[str, float]] | None  # random_missing_curve's rows, or None when absent
    note: str  # how it was made, or why it is absent

    @classmethod
    def absent(cls, why: str) -> "MissingCurve":
        return cls(None, why)

    @classmethod
    def given(cls, rows: Sequence[dict[str, float]], seeds: Sequence[int] = SEEDS) -> "MissingCurve":
        return cls([dict(r) for r in rows], PROTOCOL.format(seeds=", ".join(str(s) for s in seeds)))


def _how_to_get_it(result: "AnalysisResult") -> str:
    name = Path(str(result.recording.path or "RECORDING")).name
    return (f"To include it, make the report from a session (save one in the app, then "
            f"`msa-studio report {Path(name).stem}.msasession -o report.html`) or in one go with "
            f"`msa-studio analyze {name} --json result.json --report report.html`.")


def engine_for_result(result: "AnalysisResult", device: str = "cpu") -> "InferenceEngine":
    """The model a result was made with, loaded again. Raises MSAError saying why it cannot be."""
    from analysis.engine import InferenceEngine

    name = str(result.model.name or "")
    if not name:
        raise MSAError("the result does not name its model")
    if result.untrained:
        return InferenceEngine(name, None, device=device, allow_untrained=True)
    checkpoint = result.model.checkpoint
    if not checkpoint or not Path(str(checkpoint)).is_file():
        raise MSAError(f"the checkpoint the result was made with ({checkpoint}) is not on this machine")
    return InferenceEngine(name, str(checkpoint), device=device, allow_untrained=False)


def cached_features(result: "AnalysisResult", cache: "FeatureCache") -> "RecordingFeatures | None":
    """The recording's features from the feature cache, if an analysis with the cache on stored them
    (as the CLI/batch pipeline or as the GUI's, which also keeps face landmarks)."""
    from core.feature_cache import pipeline_options
    from core.pipeline import FeaturePipeline

    path = result.recording.path
    if not path or not Path(str(path)).is_file():
        return None
    spec = result.feature_spec
    record = result.recording.transcript
    transcript = record.get("path") if isinstance(record, dict) else None
    if transcript and not Path(str(transcript)).is_file():
        return None
    for keep_landmarks in (False, True):
        try:
            options = pipeline_options(FeaturePipeline(spec, keep_landmarks=keep_landmarks))
            rec = cache.get(str(path), spec, transcript, options)
        except MSAError:
            return None
        if rec is not None:
            return rec
    return None


def _scores_match(result: "AnalysisResult", features: "RecordingFeatures", engine: "InferenceEngine") -> bool:
    if len(features.features) != len(result.segments):
        return False
    now = np.asarray(engine.score(features.features), dtype=np.float64)
    then = result.scores()
    return bool(np.all(np.abs(now - then) <= SCORE_TOLERANCE))


def curve_from_features(result: "AnalysisResult", features: "RecordingFeatures",
                        engine: "InferenceEngine") -> MissingCurve:
    from analysis.robustness import random_missing_curve

    if not result.segments:
        return MissingCurve.absent("Not computed: the recording has no scored segments.")
    if not _scores_match(result, features, engine):
        return MissingCurve.absent(
            "Not computed: the model loaded now does not reproduce this result's scores on its features "
            "(the checkpoint changed since, or the features belong to another analysis).")
    return MissingCurve.given(random_missing_curve(engine, features.features, seeds=SEEDS))


def missing_curve_for(
    result: "AnalysisResult",
    *,
    precomputed: Sequence[dict[str, float]] | None = None,
    features: "RecordingFeatures | None" = None,
    engine: "InferenceEngine | None" = None,
    cache: "FeatureCache | None" = None,
    compute: bool = True,
    device: str = "cpu",
) -> MissingCurve:
    """The curve for a report (see the module docstring). Never raises MSAError: a curve that cannot
    be made becomes a MissingCurve with the reason."""
    if precomputed is not None:
        return MissingCurve.given(precomputed)
    if not compute:
        return MissingCurve.absent("Not computed (turned off for this report).")
    if features is None and cache is not None:
        features = cached_features(result, cache)
    if features is None:
        return MissingCurve.absent(
            "Not computed: a result file holds the scores but not the features the curve needs, and no "
            "cached features of this recording were found. " + _how_to_get_it(result))
    try:
        engine = engine or engine_for_result(result, device=device)
        return curve_from_features(result, features, engine)
    except MSAError as exc:
        return MissingCurve.absent(f"Not computed: {exc}.")


__all__ = ["MissingCurve", "SEEDS", "cached_features", "curve_from_features", "engine_for_result",
           "missing_curve_for"]

"""`analyze_file` with the on-disk feature cache in front of the extraction.

Same arguments and return value as `analysis.analyzer.analyze_file`, plus `cache`. A hit skips decode,
ASR and all extractors: only the model runs (milliseconds), so switching models or re-running a
batch costs almost nothing. Misses extract as usual and store the features afterwards; a cache that
cannot be written (read-only folder, full disk) only adds a warning.
"""
from __future__ import annotations

from analysis.analyzer import analyze_file
from analysis.engine import InferenceEngine
from core.feature_cache import FeatureCache, extract_cached
from core.pipeline import FeaturePipeline, RecordingFeatures
from core.progress import RunContext
from core.result import AnalysisResult

__all__ = ["analyze_file_cached", "extract_cached"]


def analyze_file_cached(
    path: str,
    model: str = "lnln",
    checkpoint: str | None = None,
    device: str = "auto",
    transcript: str | None = None,
    ctx: RunContext | None = None,
    allow_untrained: bool = True,
    pipeline: FeaturePipeline | None = None,
    engine: InferenceEngine | None = None,
    cache: FeatureCache | None = None,
) -> tuple[AnalysisResult, RecordingFeatures]:
    """`analysis.analyzer.analyze_file` + feature cache (`cache=None` -> the default cache folder)."""
    return analyze_file(
        path, model, checkpoint, device, transcript, ctx, allow_untrained, pipeline, engine,
        cache=cache if cache is not None else FeatureCache(),
    )

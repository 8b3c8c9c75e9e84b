"""`analyze_file` with the on-disk feature cache in front of the extraction.

Same arguments and return value as `core.analyzer.analyze_file`, plus `cache`. A hit skips decode,
ASR and all extractors: only the model runs (milliseconds), so switching models or re-running a
batch costs almost nothing. Misses extract as usual and store the features afterwards; a cache that
cannot be written (read-only folder, full disk) only adds a warning.
"""
from __future__ import annotations

from core.analyzer import result_from_features
from core.engine import InferenceEngine
from core.errors import MSAError
from core.feature_cache import FeatureCache, pipeline_options
from core.pipeline import FeaturePipeline, RecordingFeatures
from core.progress import RunContext
from core.result import AnalysisResult


def extract_cached(
    pipeline: FeaturePipeline,
    path: str,
    transcript: str | None = None,
    ctx: RunContext | None = None,
    cache: FeatureCache | None = None,
) -> tuple[RecordingFeatures, bool]:
    """(features, was_cached). The pipeline's spec and options are part of the key."""
    ctx = ctx or RunContext()
    if cache is None:
        return pipeline.extract(path, transcript=transcript, ctx=ctx), False
    from core import media

    media.probe(path)  # bad files fail with the usual MediaError before anything is hashed
    options = pipeline_options(pipeline)
    key = cache.key_for(path, pipeline.spec, transcript, options)
    rec = cache.get_by_key(key, pipeline.spec, path=str(path))
    if rec is not None:
        ctx.report("decode", 1.0, "features from cache")
        for w in rec.warnings:
            ctx.warn(w)
        rec.warnings = ctx.warnings
        return rec, True
    rec = pipeline.extract(path, transcript=transcript, ctx=ctx)
    try:
        cache.put_by_key(key, rec)
    except MSAError as exc:
        ctx.warn(f"features not cached: {exc}")
    return rec, False


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
    """`core.analyzer.analyze_file` + feature cache (`cache=None` -> the default cache folder)."""
    ctx = ctx or RunContext()
    engine = engine or InferenceEngine(model, checkpoint, device=device, allow_untrained=allow_untrained)
    pipeline = pipeline or FeaturePipeline(engine.spec, device=engine.device)
    engine.spec.require_compatible(pipeline.spec, what=f"model {engine.model_name!r}")
    rec, _ = extract_cached(pipeline, path, transcript, ctx, cache if cache is not None else FeatureCache())
    return result_from_features(rec, engine, ctx), rec

"""One call from a media file to an AnalysisResult: the pipeline + the inference engine."""
from __future__ import annotations

from typing import TYPE_CHECKING

from analysis.engine import InferenceEngine
from core.errors import FeatureSpecMismatch
from core.pipeline import FeaturePipeline, RecordingFeatures
from core.progress import RunContext
from core.result import UNTRAINED_WARNING, AnalysisResult

if TYPE_CHECKING:
    from core.feature_cache import FeatureCache


def analyze_file(
    path: str,
    model: str = "lnln",
    checkpoint: str | None = None,
    device: str = "auto",
    transcript: str | None = None,
    ctx: RunContext | None = None,
    allow_untrained: bool = True,
    pipeline: FeaturePipeline | None = None,
    engine: InferenceEngine | None = None,
    cache: "FeatureCache | None" = None,
) -> tuple[AnalysisResult, RecordingFeatures]:
    """`cache`: an on-disk FeatureCache consulted before extracting (None: always extract)."""
    ctx = ctx or RunContext()
    # Load the model first: a bad model name or a checkpoint with another spec fails in a second,
    # not after minutes of extraction.
    engine = engine or InferenceEngine(model, checkpoint, device=device, allow_untrained=allow_untrained)
    if pipeline is None:
        try:
            pipeline = FeaturePipeline(engine.spec, device=engine.device)
        except FeatureSpecMismatch as exc:
            source = engine.checkpoint_path or engine.model_name
            raise FeatureSpecMismatch(f"checkpoint {source} was trained on features this app cannot make: {exc}") from None
    engine.spec.require_compatible(pipeline.spec, what=f"model {engine.model_name!r}")
    if cache is not None:
        from core.feature_cache import extract_cached

        rec, _ = extract_cached(pipeline, path, transcript, ctx, cache)
    else:
        rec = pipeline.extract(path, transcript=transcript, ctx=ctx)
    record_transcript(rec, path, transcript)
    return result_from_features(rec, engine, ctx), rec


def record_transcript(rec: RecordingFeatures, path: str, transcript: str | None) -> None:
    """Store which transcript was used where every result made from `rec` sees it (also after a
    re-score with another model): recording["transcript"] in the result JSON."""
    from core.transcripts import transcript_choice

    rec.info.transcript = transcript_choice(path, transcript).record()


def result_from_features(rec: RecordingFeatures, engine: InferenceEngine, ctx: RunContext | None = None) -> AnalysisResult:
    """Score cached features (used after extraction, on model switch, and after transcript edits)."""
    engine.spec.require_compatible(rec.spec, what=f"model {engine.model_name!r}")
    segments = engine.analyze(rec.segments, rec.features, ctx)
    warnings = list(rec.warnings)
    if engine.untrained:
        warnings.insert(0, UNTRAINED_WARNING)
    if not segments:
        warnings.append("no segments to score")
    return AnalysisResult(
        recording=rec.info.to_dict(),
        feature_spec=rec.spec.to_dict(),
        model=engine.describe(),
        segments=segments,
        warnings=warnings,
    )

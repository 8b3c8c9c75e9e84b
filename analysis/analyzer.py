"""The one way in: media file(s) -> AnalysisResult(s).

    analyzer = Analyzer.from_pretrained("lnln")        # engine, then a pipeline for its spec (default: DEFAULT_MODEL)
    result = analyzer("talk.mp4")                      # a path -> a result; a list -> a list
    run = analyzer.run("talk.mp4", transcript, ctx)    # result + the features (+ whether cached)
    other = analyzer.with_model("tfn").rescore(run.features)   # another model, no re-extraction

`Analyzer` owns what the CLI (`analyze`, `batch`), the GUI worker, live mode and the benchmarks used
to assemble each on their own: load the InferenceEngine first (a bad model name or a checkpoint of
another spec fails in a second, not after minutes of extraction), build the FeaturePipeline for its
spec, put the feature cache in front of the extraction, and score.

Cache policy (`cache=`), the same everywhere: DEFAULT_CACHE (the default) is the on-disk feature
cache in core.feature_cache.default_cache_dir() ($MSA_CACHE_DIR, else ~/.cache/msa-studio/features),
the folder batch has always used; a path is a cache in that folder; a FeatureCache is used as is;
None turns the cache off (always extract).
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from typing import Any, Sequence, Union, overload

from analysis.engine import InferenceEngine
from core.errors import FeatureSpecMismatch, MSAError
from core.feature_cache import FeatureCache, extract_cached
from core.pipeline import FeaturePipeline, RecordingFeatures
from core.progress import RunContext
from core.result import UNTRAINED_WARNING, AnalysisResult
from models.defaults import DEFAULT_MODEL


class _DefaultCache:
    """The type of DEFAULT_CACHE: a sentinel, so no folder name (not even "default") is taken for it."""

    def __repr__(self) -> str:
        return "DEFAULT_CACHE"


DEFAULT_CACHE = _DefaultCache()
CachePolicy = Union[FeatureCache, _DefaultCache, str, "os.PathLike[str]", None]


def resolve_cache(cache: CachePolicy) -> FeatureCache | None:
    """The FeatureCache a cache policy names (module docstring), or None for no cache."""
    if cache is None:
        return None
    if isinstance(cache, FeatureCache):
        return cache
    if cache is DEFAULT_CACHE:
        return FeatureCache()
    return FeatureCache(cache)


@dataclass
class Analysis:
    """One analysed recording: the result, the features it was scored from (for re-scoring, sessions
    and reports) and whether those came from the feature cache."""

    result: AnalysisResult
    features: RecordingFeatures
    from_cache: bool = False


def pipeline_for(engine: InferenceEngine, **options: Any) -> FeaturePipeline:
    """The FeaturePipeline that makes the features `engine`'s checkpoint was trained on."""
    try:
        return FeaturePipeline(engine.spec, device=engine.device, **options)
    except FeatureSpecMismatch as exc:
        source = engine.checkpoint_path or engine.model_name
        raise FeatureSpecMismatch(f"checkpoint {source} was trained on features this app cannot make: {exc}") from None


class Analyzer:
    """An engine, the pipeline for its spec (built on first need) and a feature cache."""

    def __init__(self, engine: InferenceEngine, pipeline: FeaturePipeline | None = None,
                 cache: CachePolicy = DEFAULT_CACHE) -> None:
        self.engine = engine
        self._pipeline = None
        if pipeline is not None:
            self.pipeline = pipeline
        self.cache = resolve_cache(cache)

    @classmethod
    def from_pretrained(cls, model: str = DEFAULT_MODEL, checkpoint: str | None = None, device: str = "auto",
                        cache: CachePolicy = DEFAULT_CACHE, *, allow_untrained: bool = True,
                        pipeline: FeaturePipeline | None = None) -> "Analyzer":
        """Load `model` (its shipped checkpoint unless `checkpoint`) and build its pipeline now, so
        every problem with either shows before any file is touched."""
        analyzer = cls(InferenceEngine(model, checkpoint, device=device, allow_untrained=allow_untrained),
                       pipeline, cache)
        _ = analyzer.pipeline
        return analyzer

    # -- parts ---------------------------------------------------------------------------------
    @property
    def pipeline(self) -> FeaturePipeline:
        if self._pipeline is None:
            self._pipeline = pipeline_for(self.engine)
        return self._pipeline

    @pipeline.setter
    def pipeline(self, pipeline: FeaturePipeline) -> None:
        self.engine.spec.require_compatible(pipeline.spec, what=f"model {self.engine.model_name!r}")
        self._pipeline = pipeline

    def with_model(self, model: str, checkpoint: str | None = None, *, allow_untrained: bool = True) -> "Analyzer":
        """Another model on the same device and cache; the pipeline is shared when the specs match."""
        engine = InferenceEngine(model, checkpoint, device=self.engine.device, allow_untrained=allow_untrained)
        shared = self._pipeline if self._pipeline is not None and \
            self._pipeline.spec.fingerprint() == engine.spec.fingerprint() else None
        return Analyzer(engine, shared, self.cache)

    # -- analysis ------------------------------------------------------------------------------
    @overload
    def __call__(self, paths: "str | os.PathLike[str]", transcript: str | None = None,
                 ctx: RunContext | None = None) -> AnalysisResult: ...

    @overload
    def __call__(self, paths: Sequence["str | os.PathLike[str]"], transcript: None = None,
                 ctx: RunContext | None = None) -> list[AnalysisResult]: ...

    def __call__(self, paths, transcript=None, ctx=None):
        """A path -> its AnalysisResult; a list of paths -> a list of results (in order)."""
        if isinstance(paths, (str, os.PathLike)):
            return self.run(paths, transcript, ctx).result
        if transcript is not None:
            raise MSAError("one transcript cannot belong to several recordings; analyse them one by one")
        return [self.run(p, None, ctx).result for p in paths]

    def run(self, path: "str | os.PathLike[str]", transcript: str | None = None,
            ctx: RunContext | None = None) -> Analysis:
        """Extract (or read from the cache) and score one recording."""
        ctx = ctx or RunContext()
        path = str(path)
        rec, cached = extract_cached(self.pipeline, path, transcript, ctx, self.cache)
        record_transcript(rec, path, transcript)
        return Analysis(self.rescore(rec, ctx), rec, cached)

    def rescore(self, features: RecordingFeatures, ctx: RunContext | None = None) -> AnalysisResult:
        """Score features already extracted: after extraction, on a model switch, after transcript
        edits, from a cache entry or a session file."""
        engine = self.engine
        engine.spec.require_compatible(features.spec, what=f"model {engine.model_name!r}")
        segments = engine.analyze(features.segments, features.features, ctx)
        warnings = list(features.warnings)
        if engine.untrained:
            warnings.insert(0, UNTRAINED_WARNING)
        if not segments:
            warnings.append("no segments to score")
        return AnalysisResult(
            # A copy (transcript record included): callers edit a result's recording (batch sets
            # the display path) without touching the features, which later results share.
            recording=copy.deepcopy(features.info),
            feature_spec=features.spec,
            model=engine.describe(),
            segments=segments,
            warnings=warnings,
        )


def record_transcript(rec: RecordingFeatures, path: str, transcript: str | None) -> None:
    """Store which transcript was used where every result made from `rec` sees it (also after a
    re-score with another model): result.recording.transcript, "transcript" in the result JSON."""
    from core.transcripts import transcript_choice

    rec.info.transcript = transcript_choice(path, transcript).record()

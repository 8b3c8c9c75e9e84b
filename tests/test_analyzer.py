"""analysis.analyzer.Analyzer, the one entry point: cache policy, a path -> a result, a list -> a
list, re-scoring and switching models (fake engine and pipeline: no weights load here; the real
pipeline runs through it in test_pipeline_cli, test_determinism and test_feature_cache)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from analysis import analyzer as analyzer_mod
from analysis.analyzer import DEFAULT_CACHE, Analysis, Analyzer, resolve_cache
from core.errors import MSAError
from core.feature_cache import FeatureCache, default_cache_dir
from core.feature_spec import default_spec
from core.pipeline import RecordingFeatures
from core.result import UNTRAINED_WARNING
from core.types import MediaInfo, Segment, SegmentFeatures, SegmentResult


class FakeEngine:
    def __init__(self, model: str = "fake", checkpoint=None, device: str = "cpu", allow_untrained: bool = True,
                 spec=None) -> None:
        self.model_name, self.device, self.spec = model, device, spec or default_spec()
        self.checkpoint_path, self.untrained = checkpoint, checkpoint is None

    def analyze(self, segments, features, ctx=None):
        return [SegmentResult(s.start, s.end, s.text, 0.5) for s in segments]

    def describe(self):
        return {"name": self.model_name, "checkpoint": self.checkpoint_path, "untrained": self.untrained,
                "device": self.device, "training": {}}


class FakePipeline:
    def __init__(self, spec=None) -> None:
        self.spec = spec or default_spec()
        self.keep_landmarks, self.asr_options = False, {}
        self.extracted: list[str] = []

    def extract(self, path, transcript=None, ctx=None):
        self.extracted.append(str(path))
        feats = SegmentFeatures(np.zeros((2, 384), np.float32), np.array([101, 102]), np.zeros((1, 3), np.float32),
                                np.ones(1, bool), np.zeros((1, 3), np.float32), np.ones(1, bool))
        info = MediaInfo(str(path), 1.0, True, False)
        return RecordingFeatures(info, self.spec, [Segment(0.0, 1.0, "hi")], [feats])


@pytest.fixture()
def media(tmp_path: Path) -> list[Path]:
    paths = []
    for name in ("a.wav", "b.wav"):
        p = tmp_path / name
        p.write_bytes(name.encode())
        paths.append(p)
    return paths


def test_cache_policies(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MSA_CACHE_DIR", str(tmp_path / "default"))
    assert resolve_cache(None) is None
    assert resolve_cache(DEFAULT_CACHE).root == default_cache_dir() == tmp_path / "default"
    assert resolve_cache(str(tmp_path / "here")).root == tmp_path / "here"
    monkeypatch.chdir(tmp_path)
    assert resolve_cache("default").root == Path("default")  # a folder name, not the default policy
    mine = FeatureCache(tmp_path / "mine")
    assert resolve_cache(mine) is mine


def test_a_path_gives_a_result_and_a_list_gives_a_list(media, tmp_path: Path) -> None:
    pipeline = FakePipeline()
    analyzer = Analyzer(FakeEngine(), pipeline, cache=None)
    one = analyzer(media[0])
    assert one.recording.path == str(media[0]) and UNTRAINED_WARNING in one.warnings
    many = analyzer(media)
    assert [r.recording.path for r in many] == [str(p) for p in media]
    assert pipeline.extracted == [str(media[0])] + [str(p) for p in media]
    with pytest.raises(MSAError, match="one transcript"):
        analyzer(media, transcript="words")


def test_run_keeps_the_features_and_says_when_they_came_from_the_cache(media, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("core.media.probe", lambda path: None)  # fake files: nothing to probe
    pipeline = FakePipeline()
    analyzer = Analyzer(FakeEngine(), pipeline, cache=tmp_path / "cache")
    first, again = analyzer.run(media[0]), analyzer.run(media[0])
    assert isinstance(first, Analysis) and (first.from_cache, again.from_cache) == (False, True)
    assert pipeline.extracted == [str(media[0])]
    assert [s.score for s in analyzer.rescore(again.features).segments] == [0.5]


def test_with_model_shares_pipeline_and_cache_only_when_the_spec_matches(monkeypatch, tmp_path: Path) -> None:
    other_spec = default_spec().with_modality("audio", dim=33)
    monkeypatch.setattr(analyzer_mod, "InferenceEngine",
                        lambda model, checkpoint=None, device="cpu", allow_untrained=True:
                        FakeEngine(model, checkpoint, device, spec=other_spec if model == "other" else None))
    pipeline = FakePipeline()
    analyzer = Analyzer(FakeEngine(device="cuda:1"), pipeline, cache=tmp_path / "c")
    same = analyzer.with_model("tfn")
    assert same.engine.model_name == "tfn" and same.engine.device == "cuda:1"
    assert same.pipeline is pipeline and same.cache is analyzer.cache
    different = analyzer.with_model("other")
    assert different._pipeline is None and different.cache is analyzer.cache  # its own pipeline, built on need


def test_a_pipeline_of_another_spec_is_refused() -> None:
    from core.errors import FeatureSpecMismatch

    with pytest.raises(FeatureSpecMismatch):
        Analyzer(FakeEngine(), FakePipeline(default_spec().with_modality("audio", dim=33)), cache=None)

"""The extractor interface: every registered class implements FeatureExtractor, the pipeline builds
its extractors only through the registry by the names in the spec (a new extractor is one
registered class), and live windows are assembled by the pipeline's own code."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from core.errors import FeatureSpecMismatch
from core.extractors import EXTRACTORS, FeatureExtractor, build_extractor, load_all, register_extractor
from core.feature_spec import default_spec

MODALITIES = {"text", "audio", "visual", "speech"}


@pytest.fixture()
def scratch_registry(monkeypatch):
    """Registrations made by a test vanish after it."""
    load_all()
    monkeypatch.setattr(EXTRACTORS, "_items", dict(EXTRACTORS._items))
    return EXTRACTORS


def test_every_registered_extractor_implements_the_interface() -> None:
    load_all()
    assert set(EXTRACTORS.names()) >= {"minilm-l6", "whisper-tiny.en", "mediapipe-face-v1"}
    for name in EXTRACTORS.names():
        cls = EXTRACTORS.get(name)
        assert cls.name.lower() == name, name
        assert cls.modality in MODALITIES, (name, cls.modality)
        assert callable(getattr(cls, "from_spec")) and callable(getattr(cls, "extract")), name


def test_the_spec_names_build_extractors_that_satisfy_the_protocol() -> None:
    spec = default_spec()
    built = [build_extractor("text", spec.text), build_extractor("audio", spec.audio),
             build_extractor("visual", spec.visual), build_extractor("speech", "whisper-tiny.en")]
    for extractor in built:
        assert isinstance(extractor, FeatureExtractor), type(extractor).__name__
    built[2].close()


def test_a_class_without_extract_is_refused_when_it_registers(scratch_registry) -> None:
    with pytest.raises(TypeError, match="extract"):
        @register_extractor("half-done")
        class HalfDone:  # noqa: F841
            name = "half-done"
            modality = "text"

            @classmethod
            def from_spec(cls, spec, **runtime):
                return cls()
    assert "half-done" not in scratch_registry


def test_a_new_extractor_is_one_registered_class(scratch_registry) -> None:
    """The pipeline finds it by the spec's name alone: no table of names to edit."""
    from core.pipeline import FeaturePipeline

    @register_extractor("test-hash-text")
    class HashText:
        name = "test-hash-text"
        modality = "text"

        def __init__(self, dim: int) -> None:
            self.dim = dim

        @classmethod
        def from_spec(cls, spec, **runtime: Any) -> "HashText":
            return cls(spec.dim)

        def extract(self, texts, ctx=None, **options):
            return self.encode(texts)

        def encode(self, texts):
            return [(np.full((1, self.dim), len(t), np.float32), np.array([len(t)], np.int64)) for t in texts]

    spec = default_spec().with_modality("text", extractor="test-hash-text")
    pipeline = FeaturePipeline(spec)
    assert isinstance(pipeline.text_encoder, HashText)
    with pytest.raises(FeatureSpecMismatch, match="no-such-text"):
        FeaturePipeline(default_spec().with_modality("text", extractor="no-such-text"))


def test_live_windows_are_assembled_by_the_pipeline() -> None:
    from analysis.live import PipelineLiveComponents
    from core.types import AudioTrack

    class Recorder:
        """A pipeline whose extractors are instant and whose assembly is recorded."""

        spec = default_spec()
        calls: list[tuple] = []

        class audio_extractor:  # noqa: N801 - stands in for an instance
            @staticmethod
            def extract(audio, speech=None):
                return AudioTrack(np.arange(4) * 0.04, np.ones((4, Recorder.spec.audio.dim), np.float32))

        class text_encoder:  # noqa: N801
            @staticmethod
            def encode(texts):
                return [(np.zeros((2, 3), np.float32), np.array([1, 2]))]

        def assemble_segment(self, audio, visual, seg, encoded):
            self.calls.append((audio, visual, seg, encoded))
            return "assembled"

    pipeline = Recorder()
    live = PipelineLiveComponents(pipeline)
    rows = [np.ones(pipeline.spec.visual.dim, np.float32)] * 3
    out = live.segment_features("hi", np.ones(1600, np.float32), None, np.array([0.0, 0.1, 0.2]), rows,
                                np.array([True, False, True]), 0.0, 0.3)
    assert out == "assembled"
    audio, visual, seg, encoded = pipeline.calls[0]
    assert audio.features.shape == (4, pipeline.spec.audio.dim)
    assert visual.features.shape == (3, pipeline.spec.visual.dim) and visual.face_mask.tolist() == [True, False, True]
    assert (seg.start, seg.end, seg.text) == (0.0, 0.3, "hi")
    assert encoded[1].tolist() == [1, 2]
    live.segment_features("", np.zeros(0, np.float32), None, np.zeros(0), [], np.zeros(0, bool), 0.0, 0.3)
    assert pipeline.calls[1][0] is None and pipeline.calls[1][1] is None  # missing modalities

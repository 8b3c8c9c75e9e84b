"""Dataclasses that flow between layers (media -> segmentation -> extractors -> engine -> UI)."""
from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar, TypeVar

import numpy as np

from core.uncertainty import PredictionInterval


def as_mapping(value: Any, what: str) -> dict[str, Any]:
    """`value` if it is a JSON object; TypeError naming `what` otherwise."""
    if not isinstance(value, dict):
        raise TypeError(f"{what} is not a mapping")
    return value


class JsonRecord:
    """Base of the flat dataclasses a result stores as one JSON object (its `json_key`)."""

    json_key: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls: type[_R], d: Any) -> _R:
        """Keys it does not know (a newer writer) are ignored, optional ones that are absent (an
        older writer) take their defaults; a missing required key raises KeyError('<key>.<field>')
        and a non-mapping TypeError, for the caller's one-line error."""
        d = as_mapping(d, cls.json_key)
        known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
        for name, f in known.items():
            if name not in d and f.default is MISSING and f.default_factory is MISSING:
                raise KeyError(f"{cls.json_key}.{name}")
        return cls(**{k: v for k, v in d.items() if k in known})


_R = TypeVar("_R", bound=JsonRecord)


@dataclass
class MediaInfo(JsonRecord):
    json_key: ClassVar[str] = "recording"

    path: str
    duration: float  # seconds (best estimate: container, else longest stream)
    has_audio: bool
    has_video: bool
    video_fps: float | None = None
    width: int | None = None
    height: int | None = None
    audio_sample_rate: int | None = None
    audio_channels: int | None = None
    container: str = ""
    size_bytes: int = 0
    # Which transcript the analysis used (core.transcripts.TranscriptChoice.record()); set by the
    # callers of the pipeline, None where unknown (live windows, results from older versions).
    transcript: dict[str, Any] | None = None


@dataclass
class ModelInfo(JsonRecord):
    """Which weights scored a result, on which device (analysis.engine.InferenceEngine.describe())."""

    json_key: ClassVar[str] = "model"

    name: str
    checkpoint: str | None = None  # None: no checkpoint was loaded (untrained weights)
    untrained: bool = False
    device: str = ""
    # The checkpoint's free-form training metadata (data set, epochs, seed, metrics...); the report
    # compares it with the shipped checkpoint's to decide whether the model card applies.
    training: dict[str, Any] = field(default_factory=dict)


@dataclass
class Word:
    text: str
    start: float
    end: float
    probability: float = 1.0


@dataclass
class Segment:
    """An utterance: the unit that gets one sentiment score."""

    start: float
    end: float
    text: str = ""
    words: list[Word] = field(default_factory=list)
    source: str = "asr"  # "asr", "transcript", "window", "vad"

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)


@dataclass
class VisualTrack:
    """Per-frame visual features for a whole recording; frames without a face are zero rows with
    face_mask False (kept, not dropped, so time alignment survives)."""

    times: np.ndarray  # (N,) seconds
    features: np.ndarray  # (N, D) float32
    face_mask: np.ndarray  # (N,) bool
    landmarks: np.ndarray | None = None  # (N, 478, 2) normalised image coords, for the overlay

    @classmethod
    def concatenate(cls, parts: "list[VisualTrack]") -> "VisualTrack":
        """Consecutive time ranges of one recording -> one track."""
        if len(parts) == 1:
            return parts[0]
        landmarks = None
        if all(p.landmarks is not None for p in parts):
            landmarks = np.concatenate([p.landmarks for p in parts])
        return cls(
            times=np.concatenate([p.times for p in parts]),
            features=np.concatenate([p.features for p in parts]),
            face_mask=np.concatenate([p.face_mask for p in parts]),
            landmarks=landmarks,
        )


@dataclass
class AudioTrack:
    """Frame-level acoustic features for a whole recording."""

    times: np.ndarray  # (N,) frame centre times, seconds
    features: np.ndarray  # (N, D) float32


@dataclass
class SegmentFeatures:
    """Model input for one segment. Masks are True where a step is valid."""

    text: np.ndarray  # (Tt, Dt) token features incl. CLS/SEP
    text_ids: np.ndarray  # (Tt,) int64 token ids (for [UNK] masking and re-encoding)
    audio: np.ndarray  # (Ta, Da)
    audio_mask: np.ndarray  # (Ta,) bool
    visual: np.ndarray  # (Tv, Dv)
    visual_mask: np.ndarray  # (Tv,) bool, False for frames with no face

    @property
    def text_mask(self) -> np.ndarray:
        return np.ones(len(self.text_ids), dtype=bool)


@dataclass
class SegmentResult:
    start: float
    end: float
    text: str
    score: float  # fused sentiment in [-3, 3]
    unimodal: dict[str, float] = field(default_factory=dict)  # "text"/"audio"/"visual" -> score
    contributions: dict[str, float] = field(default_factory=dict)  # Shapley values per modality
    base_score: float = 0.0  # prediction with all modalities masked (Shapley baseline)
    mask_scores: dict[str, float] = field(default_factory=dict)  # "TAV","TA_",... -> score
    confidence: PredictionInterval | None = None  # calibrated interval of `score` (None: none)
    warnings: list[str] = field(default_factory=list)

"""Versioned description of how features were made.

Every feature set and every checkpoint carries one. Feeding features to a checkpoint whose spec
differs is the #1 complaint about MMSA-style tools ("size mismatch for ..."), so we compare specs
up front and name each differing field instead of failing deep inside a matmul.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from core.errors import FeatureSpecMismatch

SPEC_VERSION = 1


@dataclass(frozen=True)
class ModalitySpec:
    extractor: str  # registry name, e.g. "minilm", "librosa-v1", "mediapipe-blendshapes"
    dim: int  # feature dimension per step
    rate_hz: float | None  # steps per second (None for token sequences)
    max_len: int  # steps kept per segment (longer is truncated/pooled by the extractor)
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModalitySpec":
        return cls(
            extractor=str(d["extractor"]),
            dim=int(d["dim"]),
            rate_hz=None if d.get("rate_hz") is None else float(d["rate_hz"]),
            max_len=int(d["max_len"]),
            params=dict(d.get("params", {})),
        )


MODALITIES = ("text", "audio", "visual")


@dataclass(frozen=True)
class FeatureSpec:
    text: ModalitySpec
    audio: ModalitySpec
    visual: ModalitySpec
    version: int = SPEC_VERSION
    name: str = "msa-studio"

    def modality(self, m: str) -> ModalitySpec:
        return getattr(self, m)

    @property
    def dims(self) -> dict[str, int]:
        return {m: self.modality(m).dim for m in MODALITIES}

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "name": self.name,
            **{m: self.modality(m).to_dict() for m in MODALITIES},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FeatureSpec":
        try:
            return cls(
                version=int(d.get("version", SPEC_VERSION)),
                name=str(d.get("name", "msa-studio")),
                **{m: ModalitySpec.from_dict(d[m]) for m in MODALITIES},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise FeatureSpecMismatch(f"malformed feature spec: {exc}") from None

    def fingerprint(self) -> str:
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def differences(self, other: "FeatureSpec") -> list[str]:
        """Human-readable list of fields that differ ('audio.dim: 74 != 33')."""
        a, b = _flatten(self.to_dict()), _flatten(other.to_dict())
        out = []
        for key in sorted(set(a) | set(b)):
            if key == "name":
                continue
            if a.get(key, "<missing>") != b.get(key, "<missing>"):
                out.append(f"{key}: {a.get(key, '<missing>')!r} != {b.get(key, '<missing>')!r}")
        return out

    def require_compatible(self, other: "FeatureSpec", what: str = "checkpoint") -> None:
        diffs = self.differences(other)
        if diffs:
            raise FeatureSpecMismatch(
                f"{what} was built for a different feature spec ({'; '.join(diffs)}); "
                "re-extract features with the checkpoint's spec or retrain the model"
            )

    def require_current_version(self) -> None:
        """Features and checkpoints of another spec version were made by other extractors: refuse
        them up front instead of scoring garbage."""
        if self.version != SPEC_VERSION:
            raise FeatureSpecMismatch(
                f"made for FeatureSpec v{self.version}, but this MSA Studio extracts FeatureSpec v{SPEC_VERSION} "
                f"(audio: {default_spec().audio.extractor}, visual: {default_spec().visual.extractor}); "
                "use a checkpoint trained on v{0} features, or re-extract and retrain".format(SPEC_VERSION)
            )

    def with_modality(self, m: str, **changes: Any) -> "FeatureSpec":
        return replace(self, **{m: replace(self.modality(m), **changes)})


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def default_spec() -> FeatureSpec:
    """The spec of the shipped pipeline and checkpoints. Dims are documented in README.md."""
    return FeatureSpec(
        text=ModalitySpec(
            extractor="minilm-l6",
            dim=384,
            rate_hz=None,
            max_len=50,
            params={"model": "sentence-transformers/all-MiniLM-L6-v2", "layer": "last_hidden_state"},
        ),
        audio=ModalitySpec(
            extractor="librosa-v1",
            dim=69,
            rate_hz=25.0,
            max_len=200,
            params={"sr": 16000, "hop": 640, "win": 1024, "n_mfcc": 20, "f0": "yin"},
        ),
        visual=ModalitySpec(
            extractor="mediapipe-face-v1",
            dim=58,
            rate_hz=10.0,
            max_len=80,
            params={"blendshapes": 52, "pose": 6, "landmarks": False},
        ),
    )

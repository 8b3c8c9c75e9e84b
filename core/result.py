"""The analysis result: what the CLI writes and the UI shows. Serialises to JSON and CSV, written
atomically (core.atomic_write): an interrupted export never leaves a truncated file behind."""
from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from core import __version__
from core.atomic_write import atomic_open, atomic_write_text
from core.errors import FeatureSpecMismatch, MSAError
from core.feature_spec import FeatureSpec
from core.shapley import MODALITY_ORDER
from core.types import MediaInfo, ModelInfo, SegmentResult, as_mapping
from core.uncertainty import prediction_interval

UNTRAINED_WARNING = (
    "UNTRAINED MODEL: no trained checkpoint was found, scores come from randomly initialised "
    "weights and mean nothing"
)


@dataclass
class AnalysisResult:
    """One analysed recording: what was analysed, with which features and weights, and each
    segment's scores. Typed throughout; dicts exist only at the JSON edge (to_dict/from_dict).

    The RecordingFeatures it was scored from are deliberately not a field: a result read back from
    JSON has none, and the arrays are far too big for the JSON. Where both exist they travel as a
    pair (analysis.analyzer.Analysis, analysis.session_model.AnalysisSession, session files)."""

    recording: MediaInfo
    feature_spec: FeatureSpec
    model: ModelInfo
    segments: list[SegmentResult]
    warnings: list[str] = field(default_factory=list)
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    version: str = __version__

    @property
    def untrained(self) -> bool:
        return bool(self.model.untrained)

    # -- per-segment arrays (row i = segment i) -------------------------------------------------
    def times(self) -> tuple[np.ndarray, np.ndarray]:
        """(starts, ends) in seconds."""
        return (np.array([s.start for s in self.segments], dtype=np.float64),
                np.array([s.end for s in self.segments], dtype=np.float64))

    def scores(self, mask: str | None = None) -> np.ndarray:
        """The fused scores, or with `mask` ("T_V", "__V", ...) the scores with only the named
        modalities present; KeyError when a segment lacks that mask (a result from an old draft)."""
        if mask is None or mask == "TAV":
            return np.array([s.score for s in self.segments], dtype=np.float64)
        return np.array([s.mask_scores[mask] for s in self.segments], dtype=np.float64)

    def has_mask_scores(self, mask: str) -> bool:
        return bool(self.segments) and all(mask in s.mask_scores for s in self.segments)

    def contributions(self) -> dict[str, np.ndarray]:
        """Exact Shapley contribution of each modality per segment (NaN where a segment has none)."""
        return {m: np.array([s.contributions.get(m, np.nan) for s in self.segments], dtype=np.float64)
                for m in MODALITY_ORDER}

    def confidence(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(low, high) of every segment's calibrated interval; None unless every segment has one."""
        intervals = [prediction_interval(s.confidence) for s in self.segments]
        if not intervals or any(iv is None for iv in intervals):
            return None
        return (np.array([iv.low for iv in intervals], dtype=np.float64),
                np.array([iv.high for iv in intervals], dtype=np.float64))

    # -- JSON / CSV (the edges) ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        # Keys in field order, each record in its own to_dict's order: the file format of every
        # result written so far (tests/test_result_typed.py holds one such file).
        return _finite({
            "recording": self.recording.to_dict(),
            "feature_spec": self.feature_spec.to_dict(),
            "model": self.model.to_dict(),
            "segments": [asdict(s) for s in self.segments],
            "warnings": self.warnings,
            "created": self.created,
            "version": self.version,
        })

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AnalysisResult":
        try:
            segs = [SegmentResult(**{**s, "confidence": prediction_interval(s.get("confidence"))}) for s in d["segments"]]
            return cls(
                recording=MediaInfo.from_dict(d["recording"]),
                feature_spec=FeatureSpec.from_dict(as_mapping(d["feature_spec"], "feature_spec")),
                model=ModelInfo.from_dict(d["model"]),
                segments=segs,
                warnings=list(d.get("warnings", [])),
                created=d.get("created", ""),
                version=d.get("version", ""),
            )
        except (KeyError, TypeError, ValueError, AttributeError, FeatureSpecMismatch) as exc:
            raise MSAError(f"not an MSA Studio result file ({exc})") from None

    def to_json(self, path: str | Path) -> None:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2))

    @classmethod
    def from_json(cls, path: str | Path) -> "AnalysisResult":
        try:
            return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise MSAError(f"cannot read result {path}: {exc}") from None

    def csv_rows(self) -> list[dict[str, Any]]:
        rows = []
        for i, s in enumerate(self.segments):
            row: dict[str, Any] = {
                "segment": i,
                "start": round(s.start, 3),
                "end": round(s.end, 3),
                "text": s.text,
                "score": round(s.score, 4),
                "base_score": round(s.base_score, 4),
                "interval_low": round(s.confidence.low, 4) if s.confidence else "",
                "interval_high": round(s.confidence.high, 4) if s.confidence else "",
            }
            for m in MODALITY_ORDER:
                row[f"contribution_{m}"] = round(s.contributions.get(m, float("nan")), 4)
            for m in MODALITY_ORDER:
                row[f"unimodal_{m}"] = round(s.unimodal[m], 4) if m in s.unimodal else ""
            for k in sorted(s.mask_scores):
                row[f"mask_{k}"] = round(s.mask_scores[k], 4)
            row["warnings"] = "; ".join(s.warnings)
            rows.append(row)
        return rows

    def to_csv(self, path: str | Path) -> None:
        rows = self.csv_rows()
        with atomic_open(path, "w", newline="") as fh:
            fieldnames = list(rows[0]) if rows else ["segment", "start", "end", "text", "score"]
            writer = csv.DictWriter(fh, fieldnames=fieldnames)
            writer.writeheader()
            writer.writerows(rows)


def _finite(obj: Any) -> Any:
    """JSON has no NaN/inf; write null so other tools can parse the file."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj

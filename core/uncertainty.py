"""The one place that knows the shape of a segment's uncertainty (`SegmentResult.confidence`).

A calibrated prediction interval is stored per segment as

    "confidence": {"level": 0.8, "low": -0.4, "high": 1.2}

(`level`: the share of true scores the interval is meant to hold). Older results and models without
an estimate store null. Readers (report, GUI) call `prediction_interval` and never index the dict
themselves, so a change of the shape is a change here only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PredictionInterval:
    level: float  # e.g. 0.8 for an 80 % interval
    low: float
    high: float

    @property
    def percent(self) -> str:
        """'80 %' for level 0.8."""
        return f"{self.level * 100:g} %"

    def to_dict(self) -> dict[str, float]:
        return {"level": self.level, "low": self.low, "high": self.high}


def prediction_interval(confidence: Any) -> PredictionInterval | None:
    """The interval stored in a segment's `confidence`, or None when there is none.

    Anything that is not the documented shape with finite numbers, 0 < level < 1 and low <= high
    (null, a bare number from an older draft, a damaged file) counts as "no estimate": a report must
    never draw a band it cannot vouch for."""
    if isinstance(confidence, PredictionInterval):
        confidence = confidence.to_dict()
    if not isinstance(confidence, dict):
        return None
    try:
        level, low, high = (float(confidence[k]) for k in ("level", "low", "high"))
    except (KeyError, TypeError, ValueError):
        return None
    if not all(math.isfinite(v) for v in (level, low, high)) or not 0.0 < level < 1.0 or low > high:
        return None
    return PredictionInterval(level=level, low=low, high=high)


__all__ = ["PredictionInterval", "prediction_interval"]

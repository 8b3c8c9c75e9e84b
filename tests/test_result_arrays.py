"""AnalysisResult's per-segment array accessors (what the panels and reports read)."""
from __future__ import annotations

import numpy as np
import pytest

from core.result import AnalysisResult
from core.feature_spec import default_spec
from core.types import MediaInfo, ModelInfo, SegmentResult
from core.uncertainty import PredictionInterval


def _result(with_interval: bool = True) -> AnalysisResult:
    segs = [
        SegmentResult(0.0, 1.5, "good", 1.0, contributions={"text": 0.6, "audio": 0.3, "visual": 0.1},
                      mask_scores={"TAV": 1.0, "T__": 0.7},
                      confidence=PredictionInterval(0.8, 0.5, 1.5) if with_interval else None),
        SegmentResult(1.5, 4.0, "bad", -2.0, contributions={"text": -1.0, "audio": -0.5},
                      mask_scores={"TAV": -2.0, "T__": -1.2}, confidence=PredictionInterval(0.8, -2.5, -1.5)),
    ]
    return AnalysisResult(recording=MediaInfo("x.mp4", 4.0, has_audio=True, has_video=False),
                          feature_spec=default_spec(), model=ModelInfo("m"), segments=segs)


def test_times_scores_and_masks_are_arrays_in_segment_order() -> None:
    r = _result()
    starts, ends = r.times()
    assert starts.tolist() == [0.0, 1.5] and ends.tolist() == [1.5, 4.0]
    assert r.scores().tolist() == [1.0, -2.0] and r.scores("TAV").tolist() == [1.0, -2.0]
    assert r.scores("T__").tolist() == [0.7, -1.2]
    assert r.has_mask_scores("T__") and not r.has_mask_scores("_A_")
    with pytest.raises(KeyError):
        r.scores("_A_")


def test_contributions_have_nan_where_a_segment_has_none() -> None:
    c = _result().contributions()
    assert list(c) == ["text", "audio", "visual"]
    assert c["text"].tolist() == [0.6, -1.0]
    assert c["visual"][0] == 0.1 and np.isnan(c["visual"][1])


def test_confidence_only_when_every_segment_has_an_interval() -> None:
    low, high = _result().confidence()
    assert low.tolist() == [0.5, -2.5] and high.tolist() == [1.5, -1.5]
    assert _result(with_interval=False).confidence() is None
    assert AnalysisResult(_result().recording, default_spec(), ModelInfo("m"), []).confidence() is None


def test_accessors_do_not_change_the_json() -> None:
    r = _result()
    before = r.to_dict()
    r.times(), r.scores(), r.contributions(), r.confidence()
    assert r.to_dict() == before and "times" not in before

"""Split-conformal intervals (models/calibration.py): the quantile, the video folds, and that the
cross-fitted half-width of a dev utterance never uses its own video."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from core.feature_spec import FeatureSpec, ModalitySpec
from core.types import SegmentFeatures
from models.base import ModalityBatch, ModelOutput, MSAModel
from models.calibration import (
    CROSS_FIT_FOLDS, conformal_halfwidth, cross_fit_halfwidth, deal_folds, fit_intervals, interval_coverage, video_of,
)
from models.data import InMemoryDataset

SPEC = FeatureSpec(
    name="test-calibration",
    text=ModalitySpec("test-text", 2, None, 8, {}),
    audio=ModalitySpec("test-audio", 2, 10.0, 8, {}),
    visual=ModalitySpec("test-visual", 2, 5.0, 8, {}),
)


class SaysZero(MSAModel):
    """Always 0: every residual is the coalition's target, so half-widths can be worked out by hand."""

    name = "test-calibration-zero"

    def forward(self, batch: ModalityBatch) -> ModelOutput:
        return ModelOutput(score=torch.zeros(batch.text.shape[0]))


def _dataset(ids: list[str], labels: list[float]) -> InMemoryDataset:
    item = SegmentFeatures(text=np.ones((3, 2), np.float32), text_ids=np.array([101, 5, 102]),
                           audio=np.ones((2, 2), np.float32), audio_mask=np.ones(2, bool),
                           visual=np.ones((2, 2), np.float32), visual_mask=np.ones(2, bool))
    return InMemoryDataset(SPEC, [item] * len(ids), labels, ids, evidence=[1] * len(ids))  # text carries the label


def test_conformal_halfwidth_is_the_corrected_quantile() -> None:
    r = np.arange(1.0, 10.0)  # n = 9: the ceil(10 * 0.8) = 8th smallest
    assert conformal_halfwidth(-r, 0.8) == 8.0
    assert math.isinf(conformal_halfwidth(np.array([1.0, 2.0]), 0.8))  # too few for the level


def test_videos_are_dealt_whole_and_evenly_into_seeded_folds() -> None:
    assert video_of("dev/mosi/0/03bSnISJMiM_11") == video_of("03bSnISJMiM_1") == "03bSnISJMiM"
    videos = [f"v{i}" for i in range(10)]
    folds = deal_folds(videos * 3)
    assert sorted(folds) == videos and folds == deal_folds(videos)
    assert sorted(np.bincount(list(folds.values()))) == [2] * CROSS_FIT_FOLDS
    assert folds != deal_folds(videos, seed=1)


def test_cross_fitted_halfwidths_leave_out_the_utterances_own_video() -> None:
    calib = _dataset([f"calib/mosi/0/c{i}_1" for i in range(10)], [0.1 * (i + 1) for i in range(10)])
    dev_ids = [f"dev/mosi/0/v{v}_{u}" for v in range(10) for u in range(4)]
    dev_labels = [float(v) * 0.3 for v in range(10) for _ in range(4)]  # video v: residual 0.3 v
    dev = _dataset(dev_ids, dev_labels)
    cal = fit_intervals(SaysZero(SPEC), calib, unk_id=100, reencode=None, dev_ds=dev)
    assert cal["n"] == 50 and cal["n_dev"] == 40 and cal["n_calibration_split"] == 10
    pooled = np.abs(np.r_[calib.labels, dev.labels])
    assert cal["halfwidth"]["T__"] == pytest.approx(conformal_halfwidth(pooled, 0.8))
    assert cal["halfwidth"]["___"] == 0.0  # nothing kept: the target is 0, as is the prediction
    folds = cal["cross_fit"]["folds"]
    for sid in dev_ids:
        own = video_of(sid)
        others = [abs(y) for i, y in zip(dev_ids, dev.labels) if folds[video_of(i)] != folds[own]]
        expected = conformal_halfwidth(np.r_[np.abs(calib.labels), others], 0.8)
        assert cross_fit_halfwidth(cal, sid, "T__") == pytest.approx(expected)
    # a video the cross-fit never saw (new data) gets the pooled half-width
    assert cross_fit_halfwidth(cal, "NEWVIDEO_1", "T__") == cal["halfwidth"]["T__"]
    # without dev samples: the calibration split alone, no cross-fit
    alone = fit_intervals(SaysZero(SPEC), calib, unk_id=100, reencode=None)
    assert "cross_fit" not in alone and cross_fit_halfwidth(alone, dev_ids[0], "T__") == alone["halfwidth"]["T__"]


def test_interval_coverage_takes_one_halfwidth_per_sample_and_clips_like_the_engine() -> None:
    pred, target = np.array([0.0, 0.0, 2.9]), np.array([0.5, 0.5, 3.0])
    assert interval_coverage(pred, target, np.array([1.0, 0.1, 0.2])) == pytest.approx(2 / 3)  # 2.9 + 0.2 -> 3
    assert interval_coverage(pred, target, 1.0) == 1.0

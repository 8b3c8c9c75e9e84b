"""MMSA regression metrics against hand-computed cases."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models.metrics import METRIC_NAMES, is_better, regression_metrics

# Worked example (see comments for the hand computation)
PRED = [1.4, -0.6, 0.0, 2.6, -3.5]
TRUE = [1.0, -1.0, 0.0, 2.0, 0.5]


def test_hand_computed_case() -> None:
    m = regression_metrics(PRED, TRUE)
    assert set(m) == set(METRIC_NAMES)
    # Has0: pred>=0 TFTTF vs true>=0 TFTTT -> 4/5
    assert m["Has0_acc_2"] == pytest.approx(0.8)
    # class True (support 4): P=1, R=3/4 -> F1 6/7; class False (support 1): P=1/2, R=1 -> 2/3
    assert m["Has0_F1_score"] == pytest.approx((4 * 6 / 7 + 1 * 2 / 3) / 5)
    # Non0 drops the zero label: pred>0 TFTF vs true>0 TFTT -> 3/4
    assert m["Non0_acc_2"] == pytest.approx(0.75)
    # class True (support 3): P=1, R=2/3 -> 0.8; class False (support 1): 2/3
    assert m["Non0_F1_score"] == pytest.approx((3 * 0.8 + 2 / 3) / 4)
    # clip [-3,3] + round: pred 1,-1,0,3,-3 vs true 1,-1,0,2,0 (0.5 rounds to even 0) -> 3/5
    assert m["Mult_acc_7"] == pytest.approx(0.6)
    # clip [-2,2] + round: pred 1,-1,0,2,-2 vs true 1,-1,0,2,0 -> 4/5
    assert m["Mult_acc_5"] == pytest.approx(0.8)
    assert m["MAE"] == pytest.approx((0.4 + 0.4 + 0.0 + 0.6 + 4.0) / 5)


def test_correlation_and_rounding_like_numpy() -> None:
    true = np.array([-2.0, -1.0, 0.5, 1.0, 3.0])
    assert regression_metrics(2 * true + 1, true)["Corr"] == pytest.approx(1.0)
    assert regression_metrics(-true, true)["Corr"] == pytest.approx(-1.0)
    a, b = np.array([1.0, 2.0, 4.0]), np.array([1.0, 3.0, 2.0])
    # Pearson by hand: centred a = (-4/3, -1/3, 5/3), b = (-1, 1, 0)
    num = (4 / 3) - (1 / 3)
    den = math.sqrt((16 + 1 + 25) / 9) * math.sqrt(2)
    assert regression_metrics(a, b)["Corr"] == pytest.approx(num / den)
    # round half to even, as MMSA's np.round: 2.5 -> 2 and 1.5 -> 2 both match label 2
    assert regression_metrics([2.5, 1.5], [2.0, 2.0])["Mult_acc_7"] == 1.0


def test_constant_predictions_give_nan_corr_and_tensors_work() -> None:
    m = regression_metrics(torch.zeros(4), torch.tensor([1.0, -1.0, 2.0, 0.0]))
    assert math.isnan(m["Corr"])
    assert m["MAE"] == pytest.approx(1.0)


def test_all_zero_labels_make_non0_nan() -> None:
    m = regression_metrics([0.3, -0.2], [0.0, 0.0])
    assert math.isnan(m["Non0_acc_2"]) and math.isnan(m["Non0_F1_score"])
    assert m["Has0_acc_2"] == pytest.approx(0.5)


def test_decimals_and_errors() -> None:
    m = regression_metrics(PRED, TRUE, decimals=4)
    assert m["Has0_F1_score"] == round((4 * 6 / 7 + 2 / 3) / 5, 4)
    with pytest.raises(ValueError):
        regression_metrics([1.0, 2.0], [1.0])
    with pytest.raises(ValueError):
        regression_metrics([float("nan")], [1.0])
    with pytest.raises(ValueError):
        regression_metrics([], [])


def test_is_better_direction() -> None:
    assert is_better("MAE", 0.5, 0.6) and not is_better("MAE", 0.7, 0.6)
    assert is_better("Has0_acc_2", 0.8, 0.7) and not is_better("Has0_acc_2", 0.7, 0.7)
    assert is_better("Corr", 0.1, None) and not is_better("Corr", math.nan, 0.1)

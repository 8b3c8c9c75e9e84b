"""Regression metrics for sentiment scores in [-3, 3], computed exactly like MMSA's
`MetricsTop.__eval_mosi_regression` so numbers are comparable with published tables.

Definitions (MMSA):
- Has0_acc_2 / Has0_F1_score: binary "label >= 0" vs "< 0" on all samples; F1 is sklearn's
  support-weighted F1.
- Non0_acc_2 / Non0_F1_score: samples whose *label* is exactly 0 are dropped, then "> 0" vs "<= 0".
- Mult_acc_5 / Mult_acc_7: predictions and labels clipped to [-2, 2] / [-3, 3] and rounded with
  numpy's round-half-to-even, then exact-match accuracy.
- MAE: mean absolute error. Corr: Pearson correlation (NaN when either side is constant).

MMSA rounds every value to 4 decimals; we keep full precision by default (averaging over seeds
should not average rounded numbers) and offer `decimals=4` for MMSA-identical output.
"""
from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np

METRIC_NAMES: tuple[str, ...] = (
    "Has0_acc_2",
    "Has0_F1_score",
    "Non0_acc_2",
    "Non0_F1_score",
    "Mult_acc_5",
    "Mult_acc_7",
    "MAE",
    "Corr",
)
#: Metrics where lower is better (everything else: higher is better).
LOWER_IS_BETTER: frozenset[str] = frozenset({"MAE"})


def _as_1d(x: object, what: str) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor without importing torch here
        x = x.detach().cpu().numpy()  # type: ignore[union-attr]
    arr = np.asarray(x, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} contains NaN or infinite values")
    return arr


def _multiclass_acc(pred: np.ndarray, true: np.ndarray) -> float:
    return float(np.mean(np.round(pred) == np.round(true)))


def _accuracy(pred: np.ndarray, true: np.ndarray) -> float:
    return float(np.mean(pred == true)) if len(true) else math.nan


def _weighted_f1(true: np.ndarray, pred: np.ndarray) -> float:
    if len(true) == 0:
        return math.nan
    from sklearn.metrics import f1_score  # sklearn import is slow; only pay for it when used

    with warnings.catch_warnings():
        # a class absent from both sides triggers UndefinedMetricWarning; sklearn then scores 0
        # for that class exactly as MMSA does, so the warning adds nothing
        warnings.simplefilter("ignore")
        return float(f1_score(true, pred, average="weighted"))


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2 or np.std(a) == 0 or np.std(b) == 0:
        return math.nan
    return float(np.corrcoef(a, b)[0, 1])


def regression_metrics(pred: Sequence[float] | np.ndarray, true: Sequence[float] | np.ndarray,
                       decimals: int | None = None) -> dict[str, float]:
    """MMSA's MOSI/MOSEI regression metrics, keyed by METRIC_NAMES. Accepts arrays or tensors."""
    p = _as_1d(pred, "predictions")
    t = _as_1d(true, "labels")
    if p.shape != t.shape:
        raise ValueError(f"predictions ({p.size}) and labels ({t.size}) differ in length")
    if p.size == 0:
        raise ValueError("cannot compute metrics on an empty set")

    non_zero = t != 0
    has0_true, has0_pred = t >= 0, p >= 0
    non0_true, non0_pred = t[non_zero] > 0, p[non_zero] > 0

    out = {
        "Has0_acc_2": _accuracy(has0_pred, has0_true),
        "Has0_F1_score": _weighted_f1(has0_true, has0_pred),
        "Non0_acc_2": _accuracy(non0_pred, non0_true),
        "Non0_F1_score": _weighted_f1(non0_true, non0_pred),
        "Mult_acc_5": _multiclass_acc(np.clip(p, -2.0, 2.0), np.clip(t, -2.0, 2.0)),
        "Mult_acc_7": _multiclass_acc(np.clip(p, -3.0, 3.0), np.clip(t, -3.0, 3.0)),
        "MAE": float(np.mean(np.abs(p - t))),
        "Corr": _pearson(p, t),
    }
    if decimals is not None:
        out = {k: (v if math.isnan(v) else round(v, decimals)) for k, v in out.items()}
    return out


def is_better(metric: str, new: float, old: float | None) -> bool:
    """Model-selection comparison that knows which direction each metric improves in."""
    if old is None or math.isnan(old):
        return not math.isnan(new)
    if math.isnan(new):
        return False
    return new < old if metric in LOWER_IS_BETTER else new > old

"""Calibrated prediction intervals: split-conformal half-widths per set of present modalities.

For each of the 8 coalitions (which modalities a segment actually has: words, speech, a face) the
half-width is the conformal quantile of |target - prediction| over a calibration set the model was
never trained or selected on, where inputs are masked exactly as the engine masks them and the
target of a coalition without evidence is 0 (models.missing.coalition_targets). A segment's
interval is then score +- half-width[its coalition], clipped to the score range: with exchangeable
data, `level` of such segments have their true score inside (marginal coverage; the width does not
adapt to how hard one segment is). The engine fills `SegmentResult.confidence` with it.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from core.shapley import all_coalitions, mask_key

DEFAULT_LEVEL = 0.8


def conformal_halfwidth(residuals: np.ndarray, level: float) -> float:
    """The ceil((n + 1) * level)-th smallest |residual| (split conformal); inf for tiny sets."""
    r = np.sort(np.abs(np.asarray(residuals, dtype=np.float64)))
    k = math.ceil((len(r) + 1) * level)
    return float(r[k - 1]) if 0 < k <= len(r) else float("inf")


def fit_intervals(model: Any, ds: Any, unk_id: int, reencode: Any, level: float = DEFAULT_LEVEL,
                  batch_size: int = 64) -> dict[str, Any]:
    """{"level", "halfwidth": {mask key: h}, "n"} from the calibration dataset `ds`."""
    import torch

    from models.missing import coalition_targets, mask_modalities
    from models.train import predict

    labels = torch.as_tensor(np.asarray(ds.labels), dtype=torch.float32)
    evidence = None if ds.evidence is None else torch.as_tensor(ds.evidence)
    halfwidth = {}
    for keep in all_coalitions():
        def tf(batch, keep=keep):
            return mask_modalities(batch, keep, unk_id=unk_id, reencode=reencode)

        pred = np.clip(predict(model, ds, batch_size=batch_size, transform=tf), -3.0, 3.0)
        mask = torch.tensor([[m in keep for m in ("text", "audio", "visual")]] * len(labels))
        target = coalition_targets(labels, mask, evidence).numpy()
        halfwidth[mask_key(keep)] = conformal_halfwidth(target - pred, level)
    return {"level": level, "halfwidth": halfwidth, "n": int(len(labels))}


def interval_coverage(pred: np.ndarray, target: np.ndarray, halfwidth: float) -> float:
    """Share of samples whose target lies within pred +- halfwidth (clipped to [-3, 3] like the engine)."""
    lo = np.clip(pred - halfwidth, -3.0, 3.0)
    hi = np.clip(pred + halfwidth, -3.0, 3.0)
    return float(np.mean((target >= lo) & (target <= hi)))

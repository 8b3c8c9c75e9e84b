"""Calibrated prediction intervals: split-conformal half-widths per set of present modalities.

For each of the 8 coalitions (which modalities a segment actually has: words, speech, a face) the
half-width is the conformal quantile of |target - prediction| over a calibration set the model was
never trained or selected on, where inputs are masked exactly as the engine masks them and the
target of a coalition without evidence is 0 (models.missing.coalition_targets). A segment's
interval is then score +- half-width[its coalition], clipped to the score range: with exchangeable
data, `level` of such segments have their true score inside (marginal coverage; the width does not
adapt to how hard one segment is). The engine fills `SegmentResult.confidence` with it.

Calibration data: the corpus' calibration split (MOSI train videos held out from training) and,
when given, the MOSI-anchored samples of the dev split. The shipped half-widths use both: six
calibration videos alone gave half-widths that moved with which six were drawn (80 % intervals
covered 0.86 of MOSI dev for the default model, 0.80-0.89 across the models). Coverage is then
reported *cross-fitted*: dev videos are dealt into CROSS_FIT_FOLDS seeded folds and each dev
utterance is checked against the half-width calibrated on the calibration split plus the other
folds, never on its own video (`cross_fit_halfwidth`). Dev also chose each model's best epoch, so
its residuals are slightly smaller than those of new data would be.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from core.shapley import all_coalitions, mask_key

DEFAULT_LEVEL = 0.8
CROSS_FIT_FOLDS = 5
CROSS_FIT_SEED = 20240611 + 23


def video_of(sample_id: str) -> str:
    """The recording a MOSI utterance comes from: "dev/mosi/0/VIDEO_3" and "VIDEO_3" -> "VIDEO"."""
    return str(sample_id).rsplit("/", 1)[-1].rsplit("_", 1)[0]


def deal_folds(groups: list[str], k: int = CROSS_FIT_FOLDS, seed: int = CROSS_FIT_SEED) -> dict[str, int]:
    """Each distinct group (video) to one of `k` folds, in a seeded order, as evenly as possible."""
    distinct = sorted(set(groups))
    order = np.random.default_rng(seed).permutation(len(distinct))
    return {distinct[j]: int(pos % k) for pos, j in enumerate(order)}


def conformal_halfwidth(residuals: np.ndarray, level: float) -> float:
    """The ceil((n + 1) * level)-th smallest |residual| (split conformal); inf for tiny sets."""
    r = np.sort(np.abs(np.asarray(residuals, dtype=np.float64)))
    k = math.ceil((len(r) + 1) * level)
    return float(r[k - 1]) if 0 < k <= len(r) else float("inf")


def coalition_residuals(model: Any, ds: Any, unk_id: int, reencode: Any, batch_size: int = 64) -> dict[str, np.ndarray]:
    """{mask key: target - prediction} over `ds`, inputs masked as the engine masks them."""
    import torch

    from models.missing import coalition_targets, mask_modalities
    from models.train import predict

    labels = torch.as_tensor(np.asarray(ds.labels), dtype=torch.float32)
    evidence = None if ds.evidence is None else torch.as_tensor(ds.evidence)
    out = {}
    for keep in all_coalitions():
        def tf(batch, keep=keep):
            return mask_modalities(batch, keep, unk_id=unk_id, reencode=reencode)

        pred = np.clip(predict(model, ds, batch_size=batch_size, transform=tf), -3.0, 3.0)
        mask = torch.tensor([[m in keep for m in ("text", "audio", "visual")]] * len(labels))
        out[mask_key(keep)] = coalition_targets(labels, mask, evidence).numpy() - pred
    return out


def fit_intervals(model: Any, ds: Any, unk_id: int, reencode: Any, level: float = DEFAULT_LEVEL,
                  batch_size: int = 64, dev_ds: Any = None) -> dict[str, Any]:
    """{"level", "halfwidth": {mask key: h}, "n", ...} from the calibration dataset `ds` and, when
    given, the dev samples `dev_ds` (their ids name their MOSI video), with the cross-fitted
    half-widths that coverage on dev is measured with ("cross_fit")."""
    calib = coalition_residuals(model, ds, unk_id, reencode, batch_size)
    if dev_ds is None:
        halfwidth = {k: conformal_halfwidth(r, level) for k, r in calib.items()}
        return {"level": level, "halfwidth": halfwidth, "n": int(len(ds.labels))}
    dev = coalition_residuals(model, dev_ds, unk_id, reencode, batch_size)
    videos = [video_of(i) for i in dev_ds.ids]
    folds = deal_folds(videos)
    fold = np.array([folds[v] for v in videos])
    halfwidth = {k: conformal_halfwidth(np.concatenate([calib[k], dev[k]]), level) for k in calib}
    per_fold = [{k: conformal_halfwidth(np.concatenate([calib[k], dev[k][fold != f]]), level) for k in calib}
                for f in range(CROSS_FIT_FOLDS)]
    return {"level": level, "halfwidth": halfwidth, "n": int(len(ds.labels) + len(dev_ds.labels)),
            "n_calibration_split": int(len(ds.labels)), "n_dev": int(len(dev_ds.labels)),
            "cross_fit": {"folds": folds, "halfwidth": per_fold}}


def cross_fit_halfwidth(calibration: dict[str, Any], sample_id: str, key: str) -> float:
    """The half-width for a dev sample calibrated without its video (the pooled one for a sample
    of a video the cross-fit never saw, or a calibration without one)."""
    cross = calibration.get("cross_fit")
    fold = None if cross is None else cross["folds"].get(video_of(sample_id))
    return float(calibration["halfwidth"][key] if fold is None else cross["halfwidth"][fold][key])


def cross_fitted_coverage(calibration: dict[str, Any], pred: np.ndarray, target: np.ndarray, ids: list[str],
                          key: str = "T__") -> float:
    """interval_coverage with each sample's `cross_fit_halfwidth` (calibrated without its video)."""
    half = np.array([cross_fit_halfwidth(calibration, i, key) for i in ids])
    return interval_coverage(np.asarray(pred, dtype=np.float64), np.asarray(target, dtype=np.float64), half)


def interval_coverage(pred: np.ndarray, target: np.ndarray, halfwidth: float | np.ndarray) -> float:
    """Share of samples whose target lies within pred +- halfwidth (clipped to [-3, 3] like the
    engine); `halfwidth` one number or one per sample."""
    lo = np.clip(pred - halfwidth, -3.0, 3.0)
    hi = np.clip(pred + halfwidth, -3.0, 3.0)
    return float(np.mean((target >= lo) & (target <= hi)))

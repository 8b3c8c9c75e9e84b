"""Robustness analysis over cached features: mask degradation and random-missing-rate curves."""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from core.shapley import MODALITY_ORDER
from core.types import SegmentFeatures, SegmentResult

if TYPE_CHECKING:
    from analysis.engine import InferenceEngine

FULL_KEY = "TAV"


def degradation_summary(full: np.ndarray, masked: np.ndarray) -> dict[str, float]:
    full = np.asarray(full, dtype=np.float64)
    masked = np.asarray(masked, dtype=np.float64)
    if full.size == 0:
        return {"mae": float("nan"), "corr": float("nan"), "sign_agreement": float("nan")}
    corr = float("nan")
    if full.size > 1 and np.std(full) > 1e-12 and np.std(masked) > 1e-12:
        corr = float(np.corrcoef(full, masked)[0, 1])
    return {
        "mae": float(np.mean(np.abs(full - masked))),
        "corr": corr,
        # A zero score counts as non-negative, as in MMSA's Has0 accuracy.
        "sign_agreement": float(np.mean((full >= 0) == (masked >= 0))),
    }


def mask_degradation_table(mask_scores: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    full = mask_scores[FULL_KEY]
    return {k: degradation_summary(full, v) for k, v in sorted(mask_scores.items(), reverse=True)}


def random_missing_curve(
    engine: "InferenceEngine",
    features: list[SegmentFeatures],
    rates: Sequence[float] = tuple(np.round(np.arange(0.0, 1.0, 0.1), 2)),
    seeds: Sequence[int] = (1, 2, 3),
) -> list[dict[str, float]]:
    """LNLN protocol on one recording: the same missing rate for all modalities, seeded."""
    import torch

    from models.data import collate
    from models.missing import apply_missing

    if not features:
        return []
    full = engine.score(features)
    batch = collate(features, engine.spec).to(engine.device)
    enc = engine.text_encoder() if engine.spec.text.extractor == "minilm-l6" else None
    curve = []
    for rate in rates:
        per_seed = []
        for seed in seeds:
            gen = torch.Generator().manual_seed(int(seed))
            with torch.no_grad():
                missing = apply_missing(
                    batch, float(rate), gen, unk_id=enc.unk_id if enc else 0,
                    reencode=enc.encode_ids if enc else None,
                )
                pred = engine.model(missing).score.float().cpu().numpy().reshape(-1)
            per_seed.append(degradation_summary(full, np.clip(pred, -3, 3)))
        row = {"rate": float(rate)}
        for key in ("mae", "corr", "sign_agreement"):
            vals = np.array([s[key] for s in per_seed], dtype=np.float64)
            row[key] = float(np.nanmean(vals)) if np.any(np.isfinite(vals)) else float("nan")
            row[f"{key}_std"] = float(np.nanstd(vals)) if np.any(np.isfinite(vals)) else float("nan")
        curve.append(row)
    return curve


def recording_contributions(results: list[SegmentResult]) -> dict[str, float]:
    """Duration-weighted mean Shapley contribution per modality for the whole recording."""
    if not results:
        return {m: 0.0 for m in MODALITY_ORDER}
    w = np.array([max(r.end - r.start, 1e-3) for r in results])
    return {
        m: float(np.sum(w * np.array([r.contributions.get(m, 0.0) for r in results])) / np.sum(w))
        for m in MODALITY_ORDER
    }


def recording_score(results: list[SegmentResult], mask: str | None = None) -> float:
    """Duration-weighted mean score; `mask` ("_A_", "__V", ...): the score of that coalition."""
    if not results:
        return float("nan")
    w = np.array([max(r.end - r.start, 1e-3) for r in results])
    scores = np.array([r.score if mask is None else r.mask_scores[mask] for r in results])
    return float(np.sum(w * scores) / np.sum(w))

"""Cut one segment's rows out of a whole-recording track (audio or visual) and bound its length."""
from __future__ import annotations

import numpy as np


def slice_track(
    times: np.ndarray,
    features: np.ndarray,
    start: float,
    end: float,
    max_len: int,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Rows with start <= time < end, at most `max_len` of them.

    - More than `max_len` rows: split them into `max_len` contiguous, near-equal bins (sizes differ by
      at most one) and average each bin. Only valid rows (mask True) are averaged, so no-face zero
      rows do not dilute real ones; a bin with no valid row becomes a zero row with mask False.
    - No rows (or an empty/inverted window): one zero row with mask False, so a model sees the
      modality as missing instead of receiving a zero-length tensor.

    Returns float32 features (T, D) and a bool mask (T,), 1 <= T <= max_len.
    """
    times = np.asarray(times, dtype=np.float64).reshape(-1)
    features = np.asarray(features)
    if features.ndim != 2 or features.shape[0] != times.shape[0]:
        raise ValueError(f"features {features.shape} do not match times {times.shape}")
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    if mask is None:
        mask = np.ones(len(times), dtype=bool)
    else:
        mask = np.asarray(mask, dtype=bool).reshape(-1)
        if mask.shape != times.shape:
            raise ValueError(f"mask {mask.shape} does not match times {times.shape}")

    dim = features.shape[1]
    keep = (times >= start) & (times < end)
    rows = features[keep].astype(np.float32)
    row_mask = mask[keep]
    n = len(rows)
    if n == 0:
        return np.zeros((1, dim), dtype=np.float32), np.zeros(1, dtype=bool)
    rows[~row_mask] = 0.0  # masked rows carry no information, whatever the caller stored there
    if n <= max_len:
        return rows, row_mask.copy()

    # Row i goes to bin floor(i * max_len / n); with n > max_len every bin gets >= 1 row.
    bin_starts = np.searchsorted((np.arange(n) * max_len) // n, np.arange(max_len), side="left")
    weights = row_mask.astype(np.float64)
    sums = np.add.reduceat(rows.astype(np.float64) * weights[:, None], bin_starts, axis=0)
    counts = np.add.reduceat(weights, bin_starts)
    pooled = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1.0)[:, None], 0.0)
    return pooled.astype(np.float32), counts > 0

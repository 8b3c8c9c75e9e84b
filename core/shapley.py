"""Exact Shapley values over modality subsets.

With three modalities there are only 8 coalitions, so we evaluate the model on every mask and compute
the exact values (no sampling). The value of a coalition is the model's score when only those
modalities are present; the empty coalition is the all-masked baseline, so
    score(full) = baseline + sum(contributions)      (efficiency)
holds exactly and the UI can show contributions as a stacked decomposition of the score.
"""
from __future__ import annotations

from itertools import combinations
from math import factorial
from typing import Mapping, Sequence

import numpy as np

MODALITY_ORDER = ("text", "audio", "visual")


def mask_key(keep: frozenset[str] | set[str], players: Sequence[str] = MODALITY_ORDER) -> str:
    """'TAV' for all present, '_' marks a masked modality: 'T_V' = audio masked."""
    return "".join(p[0].upper() if p in keep else "_" for p in players)


def keep_from_key(key: str, players: Sequence[str] = MODALITY_ORDER) -> frozenset[str]:
    if len(key) != len(players):
        raise ValueError(f"mask key {key!r} must have {len(players)} characters")
    return frozenset(p for p, c in zip(players, key) if c != "_")


def all_coalitions(players: Sequence[str] = MODALITY_ORDER) -> list[frozenset[str]]:
    return [frozenset(c) for r in range(len(players) + 1) for c in combinations(players, r)]


def shapley_values(
    values: Mapping[frozenset[str], np.ndarray | float], players: Sequence[str] = MODALITY_ORDER
) -> dict[str, np.ndarray]:
    """`values[S]` is the (vectorised over segments) score with only S present."""
    n = len(players)
    out: dict[str, np.ndarray] = {}
    for p in players:
        others = [q for q in players if q != p]
        total = 0.0
        for r in range(n):
            weight = factorial(r) * factorial(n - r - 1) / factorial(n)
            for c in combinations(others, r):
                s = frozenset(c)
                total = total + weight * (np.asarray(values[s | {p}]) - np.asarray(values[s]))
        out[p] = np.asarray(total, dtype=np.float64)
    return out

"""Charts of a report, drawn with matplotlib's object API (no pyplot, no global backend: safe on a
worker thread next to a Qt GUI) and returned as `data:` URIs for `<img>` tags, so the page needs no
other file. Vector SVG (text as paths: no font files) unless a chart has so many marks that the SVG
would weigh megabytes; then a 150 dpi PNG, still sharp on paper.

Same input, same bytes: SVG ids are salted with a constant and the date is left out.
"""
from __future__ import annotations

import base64
import io
import math
from typing import Sequence

import numpy as np

from analysis.report.markup import fmt
from core.uncertainty import PredictionInterval

MODALITY_COLORS = {"text": "#4e79a7", "audio": "#f28e2b", "visual": "#9c6ade"}
POSITIVE, NEGATIVE, BAND = "#2e9d5b", "#d1495b", "#9bb7d4"
SCORE_RANGE = (-3.0, 3.0)
MAX_VECTOR_MARKS = 4000  # above this many bars/segments a chart is embedded as PNG
WIDTH_IN = 8.0
_RC = {"svg.hashsalt": "msa-studio-report", "svg.fonttype": "path", "font.size": 9.5,
       "axes.titlesize": 10.5, "axes.spines.top": False, "axes.spines.right": False}


def _figure(height_in: float, ncols: int = 1, width_in: float = WIDTH_IN):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=100, layout="constrained")
    axes = fig.subplots(1, ncols)
    return fig, axes


def _data_uri(fig, marks: int) -> str:
    import matplotlib

    buf = io.BytesIO()
    with matplotlib.rc_context(_RC):
        if marks <= MAX_VECTOR_MARKS:
            fig.savefig(buf, format="svg", metadata={"Date": None})
            mime = "image/svg+xml"
        else:
            fig.savefig(buf, format="png", dpi=150, metadata={"Software": None})
            mime = "image/png"
    return f"data:{mime};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


def _rects(ax, x0, x1, y0, y1, color: str, alpha: float = 1.0, label: str | None = None) -> int:
    """Rectangles [x0, x1] x [y0, y1] as one PolyCollection: thousands of `ax.bar` patches cost
    seconds each to lay out and draw; one collection costs milliseconds. Empty ones are skipped."""
    from matplotlib.collections import PolyCollection

    x0, x1, y0, y1 = (np.asarray(v, dtype=np.float64) for v in (x0, x1, y0, y1))
    keep = np.isfinite(y0) & np.isfinite(y1) & (np.abs(y1 - y0) > 1e-12)
    x0, x1, y0, y1 = x0[keep], x1[keep], y0[keep], y1[keep]
    verts = np.stack([np.stack([x0, y0], 1), np.stack([x0, y1], 1), np.stack([x1, y1], 1), np.stack([x1, y0], 1)], 1)
    ax.add_collection(PolyCollection(verts, facecolors=color, edgecolors="none", alpha=alpha, label=label))
    return int(keep.sum())


def _time_axis(ax, end: float) -> None:
    ax.set_xlim(0.0, max(end, 1e-3))
    ax.set_xlabel("time (s)")
    ax.grid(True, axis="y", color="#e3e3e3", linewidth=0.6)


def timeline_chart(starts: Sequence[float], ends: Sequence[float], scores: Sequence[float],
                   intervals: Sequence[PredictionInterval | None], duration: float) -> str:
    """Score per segment as a horizontal stroke over its time span (green >= 0, red < 0), with the
    prediction interval as a shaded band where the segment has one."""
    import matplotlib

    from matplotlib.collections import LineCollection

    with matplotlib.rc_context(_RC):
        fig, ax = _figure(2.9)
        ax.axhline(0.0, color="#999999", linewidth=0.8)
        banded = [(s, e, iv) for s, e, iv in zip(starts, ends, intervals) if iv is not None]
        if banded:
            _rects(ax, [s for s, _, _ in banded], [max(e, s + 1e-3) for s, e, _ in banded],
                   [iv.low for _, _, iv in banded], [iv.high for _, _, iv in banded], BAND, alpha=0.55,
                   label=f"{banded[0][2].percent} prediction interval")
        lines = [[(s, v), (e, v)] for s, e, v in zip(starts, ends, scores)]
        colors = [POSITIVE if v >= 0 else NEGATIVE for v in scores]
        ax.add_collection(LineCollection(lines, colors=colors, linewidths=2.4, capstyle="butt"))
        if len(starts) > 1:  # thin connectors so the eye can follow the sequence
            mids = [(s + e) / 2 for s, e in zip(starts, ends)]
            ax.plot(mids, scores, color="#555555", linewidth=0.6, alpha=0.6)
        ax.set_ylim(*SCORE_RANGE)
        ax.set_ylabel("sentiment (-3 … +3)")
        _time_axis(ax, max([duration, *ends]) if len(ends) else duration)
        if banded:
            ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), frameon=False)
        return _data_uri(fig, len(lines) + len(banded))


def segment_contributions_chart(starts: Sequence[float], ends: Sequence[float],
                                contributions: np.ndarray, modalities: Sequence[str],
                                duration: float) -> str:
    """Shapley contributions per segment as stacked bars over the segment's time span: positive parts
    stack upwards, negative parts downwards, so each bar's net height is score − baseline."""
    import matplotlib
    from matplotlib.patches import Patch

    with matplotlib.rc_context(_RC):
        fig, ax = _figure(2.9)
        x0 = np.asarray(starts, dtype=np.float64)
        x1 = np.maximum(np.asarray(ends, dtype=np.float64), x0 + 1e-3)
        pos_bottom = np.zeros(len(starts))
        neg_bottom = np.zeros(len(starts))
        marks, handles = 0, []
        for j, m in enumerate(modalities):
            values = np.nan_to_num(contributions[:, j]) if len(starts) else np.zeros(0)
            pos, neg = np.clip(values, 0, None), np.clip(values, None, 0)
            color = MODALITY_COLORS.get(m, "#777777")
            marks += _rects(ax, x0, x1, pos_bottom, pos_bottom + pos, color)
            marks += _rects(ax, x0, x1, neg_bottom, neg_bottom + neg, color)
            handles.append(Patch(facecolor=color, label=m))
            pos_bottom += pos
            neg_bottom += neg
        ax.axhline(0.0, color="#666666", linewidth=0.8)
        ax.set_ylabel("Shapley contribution")
        top = max(0.25, float(np.nanmax(pos_bottom, initial=0.0)) * 1.15)
        bottom = min(-0.25, float(np.nanmin(neg_bottom, initial=0.0)) * 1.15)
        ax.set_ylim(bottom, top)
        _time_axis(ax, max([duration, *ends]) if len(ends) else duration)
        ax.legend(handles=handles, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=len(modalities), frameon=False)
        return _data_uri(fig, marks)


def recording_contributions_chart(values: dict[str, float]) -> str:
    """One horizontal bar per modality with its value written next to it."""
    import matplotlib

    with matplotlib.rc_context(_RC):
        fig, ax = _figure(1.7, width_in=5.6)
        names = list(values)
        nums = [values[m] if math.isfinite(values[m]) else 0.0 for m in names]
        ax.barh(names, nums, color=[MODALITY_COLORS.get(m, "#777777") for m in names])
        ax.axvline(0.0, color="#666666", linewidth=0.8)
        lim = max(0.25, max((abs(v) for v in nums), default=0.0)) * 1.35
        ax.set_xlim(-lim, lim)
        for y, v in enumerate(nums):
            ax.annotate(fmt(v, 3, signed=True), (v, y), xytext=(4 if v >= 0 else -4, 0), textcoords="offset points",
                        ha="left" if v >= 0 else "right", va="center")
        ax.invert_yaxis()
        ax.set_xlabel("duration-weighted mean Shapley contribution")
        return _data_uri(fig, len(names))


def missing_curve_chart(rows: Sequence[dict[str, float]]) -> str:
    """MAE and sign agreement against the full prediction as the missing rate grows (± std over seeds)."""
    import matplotlib

    with matplotlib.rc_context(_RC):
        fig, (ax_mae, ax_sign) = _figure(2.6, ncols=2)
        rates = [float(r["rate"]) for r in rows]

        def series(key: str) -> tuple[list[float], list[float]]:
            vals = [float(r.get(key, float("nan"))) for r in rows]
            stds = [float(r.get(f"{key}_std", 0.0)) for r in rows]
            return vals, [s if math.isfinite(s) else 0.0 for s in stds]

        mae, mae_std = series("mae")
        ax_mae.errorbar(rates, mae, yerr=mae_std, marker="o", markersize=3.5, capsize=2.5, color="#4e79a7")
        ax_mae.set_title("MAE vs full prediction (lower = more robust)")
        ax_mae.set_ylim(bottom=0)
        sign, sign_std = series("sign_agreement")
        ax_sign.errorbar(rates, [v * 100 for v in sign], yerr=[s * 100 for s in sign_std], marker="o",
                         markersize=3.5, capsize=2.5, color="#2e9d5b")
        ax_sign.set_title("sign agreement with full prediction (%)")
        ax_sign.set_ylim(0, 105)
        for ax in (ax_mae, ax_sign):
            ax.set_xlabel("missing rate r")
            ax.grid(True, color="#e3e3e3", linewidth=0.6)
        return _data_uri(fig, 4 * len(rows))


__all__ = ["MODALITY_COLORS", "missing_curve_chart", "recording_contributions_chart",
           "segment_contributions_chart", "timeline_chart"]

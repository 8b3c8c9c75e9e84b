"""Static report plots (matplotlib with the Agg backend: no display, safe in worker processes)."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

from core.atomic_write import atomic_open

DEFAULT_PLOT_METRICS: tuple[str, ...] = ("Has0_acc_2", "Non0_F1_score", "Mult_acc_7", "MAE", "Corr")


def plot_degradation(results: Sequence[dict[str, Any]], path: str | os.PathLike[str],
                     metrics: Sequence[str] = DEFAULT_PLOT_METRICS) -> Path:
    """One panel per metric: mean over seeds vs missing rate with a ±std band, one line per result
    (pass several evaluate_robustness results to compare models)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure  # Figure directly: no pyplot global state across threads

    fig = Figure(figsize=(3.2 * len(metrics), 3.0), constrained_layout=True)
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics):
        for res in results:
            rates = [r["rate"] for r in res["per_rate"]]
            mean = [_num(r["mean"].get(metric)) for r in res["per_rate"]]
            std = [0.0 if math.isnan(s) else s for s in (_num(r["std"].get(metric)) for r in res["per_rate"])]
            line = ax.plot(rates, mean, marker="o", ms=3, label=str(res.get("model", "")))[0]
            lo = [m - s for m, s in zip(mean, std)]
            hi = [m + s for m, s in zip(mean, std)]
            ax.fill_between(rates, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
        ax.set_title(metric)
        ax.set_xlabel("missing rate")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    out = Path(path)
    with atomic_open(out, "wb", make_parents=True) as fh:
        fig.savefig(fh, dpi=110, format=out.suffix.lstrip(".").lower() or "png")
    return out


def _num(v: Any) -> float:
    """None (NaN written as JSON null) -> NaN, which matplotlib leaves as a gap."""
    return math.nan if v is None else float(v)

"""Robustness evaluation under LNLN's protocol: metrics at missing rates 0.0 ... 0.9, each averaged
over several seeds (the missing pattern depends on the seed), plus the average over rates that the
LNLN paper reports as its headline number."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from core.atomic_write import atomic_write_text
from core.errors import MSAError
from core.progress import RunContext
from models.base import MSAModel
from models.data import MSADataset, token_id
from models.metrics import METRIC_NAMES, regression_metrics
from models.missing import TextReencoder, apply_missing
from models.train import predict

DEFAULT_SEEDS: tuple[int, ...] = (1111, 1112, 1113)
REPORT_STEM = "robustness"  # write_report's <stem>.json / .md / .png


def default_rates() -> list[float]:
    return [round(float(r), 6) for r in np.arange(0.0, 1.0, 0.1)]


def parse_rates(text: str) -> list[float]:
    """'0:0.9:0.1' (inclusive range) or '0,0.3,0.5' -> rates in [0, 1]."""
    try:
        if ":" in text:
            start, stop, step = (float(x) for x in text.split(":"))
            if step <= 0:
                raise ValueError
            n = int(math.floor((stop - start) / step + 1e-9)) + 1
            rates = [round(start + i * step, 6) for i in range(max(0, n))]
        else:
            rates = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise MSAError(f"cannot parse missing rates {text!r}; use START:STOP:STEP or a comma list") from None
    if not rates or any(not 0.0 <= r <= 1.0 for r in rates):
        raise MSAError(f"missing rates must be in [0, 1]: {text!r}")
    return rates


def evaluate_robustness(
    model: MSAModel,
    ds: MSADataset,
    rates: Iterable[float] | None = None,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    *,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    unk_id: int | None = None,
    reencode: TextReencoder | None = None,
    ctx: RunContext | None = None,
    model_name: str | None = None,
) -> dict[str, Any]:
    """Evaluate `model` on `ds` with simulated missing data.

    Returns {"model", "n_samples", "rates", "seeds", "text_reencoded",
             "per_rate": [{"rate", "mean": {metric: v}, "std": {...}, "per_seed": {seed: {...}}}],
             "average": {metric: mean over rates of the per-rate means}}.
    std is the population std over seeds (0 at rate 0, where every seed gives the same input)."""
    rates = default_rates() if rates is None else [round(float(r), 6) for r in rates]
    seeds = [int(s) for s in seeds]
    if not rates or not seeds:
        raise MSAError("need at least one missing rate and one seed")
    if len(ds) == 0:
        raise MSAError("the evaluation set is empty")
    spec = getattr(ds, "spec", None) or model.spec
    model.spec.require_compatible(spec, what="model")
    unk = token_id(spec, "unk_id") if unk_id is None else int(unk_id)
    ctx = ctx or RunContext()
    labels = np.asarray(ds.labels, dtype=np.float64)

    per_rate = []
    total, done = len(rates) * len(seeds), 0
    for rate in rates:
        by_seed: dict[str, dict[str, float]] = {}
        for seed in seeds:
            gen = torch.Generator().manual_seed(seed)

            def corrupt(batch, rate=rate, gen=gen):  # bind loop values
                return apply_missing(batch, rate, gen, unk, reencode)

            preds = predict(model, ds, batch_size=batch_size, device=device,
                            transform=corrupt if rate > 0 else None, ctx=ctx)
            by_seed[str(seed)] = regression_metrics(preds, labels)
            done += 1
            ctx.report("evaluate", done / total, f"rate {rate:.1f} seed {seed}")
        mean = {m: float(np.mean([by_seed[s][m] for s in by_seed])) for m in METRIC_NAMES}
        std = {m: float(np.std([by_seed[s][m] for s in by_seed])) for m in METRIC_NAMES}
        per_rate.append({"rate": rate, "mean": mean, "std": std, "per_seed": by_seed})

    average = {m: float(np.mean([r["mean"][m] for r in per_rate])) for m in METRIC_NAMES}
    return {
        "model": model_name or getattr(model, "name", type(model).__name__),
        "n_samples": len(ds),
        "rates": rates,
        "seeds": seeds,
        "text_reencoded": reencode is not None,
        "per_rate": per_rate,
        "average": average,
    }


# ------------------------------------------------------------------------------------- report

_TABLE_METRICS = ("Has0_acc_2", "Has0_F1_score", "Non0_acc_2", "Non0_F1_score", "Mult_acc_5", "Mult_acc_7", "MAE", "Corr")


def _cell(mean: float, std: float | None) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "n/a"
    s = f"{mean:.4f}"
    return s if not std else f"{s} ± {std:.4f}"


def format_table(results: dict[str, Any]) -> str:
    """Markdown table: one row per missing rate plus the average row."""
    head = "| rate | " + " | ".join(_TABLE_METRICS) + " |"
    sep = "|---" * (len(_TABLE_METRICS) + 1) + "|"
    rows = [head, sep]
    for r in results["per_rate"]:
        rows.append(f"| {r['rate']:.1f} | " + " | ".join(_cell(r["mean"][m], r["std"][m]) for m in _TABLE_METRICS) + " |")
    avg = results["average"]
    rows.append("| avg | " + " | ".join(_cell(avg[m], None) for m in _TABLE_METRICS) + " |")
    return "\n".join(rows)


def _json_clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _json_clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_clean(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_report(results: dict[str, Any], out_dir: str | os.PathLike[str], *, echo: bool = False,
                 stem: str = REPORT_STEM) -> dict[str, Path]:
    """Write <stem>.json, <stem>.md and <stem>.png into out_dir; with `echo`, print the table.
    Returns {"json": path, "markdown": path, "plot": path}."""
    from models.plots import plot_degradation

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = format_table(results)
    paths = {"json": out / f"{stem}.json", "markdown": out / f"{stem}.md", "plot": out / f"{stem}.png"}
    atomic_write_text(paths["json"], json.dumps(_json_clean(results), indent=2, allow_nan=False) + "\n")
    title = (f"# Robustness of {results['model']} under missing data\n\n"
             f"{results['n_samples']} samples, seeds {', '.join(map(str, results['seeds']))}; "
             f"mean ± std over seeds; text {'re-encoded' if results.get('text_reencoded') else 'not re-encoded (dropped tokens zeroed)'}.\n\n")
    atomic_write_text(paths["markdown"], title + table + "\n")
    plot_degradation([results], paths["plot"])
    if echo:
        print(table)
    return paths

"""Refit the 80 % intervals of trained checkpoints, weights untouched.

    python -m models.recipes.recalibrate --data ../shared/data --work WORK --out assets [--models emt-dlfr]

The same step `train_all` runs after training each model (`train_all.calibrate`: the corpus'
calibration split plus the MOSI-anchored dev samples, coverage cross-fitted over dev videos; see
models/calibration.py), for checkpoints trained before the calibration changed: it rewrites each
OUT/checkpoints/NAME sidecar's "calibration" and MOSI dev "interval_coverage", and the same fields of
OUT/model_cards/reports/NAME.json. WORK is the recipe's work folder (the composed corpus).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from models.recipes.common import data_dir, limit_threads, log, read_json, write_json


def recalibrate(data: Path, work: Path, out: Path, names: list[str]) -> dict[str, float]:
    """{model: cross-fitted MOSI dev coverage} after rewriting each model's intervals."""
    import torch

    from models.checkpoint import load_checkpoint
    from models.recipes.compose import ComposeConfig, _config_from_info
    from models.recipes.train_all import calibrate, calibration_inputs, save_shipped_checkpoint
    from models.train import predict

    calib_ds, dev_mosi_ds, text_ds, encoder, reencode = calibration_inputs(
        data, work, ComposeConfig(**_config_from_info(work)))
    coverage = {}
    for name in names:
        path = out / "checkpoints" / f"{name}.safetensors"
        model, meta = load_checkpoint(path)
        with torch.no_grad():
            text_pred = predict(model, text_ds, batch_size=64)
            calibration, coverage[name] = calibrate(model, calib_ds, dev_mosi_ds, text_ds, text_pred, encoder.unk_id,
                                                    reencode)
        metrics = dict(meta.metrics or {})
        metrics["calibration"] = calibration
        metrics["mosi_dev_text_only"] = {**metrics.get("mosi_dev_text_only", {}), "interval_coverage": coverage[name]}
        save_shipped_checkpoint(path, model, model_name=meta.model_name, config=meta.config, spec=meta.spec,
                                training=meta.training, metrics=metrics)
        report_path = out / "model_cards" / "reports" / f"{name}.json"
        if report_path.is_file():
            rep = read_json(report_path)
            rep["calibration"] = calibration
            rep["mosi_dev_text_only"]["interval_coverage"] = coverage[name]
            write_json(report_path, rep)
        log(f"recalibrate: {name}: T__ half-width {calibration['halfwidth']['T__']:.3f} from {calibration['n']} "
            f"samples; cross-fitted MOSI dev coverage {coverage[name]:.3f}")
    return coverage


def main() -> None:
    from models.registry import model_names

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--work", required=True, help="the recipe's work folder (composed corpus)")
    ap.add_argument("--out", default="assets", help="folder with checkpoints/ and model_cards/reports/")
    ap.add_argument("--models", nargs="*", default=None, help="default: every registered model")
    a = ap.parse_args()
    limit_threads(2)
    recalibrate(data_dir(a.data), Path(a.work).resolve(), Path(a.out), a.models or model_names())


if __name__ == "__main__":
    main()

"""`msa-studio train`: train a zoo model on a feature cache (or an MMSA pickle)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

NAME = "train"
HELP = "train a model on extracted features (LNLN missing-data regime by default)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model name (see `msa-studio models`)")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", metavar="FEATURES", help="feature cache made by `msa-studio extract-dataset`")
    src.add_argument("--mmsa-pkl", metavar="PATH",
                     help="MMSA aligned_50.pkl/unaligned_50.pkl instead of --data (read with a restricted "
                          "unpickler: only the containers and numpy arrays of the format load)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder for the checkpoint and history")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (default 1e-3)")
    # checked by models.train.check_training_options (LR_SCHEDULES) with the other options, before
    # any data is loaded; a `choices` list here would be a second copy of that tuple
    parser.add_argument("--lr-schedule", default="constant",
                        help="constant, or cosine: the rate falls to 0 over the planned epochs (default constant)")
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=1111)
    parser.add_argument("--missing", choices=("lnln", "none"), default="lnln",
                        help="training regime: lnln = per-sample random missing rates, half the samples complete "
                             "(default); none = complete data. Dropped words become [UNK] and are re-encoded "
                             "with MiniLM; for MMSA BERT features their features are zeroed instead")
    parser.add_argument("--patience", type=int, default=8, help="early-stopping patience in epochs")
    parser.add_argument("--select", default="MAE", help="validation metric for model selection (default MAE)")
    parser.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                        help="model config override (VALUE parsed as JSON when possible); repeatable")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def parse_overrides(items: list[str]) -> dict[str, Any]:
    from core.errors import MSAError

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise MSAError(f"--config expects KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


def output_files(model: str) -> list[str]:
    """What `train` writes into --out (models.train saves the checkpoint pair)."""
    return [f"{model}.safetensors", f"{model}.json", f"{model}.history.json"]


def check_before_work(args: argparse.Namespace) -> dict[str, Any]:
    """Options, output folder and model config, checked before any data is loaded (minutes for a big
    cache or pickle) or any epoch runs. Returns the parsed --config overrides."""
    from core.output_paths import check_output_folder
    from models.registry import MODELS, model_names
    from models.train import build_configured_model, check_training_options

    model_names()  # imports the zoo
    MODELS.get(args.model)  # unknown model -> one-line error before loading any data
    check_training_options(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                           weight_decay=args.weight_decay, patience=args.patience, select_metric=args.select,
                           missing=args.missing, lr_schedule=args.lr_schedule)
    config = parse_overrides(args.config)
    check_output_folder("--out", args.out, output_files(args.model), inputs=[args.mmsa_pkl])
    if args.data:
        from models.data import DatasetCache

        build_configured_model(args.model, DatasetCache(args.data).spec, config)  # the spec alone is cheap
    return config


def run(args: argparse.Namespace) -> int:
    from cli.progress_bar import StageProgress
    from core.atomic_write import atomic_write_text
    from core.devices import resolve_device
    from core.errors import MSAError
    from core.progress import RunContext
    from models.data import holdout_split
    from models.dataset_sources import load_splits
    from models.missing import default_text_reencoder
    from models.train import train_model

    config = check_before_work(args)
    device = resolve_device(args.device)
    spec, splits = load_splits(args.data, args.mmsa_pkl)

    if "train" not in splits:
        raise MSAError("the data has no training samples (split 'train')")
    train_ds = splits["train"]
    valid_ds = splits.get("valid")
    if valid_ds is None:
        print("warning: no validation split; holding out 10% of the training samples", file=sys.stderr)
        train_ds, valid_ds = holdout_split(train_ds, 0.1, args.seed)

    reencode = None
    if args.missing == "lnln":
        reencode, reason = default_text_reencoder(spec.text.extractor, device)
        if reason:
            print(f"warning: {reason}", file=sys.stderr)

    out = Path(args.out)
    bar = StageProgress(enabled=not args.quiet)
    try:
        model, history, best = train_model(
            args.model, train_ds, valid_ds, spec, epochs=args.epochs, batch_size=args.batch_size,
            lr=args.lr, weight_decay=args.weight_decay, seed=args.seed, missing=args.missing,
            reencode=reencode, device=device, ctx=RunContext(progress=bar), out_dir=out, config=config,
            patience=args.patience, select_metric=args.select, lr_schedule=args.lr_schedule,
            data_info={"source": str(args.data or args.mmsa_pkl), "spec": spec.name,
                       "spec_fingerprint": spec.fingerprint()},
        )
    finally:
        bar.close()
    atomic_write_text(out / f"{args.model}.history.json", json.dumps(history.to_dict(), indent=2, default=str) + "\n",
                      make_parents=True)
    print(f"best epoch {history.best_epoch}/{len(history.epochs)}: "
          + ", ".join(f"{k} {v:.4f}" for k, v in best.items()), file=sys.stderr)
    print(history.checkpoint)
    return 0

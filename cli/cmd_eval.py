"""`msa-studio eval`: robustness of a checkpoint under LNLN missing rates."""
from __future__ import annotations

import argparse
import sys

NAME = "eval"
HELP = "evaluate a checkpoint at several missing-data rates (LNLN protocol) and write a report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="model name; only checked against the checkpoint (optional)")
    parser.add_argument("--checkpoint", required=True, metavar="CKPT", help="checkpoint .safetensors (with its .json)")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", metavar="FEATURES", help="feature cache made by `msa-studio extract-dataset`")
    src.add_argument("--mmsa-pkl", metavar="PATH",
                     help="MMSA pickle instead of --data (read with a restricted unpickler: only the "
                          "containers and numpy arrays of the format load, anything else is refused)")
    parser.add_argument("--split", default="test", choices=("train", "valid", "test"),
                        help="which split to evaluate (default test)")
    parser.add_argument("--missing-rates", default="0:0.9:0.1",
                        help="START:STOP:STEP (inclusive) or comma list; default 0:0.9:0.1")
    parser.add_argument("--seeds", default="1111,1112,1113", help="comma-separated seeds (default 1111,1112,1113)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for robustness.{json,md,png}")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from cli.progress_bar import StageProgress
    from core.devices import resolve_device
    from core.errors import MSAError
    from core.output_paths import check_output_folder
    from core.progress import RunContext
    from models.checkpoint import checkpoint_paths, load_checkpoint, read_checkpoint_meta
    from models.dataset_sources import load_splits
    from models.evaluate import REPORT_STEM, evaluate_robustness, parse_rates, write_report
    from models.missing import default_text_reencoder

    rates = parse_rates(args.missing_rates)
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        raise MSAError(f"--seeds must be comma-separated integers, got {args.seeds!r}") from None
    if not seeds:
        raise MSAError("--seeds is empty")
    if args.batch_size < 1:
        raise MSAError(f"the batch size must be >= 1, got {args.batch_size}")
    check_output_folder("--out", args.out, [f"{REPORT_STEM}.{ext}" for ext in ("json", "md", "png")],
                        inputs=[*checkpoint_paths(args.checkpoint), args.mmsa_pkl])
    meta = read_checkpoint_meta(args.checkpoint)
    if args.model and args.model.lower() != meta.model_name.lower():
        raise MSAError(f"--model {args.model} but the checkpoint holds {meta.model_name}")
    device = resolve_device(args.device)
    spec, splits = load_splits(args.data, args.mmsa_pkl)
    if args.split not in splits:
        raise MSAError(f"the data has no {args.split!r} samples (available: {', '.join(splits) or 'none'})")
    model, meta = load_checkpoint(args.checkpoint, device=device, expected_spec=spec)
    reencode = None
    if any(r > 0 for r in rates):
        reencode, reason = default_text_reencoder(spec.text.extractor, device)
        if reason:
            print(f"warning: {reason}", file=sys.stderr)

    bar = StageProgress(enabled=not args.quiet)
    try:
        results = evaluate_robustness(model, splits[args.split], rates, seeds, batch_size=args.batch_size,
                                      device=device, reencode=reencode, ctx=RunContext(progress=bar),
                                      model_name=meta.model_name)
    finally:
        bar.close()
    results["checkpoint"] = str(args.checkpoint)
    results["split"] = args.split
    paths = write_report(results, args.out, echo=True)
    print(f"report: {paths['markdown']}  plot: {paths['plot']}", file=sys.stderr)
    return 0

"""`msa-studio extract-dataset`: build a feature cache from clips + an MMSA-FET-style label.csv."""
from __future__ import annotations

import argparse
import os
import sys

NAME = "extract-dataset"
HELP = "extract features for a labelled clip folder (resumable, parallel) into a feature cache"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("raw_dir", metavar="DIR",
                        help="clip folder: DIR/<video_id>/<clip_id>.<ext> (or DIR/<id>.<ext>)")
    parser.add_argument("--labels", required=True, metavar="CSV",
                        help="label.csv with video_id,clip_id (or id),text,label,mode; CSV text replaces ASR")
    parser.add_argument("--out", required=True, metavar="FEATURES", help="feature cache folder (created or resumed)")
    parser.add_argument("--workers", type=int, default=max(1, min(4, (os.cpu_count() or 2) // 2)),
                        help="parallel worker processes (each loads its own models; default: half the cores, max 4)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda for the extractors (default cpu)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from cli.progress_bar import StageProgress
    from core.devices import resolve_device
    from core.errors import MSAError
    from core.feature_spec import default_spec
    from core.output_paths import check_output_folder
    from core.progress import RunContext
    from models.extract_dataset import extract_dataset, make_default_factory

    if args.workers < 1:
        raise MSAError(f"--workers must be at least 1, got {args.workers}")
    check_output_folder("--out", args.out, ["spec.json", "index.jsonl", "failed.jsonl"],
                        inputs=[args.labels])
    spec = default_spec()
    factory = make_default_factory(spec, resolve_device(args.device))
    bar = StageProgress(enabled=not args.quiet)
    try:
        summary = extract_dataset(args.raw_dir, args.labels, args.out, factory, spec=spec,
                                  workers=args.workers, ctx=RunContext(progress=bar))
    finally:
        bar.close()
    for sample_id, error in list(summary.failed.items())[:20]:
        print(f"failed: {sample_id}: {error}", file=sys.stderr)
    if len(summary.failed) > 20:
        print(f"... and {len(summary.failed) - 20} more (see {args.out}/failed.jsonl)", file=sys.stderr)
    print(f"{summary.extracted} extracted, {summary.skipped} already present, {len(summary.failed)} failed "
          f"of {summary.total} in {summary.seconds:.0f} s -> {args.out}", file=sys.stderr)
    return 0 if summary.extracted + summary.skipped > 0 or summary.total == 0 else 1

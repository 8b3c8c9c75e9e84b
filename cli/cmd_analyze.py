"""`msa-studio analyze VIDEO`: extract features, score every segment, write JSON/CSV."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "analyze"
HELP = "analyse one recording: per-segment sentiment, unimodal scores and modality contributions"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("media", help="video or audio file (mp4, mkv, webm, avi, mpg, wav, flac, mp3, ...)")
    parser.add_argument("--model", default="lnln", help="model name (see `msa-studio models`); default lnln")
    parser.add_argument("--checkpoint", help="checkpoint (.safetensors with its .json); default: the shipped one")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default: cuda when available)")
    parser.add_argument("--transcript", help="SRT/VTT/plain-text transcript that replaces speech recognition")
    parser.add_argument("--json", dest="json_out", required=True, help="write the result JSON here")
    parser.add_argument("--csv", dest="csv_out", help="also write one CSV row per segment")
    parser.add_argument("--no-untrained", action="store_true",
                        help="fail instead of running a model that has no trained checkpoint")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from cli.progress_bar import StageProgress
    from core.analyzer import analyze_file
    from core.errors import MSAError
    from core.progress import RunContext
    from core.result import UNTRAINED_WARNING

    for out in (args.json_out, args.csv_out):
        if out and not Path(out).resolve().parent.is_dir():
            raise MSAError(f"output folder does not exist: {Path(out).parent}")
    bar = StageProgress(enabled=not args.quiet)
    ctx = RunContext(progress=bar)
    try:
        result, _ = analyze_file(
            args.media, model=args.model, checkpoint=args.checkpoint, device=args.device,
            transcript=args.transcript, ctx=ctx, allow_untrained=not args.no_untrained,
        )
    finally:
        bar.close()
    result.to_json(args.json_out)
    if args.csv_out:
        result.to_csv(args.csv_out)
    if result.untrained:
        print("\n" + "!" * 78 + f"\n!! {UNTRAINED_WARNING}\n" + "!" * 78, file=sys.stderr)
    for w in result.warnings:
        if w != UNTRAINED_WARNING:
            print(f"warning: {w}", file=sys.stderr)
    n = len(result.segments)
    print(f"{n} segment{'s' if n != 1 else ''} scored with {result.model['name']} on {result.model['device']}"
          f" -> {args.json_out}", file=sys.stderr)
    return 0

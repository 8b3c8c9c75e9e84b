"""`msa-studio analyze VIDEO`: extract features, score every segment, write JSON/CSV."""
from __future__ import annotations

import argparse
import sys

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


def check_before_work(args: argparse.Namespace) -> None:
    """Everything that can be wrong with the command line, found in milliseconds: before the models
    load and the recording is decoded (minutes for a long file)."""
    from core.engine import default_checkpoint
    from core.media import check_media_file
    from core.output_paths import check_output_files
    from core.transcripts import load_transcript
    from models.checkpoint import checkpoint_paths

    check_media_file(args.media)
    if args.transcript:
        load_transcript(args.transcript)  # size, encoding, format; warnings come again during the run
    inputs = [args.media, args.transcript]
    checkpoint = args.checkpoint or default_checkpoint(args.model.lower())
    if checkpoint:
        inputs.extend(checkpoint_paths(checkpoint))
    check_output_files([("--json", args.json_out), ("--csv", args.csv_out)], inputs)


def run(args: argparse.Namespace) -> int:
    from cli.progress_bar import StageProgress
    from core.analyzer import analyze_file
    from core.progress import RunContext
    from core.result import UNTRAINED_WARNING

    check_before_work(args)
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

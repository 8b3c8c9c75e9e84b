"""`msa-studio analyze VIDEO`: extract features, score every segment, write JSON/CSV."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cli.cache_options import add_cache_arguments, cache_policy
from models.defaults import DEFAULT_MODEL

NAME = "analyze"
HELP = "analyse one recording: per-segment sentiment, unimodal scores and modality contributions"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("media", help="video or audio file (mp4, mkv, webm, avi, mpg, wav, flac, mp3, ...)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"model name (see `msa-studio models`); default {DEFAULT_MODEL}")
    parser.add_argument("--checkpoint", help="checkpoint (.safetensors with its .json); default: the shipped one")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default: cuda when available)")
    parser.add_argument("--transcript", help="SRT/VTT/plain-text transcript that replaces speech recognition "
                                             "(default: NAME.srt, NAME.vtt or NAME.txt next to the recording, if any)")
    parser.add_argument("--no-sidecar", action="store_true",
                        help="ignore transcript files next to the recording; transcribe the speech instead")
    parser.add_argument("--json", dest="json_out", required=True, help="write the result JSON here")
    parser.add_argument("--csv", dest="csv_out", help="also write one CSV row per segment")
    parser.add_argument("--report", dest="report_out",
                        help="also write a self-contained HTML report (incl. the missing-rate curve)")
    parser.add_argument("--no-untrained", action="store_true",
                        help="fail instead of running a model that has no trained checkpoint")
    add_cache_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


SIDECAR_HINT = "--no-sidecar ignores it"


def check_before_work(args: argparse.Namespace):
    """Everything that can be wrong with the command line, found in milliseconds: before the models
    load and the recording is decoded (minutes for a long file). Returns the TranscriptChoice."""
    from analysis.engine import default_checkpoint
    from core.media import check_media_file
    from core.output_paths import check_output_files
    from core.transcripts import check_transcript_choice, choose_transcript
    from models.checkpoint import checkpoint_paths

    check_media_file(args.media)
    choice = choose_transcript(args.media, args.transcript, use_sidecar=not args.no_sidecar)
    # size, encoding, format; warnings come again during the run
    check_transcript_choice(choice, hint=SIDECAR_HINT)
    inputs = [args.media, choice.transcript]
    checkpoint = args.checkpoint or default_checkpoint(args.model.lower())
    if checkpoint:
        inputs.extend(checkpoint_paths(checkpoint))
    check_output_files([("--json", args.json_out), ("--csv", args.csv_out), ("--report", args.report_out)], inputs)
    return choice


def run(args: argparse.Namespace) -> int:
    from cli.progress_bar import StageProgress
    from analysis.analyzer import Analyzer
    from core.progress import RunContext
    from core.result import UNTRAINED_WARNING

    choice = check_before_work(args)
    if choice.origin == "sidecar" and not args.transcript:
        print(f"using {choice.describe()}; --no-sidecar transcribes the speech instead", file=sys.stderr)
    bar = StageProgress(enabled=not args.quiet)
    ctx = RunContext(progress=bar)
    try:
        analyzer = Analyzer.from_pretrained(args.model, args.checkpoint, device=args.device,
                                            cache=cache_policy(args), allow_untrained=not args.no_untrained)
        run = analyzer.run(args.media, transcript=choice.transcript, ctx=ctx)
        result, features = run.result, run.features
    finally:
        bar.close()
    result.to_json(args.json_out)
    if args.csv_out:
        result.to_csv(args.csv_out)
    if args.report_out:
        from analysis.report import ReportInputs, missing_curve_for, write_recording_report

        curve = missing_curve_for(result, features=features, engine=analyzer.engine)
        write_recording_report(args.report_out, result,
                               ReportInputs(missing_curve=curve, source=Path(args.json_out).name))
    if result.untrained:
        print("\n" + "!" * 78 + f"\n!! {UNTRAINED_WARNING}\n" + "!" * 78, file=sys.stderr)
    for w in result.warnings:
        if w != UNTRAINED_WARNING:
            print(f"warning: {w}", file=sys.stderr)
    n = len(result.segments)
    outputs = ", ".join(p for p in (args.json_out, args.csv_out, args.report_out) if p)
    print(f"{n} segment{'s' if n != 1 else ''} scored with {result.model.name} on {result.model.device}"
          f" -> {outputs}", file=sys.stderr)
    return 0

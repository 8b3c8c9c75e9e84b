"""`msa-studio report RESULT.json|SESSION -o report.html`: a self-contained HTML report to share."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "report"
HELP = "write a self-contained HTML report (charts, contributions, transcript, warnings) of a result or session"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="RESULT.json|SESSION",
                        help="a result JSON (from analyze or batch) or a .msasession saved in the app")
    parser.add_argument("-o", "--output", required=True, help="the HTML file to write")
    parser.add_argument("--no-missing-curve", action="store_true",
                        help="do not compute the random-missing-rate curve (it needs the model and features)")
    parser.add_argument("--cache-dir", help="feature cache folder to look for the recording's features "
                                            "(default ~/.cache/msa-studio/features)")
    parser.add_argument("--no-cache", action="store_true", help="do not look in the feature cache")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto for the missing-rate curve (default cpu)")


def run(args: argparse.Namespace) -> int:
    from core.errors import MSAError
    from core.output_paths import check_output_files
    from analysis.report import report_from_file

    source = Path(args.source)
    if not source.is_file():
        raise MSAError(f"{'not a file' if source.exists() else 'file not found'}: {source}")
    check_output_files([("--output", args.output)], [source])
    path, curve = report_from_file(source, args.output, curve=not args.no_missing_curve,
                                   cache_dir=args.cache_dir, use_cache=not args.no_cache, device=args.device)
    print(f"report -> {path}", file=sys.stderr)
    if not curve.rows:
        print(f"note: missing-rate curve: {curve.note}", file=sys.stderr)
    return 0

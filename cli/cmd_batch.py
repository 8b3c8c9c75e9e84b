"""`msa-studio batch DIR --out DIR`: analyse every recording in a folder, resumable, optionally on Ray."""
from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from cli.cache_options import add_cache_arguments
from models.defaults import DEFAULT_MODEL

NAME = "batch"
HELP = "analyse every recording in a folder (resumes where it stopped; --ray to use a Ray cluster)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input_dir", metavar="DIR", help="folder with video/audio files (searched recursively)")
    parser.add_argument("--out", required=True, help="output folder: one <file>.json per input + batch_summary.csv")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"model name (see `msa-studio models`); default {DEFAULT_MODEL}")
    parser.add_argument("--checkpoint", help="checkpoint (.safetensors with its .json); default: the shipped one")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    parser.add_argument("--csv", action="store_true", help="also write one <file>.csv per input")
    parser.add_argument("--report", action="store_true",
                        help="also write one <file>.html report per input and a sortable index.html")
    parser.add_argument("--no-missing-curve", action="store_true",
                        help="with --report: leave the random-missing-rate curve out of the reports")
    parser.add_argument("--no-sidecar", action="store_true",
                        help="ignore NAME.srt/.vtt/.txt transcripts next to recordings; transcribe the speech instead")
    parser.add_argument("--no-recursive", action="store_true", help="only the top level of DIR")
    parser.add_argument("--retry-failed", action="store_true",
                        help="retry files that failed in an earlier run (skipped by default)")
    add_cache_arguments(parser)
    parser.add_argument("--no-untrained", action="store_true",
                        help="fail instead of running a model that has no trained checkpoint")
    parser.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                        help="run on Ray (put it after DIR): without ADDRESS start a local Ray instance; "
                             "'auto' or host:port / ray://host:10001 joins a cluster (inputs must be "
                             "visible to the workers at the same path, or add --ship-files). Default: "
                             "local Ray when it is installed and this machine has >= 4 CPUs")
    parser.add_argument("--no-ray", action="store_true", help="analyse in this process even when Ray is installed")
    parser.add_argument("--workers", type=int, help="Ray actors (default: CPUs / --cpus-per-worker)")
    parser.add_argument("--cpus-per-worker", type=float, default=2.0,
                        help="CPUs reserved per Ray actor (default 2: one pipeline keeps two cores busy)")
    parser.add_argument("--ship-files", action="store_true",
                        help="Ray: send file contents to the workers (no shared filesystem needed)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from analysis.batch import BatchOptions, check_out_dir, hold_out_lock
    from core.errors import MSAError
    from core.output_paths import check_output_folder

    if args.workers is not None and args.workers < 1:
        raise MSAError("--workers must be at least 1")
    if args.cpus_per_worker <= 0:
        raise MSAError("--cpus-per-worker must be positive")
    if args.ray and args.no_ray:
        raise MSAError("--ray and --no-ray contradict each other")
    out = Path(args.out)
    options = BatchOptions(
        model=args.model, checkpoint=args.checkpoint, device=args.device,
        allow_untrained=not args.no_untrained, write_csv=args.csv, recursive=not args.no_recursive,
        retry_failed=args.retry_failed, use_cache=not args.no_cache, cache_dir=args.cache_dir,
        ship_files=args.ship_files, sidecar_transcripts=not args.no_sidecar,
    )
    if not Path(args.input_dir).is_dir():
        raise MSAError(f"input folder not found: {args.input_dir}")
    if args.no_missing_curve and not args.report:
        raise MSAError("--no-missing-curve only applies with --report")
    check_out_dir(args.input_dir, out)
    from analysis.report.batch_reports import INDEX_NAME

    check_output_folder("--out", out, files=[INDEX_NAME] if args.report else [])
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MSAError(f"cannot create the output folder {out}: {exc.strerror or exc}") from None
    # Held from planning to the summary: a second batch on this --out stops here with one line.
    with hold_out_lock(out):
        return _run_locked(args, out, options)


def _run_locked(args: argparse.Namespace, out: Path, options) -> int:
    from tqdm import tqdm

    from analysis.batch import choose_backend, plan_batch, run_batch
    from core.errors import MSAError
    from core.progress import RunContext

    todo, done, failed_before = plan_batch(args.input_dir, out, options)
    total = len(todo) + len(done) + len(failed_before)
    if total == 0:
        raise MSAError(f"no media files in {args.input_dir}")
    backend = choose_backend(args.ray, args.no_ray, len(todo))
    if backend is None and (args.workers or args.ship_files):
        raise MSAError("--workers and --ship-files need Ray (--ray)")
    where = "in this process" if backend is None else f"on Ray ({backend})"
    print(f"{total} file(s): {len(done)} already done, {len(failed_before)} failed before"
          f"{' (use --retry-failed)' if failed_before else ''}, {len(todo)} to analyse {where}", file=sys.stderr)

    bar = tqdm(total=len(todo), unit="file", file=sys.stderr, disable=args.quiet or not todo, dynamic_ncols=True)
    lock = threading.Lock()
    current = {"name": "", "stage": ""}

    def on_stage(stage: str, fraction: float, message: str = "") -> None:
        with lock:
            if stage != current["stage"]:
                current["stage"] = stage
                bar.set_postfix_str(f"{current['name'][-40:]} [{stage}]", refresh=True)

    def on_event(event: str, name: str, outcome) -> None:
        with lock:
            if event == "start":
                current["name"] = name
                bar.set_postfix_str(name[-40:], refresh=True)
            elif event in ("done", "failed"):
                bar.update(1)
                if event == "failed":
                    bar.write(f"failed: {name}: {outcome.error}", file=sys.stderr)

    ctx = RunContext(progress=None if backend else on_stage)
    try:
        summary = run_batch(args.input_dir, out, options, ctx=ctx, on_event=on_event, ray_address=backend,
                            workers=args.workers, cpus_per_worker=args.cpus_per_worker)
    finally:
        bar.close()
    n_done, n_failed = len(summary.done), len(summary.failed)
    print(f"{n_done} analysed, {len(summary.skipped)} skipped (done before), {n_failed} failed"
          f"{', ' + str(len(summary.previously_failed)) + ' not retried' if summary.previously_failed else ''}"
          f" -> {out}", file=sys.stderr)
    if args.report:
        _write_reports(args, out, options)
    return 1 if n_failed else 0


def _write_reports(args: argparse.Namespace, out: Path, options) -> None:
    from tqdm import tqdm

    from analysis.batch import BatchState
    from analysis.report.batch_reports import write_batch_reports

    n = len(BatchState(out).done_outcomes())
    with tqdm(total=n, unit="report", file=sys.stderr, disable=args.quiet or n == 0, dynamic_ncols=True) as bar:
        reports = write_batch_reports(out, options, curves=not args.no_missing_curve,
                                      device=args.device,
                                      on_file=lambda name: bar.update(1))
    kept = f", {len(reports.kept)} up to date" if reports.kept else ""
    print(f"{len(reports.written)} report(s) written{kept} -> {reports.index}", file=sys.stderr)
    for name, why in reports.failed:
        print(f"no report for {name}: {why}", file=sys.stderr)

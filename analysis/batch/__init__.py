"""Batch analysis of a folder: resumable, in-process or on a Ray cluster.

Layout of the output folder:

    <out>/<relative path>.json        AnalysisResult per input (".csv" next to it with --csv);
                                      the input's extension is kept ("a.mp4.json") so a.mp4 and
                                      a.wav never overwrite each other
    <out>/batch_summary.csv           one row per finished file (score, contributions, warnings)
    <out>/.msa-batch/done/<k>.json    per-file done marker, written atomically *after* the outputs
    <out>/.msa-batch/failed/<k>.json  last error for a file (skipped on rerun unless retry_failed)

Resuming: a file is skipped when its done marker exists, its JSON output exists, and the marker
matches the input (size + mtime) and the job (model + resolved checkpoint). Markers are one file per
input and written with write-then-rename, so a run killed at any moment leaves every finished file
marked and the interrupted one unmarked (it is redone; its half-written temp files are ignored).

Locking: a run holds an exclusive lock on `<out>/.msa-batch/lock` (flock, released by the kernel when
the process ends, however it ends). A second batch on the same output folder — another process, or
another machine on a filesystem with working locks — does not wait: it stops at once with a
one-line error naming the holder's pid (`BatchBusy`). Two runs would both analyse every file.

Ray: the driver (this process) plans, dispatches files to `workers` long-lived actors (each loads
the models once) and writes every output and marker itself, so only the driver needs the output
folder. Workers read the inputs by path (shared filesystem, e.g. NFS) unless `ship_files` sends the
bytes through the object store. `ray` is an optional dependency, imported only when used.

Modules, one job each: `options` (BatchOptions, FileOutcome, BatchSummary), `markers` (finding the
media, done/failed markers, the lock, planning a resumed run), `runners` (FileAnalyzer, in-process
and Ray runs), `summary` (batch_summary.csv, failures). Every public name is importable from here.
"""
from __future__ import annotations

from analysis.batch.markers import BatchBusy, BatchState, check_out_dir, find_media, hold_out_lock, plan_batch
from analysis.batch.options import (
    LOCK_NAME,
    MARKER_VERSION,
    STATE_DIR,
    SUMMARY_NAME,
    BatchEventCallback,
    BatchOptions,
    BatchSummary,
    FileOutcome,
)
from analysis.batch.runners import FileAnalyzer, choose_backend, connect_ray, ray_available, run_batch
from analysis.batch.summary import SUMMARY_FIELDS, iter_failures, write_summary_csv
from core.progress import ProgressCallback

__all__ = [
    "LOCK_NAME", "MARKER_VERSION", "STATE_DIR", "SUMMARY_FIELDS", "SUMMARY_NAME",
    "BatchBusy", "BatchEventCallback", "BatchOptions", "BatchState", "BatchSummary", "FileAnalyzer", "FileOutcome",
    "ProgressCallback", "check_out_dir", "choose_backend", "connect_ray", "find_media", "hold_out_lock",
    "iter_failures", "plan_batch", "ray_available", "run_batch", "write_summary_csv",
]

"""Build a feature cache (models/data.py) from a folder of clips and an MMSA-FET-style label.csv.

label.csv columns: video_id, clip_id, text, label, mode — clips live at
`<raw_dir>/<video_id>/<clip_id>.<ext>` (any common audio/video extension). A CSV with a single `id`
column (e.g. "03bSnISJMiM_1") is accepted too: the clip is `<raw_dir>/<id>.<ext>` or
`<raw_dir>/<video>/<clip>.<ext>` split at the last underscore. mode is train/valid/test
("dev"/"val" mean valid). The CSV text replaces ASR. Labels must be finite numbers.

The label file must be UTF-8 (a BOM is fine) or UTF-16 with a BOM; anything else is one clear error
naming the line, never a guess: the text column becomes model input. Clip ids are paths *inside*
`raw_dir`: an id with a `..` step or an absolute path is recorded as a failed row and never read
(symlinks placed in `raw_dir` by its owner are followed as usual).

The run is resumable (ids already in index.jsonl are skipped; failed clips are retried), runs
clips in parallel worker processes that each build their own pipeline through `pipeline_factory`
(so it must be picklable: a module-level function or functools.partial of one), and never aborts
because of one bad clip: its error goes to failed.jsonl and the run continues.
"""
from __future__ import annotations

import csv
import functools
import io
import math
import os
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path, PurePath
from typing import Any, Callable

from core.errors import MSAError
from core.feature_spec import FeatureSpec
from core.media import SUPPORTED_EXTENSIONS
from core.progress import RunContext
from core.transcripts import looks_binary
from core.types import SegmentFeatures
from models.data import DatasetCache

_SPLIT_ALIASES = {"train": "train", "valid": "valid", "val": "valid", "dev": "valid",
                  "validation": "valid", "test": "test"}

PipelineFactory = Callable[[], Any]  # () -> object with extract_utterance(path, text, ctx)


@dataclass
class ClipJob:
    sample_id: str
    path: str | None  # None when no file was found
    text: str
    label: float | None
    split: str | None
    problem: str = ""  # CSV-row problem (bad label/mode, missing file): recorded as a failure


@dataclass
class ExtractSummary:
    total: int  # rows in the CSV
    extracted: int  # extracted in this run
    skipped: int  # already in the cache
    failed: dict[str, str] = field(default_factory=dict)  # id -> error (this run)
    seconds: float = 0.0
    out_dir: str = ""


def default_pipeline_factory(spec_dict: dict[str, Any] | None = None, device: str = "cpu") -> Any:
    """Builds the real FeaturePipeline in a worker (module level, so it pickles)."""
    from core.feature_spec import default_spec
    from core.pipeline import FeaturePipeline

    spec = default_spec() if spec_dict is None else FeatureSpec.from_dict(spec_dict)
    return FeaturePipeline(spec, device)


def make_default_factory(spec: FeatureSpec, device: str = "cpu") -> PipelineFactory:
    return functools.partial(default_pipeline_factory, spec.to_dict(), device)


def _find_clip(*stems: Path) -> Path | None:
    for stem in stems:
        for ext in SUPPORTED_EXTENSIONS:
            for cand in (stem.with_name(stem.name + ext), stem.with_name(stem.name + ext.upper())):
                if cand.is_file():
                    return cand
    return None


def _inside(raw: Path, *parts: str) -> Path | None:
    """raw/parts... when that stays inside `raw` (no absolute part, no '..' step), else None."""
    rel = PurePath(*parts)
    if not rel.parts or rel.is_absolute() or ".." in rel.parts:
        return None
    return raw.joinpath(rel)


def _read_text(csv_path: Path) -> str:
    raw = csv_path.read_bytes()
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError:
            raise MSAError(f"{csv_path.name} starts like UTF-16 but is not valid UTF-16") from None
    if looks_binary(raw):
        raise MSAError(f"{csv_path.name} is not a text CSV (binary data)")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise MSAError(f"{csv_path.name} is not UTF-8 (byte 0x{raw[exc.start]:02x} on line {line}); "
                       "save it as UTF-8 (in Excel: 'CSV UTF-8')") from None


def read_label_csv(raw_dir: str | os.PathLike[str], labels_csv: str | os.PathLike[str]) -> list[ClipJob]:
    raw = Path(raw_dir)
    if not raw.is_dir():
        raise MSAError(f"clip folder not found: {raw}")
    csv_path = Path(labels_csv)
    if not csv_path.is_file():
        raise MSAError(f"label file not found: {csv_path}")
    reader = csv.DictReader(io.StringIO(_read_text(csv_path), newline=""))
    try:
        return _jobs_from_rows(raw, csv_path, reader)
    except csv.Error as exc:  # line_num counts the lines of the records before the failing one
        raise MSAError(f"{csv_path.name} line {reader.line_num + 1}: {exc}") from None


def _jobs_from_rows(raw: Path, csv_path: Path, reader: csv.DictReader) -> list[ClipJob]:
    cols = {c.strip().lower(): c for c in (reader.fieldnames or [])}
    has_pair = "video_id" in cols and "clip_id" in cols
    if not has_pair and "id" not in cols:
        raise MSAError(f"{csv_path.name} needs columns video_id,clip_id (or id), text, label, mode; "
                       f"found {', '.join(reader.fieldnames or []) or 'none'}")
    missing = [c for c in ("label", "mode") if c not in cols]
    if missing:
        raise MSAError(f"{csv_path.name} lacks column(s) {', '.join(missing)}")
    jobs: list[ClipJob] = []
    seen: set[str] = set()
    for row in reader:
        get = lambda c: (row.get(cols[c]) or "").strip() if c in cols else ""  # noqa: E731
        if has_pair:
            vid, cid = get("video_id"), get("clip_id")
            sample_id = f"{vid}$_${cid}"  # MMSA's id convention
            stems = [_inside(raw, vid, cid)]
        else:
            sample_id = get("id")
            vid, _, cid = sample_id.rpartition("_")
            stems = [_inside(raw, sample_id)] + ([_inside(raw, vid, cid)] if vid else [])
        if not sample_id.strip("$_") or sample_id in seen:
            continue  # empty or duplicated rows: the first occurrence wins
        seen.add(sample_id)
        escapes = stems[0] is None
        path = None if escapes else _find_clip(*(s for s in stems if s is not None))
        job = ClipJob(sample_id, None if path is None else str(path), get("text"), None, None)
        line = reader.line_num
        try:
            job.label = float(get("label"))
        except ValueError:
            job.problem = f"line {line}: bad label {get('label')!r}"
        else:
            if not math.isfinite(job.label):
                job.problem = f"line {line}: label {get('label')!r} is not a finite number"
        if escapes:
            job.problem = f"line {line}: the clip path is outside the clip folder (absolute or '..'); not read"
        job.split = _SPLIT_ALIASES.get(get("mode").lower())
        if job.split is None and not job.problem:
            job.problem = f"unknown mode {get('mode')!r} (use train/valid/test)"
        if path is None and not job.problem:
            job.problem = "clip file not found"
        jobs.append(job)
    return jobs


# ---- worker side: one pipeline per process, built once

_worker_pipeline: Any = None
_worker_init_error: str | None = None


def _build_pipeline(factory: PipelineFactory) -> Any:
    try:
        return factory()
    except MSAError:
        raise
    except Exception as exc:
        raise MSAError(f"cannot build the feature pipeline: {type(exc).__name__}: {exc}") from None


def _init_worker(factory: PipelineFactory) -> None:
    global _worker_pipeline, _worker_init_error
    import torch

    torch.set_num_threads(1)  # the pool provides the parallelism
    try:
        _worker_pipeline = _build_pipeline(factory)
    except MSAError as exc:
        # an exception here would only say "initializer failed"; keep it and hand it to the
        # driver with the first clip so the user sees the real reason
        _worker_init_error = str(exc)


def _run_clip(pipeline: Any, path: str, text: str) -> tuple[str, Any, list[str], str]:
    """-> ("ok", features, warnings, source) or ("error", message, [], "")."""
    ctx = RunContext()
    try:
        feats = pipeline.extract_utterance(path, text or None, ctx)
    except MSAError as exc:
        return "error", str(exc), [], ""
    except Exception as exc:  # a bad clip must never abort the run
        return "error", f"{type(exc).__name__}: {exc}", [], ""
    if not isinstance(feats, SegmentFeatures):
        return "error", f"pipeline returned {type(feats).__name__}, not SegmentFeatures", [], ""
    return "ok", feats, list(ctx.warnings), "transcript" if text else "asr"


def _worker_clip(path: str, text: str) -> tuple[str, Any, list[str], str]:
    if _worker_init_error is not None:
        return "fatal", _worker_init_error, [], ""
    return _run_clip(_worker_pipeline, path, text)


# ---- driver


def extract_dataset(
    raw_dir: str | os.PathLike[str],
    labels_csv: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    pipeline_factory: PipelineFactory | None = None,
    *,
    spec: FeatureSpec | None = None,
    workers: int = 1,
    ctx: RunContext | None = None,
) -> ExtractSummary:
    """Extract every clip of `labels_csv` into the feature cache `out_dir` (see module docstring).

    `spec` is the spec of the produced features (default: core.feature_spec.default_spec());
    `workers` <= 1 runs in this process."""
    from core.feature_spec import default_spec

    spec = spec or default_spec()
    ctx = ctx or RunContext()
    factory = pipeline_factory or make_default_factory(spec)
    started = time.time()
    jobs = read_label_csv(raw_dir, labels_csv)
    cache = DatasetCache.create(out_dir, spec)
    summary = ExtractSummary(total=len(jobs), extracted=0, skipped=0, out_dir=str(out_dir))

    todo: list[ClipJob] = []
    for job in jobs:
        if job.sample_id in cache:
            summary.skipped += 1
        elif job.problem:
            summary.failed[job.sample_id] = job.problem
            cache.append_failure(job.sample_id, job.problem)
        else:
            todo.append(job)
    done = summary.skipped + len(summary.failed)
    ctx.report("extract", done / max(1, len(jobs)), f"{summary.skipped} already extracted, {len(todo)} to do")

    def record(job: ClipJob, result: tuple[str, Any, list[str], str]) -> None:
        nonlocal done
        status, payload, warnings, source = result
        if status == "fatal":
            raise MSAError(str(payload))
        if status == "ok":
            try:
                cache.append(job.sample_id, payload, job.label, job.split, text=job.text,
                             source=source, warnings=warnings)
                summary.extracted += 1
            except MSAError as exc:  # e.g. features that do not match the spec
                status, payload = "error", str(exc)
        if status != "ok":
            summary.failed[job.sample_id] = str(payload)
            cache.append_failure(job.sample_id, str(payload))
        done += 1
        ctx.report("extract", done / max(1, len(jobs)), f"{job.sample_id}: {status}")

    if workers <= 1:
        pipeline = _build_pipeline(factory) if todo else None
        for job in todo:
            ctx.check()
            record(job, _run_clip(pipeline, job.path or "", job.text))
    else:
        _run_pool(todo, factory, workers, record, ctx)
    summary.seconds = time.time() - started
    return summary


def _pool_context() -> Any:
    """forkserver: workers are forked from a clean single-threaded server (forking this process,
    which may run torch/OpenMP threads, can deadlock), and the server imports this module once so
    every (re)started worker is cheap. Falls back to spawn where forkserver does not exist."""
    from multiprocessing import get_all_start_methods

    if "forkserver" in get_all_start_methods():
        ctx = get_context("forkserver")
        ctx.set_forkserver_preload([__name__])
        return ctx
    return get_context("spawn")


def _run_pool(todo: list[ClipJob], factory: PipelineFactory, workers: int,
              record: Callable[[ClipJob, tuple[str, Any, list[str], str]], None], ctx: RunContext) -> None:
    """Process pool with crash recovery. When a worker dies (segfault in a native library, OOM),
    the clips that were in flight become suspects and are re-run one at a time in a fresh pool, so
    a second crash is attributable to exactly one clip, which is recorded as failed; every other
    clip continues in parallel."""
    mp = _pool_context()
    normal, suspects = list(todo), []
    while normal or suspects:
        isolating = bool(suspects)
        queue = suspects if isolating else normal  # popped in place
        limit = 1 if isolating else 2 * workers  # bounded in-flight work: quick cancel, flat memory
        crashed: list[ClipJob] = []
        with ProcessPoolExecutor(max_workers=1 if isolating else workers, mp_context=mp,
                                 initializer=_init_worker, initargs=(factory,)) as pool:
            futures: dict[Future, ClipJob] = {}
            try:
                while queue or futures:
                    while queue and len(futures) < limit and not crashed:
                        job = queue.pop(0)
                        try:
                            futures[pool.submit(_worker_clip, job.path or "", job.text)] = job
                        except BrokenProcessPool:
                            # A worker died before we saw its future fail: this job never ran, but
                            # re-running it with the suspects (one at a time) is safe.
                            crashed.append(job)
                    finished, _ = wait(list(futures), timeout=0.5, return_when=FIRST_COMPLETED)
                    ctx.check()
                    for fut in finished:
                        job = futures.pop(fut)
                        try:
                            result = fut.result()
                        except BrokenProcessPool:
                            crashed.append(job)
                            continue
                        except Exception as exc:  # e.g. a result that cannot be sent back
                            result = ("error", f"{type(exc).__name__}: {exc}", [], "")
                        record(job, result)
                    if crashed and not futures:
                        break
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
        if isolating:
            for job in crashed:
                record(job, ("error", "worker process crashed on this clip", [], ""))
        else:
            suspects = crashed

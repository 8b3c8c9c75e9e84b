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
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import re
import tempfile
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from core.atomic_write import atomic_open, atomic_write_text
from core.errors import Cancelled, MSAError
from core.progress import ProgressCallback, RunContext

STATE_DIR = ".msa-batch"
LOCK_NAME = "lock"
SUMMARY_NAME = "batch_summary.csv"
MARKER_VERSION = 1

# (event, relative name, outcome or None); events: "start", "done", "failed", "skipped"
BatchEventCallback = Callable[[str, str, "FileOutcome | None"], None]


# ----------------------------------------------------------------------------------- options


@dataclass
class BatchOptions:
    model: str = "lnln"
    checkpoint: str | None = None
    device: str = "cpu"
    allow_untrained: bool = True
    write_csv: bool = False
    recursive: bool = True
    retry_failed: bool = False
    use_cache: bool = True
    cache_dir: str | None = None  # None: core.feature_cache.default_cache_dir()
    ship_files: bool = False  # Ray only: send file bytes to workers instead of paths
    sidecar_transcripts: bool = True  # use NAME.srt/.vtt/.txt next to NAME.ext (core.transcripts)

    def transcript_for(self, path: str | os.PathLike) -> str | None:
        """The transcript file a recording is analysed with (None: speech recognition)."""
        from core.transcripts import choose_transcript

        return choose_transcript(path, use_sidecar=self.sidecar_transcripts).transcript

    def cache_policy(self):
        """The feature-cache policy (analysis.analyzer) these options name."""
        from analysis.analyzer import DEFAULT_CACHE

        return (self.cache_dir or DEFAULT_CACHE) if self.use_cache else None

    def resolved_checkpoint(self) -> str | None:
        from analysis.engine import default_checkpoint

        return self.checkpoint or default_checkpoint(self.model.lower())

    def job_fingerprint(self) -> dict[str, Any]:
        """What makes an earlier output reusable: the model and the exact checkpoint file."""
        ckpt = self.resolved_checkpoint()
        stamp = None
        if ckpt and Path(ckpt).exists():
            st = Path(ckpt).stat()
            stamp = [st.st_size, st.st_mtime_ns]
        return {"model": self.model.lower(), "checkpoint": ckpt, "checkpoint_stamp": stamp}


@dataclass
class FileOutcome:
    name: str  # path relative to the input folder (POSIX separators)
    status: str  # "done", "skipped", "failed"
    seconds: float = 0.0
    segments: int = 0
    duration: float = 0.0
    score: float | None = None
    contributions: dict[str, float] = field(default_factory=dict)
    cached: bool = False
    warnings: list[str] = field(default_factory=list)
    error: str = ""
    worker: str = ""  # "local" or "ray:<pid>" (which process analysed it)


@dataclass
class BatchSummary:
    input_dir: str
    out_dir: str
    outcomes: list[FileOutcome] = field(default_factory=list)
    previously_failed: list[str] = field(default_factory=list)  # skipped because they failed before
    backend: str = "local"

    def names(self, status: str) -> list[str]:
        return [o.name for o in self.outcomes if o.status == status]

    @property
    def done(self) -> list[str]:
        return self.names("done")

    @property
    def skipped(self) -> list[str]:
        return self.names("skipped")

    @property
    def failed(self) -> list[str]:
        return self.names("failed")


# ----------------------------------------------------------------------------------- planning


def find_media(input_dir: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Media files (by extension, case-insensitive) under `input_dir`, sorted, hidden ones skipped."""
    from core.media import SUPPORTED_EXTENSIONS

    root = Path(input_dir)
    if not root.is_dir():
        raise MSAError(f"input folder not found: {root}")
    pattern = root.rglob("*") if recursive else root.glob("*")
    out = []
    for p in pattern:
        rel = p.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if p.is_file() and p.suffix.lower() in SUPPORTED_EXTENSIONS:
            out.append(p)
    return sorted(out, key=lambda p: p.relative_to(root).as_posix())


def _marker_name(rel: str) -> str:
    # Readable prefix + hash: unique for any path, safe on every filesystem.
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", rel)[-80:]
    return f"{stem}.{hashlib.sha1(rel.encode('utf-8', 'surrogateescape')).hexdigest()[:12]}.json"


def _source_stamp(path: Path, transcript: str | None = None) -> dict[str, Any]:
    """What must be unchanged for an earlier output to count: the input file and, when one is used,
    its sidecar transcript (adding, editing or removing it redoes the file). Without a transcript the
    stamp is what it was before sidecars existed, so earlier markers stay valid."""
    st = path.stat()
    stamp: dict[str, Any] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if transcript is not None:
        tst = Path(transcript).stat()
        stamp["transcript"] = {"name": Path(transcript).name, "size": tst.st_size, "mtime_ns": tst.st_mtime_ns}
    return stamp


# ------------------------------------------------------------------------------------ locking


class BatchBusy(MSAError):
    """Another process is running a batch into the same output folder."""


_held_locks: dict[str, list[int]] = {}  # real path of the out folder -> [fd, depth]
_held_locks_guard = threading.Lock()


def _acquire(out: Path) -> int:
    import fcntl

    state = out / STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    fd = os.open(state / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
        os.close(fd)
        raise BatchBusy(f"another msa-studio batch (pid {holder}) is writing to {out}; "
                        "wait for it to finish or choose another --out") from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


@contextlib.contextmanager
def hold_out_lock(out_dir: str | os.PathLike):
    """Exclusive lock on an output folder for the duration of the block; re-entrant within this
    process (the CLI takes it before planning, run_batch again inside). Raises BatchBusy at once when
    another process holds it."""
    key = os.path.realpath(out_dir)
    with _held_locks_guard:
        if key in _held_locks:
            _held_locks[key][1] += 1
        else:
            try:
                _held_locks[key] = [_acquire(Path(out_dir)), 1]
            except OSError as exc:
                raise MSAError(f"cannot lock the output folder {out_dir}: {exc.strerror or exc}") from None
    try:
        yield
    finally:
        with _held_locks_guard:
            entry = _held_locks[key]
            entry[1] -= 1
            if entry[1] == 0:
                del _held_locks[key]
                os.close(entry[0])  # closing the descriptor releases the flock


def check_out_dir(input_dir: str | os.PathLike, out_dir: str | os.PathLike) -> None:
    """The output folder must not be a file or the input folder itself (cheap; before any work)."""
    root, out = Path(input_dir), Path(out_dir)
    if out.exists() and not out.is_dir():
        raise MSAError(f"output path is a file, not a folder: {out}")
    if os.path.realpath(root) == os.path.realpath(out):
        raise MSAError("the output folder must differ from the input folder")


class BatchState:
    """Done/failed markers of one output folder. `options` decides whether sidecar transcripts are
    part of an input's stamp (None: they are not looked for)."""

    def __init__(self, out_dir: str | os.PathLike, options: BatchOptions | None = None) -> None:
        self.out_dir = Path(out_dir)
        self.state_dir = self.out_dir / STATE_DIR
        self.options = options

    def _stamp(self, source: Path) -> dict[str, Any]:
        transcript = self.options.transcript_for(source) if self.options is not None else None
        return _source_stamp(source, transcript)

    def output_json(self, rel: str) -> Path:
        return self.out_dir / f"{rel}.json"

    def output_csv(self, rel: str) -> Path:
        return self.out_dir / f"{rel}.csv"

    def _marker(self, kind: str, rel: str) -> Path:
        return self.state_dir / kind / _marker_name(rel)

    def _read(self, path: Path) -> dict[str, Any] | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # missing or damaged marker: treat as not done
        return data if isinstance(data, dict) else None

    def is_done(self, rel: str, source: Path, job: dict[str, Any]) -> bool:
        marker = self._read(self._marker("done", rel))
        if marker is None or marker.get("version") != MARKER_VERSION:
            return False
        try:
            stamp = self._stamp(source)
        except OSError:
            return False
        return (
            marker.get("name") == rel
            and marker.get("source") == stamp
            and marker.get("job") == job
            and self.output_json(rel).is_file()
        )

    def failure(self, rel: str, source: Path, job: dict[str, Any]) -> str | None:
        """The recorded error if this exact input + job failed before, else None."""
        marker = self._read(self._marker("failed", rel))
        if marker is None:
            return None
        try:
            same = marker.get("source") == self._stamp(source) and marker.get("job") == job
        except OSError:
            return None
        return str(marker.get("error", "failed")) if same else None

    def mark_done(self, rel: str, source: Path, job: dict[str, Any], outcome: FileOutcome) -> None:
        record = {"version": MARKER_VERSION, "name": rel, "source": self._stamp(source), "job": job,
                  "finished": time.time(), "outcome": asdict(outcome)}
        atomic_write_text(self._marker("done", rel), json.dumps(record), make_parents=True)
        self._marker("failed", rel).unlink(missing_ok=True)

    def mark_failed(self, rel: str, source: Path, job: dict[str, Any], error: str, detail: str = "") -> None:
        try:
            stamp = self._stamp(source)
        except OSError:
            stamp = None
        record = {"version": MARKER_VERSION, "name": rel, "source": stamp, "job": job,
                  "failed": time.time(), "error": error, "detail": detail}
        atomic_write_text(self._marker("failed", rel), json.dumps(record), make_parents=True)

    def done_outcomes(self) -> list[FileOutcome]:
        out = []
        for path in sorted((self.state_dir / "done").glob("*.json")):
            marker = self._read(path)
            if marker and isinstance(marker.get("outcome"), dict):
                try:
                    out.append(FileOutcome(**marker["outcome"]))
                except TypeError:
                    continue
        return sorted(out, key=lambda o: o.name)


# ----------------------------------------------------------------------------------- analysis


class FileAnalyzer:
    """Batch's file worker: one analysis.analyzer.Analyzer (model, pipeline and feature cache load
    once) plus the batch rules (sidecar transcripts, errors as payloads for Ray). Used in-process
    and inside each Ray actor."""

    def __init__(self, options: BatchOptions) -> None:
        from analysis.analyzer import Analyzer

        self.options = options
        self.analyzer = Analyzer.from_pretrained(options.model, options.checkpoint, device=options.device,
                                                 cache=options.cache_policy(),
                                                 allow_untrained=options.allow_untrained)

    def analyze(self, path: str, ctx: RunContext | None = None):
        """(AnalysisResult, was_cached). A sidecar transcript next to `path` is used unless the
        options turn sidecars off; a broken one fails this file with a message naming it."""
        from core.transcripts import check_transcript_choice, choose_transcript

        choice = choose_transcript(path, use_sidecar=self.options.sidecar_transcripts)
        check_transcript_choice(choice, hint="--no-sidecar ignores transcripts next to recordings")
        run = self.analyzer.run(path, choice.transcript, ctx)
        return run.result, run.from_cache

    def analyze_payload(self, path: str, data: bytes | None = None, display_path: str | None = None,
                        sidecar: tuple[str, bytes] | None = None) -> dict[str, Any]:
        """Errors are returned, not raised, so a Ray driver sees our one-line message and not a
        RayTaskError wrapping a traceback. `sidecar`: (path, bytes) of the input's transcript when
        the bytes are shipped too; it is placed next to the temp copy under its own name."""
        t0 = time.perf_counter()
        tmp_dir = None
        try:
            if data is not None:  # shipped bytes: analyse a private temp copy
                tmp_dir = tempfile.mkdtemp(prefix="msa-batch-")
                local = Path(tmp_dir) / Path(path).name
                local.write_bytes(data)
                if sidecar is not None:
                    (Path(tmp_dir) / Path(sidecar[0]).name).write_bytes(sidecar[1])
                path_to_read = str(local)
            else:
                path_to_read = path
            result, cached = self.analyze(path_to_read)
            result.recording["path"] = display_path or path
            if sidecar is not None and isinstance(result.recording.get("transcript"), dict):
                result.recording["transcript"]["path"] = sidecar[0]  # not the temp copy's path
            return {"ok": True, "result": result.to_dict(), "cached": cached,
                    "seconds": time.perf_counter() - t0}
        except Cancelled:
            raise
        except MSAError as exc:
            return {"ok": False, "error": str(exc), "detail": "", "seconds": time.perf_counter() - t0}
        except Exception as exc:  # a bug on one file must not end a 1000-file batch
            return {"ok": False, "error": f"internal error: {type(exc).__name__}: {exc}",
                    "detail": traceback.format_exc(), "seconds": time.perf_counter() - t0}
        finally:
            if tmp_dir is not None:
                import shutil

                shutil.rmtree(tmp_dir, ignore_errors=True)


def _outcome_from_result(name: str, result, seconds: float, cached: bool) -> FileOutcome:
    from analysis.robustness import recording_contributions, recording_score
    from core.result import UNTRAINED_WARNING

    segs = result.segments
    score = recording_score(segs) if segs else None
    return FileOutcome(
        name=name,
        status="done",
        seconds=round(float(seconds), 3),
        segments=len(segs),
        duration=float(result.recording.get("duration") or 0.0),
        score=None if score is None or score != score else round(score, 4),
        contributions={m: round(v, 4) for m, v in recording_contributions(segs).items()} if segs else {},
        cached=cached,
        warnings=[w for w in result.warnings if w != UNTRAINED_WARNING],
    )


# ----------------------------------------------------------------------------------- running


class _Writer:
    """Writes outputs then markers (driver side; the same code for every backend)."""

    def __init__(self, state: BatchState, options: BatchOptions, job: dict[str, Any],
                 summary: BatchSummary, on_event: BatchEventCallback | None) -> None:
        self.state, self.options, self.job = state, options, job
        self.summary, self.on_event = summary, on_event

    def success(self, rel: str, source: Path, result, seconds: float, cached: bool,
                worker: str = "local") -> FileOutcome:
        out_json = self.state.output_json(rel)
        out_json.parent.mkdir(parents=True, exist_ok=True)
        result.to_json(out_json)
        if self.options.write_csv:
            result.to_csv(self.state.output_csv(rel))
        outcome = _outcome_from_result(rel, result, seconds, cached)
        outcome.worker = worker
        self.state.mark_done(rel, source, self.job, outcome)
        self._record(outcome)
        return outcome

    def failure(self, rel: str, source: Path, error: str, detail: str, seconds: float,
                worker: str = "local") -> FileOutcome:
        self.state.mark_failed(rel, source, self.job, error, detail)
        outcome = FileOutcome(name=rel, status="failed", seconds=round(seconds, 3), error=error, worker=worker)
        self._record(outcome)
        return outcome

    def _record(self, outcome: FileOutcome) -> None:
        self.summary.outcomes.append(outcome)
        if self.on_event is not None:
            self.on_event(outcome.status, outcome.name, outcome)


def plan_batch(
    input_dir: str | os.PathLike, out_dir: str | os.PathLike, options: BatchOptions
) -> tuple[list[tuple[str, Path]], list[tuple[str, Path]], list[tuple[str, Path, str]]]:
    """(to do, already done, failed before and not retried) as (relative name, path[, error])."""
    root = Path(input_dir)
    state = BatchState(out_dir, options)
    job = options.job_fingerprint()
    todo, done, failed = [], [], []
    for path in find_media(root, options.recursive):
        rel = path.relative_to(root).as_posix()
        if state.is_done(rel, path, job):
            done.append((rel, path))
            continue
        error = None if options.retry_failed else state.failure(rel, path, job)
        if error is not None:
            failed.append((rel, path, error))
        else:
            todo.append((rel, path))
    return todo, done, failed


def run_batch(
    input_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: BatchOptions | None = None,
    ctx: RunContext | None = None,
    on_event: BatchEventCallback | None = None,
    ray_address: str | None = None,
    workers: int | None = None,
    cpus_per_worker: float = 1.0,
    analyzer: FileAnalyzer | None = None,
) -> BatchSummary:
    """Analyse every media file under `input_dir` that is not already done in `out_dir`.

    `ray_address`: None runs in this process; "local" starts a private local Ray instance with
    `workers` actors; anything else ("auto", "ray://host:10001", "host:6379") joins that cluster.
    `ctx.cancel` stops the run (raises Cancelled) after marking every file finished so far;
    `ctx.progress` receives the stage progress of the file being analysed (in-process only).
    """
    options = options or BatchOptions()
    ctx = ctx or RunContext()
    root, out = Path(input_dir), Path(out_dir)
    check_out_dir(root, out)
    out.mkdir(parents=True, exist_ok=True)
    with hold_out_lock(out):
        return _run_batch_locked(root, out, options, ctx, on_event, ray_address, workers, cpus_per_worker,
                                 analyzer)


def _run_batch_locked(root: Path, out: Path, options: BatchOptions, ctx: RunContext,
                      on_event: BatchEventCallback | None, ray_address: str | None, workers: int | None,
                      cpus_per_worker: float, analyzer: FileAnalyzer | None) -> BatchSummary:
    todo, done, failed_before = plan_batch(root, out, options)
    summary = BatchSummary(str(root), str(out), backend="local" if ray_address is None else "ray")
    for rel, _ in done:
        summary.outcomes.append(FileOutcome(name=rel, status="skipped"))
        if on_event is not None:
            on_event("skipped", rel, None)
    summary.previously_failed = [rel for rel, _, _ in failed_before]
    writer = _Writer(BatchState(out, options), options, options.job_fingerprint(), summary, on_event)
    try:
        if todo:
            if ray_address is None:
                _run_local(todo, options, ctx, writer, on_event, analyzer)
            else:
                _run_ray(todo, options, ctx, writer, on_event, ray_address, workers, cpus_per_worker)
    finally:
        write_summary_csv(out)
    return summary


def _run_local(todo: list[tuple[str, Path]], options: BatchOptions, ctx: RunContext, writer: _Writer,
               on_event: BatchEventCallback | None, analyzer: FileAnalyzer | None) -> None:
    analyzer = analyzer or FileAnalyzer(options)
    for rel, path in todo:
        ctx.check()
        if on_event is not None:
            on_event("start", rel, None)
        # A fresh context per file (own warnings) sharing the batch's cancel flag and progress sink.
        file_ctx = RunContext(progress=ctx.progress, cancel=ctx.cancel)
        t0 = time.perf_counter()
        try:
            result, cached = analyzer.analyze(str(path), file_ctx)
        except Cancelled:
            raise
        except MSAError as exc:
            writer.failure(rel, path, str(exc), "", time.perf_counter() - t0)
            continue
        except Exception as exc:  # see FileAnalyzer.analyze_payload
            writer.failure(rel, path, f"internal error: {type(exc).__name__}: {exc}",
                           traceback.format_exc(), time.perf_counter() - t0)
            continue
        writer.success(rel, path, result, time.perf_counter() - t0, cached)


# ----------------------------------------------------------------------------------------- Ray


def ray_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("ray") is not None


AUTO_RAY_MIN_CPUS = 4


def choose_backend(ray_address: str | None, no_ray: bool, n_todo: int, cpus: int | None = None) -> str | None:
    """The Ray address to use, or None for in-process.

    An explicit address wins; `no_ray` forces in-process. Otherwise local Ray is the default when it
    is installed, there are at least two files and the machine has >= 4 CPUs: one pipeline already
    keeps ~2 cores busy (ASR/audio beside the visual thread), so on a 2-core machine extra workers
    would only add Ray's start-up time and a second copy of every model."""
    if ray_address:
        return ray_address
    if no_ray or n_todo < 2 or not ray_available():
        return None
    cpus = os.cpu_count() if cpus is None else cpus
    return "local" if (cpus or 1) >= AUTO_RAY_MIN_CPUS else None


class _RayWorker:
    """Ray actor body: one FileAnalyzer per actor process (models load once per worker)."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.analyzer = FileAnalyzer(BatchOptions(**options))
        self.pid = os.getpid()

    def analyze(self, path: str, data: bytes | None = None,
                sidecar: tuple[str, bytes] | None = None) -> dict[str, Any]:
        payload = self.analyzer.analyze_payload(path, data, display_path=path, sidecar=sidecar)
        payload["worker_pid"] = self.pid
        return payload


def _project_root() -> str:
    return str(Path(__file__).resolve().parent.parent)


def connect_ray(address: str, num_cpus: int | None = None) -> bool:
    """Initialise Ray unless already initialised; True when this call started it (caller shuts
    it down). "local" starts a private instance on this machine."""
    try:
        import ray
    except ImportError:
        raise MSAError("Ray is not installed: pip install 'msa-studio[ray]' (or pip install ray)") from None
    if ray.is_initialized():
        return False
    env = {"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [_project_root(), os.environ.get("PYTHONPATH")])),
                        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}}
    try:
        if address == "local":
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, runtime_env=env,
                     configure_logging=False)
        else:
            # Remote nodes must have msa-studio installed; PYTHONPATH helps only on this machine.
            ray.init(address=address, log_to_driver=False, runtime_env=env, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise MSAError(f"cannot connect to Ray at {address!r}: {' '.join(str(exc).split())[:200]}") from None
    return True


def _run_ray(todo: list[tuple[str, Path]], options: BatchOptions, ctx: RunContext, writer: _Writer,
             on_event: BatchEventCallback | None, address: str, workers: int | None,
             cpus_per_worker: float) -> None:
    import ray

    if workers is None:
        workers = max(1, int((os.cpu_count() or 1) // max(cpus_per_worker, 1e-9)))
    workers = max(1, min(int(workers), len(todo)))
    local_cpus = max(1, int(round(workers * cpus_per_worker))) if address == "local" else None
    started = connect_ray(address, num_cpus=local_cpus)
    actor_cls = ray.remote(num_cpus=cpus_per_worker)(_RayWorker)
    actors = []
    try:
        actors = [actor_cls.remote(asdict(options)) for _ in range(workers)]
        queue = list(todo)
        running: dict[Any, tuple[str, Path, Any, float]] = {}

        def submit(actor) -> None:
            rel, path = queue.pop(0)
            data = path.read_bytes() if options.ship_files else None
            transcript = options.transcript_for(path) if options.ship_files else None
            sidecar = (transcript, Path(transcript).read_bytes()) if transcript else None
            if on_event is not None:
                on_event("start", rel, None)
            ref = actor.analyze.remote(str(path), data, sidecar)
            running[ref] = (rel, path, actor, time.perf_counter())

        for actor in actors:
            if queue:
                submit(actor)
        while running:
            ctx.check()
            ready, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
            for ref in ready:
                rel, path, actor, t0 = running.pop(ref)
                try:
                    payload = ray.get(ref)
                except ray.exceptions.RayError as exc:  # the worker died (OOM kill, node lost)
                    payload = {"ok": False, "error": f"Ray worker failed: {' '.join(str(exc).split())[:300]}",
                               "detail": str(exc), "seconds": time.perf_counter() - t0}
                worker = f"ray:{payload.get('worker_pid', '?')}"
                if payload.get("ok"):
                    from core.result import AnalysisResult

                    result = AnalysisResult.from_dict(payload["result"])
                    writer.success(rel, path, result, payload["seconds"], bool(payload.get("cached")), worker)
                else:
                    writer.failure(rel, path, payload["error"], payload.get("detail", ""), payload["seconds"], worker)
                if queue:
                    submit(actor)
    finally:
        for actor in actors:
            try:
                ray.kill(actor)
            except Exception:  # already dead
                pass
        if started:
            ray.shutdown()


# ------------------------------------------------------------------------------------- summary


SUMMARY_FIELDS = ["file", "segments", "duration_s", "score", "contribution_text", "contribution_audio",
                  "contribution_visual", "seconds", "cached", "warnings"]


def write_summary_csv(out_dir: str | os.PathLike) -> Path:
    """batch_summary.csv from every done marker (this run and earlier ones)."""
    out = Path(out_dir)
    rows = []
    for o in BatchState(out).done_outcomes():
        rows.append({
            "file": o.name,
            "segments": o.segments,
            "duration_s": round(o.duration, 3),
            "score": "" if o.score is None else o.score,
            "contribution_text": o.contributions.get("text", ""),
            "contribution_audio": o.contributions.get("audio", ""),
            "contribution_visual": o.contributions.get("visual", ""),
            "seconds": o.seconds,
            "cached": int(o.cached),
            "warnings": "; ".join(o.warnings),
        })
    path = out / SUMMARY_NAME
    with atomic_open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=SUMMARY_FIELDS)
        w.writeheader()
        w.writerows(rows)
    return path


def iter_failures(out_dir: str | os.PathLike) -> Iterable[tuple[str, str]]:
    """(relative name, error) of every recorded failure in an output folder."""
    for path in sorted((Path(out_dir) / STATE_DIR / "failed").glob("*.json")):
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
            yield str(rec.get("name", path.stem)), str(rec.get("error", ""))
        except (OSError, ValueError):
            continue


__all__ = [
    "BatchBusy", "BatchOptions", "BatchState", "BatchSummary", "FileAnalyzer", "FileOutcome", "ProgressCallback",
    "check_out_dir", "choose_backend", "connect_ray", "find_media", "hold_out_lock", "plan_batch", "ray_available",
    "run_batch", "write_summary_csv",
]

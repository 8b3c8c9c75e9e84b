"""Running a batch: the per-file worker (an analysis.analyzer.Analyzer), in-process or on Ray; the
driver writes every output and marker (analysis.batch.markers) whichever backend analysed the file."""
from __future__ import annotations

import os
import tempfile
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

from analysis.batch.markers import BatchState, check_out_dir, hold_out_lock, plan_batch
from analysis.batch.options import BatchEventCallback, BatchOptions, BatchSummary, FileOutcome
from analysis.batch.summary import outcome_from_result, write_summary_csv
from core.errors import Cancelled, MSAError
from core.progress import RunContext


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
            result.recording.path = display_path or path
            if sidecar is not None and isinstance(result.recording.transcript, dict):
                result.recording.transcript["path"] = sidecar[0]  # not the temp copy's path
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
        outcome = outcome_from_result(rel, result, seconds, cached)
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


def blas_threads() -> int | None:
    """This process' BLAS thread count (None when numpy's BLAS cannot be inspected)."""
    from threadpoolctl import threadpool_info

    counts = [int(i["num_threads"]) for i in threadpool_info() if i.get("user_api") == "blas"]
    return counts[0] if counts else None


def _project_root() -> str:
    return str(Path(__file__).resolve().parents[2])  # analysis/batch/runners.py -> the checkout


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
    blas = blas_threads() if address == "local" else None  # a remote node keeps its own
    if blas:
        # Ray starts workers with OMP_NUM_THREADS=1, which OpenBLAS obeys when OPENBLAS_NUM_THREADS
        # is unset, and the features' matrix products (log-mel) then sum in another order: on an
        # AVX2-only AMD EPYC the scores moved by 0.005 against the in-process run. Local workers
        # get this process' count, so both backends give the same numbers.
        env["env_vars"]["OPENBLAS_NUM_THREADS"] = str(blas)
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

"""The output folder's state: which media to analyse, done/failed markers (written atomically,
after the outputs), the exclusive lock on the folder and the plan of a (resumed) run."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from analysis.batch.options import LOCK_NAME, MARKER_VERSION, STATE_DIR, BatchOptions, FileOutcome
from core.atomic_write import atomic_write_text
from core.errors import MSAError


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

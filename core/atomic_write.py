"""The one way MSA Studio writes a file: a temp file in the destination's folder, fsync, rename.

Readers (and a crash, a kill or a full disk) never see a half-written file: the destination is either
the old file or the complete new one. On any failure the temp file is removed and the destination is
untouched. The rename happens in the destination's own folder, so it never crosses filesystems.

Refused up front, with a one-line `OutputError`:
* a destination that is a folder (`os.replace` would fail after the work, leaving the temp behind);
* a destination that exists but is not a regular file: a device node, FIFO or socket. `os.replace`
  would silently swap e.g. a `/dev/null`-like node for a plain file (as root: the real one).

A symlink destination is replaced by the new file (the link target is left alone), as any
write-then-rename does. Permissions: the mode of the file being replaced, else 0666 minus the umask
(what `open(path, "w")` would create), unless `file_mode` says otherwise.
"""
from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path
from typing import IO, Iterator

from core.errors import OutputError


def _current_umask() -> int:
    # Python has no umask getter; set-and-restore is the portable way. It runs once, at import, before
    # any worker thread could create a file in between.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def check_destination(path: str | os.PathLike[str]) -> Path:
    """Raise OutputError when `path` exists and is not a regular file (a folder, a device, ...)."""
    p = Path(path)
    try:
        st = os.stat(p)  # follows symlinks: a link to a device is a device to us
    except FileNotFoundError:
        return p
    except OSError as exc:
        raise OutputError(f"cannot write {p}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise OutputError(f"output {p} is a folder; give a file name")
    if not stat.S_ISREG(st.st_mode):
        raise OutputError(f"output {p} is a device or special file, not a regular file; refusing to replace it")
    return p


def probe_writable(folder: str | os.PathLike[str]) -> None:
    """Create and delete a temp file in `folder`: the only test that holds for root, read-only
    mounts and pseudo filesystems such as /proc. Raises OutputError."""
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".msa-write-test.", suffix=".tmp")
    except OSError as exc:
        raise OutputError(f"cannot write in {folder}: {exc.strerror or exc}") from None
    os.close(fd)
    os.unlink(tmp)


def _mode_for(path: Path, file_mode: int | None) -> int:
    if file_mode is not None:
        return file_mode
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~_UMASK


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike[str],
    mode: str = "w",
    *,
    encoding: str | None = "utf-8",
    newline: str | None = None,
    make_parents: bool = False,
    file_mode: int | None = None,
) -> Iterator[IO]:
    """`with atomic_open(path, "w") as fh: ...` writes `path` atomically ("w" text or "wb" bytes).

    The file appears under its name only when the block ends without an exception."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode 'w' or 'wb', not {mode!r}")
    dest = check_destination(path)
    folder = dest.parent
    try:
        if make_parents:
            folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{dest.name}.", suffix=".tmp")
    except OSError as exc:
        raise OutputError(f"cannot write {dest}: {exc.strerror or exc}") from None
    try:
        binary = mode == "wb"
        with os.fdopen(fd, mode, encoding=None if binary else encoding, newline=None if binary else newline) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _mode_for(dest, file_mode))  # mkstemp creates 0600
        check_destination(dest)  # it may have become a folder or device while we wrote
        os.replace(tmp, dest)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise OutputError(f"cannot write {dest}: {exc.strerror or exc}") from None
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, **options) -> Path:
    with atomic_open(path, "wb", **options) as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8", **options) -> Path:
    with atomic_open(path, "w", encoding=encoding, **options) as fh:
        fh.write(text)
    return Path(path)


__all__ = ["atomic_open", "atomic_write_bytes", "atomic_write_text", "check_destination", "probe_writable"]

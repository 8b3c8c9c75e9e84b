"""Output paths checked before any work.

A command calls these first, so that an output that would destroy an input, is a folder or a device,
names the same file as another output, or lies where nothing can be written is refused in one line
and in milliseconds, not after minutes of analysis or training. Writing itself goes through
core.atomic_write, which repeats the folder/device check at the moment of the rename.

"The same file" means the same path after resolving `..` and symlinks, or the same inode (a hard link).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

from core.atomic_write import check_destination, probe_writable
from core.errors import OutputError

PathLike = str | os.PathLike[str]


def _same_file(a: Path, b: Path) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist
        return False


def _probe_writable(folder: Path, label: str) -> None:
    try:
        probe_writable(folder)
    except OutputError as exc:
        raise OutputError(f"{label}: {exc}") from None


def _existing_ancestor(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path(".")


def _refuse_inputs(label: str, path: Path, inputs: Iterable[PathLike | None]) -> None:
    for item in inputs:
        if item is not None and _same_file(path, Path(item)):
            raise OutputError(f"{label} {path} is the input file {item}; refusing to overwrite it")


def check_output_files(outputs: Sequence[tuple[str, PathLike | None]],
                       inputs: Iterable[PathLike | None] = ()) -> None:
    """`outputs`: (option name, path or None) pairs of files a command will write. Raises OutputError
    when one is a folder/device, is one of `inputs`, repeats another output, or cannot be written."""
    inputs = list(inputs)
    given = [(label, Path(p)) for label, p in outputs if p is not None]
    for i, (label, path) in enumerate(given):
        try:
            check_destination(path)
        except OutputError as exc:
            raise OutputError(f"{label}: {exc}") from None
        _refuse_inputs(label, path, inputs)
        for other_label, other in given[:i]:
            if _same_file(path, other):
                raise OutputError(f"{other_label} and {label} name the same file {path}; give two different files")
        folder = path.resolve().parent
        if not folder.is_dir():
            raise OutputError(f"output folder does not exist: {path.parent}")
        _probe_writable(folder, label)


def check_output_folder(label: str, folder: PathLike, files: Iterable[str] = (),
                        inputs: Iterable[PathLike | None] = ()) -> Path:
    """A folder a command will create (if needed) and write `files` into. Raises OutputError when it
    is a file, lies under a file, cannot be written, or when one of `files` there is a folder, a
    device or one of `inputs`. Creates nothing."""
    path = Path(folder)
    if os.path.lexists(path) and not path.is_dir():
        raise OutputError(f"{label} {path} is a file, not a folder")
    base = _existing_ancestor(path)
    if not base.is_dir():
        raise OutputError(f"{label} {path}: {base} is a file, not a folder")
    _probe_writable(base, label)
    inputs = list(inputs)
    for name in files:
        target = path / name
        try:
            check_destination(target)
        except OutputError as exc:
            raise OutputError(f"{label}: {exc}") from None
        _refuse_inputs(label, target, inputs)
    return path


__all__ = ["check_output_files", "check_output_folder"]

"""Compare the installed distributions with a lock file (exact `name==version` lines).

    python scripts/check_lock.py requirements.lock      exit 1 and list every difference

Used by scripts/install.sh after installing and by tests/test_install_lock.py, so a machine whose
versions differ from those the suite was run with says so instead of failing in odd ways later.
"""
from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path


def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[_key(name)] = version.strip()
    return pins


def differences(pins: dict[str, str]) -> list[str]:
    installed = {_key(d.metadata["Name"]): d.version for d in metadata.distributions()}
    out = []
    for name, want in sorted(pins.items()):
        have = installed.get(name)
        # a local build label (torch 2.13.0+cpu) satisfies ==2.13.0, as it does for pip
        if have is None or (have != want and have.split("+")[0] != want):
            out.append(f"{name}: locked {want}, installed {have or 'nothing'}")
    return out


def main() -> int:
    lock = Path(sys.argv[1] if len(sys.argv) > 1 else "requirements.lock")
    diffs = differences(read_lock(lock))
    for d in diffs:
        print(f"[lock] {d}", file=sys.stderr)
    if diffs:
        print(f"[lock] {len(diffs)} package(s) differ from {lock}; refresh it with `bash scripts/lock.sh` "
              "after a green test run, or reinstall", file=sys.stderr)
        return 1
    print(f"[lock] installed versions match {lock} ({len(read_lock(lock))} packages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# Refresh requirements.lock: the exact versions of every package in .venv, written after the test
# suite passed with them (run `bash scripts/test.sh` first). scripts/install.sh installs with the
# lock as pip constraints, so a fresh machine gets the versions the suite was run with.
#   bash scripts/lock.sh            rewrite requirements.lock from .venv (PYTHON=... for another)
# torch is written without its local build label (2.13.0+cpu -> 2.13.0): `==2.13.0` accepts the
# CPU and the CUDA builds alike, and scripts/install.sh picks the build (TORCH_SPEC/TORCH_INDEX_URL).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
{
  echo "# Exact versions the test suite passed with (Python $($PY -c 'import platform; print(platform.python_version())'), $(uname -m))."
  echo "# Used as pip constraints by scripts/install.sh; refresh with: bash scripts/lock.sh"
  "$PY" -m pip freeze --exclude-editable --disable-pip-version-check \
    | grep -v '^#' | grep -v '^-e ' | sed -E 's/^(torch==[^+]+)\+.*/\1/' | LC_ALL=C sort -f
} > requirements.lock.tmp
mv requirements.lock.tmp requirements.lock
echo "[lock] requirements.lock: $(grep -vc '^#' requirements.lock) packages"

#!/usr/bin/env bash
# Run the test suite (installs first if needed; safe to run repeatedly).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --no-run
# MSA_RUN_SLOW=1: include the 3-hour streamed-audio test (about 3 min).
export QT_QPA_PLATFORM=offscreen HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MSA_RUN_SLOW=1
# Layering contracts first (pyproject.toml [tool.importlinter]): set -e ends the script if one breaks.
.venv/bin/lint-imports --no-cache
# -n 1: the tests run in one pytest-xdist worker process, so a test stuck in native code (ended by
# tests/hang_guard.py) fails alone and a fresh worker runs the rest. One worker: the suite shares
# loaded models between tests and has timing checks that two parallel workers on 2 cores would upset.
exec .venv/bin/python -m pytest -n 1 "$@"

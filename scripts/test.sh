#!/usr/bin/env bash
# Run the test suite (installs first if needed; safe to run repeatedly).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --no-run
export QT_QPA_PLATFORM=offscreen HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/python -m pytest -q "$@"

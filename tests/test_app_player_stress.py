"""The video player opens, plays and closes 200 times without an audio server, offscreen and in a
real X11 window under Xvfb, and 60 times under Xvfb with an audio output attached, in a child
process each (a wedged QtMultimedia is killed, not waited for).

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

from tests.app_support import ROOT, start_fake_mic, start_xvfb, stop_process, two_sentence_clip
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


def run_stress(env: dict[str, str], cycles: int = CYCLES, sound: bool = False) -> dict:
    clip = two_sentence_clip()
    cmd = [sys.executable, "-m", "tests.player_stress", "--clip", str(clip), "--cycles", str(cycles),
           "--watchdog", str(CYCLE_WATCHDOG_S)]
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"player stress run hung and was killed\n{(exc.stderr or '')[-3000:]}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("SUMMARY ")]
    assert proc.returncode == 0 and lines, f"rc={proc.returncode}: a cycle wedged or crashed\n{proc.stderr[-4000:]}"
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    summary = json.loads(lines[0][len("SUMMARY "):])
    assert summary["cycles"] == cycles
    assert summary["no_frame"] == 0, summary  # every cycle showed a picture
    assert summary["not_playing"] == 0, summary  # and played
    # no device: played silently; with one, every cycle had its audio output attached
    assert summary["with_sound"] == (cycles if sound else 0), summary
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


def test_player_open_play_unload_with_an_audio_output_under_xvfb(tmp_path):
    """The same cycles with a PulseAudio server (a null sink) so that an audio output is attached:
    unload() then stops a player whose audio renderer runs — the case the window-close deadlock
    came from (module docstring of app/widgets/video_player.py)."""
    mic = start_fake_mic(tmp_path)
    display = start_xvfb()
    try:
        env = {**os.environ, **mic.env(), "QT_QPA_PLATFORM": "xcb", "DISPLAY": display.display}
        summary = run_stress(env, cycles=min(CYCLES, 60), sound=True)
    finally:
        stop_process(display.proc)
        mic.stop()
    print("xvfb + audio output stress:", summary)

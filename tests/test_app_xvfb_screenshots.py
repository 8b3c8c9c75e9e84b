"""A real X11 window under Xvfb (started by this test): open a GRID clip, wait for every panel to
fill, run live mode on the fake camera + microphone, and save a screenshot of each panel to
artifacts/screenshots/. Every screenshot must be non-blank (pixel variance, several colours)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.app_support import (
    ROOT,
    SCREENSHOT_DIR,
    assert_not_blank,
    start_fake_camera,
    start_fake_mic,
    start_xvfb,
    stop_process,
    two_sentence_clip,
)
from tests.media_factory import grid_clips, requires_espeak

pytestmark = requires_espeak


@pytest.fixture()
def xdisplay():
    x = start_xvfb()
    yield x
    stop_process(x.proc)


def test_real_window_screenshots_of_every_panel(xdisplay, tmp_path):
    clips = grid_clips()
    clip = clips[0] if clips else two_sentence_clip()
    camera = start_fake_camera(tmp_path)
    mic = start_fake_mic(tmp_path)
    mic.start_feeding()
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DISPLAY": xdisplay.display, "QT_QPA_PLATFORM": "xcb", "PULSE_SERVER": mic.server,
           "MSA_SHOTS_WATCHDOG_S": os.environ.get("MSA_SHOTS_WATCHDOG_S", "540")}  # stacks before the timeout below
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "tests.app_screenshots", "--clip", str(clip), "--out", str(SCREENSHOT_DIR),
             "--camera", camera.url, "--mic", mic.source],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
        )
    finally:
        mic.stop()
        stop_process(camera.proc)
    assert proc.returncode == 0, f"rc={proc.returncode}\n{proc.stderr[-12000:]}"
    summary = json.loads((SCREENSHOT_DIR / "summary.json").read_text())
    assert summary["platform"] == "xcb"
    n = summary["segments"]
    assert n >= 1
    assert summary["transcript_rows"] == summary["timeline_bars"] == summary["contribution_rows"] == n
    assert summary["mask_rows"] == 8 and summary["missing_curve_points"] == 10
    assert any(t.strip() for t in summary["texts"])
    assert summary["hover_text"]
    assert summary["masked_key"] == "T_V"
    if clips:
        assert summary["landmarks_drawn"], "GRID clip: the face mesh should be drawn on the video"
        assert summary["live_has_face"]
    assert summary["live_results"] >= 6
    assert any(t.strip() for t in summary["live_texts"])
    assert summary["live_stop_s"] <= 1.0
    steady = summary["live_plot_lags"][1:]  # after the first hop, see test_live_core
    assert np.percentile(steady, 95) <= float(os.environ.get("MSA_LIVE_MAX_LAG", "10")), summary["live_plot_lags"]
    expected = {
        "window_recording", "tab_recording", "panel_video", "panel_transcript", "panel_timeline",
        "panel_contributions_segments", "panel_contributions_recording", "tab_robustness", "tab_live", "window_robustness", "panel_robustness_masked_vs_full",
        "panel_robustness_mask_table", "panel_robustness_missing_rate", "window_recording_masked",
        "window_live", "panel_live_preview", "panel_live_timeline", "panel_live_contributions",
    }
    assert set(summary["shots"]) == expected
    for name, path in summary["shots"].items():
        assert_not_blank(ROOT / path if not os.path.isabs(path) else path)

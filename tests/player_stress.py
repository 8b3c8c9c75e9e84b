"""Open, play and close app.widgets.video_player.VideoPlayer many times; print one JSON summary line.

Run in a child process by tests/test_app_player_stress.py (so a deadlock inside QtMultimedia cannot
wedge the test run), and usable by hand:

    QT_QPA_PLATFORM=offscreen python -m tests.player_stress --clip CLIP --cycles 200

Each cycle: a new player widget, load the clip, wait for the first frame, play until the position
moves, then stop + unload + delete it, as closing the window does. A cycle stuck for --watchdog
seconds dumps every thread's stack and ends the process (faulthandler: works while the GUI thread is
stuck in native code) before the summary line is printed.
"""
from __future__ import annotations

import argparse
import faulthandler
import json
import os
import sys
import time

os.environ.setdefault("QT_LOGGING_RULES", "qt.multimedia.*=false")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clip", required=True)
    ap.add_argument("--cycles", type=int, default=200)
    ap.add_argument("--watchdog", type=float, default=60.0, help="seconds one cycle may take")
    args = ap.parse_args(argv)

    from PySide6.QtWidgets import QApplication

    from app.widgets.video_player import VideoPlayer

    from tests.app_screenshots import pump

    app = QApplication.instance() or QApplication(["player-stress"])

    summary = {"platform": app.platformName(), "cycles": 0, "no_frame": 0, "not_playing": 0,
               "with_sound": 0, "max_close_s": 0.0}
    started = time.monotonic()
    for _ in range(args.cycles):
        faulthandler.dump_traceback_later(args.watchdog, exit=True)
        player = VideoPlayer()
        player.show()
        player.load(args.clip)
        summary["no_frame"] += not pump(app, lambda: player.frames_shown > 0, 10.0)
        player.play()
        summary["not_playing"] += not pump(app, lambda: player.position > 0.1, 5.0)
        summary["with_sound"] += player.player.audioOutput() is not None
        t = time.monotonic()
        player.unload()
        player.close()
        player.deleteLater()
        app.processEvents()
        summary["max_close_s"] = max(summary["max_close_s"], time.monotonic() - t)
        summary["cycles"] += 1
    faulthandler.cancel_dump_traceback_later()
    summary["total_s"] = round(time.monotonic() - started, 1)
    summary["max_close_s"] = round(summary["max_close_s"], 3)
    print("SUMMARY " + json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

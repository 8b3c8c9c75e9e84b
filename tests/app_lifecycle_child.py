"""Run the real application (app.main.main) in this process and close its window mid-work.

Used by tests/test_app_lifecycle.py in a child process, so the exit status and everything printed
at interpreter shutdown can be checked; usable by hand too:

    QT_QPA_PLATFORM=offscreen python -m tests.app_lifecycle_child analysis --clip CLIP

Scenarios (what runs when the window is closed):
  analysis  an analysis of --clip has started decoding (the models are still preloading, too)
  live      live mode with --clip as camera and its audio track as microphone has scored a window
  playback  --clip is playing (its analysis was cancelled first)
Prints `STATE ...` when the scenario is reached and, after app.main.main returned, `EXIT rc=...
threads_alive=...`: the threads still running when the interpreter starts to shut down (native
libraries abort the process when they are torn down under one of them).
"""
from __future__ import annotations

import argparse
import faulthandler
import os
import sys
import threading
import time

os.environ.setdefault("MSA_STUDIO_NO_DIALOGS", "1")
os.environ.setdefault("QT_LOGGING_RULES", "qt.multimedia.*=false")

SCENARIO_TIMEOUT_S = 300.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario", choices=("analysis", "live", "playback"))
    ap.add_argument("--clip", required=True)
    ap.add_argument("--settle", type=float, default=0.0, help="seconds to let it run after reaching the state")
    ap.add_argument("--watchdog", type=float, default=120.0,
                    help="seconds after the close: dump every thread's stack and end the process")
    args = ap.parse_args(argv)

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication(["msa-studio"])
    from app import main as app_main
    from app.live_controller import LiveConfig
    from app.main_window import MainWindow

    started = time.monotonic()
    steps: set[str] = set()
    closed_at: list[float] = []

    def close_soon(w: MainWindow, state: str) -> None:
        print(f"STATE {state}", flush=True)

        def close() -> None:
            # A wedged shutdown must show where it is stuck (even inside native code) and end.
            faulthandler.dump_traceback_later(args.watchdog, exit=True)
            closed_at.append(time.monotonic())
            w.close()

        QTimer.singleShot(int(args.settle * 1000), close)

    def reached(w: MainWindow) -> str | None:
        """A description of the state when the scenario's moment has come, else None."""
        if args.scenario == "analysis":
            if w.job is not None and w.progress.value("decode") > 0.0:
                return f"analysing job_running={w.job.is_running()}"
        elif args.scenario == "playback":
            if "cancelled" not in steps:
                w.cancel_analysis()
                steps.add("cancelled")
            if w.player.frames_shown > 0 and not w.player.is_playing:
                w.player.play()
            if w.player.is_playing and w.player.position > 0.3:
                return f"playing position={w.player.position:.2f}"
        elif args.scenario == "live":
            if "started" not in steps:
                w.cancel_analysis()
                w.tabs.setCurrentIndex(2)
                w.start_live(LiveConfig(camera=args.clip, mic=None, mic_backend="file", audio_file=args.clip,
                                        window=3.0, hop=1.0))
                steps.add("started")
            if w.live.running and w.live_panel.results:
                return f"live results={len(w.live_panel.results)}"
            if "Could not" in w.live_panel.status.text():
                return "FAILED " + w.live_panel.status.text()
        return None

    def poll() -> None:
        if time.monotonic() - started > SCENARIO_TIMEOUT_S:
            print("TIMEOUT waiting for the scenario", flush=True)
            app.exit(3)
            return
        windows = [w for w in app.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
        state = reached(windows[0]) if windows else None
        if state is None:
            QTimer.singleShot(50, poll)
        elif state.startswith("FAILED"):
            print(state, flush=True)
            app.exit(4)
        else:
            close_soon(windows[0], state)

    QTimer.singleShot(50, poll)
    rc = app_main.main(["--device", "cpu", args.clip])
    alive = [t.name for t in threading.enumerate() if t is not threading.main_thread() and t.is_alive()]
    shutdown_s = time.monotonic() - closed_at[0] if closed_at else -1.0
    print(f"EXIT rc={rc} shutdown_s={shutdown_s:.1f} threads_alive={','.join(alive) or '-'}", flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())

"""Drive the real application window and save a screenshot of every panel.

Run by tests/test_app_xvfb_screenshots.py in a child process on an Xvfb display (QT_QPA_PLATFORM=xcb,
so it is a real X11 window), and usable by hand:

    DISPLAY=:99 python -m tests.app_screenshots --clip ../shared/data/grid/bbaf2n.mpg \
        --out artifacts/screenshots [--camera tcp://127.0.0.1:5000 --mic fakemic | --live-file]

`--live-file` runs live mode on the clip itself as the camera, with its own audio (what
scripts/screenshots.py uses for the README pictures: no devices needed).

Writes PNGs plus summary.json (what was on screen) to --out. Exit code 0 only when the file
analysis finished and, if requested, live mode produced results.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MSA_STUDIO_NO_DIALOGS", "1")
os.environ.setdefault("QT_LOGGING_RULES", "qt.multimedia.*=false")


def pump(app, predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        app.processEvents()
        if predicate():
            return True
        time.sleep(0.02)
    app.processEvents()
    return bool(predicate())


def settle(app, seconds: float) -> None:
    pump(app, lambda: False, seconds)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clip", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--camera")
    ap.add_argument("--mic", help="PulseAudio source name for parec")
    ap.add_argument("--live-file", action="store_true",
                    help="live mode on the clip as the camera, with its own audio (instead of --camera/--mic)")
    ap.add_argument("--prefix", default="")
    args = ap.parse_args(argv)
    watchdog = float(os.environ.get("MSA_SHOTS_WATCHDOG_S", "0") or 0)
    if watchdog > 0:
        # A run stuck anywhere (native code included) ends with every thread's stack on stderr
        # instead of being killed silently by the caller's timeout.
        import faulthandler

        faulthandler.dump_traceback_later(watchdog, exit=True)

    from PySide6.QtCore import QPointF, QSettings
    from PySide6.QtWidgets import QApplication

    from app.main_window import MainWindow

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    app = QApplication.instance() or QApplication(["msa-studio"])
    ini = Path(tempfile.mkdtemp(prefix="msa-shots-")) / "settings.ini"
    w = MainWindow(settings=QSettings(str(ini), QSettings.Format.IniFormat), device="cpu")
    w.resize(1360, 900)
    w.show()
    summary: dict = {"platform": app.platformName(), "clip": args.clip, "shots": {}}

    def shot(name: str, widget=None) -> None:
        app.processEvents()
        path = out / f"{args.prefix}{name}.png"
        if widget is None:
            # The whole top-level window as the X server shows it (a real-window capture).
            pixmap = app.primaryScreen().grabWindow(w.winId())
        else:
            pixmap = widget.grab()
        pixmap.save(str(path))
        summary["shots"][name] = str(path)

    pump(app, lambda: w.preload_task is None or not w.preload_task.is_running(), 300)
    w.open_path(args.clip)
    t0 = time.monotonic()
    if not pump(app, lambda: w.session is not None or (w.job is None and bool(w.last_error)), 600):
        print("analysis timed out", file=sys.stderr)
        return 2
    if w.session is None:
        print(f"analysis failed: {w.last_error}", file=sys.stderr)
        return 3
    summary["analysis_s"] = time.monotonic() - t0
    pump(app, lambda: bool(w.robustness.curve), 180)
    s = w.session
    summary.update(
        segments=len(s.segments),
        texts=[seg.text for seg in s.segments],
        scores=[seg.score for seg in s.segments],
        transcript_rows=w.transcript.rowCount(),
        timeline_bars=len(w.timeline.values),
        contribution_rows=int(w.contributions.segments.matrix.shape[0]),
        recording_contributions=w.contributions.recording.values,
        mask_rows=sum(1 for r in range(w.robustness.table.rowCount()) if w.robustness.table.item(r, 2) is not None),
        missing_curve_points=len(w.robustness.curve),
        warnings=s.result.warnings,
    )

    # A typical look: playhead inside the first segment, face mesh on, hover label shown.
    w.player.overlay_box.setChecked(True)
    seg = s.segments[0]
    w.seek(min(seg.start + 0.8 * (seg.end - seg.start), seg.start + 1.5))
    pump(app, lambda: w.player.frames_shown > 0, 10)
    settle(app, 0.8)
    summary["landmarks_drawn"] = w.player.canvas.landmarks is not None
    scene_pt = w.timeline.plotItem.vb.mapViewToScene(QPointF((seg.start + seg.end) / 2, 0.0))
    w.timeline.scene().sigMouseMoved.emit(scene_pt)
    summary["hover_text"] = w.timeline.hover_text
    settle(app, 0.3)
    shot("window_recording")
    shot("tab_recording", w.tabs.currentWidget())
    shot("panel_video", w.player)
    shot("panel_transcript", w.transcript)
    shot("panel_timeline", w.timeline)
    shot("panel_contributions_segments", w.contributions.segments)
    shot("panel_contributions_recording", w.contributions.recording.parentWidget())

    w.toggles.buttons["audio"].setChecked(False)
    w.tabs.setCurrentIndex(1)
    settle(app, 0.5)
    summary["masked_key"] = w.robustness.current_key
    shot("window_robustness")
    shot("tab_robustness", w.tabs.currentWidget())
    shot("panel_robustness_masked_vs_full", w.robustness.compare)
    shot("panel_robustness_mask_table", w.robustness.table)
    shot("panel_robustness_missing_rate", w.robustness.curve_plot)
    w.tabs.setCurrentIndex(0)
    settle(app, 0.3)
    shot("window_recording_masked")
    w.toggles.set_keep(frozenset({"text", "audio", "visual"}))

    if args.camera or args.live_file:
        from app.widgets.live_panel import MIC_FILE

        panel = w.live_panel
        w.tabs.setCurrentIndex(2)
        panel.refresh_devices()
        panel.select_camera_url(args.camera or args.clip)
        if args.live_file:
            panel.select_mic(MIC_FILE, "file")
        elif args.mic:
            panel.select_mic(args.mic, "parec")
        panel.start_button.click()
        if not pump(app, lambda: w.live.running or "Could not" in panel.status.text(), 120) or not w.live.running:
            print(f"live mode did not start: {panel.status.text()}", file=sys.stderr)
            return 4
        pump(app, lambda: len(panel.results) >= 8 and any(r.text for r in panel.results), 90)
        lags = list(w.live.plot_lags)
        shot("window_live")
        shot("tab_live", w.tabs.currentWidget())
        shot("panel_live_preview", panel.preview)
        shot("panel_live_timeline", panel.timeline)
        shot("panel_live_contributions", panel.contrib)
        t = time.monotonic()
        panel.start_button.click()
        summary["live_stop_s"] = time.monotonic() - t
        summary.update(
            live_results=len(panel.results),
            live_texts=[r.text for r in panel.results],
            live_has_face=any(r.has_face for r in panel.results),
            live_plot_lags=lags,
            live_worker_lags=[r.lag_seconds for r in panel.results],
            live_timings=[r.timings for r in panel.results],
            live_lag_label=w.lag_label.text(),
        )
        if not panel.results:
            return 5

    (out / f"{args.prefix}summary.json").write_text(json.dumps(summary, indent=2, default=float))
    w.close()
    app.processEvents()
    return 0


if __name__ == "__main__":
    sys.exit(main())

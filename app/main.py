"""GUI entry point: `msa-studio [FILE ...]` (cli/main.py routes here), or `python -m app.main [FILE ...] [--live]`."""
from __future__ import annotations

import argparse
import os
import sys

from models.defaults import DEFAULT_MODEL

# How long the process waits after the window closed for worker threads to stop: the longest
# uninterruptible step (loading Whisper, a numba JIT compile, muxing a recording) on a slow machine.
SHUTDOWN_WAIT_S = 60.0


def build_parser(parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser) -> argparse.ArgumentParser:
    p = parser_class(prog="msa-studio-gui", description="MSA Studio desktop application")
    p.add_argument("paths", nargs="*", metavar="FILE",
                   help="recordings or .msasession files: the first opens, the others wait in File ▸ Open recent")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"model to analyse with (default: {DEFAULT_MODEL})")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto")
    p.add_argument("--live", action="store_true", help="start on the Live tab")
    p.add_argument("--camera", help="live camera: device index, stream URL or video file")
    p.add_argument("--no-preload", action="store_true", help="do not load the models in the background at start")
    p.add_argument("--no-sidecar", action="store_true",
                   help="ignore transcript files next to recordings this time (File menu: the lasting setting)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    # Qt Multimedia logs every missing optional backend (pipewire, VA-API) at startup; not useful.
    os.environ.setdefault("QT_LOGGING_RULES", "qt.multimedia.*=false")
    from app.qt_binding import binding_problem

    problem = binding_problem()
    if problem:
        print(f"msa-studio: {problem}", file=sys.stderr)
        return 2
    from PySide6.QtWidgets import QApplication

    from app.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("MSA Studio")
    app.setOrganizationName("MSA Studio")
    window = MainWindow(model=args.model, device=args.device, preload=not args.no_preload)
    window.show()
    if args.camera:
        window.live_panel.select_camera_url(args.camera)
    if args.live:
        window.tabs.setCurrentIndex(2)
    if args.no_sidecar:
        window.sidecar_action.setChecked(False)
    if args.paths:
        window.open_paths(args.paths)
    rc = int(app.exec())
    window.close()  # asks the workers to stop (a no-op when the user closed it already)
    if not window.wait_for_workers(SHUTDOWN_WAIT_S):
        # Exiting normally now would tear native libraries down under a running thread and abort
        # the process; skip that teardown instead. Everything the user saved is already on disk.
        print(f"msa-studio: {', '.join(window.running_workers())} did not stop within "
              f"{SHUTDOWN_WAIT_S:g} s; exiting without cleanup", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)
    return rc


if __name__ == "__main__":
    sys.exit(main())

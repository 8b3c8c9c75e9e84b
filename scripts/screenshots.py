"""The pictures in README.md and app/README.md, made again in one command:

    .venv/bin/python scripts/screenshots.py [--clip CLIP] [--out assets/screenshots]

Starts the real app under Xvfb (`xvfb-run`) on a GRID talking-head clip (grid/bbaf2n.mpg in
$MSA_DATA_DIR, else in ../shared/data beside the repository), lets it analyse the clip as a user's
`msa-studio CLIP` would, runs live mode on the same clip (as the camera, with its own audio) and
writes to --out:

    main.png             the whole window on the Recording tab
    tab_recording.png    the Recording tab (video + face mesh, timeline, contributions, transcript)
    tab_robustness.png   the Robustness tab (audio masked: masked vs full, 8 masks, missing-rate curve)
    tab_live.png         the Live tab after some hops

Rerun it whenever the shipped models change: the scores in the pictures are theirs. It stops with
one line and exit status 2 when the clip or Xvfb is missing, and status 1 when the app failed or a
panel stayed empty (then nothing in --out is replaced).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_CLIP = Path("grid") / "bbaf2n.mpg"  # "bin blue at f two now": a frontal talking head
# Saved name -> the driver's shot (tests/app_screenshots.py).
PICTURES = {
    "main": "window_recording",
    "tab_recording": "tab_recording",
    "tab_robustness": "tab_robustness",
    "tab_live": "tab_live",
}
MAX_BYTES = 400_000  # they live in git: a few hundred KB at most
SCREEN = "1400x940x24"  # the window is 1360x900


class ScreenshotError(Exception):
    """A one-line reason the pictures were not made, and the exit status that goes with it."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def default_clip() -> Path:
    from models.recipes.common import default_data_dir

    return default_data_dir() / DEFAULT_CLIP


def run_app(clip: Path, folder: Path) -> dict:
    """Drive the app under Xvfb; the driver's summary of what was on screen."""
    xvfb_run = shutil.which("xvfb-run")
    if xvfb_run is None:
        raise ScreenshotError("xvfb-run is not installed (apt install xvfb xauth)", status=2)
    env = {**os.environ, "QT_QPA_PLATFORM": "xcb", "MSA_STUDIO_NO_DIALOGS": "1"}
    env.pop("DISPLAY", None)
    # Relative to the repository (the app's working directory): the Live tab shows the camera's
    # path, and a picture in git must not show this machine's folders.
    shown = os.path.relpath(clip.resolve(), ROOT)
    cmd = [xvfb_run, "-a", "-s", f"-screen 0 {SCREEN} -nolisten tcp",
           sys.executable, "-m", "tests.app_screenshots", "--clip", shown, "--out", str(folder), "--live-file"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no message"]
        raise ScreenshotError(f"the app run failed (exit {proc.returncode}): {tail[0]}")
    return json.loads((folder / "summary.json").read_text())


def empty_panels(summary: dict) -> list[str]:
    """The panels the pictures would show empty."""
    n = summary.get("segments", 0)
    checks = {
        "transcript": n >= 1 and summary.get("transcript_rows") == n and any(t.strip() for t in summary["texts"]),
        "timeline": summary.get("timeline_bars") == n >= 1,
        "contributions": summary.get("contribution_rows") == n >= 1,
        "robustness mask table": summary.get("mask_rows") == 8,
        "missing-rate curve": summary.get("missing_curve_points", 0) > 0,
        "face mesh on the video": bool(summary.get("landmarks_drawn")),
        "live timeline": summary.get("live_results", 0) >= 6,
        "live face": bool(summary.get("live_has_face")),
    }
    return [name for name, filled in checks.items() if not filled]


def save_small(src: Path, dst: Path) -> int:
    """`src` as a 256-colour PNG at `dst` (a UI picture stays sharp; a photo-size file would not
    belong in git); its size in bytes."""
    from PIL import Image

    with Image.open(src) as img:
        small = img.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    small.save(dst, format="PNG", optimize=True)
    size = dst.stat().st_size
    if size > MAX_BYTES:
        raise ScreenshotError(f"{dst.name} would be {size // 1000} KB (at most {MAX_BYTES // 1000} KB)")
    return size


def make(clip: Path, out: Path) -> dict[str, int]:
    if not clip.is_file():
        raise ScreenshotError(f"clip not found: {clip} (set MSA_DATA_DIR or pass --clip)", status=2)
    from core.atomic_write import atomic_write_bytes

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="msa-screenshots-") as tmp:
        summary = run_app(clip, Path(tmp))
        missing = empty_panels(summary)
        if missing:
            raise ScreenshotError(f"empty in the app: {', '.join(missing)}")
        staged = {name: Path(tmp) / f"{name}.small.png" for name in PICTURES}
        sizes = {name: save_small(Path(summary["shots"][PICTURES[name]]), path) for name, path in staged.items()}
        for name, path in staged.items():  # all made and small enough: now replace the committed ones
            atomic_write_bytes(out / f"{name}.png", path.read_bytes())
    return sizes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", type=Path, help=f"talking-head video (default: {DEFAULT_CLIP} in the data folder)")
    ap.add_argument("--out", type=Path, default=ROOT / "assets" / "screenshots")
    args = ap.parse_args(argv)
    clip = args.clip or default_clip()
    try:
        sizes = make(clip, args.out)
    except ScreenshotError as exc:
        print(f"screenshots: {exc}", file=sys.stderr)
        return exc.status
    for name, size in sizes.items():
        print(f"{os.path.relpath(args.out / f'{name}.png')}  {size // 1000} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

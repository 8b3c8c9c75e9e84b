"""The README pictures: scripts/screenshots.py makes them in one command, the READMEs show them,
and the committed files are small, readable and not blank."""
from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.app_support import ROOT, assert_not_blank
from tests.media_factory import requires_espeak

SCRIPT = ROOT / "scripts" / "screenshots.py"


def load_script():
    spec = importlib.util.spec_from_file_location("screenshots_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pictures_shown_in(readme: Path) -> list[Path]:
    text = readme.read_text(encoding="utf-8")
    links = re.findall(r'<img src="([^"]+\.png)"', text) + re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", text)
    return [(readme.parent / link).resolve() for link in links]


def test_the_readmes_show_every_picture_the_script_makes():
    script = load_script()
    made = {(ROOT / "assets" / "screenshots" / f"{name}.png").resolve() for name in script.PICTURES}
    top = pictures_shown_in(ROOT / "README.md")
    app = pictures_shown_in(ROOT / "app" / "README.md")
    assert top and top[0].name == "main.png", "the README's first picture is the main window"
    assert {p.name for p in app} == {"tab_recording.png", "tab_robustness.png", "tab_live.png"}
    assert set(top) | set(app) == made
    for path in made:
        assert path.is_file(), f"{path.name} is not committed: run scripts/screenshots.py"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path.name
        assert path.stat().st_size <= script.MAX_BYTES, f"{path.name}: {path.stat().st_size} bytes"
        stats = assert_not_blank(path)
        assert stats["width"] >= 1000 and stats["height"] >= 700, (path.name, stats)


def test_the_readme_keeps_two_set_up_commands_on_its_first_screen():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    setup = text[text.index("## Set-up"):text.index("\n## ", text.index("## Set-up") + 1)]
    commands = [line for block in re.findall(r"```bash\n(.*?)```", setup, re.S) for line in block.splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    assert commands == ["bash scripts/install.sh", "bash scripts/test.sh"]
    first_screen = text[:text.index("bash scripts/test.sh")]
    assert "assets/screenshots/main.png" in first_screen


def test_the_script_explains_a_missing_clip_in_one_line(tmp_path, capsys):
    script = load_script()
    assert script.main(["--clip", str(tmp_path / "gone.mpg"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("screenshots: clip not found") and "\n" not in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_the_script_refuses_pictures_with_an_empty_panel():
    script = load_script()
    filled = {"segments": 2, "texts": ["hello", "there"], "transcript_rows": 2, "timeline_bars": 2,
              "contribution_rows": 2, "mask_rows": 8, "missing_curve_points": 10, "landmarks_drawn": True,
              "live_results": 8, "live_has_face": True}
    assert script.empty_panels(filled) == []
    assert script.empty_panels({**filled, "landmarks_drawn": False}) == ["face mesh on the video"]
    assert script.empty_panels({**filled, "mask_rows": 0, "live_results": 0}) == ["robustness mask table",
                                                                                  "live timeline"]


@pytest.mark.slow
@requires_espeak
def test_the_script_makes_the_pictures_in_one_command(tmp_path):
    """The real thing: the app under xvfb-run on the GRID clip, about 45 s here."""
    script = load_script()
    if not script.default_clip().is_file():
        pytest.skip(f"the GRID clip {script.default_clip()} is not here (set MSA_DATA_DIR)")
    if shutil.which("xvfb-run") is None:
        pytest.skip("xvfb-run is not installed (apt install xvfb xauth)")
    out = tmp_path / "shots"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{name}.png" for name in script.PICTURES)
    for path in out.iterdir():
        assert path.stat().st_size <= script.MAX_BYTES
        assert_not_blank(path)

"""Reports in a real browser: headless Chromium renders each page to a screenshot that is not blank and
shows the charts, its DOM (after scripts ran) shows the numbers of the JSON, the batch index sorts
in the browser, and the page prints to a multi-page PDF.

Chromium runs with its background networking off (the test machines have no network) and a fresh
profile per call. scripts/install.sh installs it (Debian package `chromium`); without it these tests
skip and say so.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analysis.report import build_recording_report
from core.result import AnalysisResult
from tests.media_factory import cached_video, requires_espeak
from tests.report_support import assert_page_shows, hand_made_result, parse, shown

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (scripts/install.sh installs it: apt-get install chromium)")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--disable-extensions"]
TEXT_BLUE = (0x4E, 0x79, 0xA7)  # the text modality's colour in every chart (analysis/report/charts.py)


def chromium(tmp: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    proc = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def screenshot(page: Path, tmp: Path, height: int = 2600) -> np.ndarray:
    from PIL import Image

    png = tmp / f"{page.stem}.png"
    chromium(tmp, f"--screenshot={png}", f"--window-size=1200,{height}", page.as_uri())
    with Image.open(png) as img:
        return np.asarray(img.convert("RGB"))


def dom(url: str, tmp: Path) -> str:
    return chromium(tmp, "--dump-dom", url).stdout


def assert_rendered_with_charts(pixels: np.ndarray) -> None:
    ink = np.any(pixels < 235, axis=2).mean()
    assert ink > 0.04, f"screenshot almost blank ({ink:.1%} non-white pixels)"
    near_blue = np.all(np.abs(pixels.astype(int) - TEXT_BLUE) < 12, axis=2).sum()
    assert near_blue > 2000, f"the charts did not render ({near_blue} text-blue pixels)"


def test_report_renders_and_the_browser_shows_the_json_numbers(tmp_path: Path) -> None:
    result = hand_made_result(14, intervals="some")
    result.to_json(tmp_path / "r.json")
    page = tmp_path / "report.html"
    page.write_text(build_recording_report(AnalysisResult.from_json(tmp_path / "r.json")), encoding="utf-8")
    assert_rendered_with_charts(screenshot(page, tmp_path))
    shown_page = parse(dom(page.as_uri(), tmp_path))
    assert_page_shows(AnalysisResult.from_json(tmp_path / "r.json"), shown_page)
    assert shown_page.ids["uncertainty-note"].startswith("Shaded band: the 80 % prediction interval")

    pdf = tmp_path / "report.pdf"
    chromium(tmp_path, f"--print-to-pdf={pdf}", "--no-pdf-header-footer", page.as_uri())
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and len(re.findall(rb"/Type\s*/Page(?![s\w])", data)) >= 2


def test_batch_index_sorts_in_the_browser(tmp_path: Path) -> None:
    from analysis.batch import BatchOptions, run_batch
    from analysis.report.batch_reports import write_batch_reports
    from tests.test_batch import FakeAnalyzer, _inputs

    names = ["a.mp4", "bb.mp4", "ccc.wav", "dddd.mkv", "sub/eeeee.mp4", "broken.mp4"]
    root = _inputs(tmp_path / "in", names)
    out = tmp_path / "out"
    options = BatchOptions(model="late-fusion", use_cache=False)
    run_batch(root, out, options, analyzer=FakeAnalyzer(fail={"broken.mp4"}))
    write_batch_reports(out, options, curves=False)
    index = out / "index.html"
    assert_rendered_with_charts(screenshot(out / "a.mp4.html", tmp_path))

    scores = {n: AnalysisResult.from_json(out / f"{n}.json").segments[0].score for n in names if n != "broken.mp4"}
    rows = parse(dom(index.as_uri() + "#sort=-score", tmp_path)).tables["batch-index"][1:]
    order = [r[0][0] for r in rows]
    assert order[:-1] == sorted(scores, key=lambda n: -scores[n])
    assert order[-1] == "broken.mp4"  # no score: last either way
    for row in rows[:-1]:
        assert shown(row[4][0]) == pytest.approx(scores[row[0][0]], abs=0.0005)
    rows = parse(dom(index.as_uri() + "#sort=file", tmp_path)).tables["batch-index"][1:]
    assert [r[0][0] for r in rows] == sorted(names)
    ascending = parse(dom(index.as_uri() + "#sort=score", tmp_path)).tables["batch-index"][1:]
    assert [shown(r[4][0]) for r in ascending[:-1]] == sorted(shown(r[4][0]) for r in ascending[:-1])


@pytest.mark.slow
@requires_espeak
def test_first_hour_analyze_then_report_then_open_without_network(tmp_path: Path) -> None:
    """The README's first steps, as a new user types them (default model), end to end. `analyze`
    caches the features by default (one cache policy with batch and the app), so the bare-JSON case
    -- a result whose features are nowhere -- is made with --no-cache, then the default is checked."""
    clip = tmp_path / "clip.mp4"
    shutil.copy(cached_video(duration=4.0, speech_text="I really love this wonderful movie", fps=25), clip)
    # A private, empty default cache: other tests of the run may have cached this very clip.
    env = {**os.environ, "MSA_CACHE_DIR": str(tmp_path / "empty-cache")}
    for argv in (["analyze", str(clip), "--json", str(tmp_path / "r.json"), "--quiet", "--no-cache"],
                 ["report", str(tmp_path / "r.json"), "-o", str(tmp_path / "r.html")]):
        proc = subprocess.run([sys.executable, "-m", "cli.main", *argv], cwd=ROOT, capture_output=True, text=True,
                              timeout=600, env=env)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    result = AnalysisResult.from_json(tmp_path / "r.json")
    assert result.segments and result.recording.transcript == {"source": "asr"}
    assert_rendered_with_charts(screenshot(tmp_path / "r.html", tmp_path))
    page = parse(dom((tmp_path / "r.html").as_uri(), tmp_path))
    assert_page_shows(result, page)
    # The shipped default checkpoint is calibrated: every segment carries its interval, drawn as the band.
    assert all(s.confidence is not None for s in result.segments)
    assert page.ids["uncertainty-note"].startswith("Shaded band: the 80 % prediction interval")
    assert "--report" in page.ids["missing-curve-note"]  # a bare JSON: the page says how to get the curve
    # The default: analyze fills the feature cache, so report finds the features and draws the curve.
    cache_dir = tmp_path / "feature-cache"
    for argv in (["analyze", str(clip), "--json", str(tmp_path / "c.json"), "--quiet", "--cache-dir", str(cache_dir)],
                 ["report", str(tmp_path / "c.json"), "-o", str(tmp_path / "c.html"), "--cache-dir", str(cache_dir)]):
        proc = subprocess.run([sys.executable, "-m", "cli.main", *argv], cwd=ROOT, capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    cached_page = parse(dom((tmp_path / "c.html").as_uri(), tmp_path))
    assert "missing-curve-note" not in cached_page.ids and "missing-curve-table" in cached_page.tables

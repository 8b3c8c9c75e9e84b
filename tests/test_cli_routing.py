"""`msa-studio FILE...` opens the app on the files, subcommands keep working, mistakes are one line; the
app's File ▸ Export ▸ Report writes the same report as the CLI."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import cli.main as cli_main

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from cli.main import main, route

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = [m.NAME for m in cli_main._command_modules()]


def _file(path: Path) -> Path:
    path.write_bytes(b"media bytes are not read while routing")
    return path


def test_routing_without_starting_anything(tmp_path: Path) -> None:
    a, b = _file(tmp_path / "a.mp4"), _file(tmp_path / "b.msasession")
    assert route([], COMMANDS).kind == "gui"
    assert route(["analyze", "x.mp4", "--json", "r.json"], COMMANDS).kind == "command"
    assert route(["report", str(a)], COMMANDS).kind == "command"
    assert route(["--help"], COMMANDS).kind == "command"
    assert route([str(a)], COMMANDS).kind == "gui"
    both = route([str(a), str(b), "--model", "tfn", "--no-preload"], COMMANDS)
    assert both.kind == "gui" and both.argv == [str(a), str(b), "--model", "tfn", "--no-preload"]
    assert route(["--live"], COMMANDS).kind == "gui"
    errors = {
        "analyse": route(["analyse", str(a)], COMMANDS),
        "folder": route([str(tmp_path)], COMMANDS),
        "missing": route([str(a), str(tmp_path / "gone.mp4")], COMMANDS),
        "option": route([str(a), "--json", "r.json"], COMMANDS),
    }
    assert all(r.kind == "error" for r in errors.values())
    assert "'analyse' is neither a command (analyze, batch," in errors["analyse"].error
    assert f"msa-studio batch {tmp_path} --out OUT_DIR" in errors["folder"].error
    assert errors["missing"].error.endswith(f"file not found: {tmp_path / 'gone.mp4'}")
    assert "unrecognized arguments: --json r.json" in errors["option"].error


def test_main_hands_files_to_the_app_and_mistakes_exit_2(tmp_path: Path, monkeypatch, capsys) -> None:
    import app.main

    a = _file(tmp_path / "a.mp4")
    started: list[list[str]] = []
    monkeypatch.setattr(app.main, "main", lambda argv: started.append(argv) or 0)
    assert main([str(a), "--no-preload"]) == 0 and started == [[str(a), "--no-preload"]]
    assert main(["analyse", str(a)]) == 2 and started == [[str(a), "--no-preload"]]
    err = capsys.readouterr().err.strip()
    assert err.startswith("msa-studio: error:") and len(err.splitlines()) == 1
    assert main(["models"]) == 0  # subcommands are unaffected


def test_help_lists_opening_files(capsys) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "msa-studio [FILE ...]" in out and "msa-studio FILE [FILE ...]" in out
    assert "report" in out and "--no-sidecar" in out


APP_SNIPPET = """
import sys
from pathlib import Path
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
app = QApplication(['msa-studio'])
from cli.main import main
from app.main_window import MainWindow

session_file, media, report = sys.argv[1:4]
state = {'ticks': 0, 'task': None}

def window():
    ws = [w for w in app.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
    return ws[0] if ws else None

def poll():
    state['ticks'] += 1
    w = window()
    if w is not None and w.session is not None and state['task'] is None:
        print('SESSION', Path(w.session.source_path).name, len(w.session.segments), flush=True)
        print('RECENT', [Path(p).name for p in w.recent_files()[:2]], flush=True)
        print('SIDECAR', w.sidecar_action.isChecked(), flush=True)
        state['task'] = w.export_report(report)
    if state['task'] is not None and not state['task'].is_running():
        print('REPORT', Path(report).is_file(), w.last_error or '-', flush=True)
        app.quit()
        return
    if state['ticks'] > 1200:
        print('TIMEOUT', flush=True)
        app.quit()
        return
    QTimer.singleShot(100, poll)

QTimer.singleShot(100, poll)
sys.exit(main([session_file, media, '--no-preload', '--device', 'cpu', '--no-sidecar']))
"""


def test_app_opens_a_session_given_on_the_command_line_and_exports_its_report(tmp_path: Path) -> None:
    """`msa-studio S.msasession B.mp4`: the session opens, B waits in Open recent, File ▸ Export ▸ Report
    writes the page (with the missing-rate curve, computed from the session's features). A child
    process: quitting the QApplication would end pytest-qt's event loop for later tests."""
    from core.session import save_session
    from tests.report_support import parse, real_scored_recording

    media = _file(tmp_path / "talk.mp4")
    result, rec, _ = real_scored_recording(str(media))
    session = tmp_path / "talk.msasession"
    save_session(session, result, rec)
    report = tmp_path / "from app.html"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", APP_SNIPPET, str(session), str(media), str(report)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr[-3000:]
    assert f"SESSION talk.mp4 {len(result.segments)}" in out, out + proc.stderr[-3000:]
    assert "RECENT ['talk.msasession', 'talk.mp4']" in out, out
    assert "SIDECAR False" in out  # --no-sidecar reached the window
    assert "REPORT True -" in out, out + proc.stderr[-3000:]
    page = parse(report.read_text(encoding="utf-8"))
    assert len(page.tables["transcript-table"]) == len(result.segments) + 1
    assert "missing-curve-table" in page.tables
    assert page.ids["transcript-source"] == "speech recognition (no transcript file)"


def test_app_analysis_uses_the_sidecar_unless_the_file_menu_turns_it_off(qapp, tmp_path: Path) -> None:
    from PySide6.QtCore import QSettings

    from app.main_window import MainWindow
    from app.workers import ModelCache

    clip = _file(tmp_path / "talk.mp4")
    srt = tmp_path / "talk.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:01,000\nhello\n", encoding="utf-8")
    settings = QSettings(str(tmp_path / "msa.ini"), QSettings.Format.IniFormat)
    w = MainWindow(settings=settings, cache=ModelCache(), preload=False)
    try:
        assert w.sidecar_action.isChecked()  # on by default
        w.analyze(str(clip))
        assert w.job.transcript == str(srt)
        w.cancel_analysis()
        w.sidecar_action.trigger()  # the user unticks it: remembered
        assert settings.value("use_sidecar_transcripts", type=bool) is False
        w.analyze(str(clip))
        assert w.job.transcript is None
        w.cancel_analysis()
        assert not w.export_report_action.isEnabled()  # nothing to report yet
    finally:
        w.close()

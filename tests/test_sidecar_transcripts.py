"""Sidecar transcripts: NAME.srt / NAME.vtt / NAME.txt next to a recording are used by analyze, batch and
the GUI unless turned off, and every result says which transcript it used."""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from cli.main import main
from analysis.batch import BatchOptions, plan_batch, run_batch
from core.errors import MSAError
from core.result import AnalysisResult
from core.transcripts import check_transcript_choice, choose_transcript, describe_transcript_record
from tests.media_factory import cached_audio, cached_video, requires_espeak
from tests.test_batch import FakeAnalyzer, _inputs

SPEECH = "I really love this wonderful movie"
SIDECAR_TEXT = "zebras quietly graze at dawn"
SRT = f"1\n00:00:00,300 --> 00:00:03,500\n{SIDECAR_TEXT}\n"


def _touch(path: Path, text: str = "hello\n") -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_choice_order_case_explicit_and_off(tmp_path: Path) -> None:
    media = _touch(tmp_path / "talk.mp4", "not read")
    assert choose_transcript(media).record() == {"source": "asr"}
    txt = _touch(tmp_path / "talk.txt")
    assert choose_transcript(media).path == txt
    vtt = _touch(tmp_path / "talk.VTT", "WEBVTT\n\n00:00.000 --> 00:01.000\nhi\n")
    srt = _touch(tmp_path / "talk.srt", SRT)
    _touch(tmp_path / "talk.mp4.srt")  # not NAME.srt: never picked
    _touch(tmp_path / "other.srt")
    choice = choose_transcript(media)
    assert choice.path == srt and choice.origin == "sidecar"
    assert choice.record() == {"source": "sidecar", "path": str(srt), "format": "srt", "ignored": [str(vtt), str(txt)]}
    assert choice.describe() == "transcript talk.srt (next to the recording)"
    assert choose_transcript(media, use_sidecar=False).path is None
    given = choose_transcript(media, explicit=tmp_path / "other.srt")
    assert given.record() == {"source": "file", "path": str(tmp_path / "other.srt"), "format": "srt"}
    assert choose_transcript(media, explicit=txt, use_sidecar=False).origin == "sidecar"  # where it lies
    assert describe_transcript_record(None).startswith("not recorded")
    assert describe_transcript_record({"source": "asr"}) == "speech recognition (no transcript file)"


def test_a_broken_sidecar_is_named_with_the_way_out(tmp_path: Path) -> None:
    media = _touch(tmp_path / "talk.mp4", "x")
    _touch(tmp_path / "talk.srt", "  \n")
    with pytest.raises(MSAError) as err:
        check_transcript_choice(choose_transcript(media), hint="--no-sidecar ignores it")
    assert str(err.value) == ("transcript file next to the recording cannot be used: transcript is empty: "
                              "talk.srt (--no-sidecar ignores it)")
    check_transcript_choice(choose_transcript(media, use_sidecar=False))  # off: nothing to check


def test_cli_analyze_refuses_a_broken_sidecar_before_any_work(tmp_path: Path, capsys) -> None:
    clip = tmp_path / "tone.wav"
    shutil.copy(cached_audio(".wav", duration=1.0), clip)
    (tmp_path / "tone.srt").write_bytes(b"\x00\x01binary\x00" * 20)
    t0 = time.perf_counter()
    assert main(["analyze", str(clip), "--json", str(tmp_path / "r.json"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert time.perf_counter() - t0 < 10  # refused before the models load
    assert "next to the recording" in err and "--no-sidecar" in err and len(err.splitlines()) == 1, err
    _touch(tmp_path / "tone.srt", SRT)
    assert main(["analyze", str(clip), "--json", str(tmp_path / "tone.srt"), "--quiet"]) == 2  # an input
    assert "is the input file" in capsys.readouterr().err


def test_batch_redoes_a_file_when_its_sidecar_appears_changes_or_is_turned_off(tmp_path: Path) -> None:
    root = _inputs(tmp_path / "in", ["a.mp4", "b.mp4"])
    out = tmp_path / "out"
    on, off = BatchOptions(use_cache=False), BatchOptions(use_cache=False, sidecar_transcripts=False)
    run_batch(root, out, on, analyzer=FakeAnalyzer())
    assert [rel for rel, _ in plan_batch(root, out, on)[0]] == []
    sidecar = _touch(root / "a.srt", SRT)
    assert [rel for rel, _ in plan_batch(root, out, on)[0]] == ["a.mp4"]  # new transcript: redo
    assert [rel for rel, _ in plan_batch(root, out, off)[0]] == []  # sidecars off: unchanged
    run_batch(root, out, on, analyzer=FakeAnalyzer())
    assert [rel for rel, _ in plan_batch(root, out, on)[0]] == []
    sidecar.write_text(SRT.replace("zebras", "horses"), encoding="utf-8")
    os.utime(sidecar, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert [rel for rel, _ in plan_batch(root, out, on)[0]] == ["a.mp4"]  # edited transcript: redo


def test_shipped_files_carry_their_sidecar_to_the_worker(tmp_path: Path) -> None:
    """Ray --ship-files: the worker analyses a temp copy; the sidecar's bytes travel with it, land next
    to the copy under its own name, and the result names the original sidecar, not the temp path."""
    from analysis.batch import FileAnalyzer
    from core.transcripts import load_transcript

    class Worker(FileAnalyzer):
        def __init__(self) -> None:  # no models: only the payload plumbing is under test
            self.options = BatchOptions()

        def analyze(self, path, ctx=None):
            choice = choose_transcript(path, use_sidecar=self.options.sidecar_transcripts)
            text = " ".join(seg.text for seg in load_transcript(choice.path)) if choice.path else ""
            result, cached = FakeAnalyzer().analyze(path)
            result.recording.transcript = choice.record()
            result.segments[0].text = text
            return result, cached

    srt = _touch(tmp_path / "talk.srt", SRT)
    payload = Worker().analyze_payload(str(tmp_path / "talk.mp4"), b"media bytes", sidecar=(str(srt), srt.read_bytes()))
    assert payload["ok"], payload
    result = AnalysisResult.from_dict(payload["result"])
    assert result.recording.transcript == {"source": "sidecar", "path": str(srt), "format": "srt"}
    assert result.segments[0].text == SIDECAR_TEXT


# ---------------------------------------------------------------------- real pipeline


@pytest.mark.slow
@requires_espeak
def test_analyze_uses_the_sidecar_reports_it_and_no_sidecar_turns_it_off(tmp_path: Path, capsys) -> None:
    clip = tmp_path / "talk.mp4"
    shutil.copy(cached_video(duration=4.0, speech_text=SPEECH, fps=25), clip)
    _touch(tmp_path / "talk.srt", SRT)
    argv = ["analyze", str(clip), "--model", "late-fusion", "--quiet", "--json"]
    assert main([*argv, str(tmp_path / "side.json"), "--report", str(tmp_path / "side.html")]) == 0
    assert "using transcript talk.srt (next to the recording)" in capsys.readouterr().err
    side = json.loads((tmp_path / "side.json").read_text())
    assert side["recording"]["transcript"] == {"source": "sidecar", "path": str(tmp_path / "talk.srt"), "format": "srt"}
    assert " ".join(s["text"] for s in side["segments"]) == SIDECAR_TEXT
    html = (tmp_path / "side.html").read_text(encoding="utf-8")
    assert "transcript talk.srt (next to the recording)" in html and 'id="missing-curve-table"' in html

    assert main([*argv, str(tmp_path / "asr.json"), "--no-sidecar"]) == 0
    asr = json.loads((tmp_path / "asr.json").read_text())
    assert asr["recording"]["transcript"] == {"source": "asr"}
    assert "love" in " ".join(s["text"].lower() for s in asr["segments"])


@pytest.mark.slow
@requires_espeak
def test_batch_uses_sidecars_and_writes_reports_with_curves_from_the_cache(tmp_path: Path, capsys) -> None:
    from tests.report_support import parse

    root = tmp_path / "in"
    root.mkdir()
    shutil.copy(cached_video(duration=4.0, speech_text=SPEECH, fps=25), root / "talk.mp4")
    _touch(root / "talk.srt", SRT)
    shutil.copy(cached_video(".mkv", duration=2.5, speech_text="this is terrible"), root / "plain.mkv")
    out = tmp_path / "out"
    argv = ["batch", str(root), "--model", "late-fusion", "--out", str(out), "--quiet", "--no-ray",
            "--cache-dir", str(tmp_path / "cache"), "--report"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "2 report(s) written" in err
    talk = AnalysisResult.from_json(out / "talk.mp4.json")
    assert talk.recording.transcript["source"] == "sidecar"
    assert " ".join(s.text for s in talk.segments) == SIDECAR_TEXT
    assert AnalysisResult.from_json(out / "plain.mkv.json").recording.transcript == {"source": "asr"}
    index = parse((out / "index.html").read_text(encoding="utf-8"))
    transcripts = {r[0][0]: r[9][0] for r in index.tables["batch-index"][1:]}
    assert transcripts == {"plain.mkv": "speech recognition (no transcript file)",
                           "talk.mp4": "transcript talk.srt (next to the recording)"}
    for name in ("talk.mp4", "plain.mkv"):  # batch cached the features, so the curve is there
        assert "missing-curve-table" in parse((out / f"{name}.html").read_text(encoding="utf-8")).tables
    assert main(argv) == 0  # rerun: nothing analysed, reports up to date
    assert "0 analysed" in (err := capsys.readouterr().err) and "2 up to date" in err

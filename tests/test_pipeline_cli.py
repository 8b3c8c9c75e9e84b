"""End-to-end: generated media through `msa-studio analyze`, result invariants, bad inputs, sessions."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cli.main import main
from core.feature_spec import default_spec
from tests.media_factory import cached_audio, cached_video, requires_espeak, requires_grid

ROOT = Path(__file__).resolve().parent.parent
MODEL = "late-fusion"  # cheapest model; these tests are about the pipeline, not the weights


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    rc = main(args)
    err = capsys.readouterr().err
    return rc, err


@pytest.fixture(scope="module")
def speech_clip() -> Path:
    return cached_video(duration=4.0, speech_text="I really love this wonderful movie", fps=25)


@requires_espeak
def test_cli_subprocess_end_to_end(speech_clip: Path, tmp_path: Path) -> None:
    out_json, out_csv = tmp_path / "r.json", tmp_path / "r.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", "analyze", str(speech_clip), "--model", MODEL,
         "--json", str(out_json), "--csv", str(out_csv)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    data = json.loads(out_json.read_text())
    assert data["recording"]["has_audio"] and data["recording"]["has_video"]
    assert data["feature_spec"]["version"] == 2 and data["feature_spec"]["audio"]["dim"] == default_spec().audio.dim
    segs = data["segments"]
    assert segs, "no segments"
    words = " ".join(s["text"].lower() for s in segs)
    assert "love" in words and "movie" in words, words
    for s in segs:
        assert -3 <= s["score"] <= 3
        assert set(s["contributions"]) == {"text", "audio", "visual"}
        assert len(s["mask_scores"]) == 8
        # Shapley efficiency: baseline + contributions reproduce the full score.
        assert s["base_score"] + sum(s["contributions"].values()) == pytest.approx(s["score"], abs=1e-6)
        assert s["mask_scores"]["TAV"] == pytest.approx(s["score"])
        assert 0 <= s["start"] < s["end"] <= 4.05
    if data["model"]["untrained"]:
        assert any("UNTRAINED" in w for w in data["warnings"])
        assert "UNTRAINED" in proc.stderr
    # synthetic frames have no face: visual must be reported missing, not silently zero
    assert any("no face" in w for w in data["warnings"])
    rows = out_csv.read_text().strip().splitlines()
    assert len(rows) == len(segs) + 1 and rows[0].startswith("segment,start,end,text,score")


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda d: d / "missing.mp4", "file not found"),
        (lambda d: _write(d / "empty.mp4", b""), "empty"),
        (lambda d: _write(d / "notes.mp4", b"this is not a video at all\n" * 50), "not a media file"),
    ],
)
def test_bad_files_give_one_line_errors(make, expected: str, tmp_path: Path, capsys) -> None:
    rc, err = run_cli(["analyze", str(make(tmp_path)), "--model", MODEL, "--json", str(tmp_path / "o.json")], capsys)
    assert rc == 2
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], err
    assert not (tmp_path / "o.json").exists()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_unknown_model_is_a_user_error(tmp_path: Path, capsys) -> None:
    clip = cached_audio(duration=1.0)
    rc, err = run_cli(["analyze", str(clip), "--model", "nope", "--json", str(tmp_path / "o.json")], capsys)
    assert rc == 2 and "unknown model 'nope'" in err and "late-fusion" in err


def test_checkpoint_with_other_spec_is_refused_naming_the_field(tmp_path: Path, capsys) -> None:
    from models.checkpoint import save_checkpoint
    from models.registry import build_model

    spec = default_spec().with_modality("audio", dim=74)
    model = build_model(MODEL, spec)
    ckpt = save_checkpoint(tmp_path / "other", model, model_name=MODEL, config={}, spec=spec, training={})
    clip = cached_audio(duration=1.0)
    rc, err = run_cli(["analyze", str(clip), "--model", MODEL, "--checkpoint", str(ckpt),
                       "--json", str(tmp_path / "o.json")], capsys)
    assert rc == 2
    assert "audio.dim" in err and "74" in err and str(default_spec().audio.dim) in err, err


def test_audio_only_file_gives_partial_result_with_warning(tmp_path: Path) -> None:
    from analysis.analyzer import Analyzer

    clip = cached_audio(ext=".flac", duration=2.5, speech_text="this is terrible")
    run = Analyzer.from_pretrained(MODEL, cache=None).run(str(clip))
    result, rec = run.result, run.features
    assert result.segments
    assert rec.visual_track is None
    assert any("no video stream" in w for w in result.warnings)
    assert all(not f.visual_mask.any() for f in rec.features)


def test_video_only_file_scores_windows_with_warning() -> None:
    from analysis.analyzer import Analyzer

    clip = cached_video(duration=5.0, audio=False)
    run = Analyzer.from_pretrained(MODEL, cache=None).run(str(clip))
    result, rec = run.result, run.features
    assert any("no audio stream" in w for w in result.warnings)
    assert len(result.segments) >= 1
    assert all(s.text == "" for s in result.segments)
    assert rec.segments[-1].end == pytest.approx(rec.info.duration, abs=0.2)


def test_silent_recording_warns_and_still_returns() -> None:
    from analysis.analyzer import Analyzer

    clip = cached_audio(duration=3.0, tone_hz=None)
    result = Analyzer.from_pretrained(MODEL, cache=None)(str(clip))
    assert any("silent" in w for w in result.warnings)


def test_cancel_stops_the_pipeline() -> None:
    from analysis.analyzer import Analyzer
    from core.errors import Cancelled
    from core.progress import RunContext

    ctx = RunContext()
    seen: list[str] = []

    def progress(stage: str, fraction: float, message: str) -> None:
        seen.append(stage)
        if len(seen) == 3:
            ctx.cancel.cancel()

    ctx.progress = progress
    clip = cached_video(duration=4.0, speech_text="I really love this wonderful movie", fps=25)
    with pytest.raises(Cancelled):
        Analyzer.from_pretrained(MODEL, cache=None).run(str(clip), ctx=ctx)


@requires_espeak
def test_session_round_trip_rescoring_matches(speech_clip: Path, tmp_path: Path) -> None:
    from analysis.analyzer import Analyzer
    from analysis.engine import InferenceEngine
    from core.session import load_session, save_session

    analyzer = Analyzer(InferenceEngine(MODEL), cache=None)
    run = analyzer.run(str(speech_clip))
    result, rec = run.result, run.features
    save_session(tmp_path / "s.msasession", result, rec)
    result2, rec2 = load_session(tmp_path / "s.msasession")
    assert [s.text for s in result2.segments] == [s.text for s in result.segments]
    rescored = analyzer.rescore(rec2)
    np.testing.assert_allclose([s.score for s in rescored.segments], [s.score for s in result.segments], atol=1e-5)
    # JSON round trip of the result object itself
    result.to_json(tmp_path / "r.json")
    again = type(result).from_json(tmp_path / "r.json")
    assert again.segments[0].contributions == pytest.approx(result.segments[0].contributions)


def test_corrupt_session_is_a_user_error(tmp_path: Path) -> None:
    from core.errors import MSAError
    from core.session import load_session

    bad = _write(tmp_path / "bad.msasession", b"PK\x03\x04 nonsense")
    with pytest.raises(MSAError):
        load_session(bad)



@pytest.mark.needs_data
@requires_grid
def test_grid_clips_end_to_end_words_faces_and_scores(tmp_path: Path, capsys) -> None:
    from analysis.analyzer import Analyzer
    from analysis.engine import InferenceEngine
    from core.extractors.asr import word_accuracy
    from core.pipeline import FeaturePipeline
    from tests.media_factory import grid_clips, grid_sentence

    clips = sorted(grid_clips())
    out = tmp_path / "grid.json"
    rc, err = run_cli(["analyze", str(clips[0]), "--model", "lnln", "--json", str(out)], capsys)
    assert rc == 0, err
    data = json.loads(out.read_text())
    assert data["segments"] and not any("no face" in w for w in data["warnings"]), data["warnings"]
    for s in data["segments"]:
        assert set(s["contributions"]) == {"text", "audio", "visual"}
    # Word accuracy over several clips (tiny.en mishears some GRID words, e.g. "bin blue" -> "Bimblue").
    engine = InferenceEngine("lnln")
    analyzer = Analyzer(engine, FeaturePipeline(engine.spec), cache=None)
    accs = []
    for clip in clips:
        run = analyzer.run(str(clip))
        result, rec = run.result, run.features
        assert rec.visual_track is not None and rec.visual_track.face_mask.mean() > 0.9
        accs.append(word_accuracy(grid_sentence(clip.stem), " ".join(s.text for s in result.segments)))
    assert np.mean(accs) >= 0.8, accs

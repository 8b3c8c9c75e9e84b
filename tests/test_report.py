"""Reports without a browser: model-card parsing, the uncertainty accessor, what the page shows (numbers
equal the result's, escaping, no external resource, determinism), where the missing-rate curve comes
from, `msa-studio report`, and batch reports + index. The browser checks are in test_report_browser.py."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from cli.main import main
from analysis.robustness import mask_degradation_table, recording_contributions, recording_score
from core.errors import MSAError
from analysis.report import ReportInputs, build_recording_report, report_from_file
from analysis.report.missing_curve import MissingCurve, missing_curve_for
from analysis.report.model_card import CHECKPOINT_DIR, card_for_model, load_model_card, parse_model_card
from core.result import AnalysisResult
from core.types import ModelInfo
from core.uncertainty import PredictionInterval, prediction_interval
from tests.report_support import (
    MASKS, NO_FACE, assert_page_shows, hand_made_result, parse, real_scored_recording, shown,
)

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_CARD = ROOT / "tests" / "fixtures" / "model_card_sample.md"


# ------------------------------------------------------------------------------ page parsing


# -------------------------------------------------------------------------------- model cards


def test_model_card_parser_on_a_fixture_card_with_other_spellings_and_levels() -> None:
    card = parse_model_card(FIXTURE_CARD.read_text(encoding="utf-8").replace("\n", "\r\n"))
    assert card.name == "`toy-fusion`   (a fixture, not a shipped model)"
    assert card.licence == "CC BY 4.0 (test fixture; spelt the American way, colon inside the bold)"
    assert card.training_data.startswith("A *small* corpus of `42` clips.")
    assert "source two: **research only**" in card.training_data
    assert "Nested heading text stays in the section." in card.training_data  # deeper heading kept
    assert "Known limits" not in card.training_data and "Recipe" not in card.training_data
    assert card.known_limits.splitlines()[-1] == "- Only English."  # stops at the next ## heading
    assert "Appendix" not in card.known_limits


def test_model_card_parser_returns_none_for_what_is_missing() -> None:
    card = parse_model_card("Just a paragraph, no headings.\n\n## Known limits\n\n")
    assert (card.name, card.licence, card.training_data, card.known_limits) == (None, None, None, None)
    inside = parse_model_card("# Model card: x\n**Licence of the weights: MIT** (why)\n")
    assert inside.name == "x" and inside.licence == "MIT (why)"


def test_every_shipped_card_parses_completely() -> None:
    cards = sorted((ROOT / "assets" / "model_cards").glob("*.md"))
    cards = [c for c in cards if c.name != "README.md"]
    assert cards
    for path in cards:
        card = load_model_card(path)
        assert card is not None and card.name and path.stem in card.name, path
        assert card.licence and card.training_data and card.known_limits, path


def test_a_card_is_only_used_for_the_weights_it_describes() -> None:
    shipped = json.loads((CHECKPOINT_DIR / "lnln.json").read_text(encoding="utf-8"))
    same = card_for_model(ModelInfo("lnln", checkpoint="/any/where/lnln.safetensors", untrained=False,
                                    training=shipped["training"]))
    assert same.card is not None and same.card.licence
    other = card_for_model(ModelInfo("lnln", checkpoint="/mine/run.safetensors", untrained=False,
                                     training={**shipped["training"], "seed": -1}))
    assert other.card is None and "not the shipped lnln checkpoint" in other.note
    untrained = card_for_model(ModelInfo("tfn", checkpoint=None, untrained=True))
    assert untrained.card is None and "untrained" in untrained.note


# ---------------------------------------------------------------------------------- intervals


def test_prediction_interval_accessor_accepts_only_the_documented_shape() -> None:
    assert prediction_interval({"level": 0.8, "low": -0.5, "high": 1.0}) == PredictionInterval(0.8, -0.5, 1.0)
    assert prediction_interval({"level": 0.8, "low": -0.5, "high": 1.0}).percent == "80 %"
    for bad in (None, 0.3, {"level": 0.8, "low": 1.0, "high": 0.0}, {"level": 80, "low": 0, "high": 1},
                {"low": 0, "high": 1}, {"level": 0.8, "low": None, "high": 1}, {"level": 0.8, "low": float("nan"), "high": 1}):
        assert prediction_interval(bad) is None, bad


# ------------------------------------------------------------------------------------ the page


def test_the_page_shows_the_results_numbers() -> None:
    result = hand_made_result(12, intervals="some")
    page = parse(build_recording_report(result))
    assert_page_shows(result, page)
    table = mask_degradation_table({k: np.array([s.mask_scores[k] for s in result.segments]) for k in MASKS})
    assert any(np.isnan(table[k]["corr"]) for k in MASKS)  # the dash case is covered too


def test_uncertainty_band_note_follows_the_intervals() -> None:
    notes = {k: parse(build_recording_report(hand_made_result(6, intervals=k))).ids["uncertainty-note"]
             for k in ("all", "some", "none")}
    assert notes["none"].startswith("No uncertainty estimate")
    assert "80 % prediction interval" in notes["all"] and "others have no estimate" not in notes["all"]
    assert "given for 4 of 6 segments" in notes["some"]


def test_warnings_untrained_banner_transcript_and_metadata() -> None:
    result = hand_made_result(8)
    result.model.untrained, result.model.checkpoint = True, None
    result.warnings.insert(0, "UNTRAINED MODEL: no trained checkpoint was found, scores come from randomly "
                              "initialised weights and mean nothing")
    page = parse(build_recording_report(result))
    assert page.ids["untrained"].startswith("UNTRAINED MODEL")
    warnings = page.ids["warning-list"]
    assert "no face found in the video" in warnings
    assert f"{NO_FACE} — 4 of 8 segments (segments 1–3, 6)" in warnings
    assert page.ids["transcript-source"] == "transcript talk <1>.srt (next to the recording)"
    assert "untrained" in page.ids["model-card-note"]
    old = hand_made_result(3)
    old.recording.transcript = None  # results written before the field existed load with None
    assert parse(build_recording_report(old)).ids["transcript-source"].startswith("not recorded")


def test_page_is_self_contained_escaped_and_deterministic() -> None:
    result = hand_made_result(10)
    html = build_recording_report(result, ReportInputs(source="r.json"))
    assert build_recording_report(result, ReportInputs(source="r.json")) == html  # same input, same bytes
    page = parse(html)
    assert page.srcs and all(s.startswith("data:image/") for s in page.srcs), page.srcs
    assert not re.search(r"(?i)url\(|@import|<link|https?://", html)
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; co" in html
    assert "<script" not in html  # a single-recording report runs no script at all


def test_fixture_card_text_is_escaped_in_the_page(monkeypatch) -> None:
    from analysis.report.model_card import CardLookup, parse_model_card

    card = parse_model_card(FIXTURE_CARD.read_text(encoding="utf-8"))
    html = build_recording_report(hand_made_result(3), ReportInputs(card=CardLookup(card, "fixture")))
    model = parse(html).ids["model-card"]
    assert "CC BY 4.0" in model and "source two: research only" in model
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_charts_with_very_many_marks_are_embedded_as_png(monkeypatch) -> None:
    from analysis.report import charts

    html = build_recording_report(hand_made_result(30))
    assert "data:image/png" not in html and html.count("data:image/svg+xml;base64,") == 3
    monkeypatch.setattr(charts, "MAX_VECTOR_MARKS", 60)  # 30 x 3 bars exceed it; 30 strokes + 20 bands do not
    html = build_recording_report(hand_made_result(30))
    assert html.count("data:image/png;base64,") == 1 and html.count("data:image/svg+xml;base64,") == 2


def test_nulls_are_dashes_and_text_instead_of_numbers_is_one_clear_error() -> None:
    result = hand_made_result(4)
    result.segments[1].score = None  # how the JSON stores NaN
    result.segments[1].contributions["audio"] = None
    rows = parse(build_recording_report(result)).tables["transcript-table"][1:]
    assert rows[1][4][0] == "—" and rows[1][7][0] == "—"
    result.segments[2].end = "soon"
    with pytest.raises(MSAError, match="segment 3: end is not a number"):
        build_recording_report(result)


# --------------------------------------------------------------------------- missing-rate curve


def test_missing_curve_absent_from_a_bare_result_explains_how_to_get_it() -> None:
    curve = missing_curve_for(hand_made_result(3), cache=None)
    assert curve.rows is None and "msa-studio analyze talk <1>.mp4 --json result.json --report" in curve.note
    html = build_recording_report(hand_made_result(3), ReportInputs(missing_curve=curve))
    assert "--report report.html" in parse(html).ids["missing-curve-note"]


def test_curve_from_session_and_from_the_feature_cache_and_refused_for_another_model(tmp_path: Path) -> None:
    from core.feature_cache import FeatureCache, pipeline_options
    from core.pipeline import FeaturePipeline
    from core.session import save_session

    media = tmp_path / "clip.mp4"
    media.write_bytes(b"not decoded: the cache key is the content hash")
    result, rec, engine = real_scored_recording(str(media))
    curve = missing_curve_for(result, features=rec, engine=engine)
    assert curve.rows and [r["rate"] for r in curve.rows] == pytest.approx([i / 10 for i in range(10)])
    assert curve.rows[0]["mae"] == pytest.approx(0.0, abs=1e-6)  # r = 0 drops nothing

    session = tmp_path / "clip.msasession"
    save_session(session, result, rec)
    out, used = report_from_file(session, tmp_path / "s.html")
    assert used.rows == curve.rows
    table = parse(out.read_text(encoding="utf-8")).tables["missing-curve-table"][1:]
    for row, expected in zip(table, curve.rows):
        assert shown(row[1][0]) == pytest.approx(expected["mae"], abs=0.0005)

    result.to_json(tmp_path / "r.json")
    cache = FeatureCache(tmp_path / "cache")
    _, none_cached = report_from_file(tmp_path / "r.json", tmp_path / "r.html", cache_dir=str(cache.root))
    assert none_cached.rows is None and "no cached features" in none_cached.note
    cache.put(media, rec, None, pipeline_options(FeaturePipeline(rec.spec)))
    _, cached = report_from_file(tmp_path / "r.json", tmp_path / "r.html", cache_dir=str(cache.root))
    assert cached.rows == curve.rows

    other = AnalysisResult.from_json(tmp_path / "r.json")
    for s in other.segments:
        s.score += 0.5  # as if another checkpoint had made the result
    refused = missing_curve_for(other, features=rec, engine=engine)
    assert refused.rows is None and "does not reproduce" in refused.note


# --------------------------------------------------------------------------------- CLI report


def test_cli_report_writes_the_page_and_refuses_bad_inputs_in_one_line(tmp_path: Path, capsys) -> None:
    result = hand_made_result(5)
    result.to_json(tmp_path / "r.json")
    assert main(["report", str(tmp_path / "r.json"), "-o", str(tmp_path / "r.html")]) == 0
    err = capsys.readouterr().err
    assert "report ->" in err and "missing-rate curve: Not computed" in err
    page = parse((tmp_path / "r.html").read_text(encoding="utf-8"))
    assert len(page.tables["transcript-table"]) == 6
    cases = [
        (["report", str(tmp_path / "nope.json"), "-o", str(tmp_path / "x.html")], "file not found"),
        (["report", str(tmp_path / "r.json"), "-o", str(tmp_path / "r.json")], "is the input file"),
        (["report", str(tmp_path / "r.json"), "-o", str(tmp_path)], "is a folder"),
        (["report", str(tmp_path / "r.json")], "required: -o/--output"),
    ]
    (tmp_path / "junk.json").write_text("[1, 2", encoding="utf-8")
    cases.append((["report", str(tmp_path / "junk.json"), "-o", str(tmp_path / "j.html")], "cannot read result"))
    (tmp_path / "junk.msasession").write_bytes(b"PK\x03\x04 not really a zip")
    cases.append((["report", str(tmp_path / "junk.msasession"), "-o", str(tmp_path / "j.html")],
                  "not a readable MSA Studio session"))
    for argv, expected in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert expected in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "x.html").exists() and not (tmp_path / "j.html").exists()


# ------------------------------------------------------------------------------ batch reports


def test_batch_reports_and_index_list_every_file_with_the_jsons_numbers(tmp_path: Path) -> None:
    from analysis.batch import BatchOptions, run_batch
    from analysis.report.batch_reports import write_batch_reports
    from tests.test_batch import FakeAnalyzer, _inputs

    root = _inputs(tmp_path / "in", ["a.mp4", "sub/b.wav", "c.mkv", "broken.mp4"])
    out = tmp_path / "out"
    options = BatchOptions(model="late-fusion", use_cache=False)
    run_batch(root, out, options, analyzer=FakeAnalyzer(fail={"broken.mp4"}))
    summary = write_batch_reports(out, options)
    assert sorted(summary.written) == ["a.mp4", "c.mkv", "sub/b.wav"]
    index = parse((out / "index.html").read_text(encoding="utf-8"))
    rows = {r[0][0]: r for r in index.tables["batch-index"][1:]}
    assert sorted(rows) == ["a.mp4", "broken.mp4", "c.mkv", "sub/b.wav"]
    assert rows["broken.mp4"][1][0] == "failed" and "not a media file" in rows["broken.mp4"][8][0]
    for name in ("a.mp4", "c.mkv", "sub/b.wav"):
        result = AnalysisResult.from_json(out / f"{name}.json")
        row = rows[name]
        assert shown(row[4][0]) == pytest.approx(recording_score(result.segments), abs=0.0005)
        contrib = recording_contributions(result.segments)
        for col, m in zip((5, 6, 7), ("text", "audio", "visual")):
            assert shown(row[col][0]) == pytest.approx(contrib[m], abs=0.0005)
        report = parse((out / f"{name}.html").read_text(encoding="utf-8"))
        assert "--no-cache" in report.ids["missing-curve-note"]
    assert 'href="sub/b.wav.html"' in (out / "index.html").read_text(encoding="utf-8")
    assert 'href="../index.html"' in (out / "sub" / "b.wav.html").read_text(encoding="utf-8")
    again = write_batch_reports(out, options)  # rerun: reports newer than their JSON are kept
    assert again.written == [] and sorted(again.kept) == ["a.mp4", "c.mkv", "sub/b.wav"]

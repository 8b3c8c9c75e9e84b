"""The app's view-model (analysis.session_model.AnalysisSession) on a real analysis of a generated clip:
masks, degradation table, missing-rate curve, model switch and transcript edits all work from cached
features; exports are valid files. No Qt widgets involved."""
from __future__ import annotations

import copy
import csv
import json

import numpy as np
import pytest

from analysis.session_model import ALL, MASK_KEYS, AnalysisSession
from tests.app_support import shared_analysis, shared_model_cache
from tests.media_factory import requires_espeak

pytestmark = requires_espeak


@pytest.fixture(scope="module")
def analysis():
    return shared_analysis()


@pytest.fixture()
def session(analysis) -> AnalysisSession:
    clip, result, rec, engine, pipeline = analysis
    # Tests mutate results/features (edits, re-scoring): give each its own copy.
    return AnalysisSession(copy.deepcopy(result), copy.deepcopy(rec), engine=engine, pipeline=pipeline,
                           source_path=str(clip))


def forbid_extraction(monkeypatch) -> None:
    """Anything that decodes media or runs the extractors again fails the test."""
    import core.pipeline

    def boom(*_a, **_k):
        raise AssertionError("features were re-extracted")

    monkeypatch.setattr(core.pipeline.FeaturePipeline, "extract", boom)
    monkeypatch.setattr("core.media.load_audio", boom)
    monkeypatch.setattr("core.media.iter_frames", boom)


def test_analysis_has_segments_with_text(session):
    assert len(session.segments) >= 2
    joined = " ".join(s.text.lower() for s in session.segments)
    assert "love" in joined and "terrible" in joined, joined
    assert session.duration > 6.0
    assert session.segment_index_at(session.segments[1].start + 0.01) == 1
    assert session.segment_index_at(session.segments[0].start + 0.01) == 0


def test_masked_scores_match_engine_and_differ_from_full(session, analysis, monkeypatch):
    _clip, _result, rec, engine, _pipeline = analysis
    forbid_extraction(monkeypatch)
    full = session.scores(ALL)
    for key in MASK_KEYS:
        keep = frozenset(m for m, c in zip(("text", "audio", "visual"), key) if c != "_")
        got = session.scores(keep)
        assert got.shape == full.shape
        np.testing.assert_allclose(got, engine.score(rec.features, keep), atol=1e-4)
    assert not np.allclose(session.scores(frozenset({"audio", "visual"})), full)
    assert not np.allclose(session.scores(frozenset()), full)


def test_mask_table_covers_every_combination(session):
    table = session.mask_table()
    assert set(table) == set(MASK_KEYS)
    assert table["TAV"]["mae"] == pytest.approx(0.0)
    assert table["TAV"]["sign_agreement"] == pytest.approx(1.0)
    assert any(table[k]["mae"] > 1e-4 for k in MASK_KEYS if k != "TAV")


def test_missing_rate_curve_is_seeded_and_starts_at_zero(session, analysis):
    _clip, result, rec, engine, pipeline = analysis
    curve = session.missing_curve()
    assert [round(c["rate"], 2) for c in curve] == [round(r, 2) for r in np.arange(0, 1, 0.1)]
    assert curve[0]["mae"] == pytest.approx(0.0, abs=1e-5)
    assert max(c["mae"] for c in curve) > 1e-3
    again = AnalysisSession(copy.deepcopy(result), copy.deepcopy(rec), engine=engine, pipeline=pipeline).missing_curve()
    assert [c["mae"] for c in again] == pytest.approx([c["mae"] for c in curve], abs=1e-6)


def test_recording_contributions_follow_shapley_efficiency(session):
    matrix = session.contributions_matrix()
    base = np.array([s.base_score for s in session.segments])
    np.testing.assert_allclose(base + matrix.sum(axis=1), session.scores(ALL), atol=1e-4)
    rec = session.recording_contributions()
    assert set(rec) == {"text", "audio", "visual"}
    w = np.array([s.end - s.start for s in session.segments])
    assert rec["text"] == pytest.approx(float(np.sum(w * matrix[:, 0]) / w.sum()), abs=1e-6)


def test_switch_model_rescores_cached_features(session, monkeypatch):
    from models.registry import model_names

    # Models that score without fitted state (CENet needs vocabularies from training data).
    others = [m for m in ("tfn", "mult", "late-fusion", "self-mm") if m in model_names() and m != session.model_name]
    if not others:
        pytest.skip("no second model that runs untrained is registered")
    before = session.scores(ALL).copy()
    forbid_extraction(monkeypatch)
    engine = shared_model_cache().engine(others[0], "cpu")
    session.rescore(engine)
    assert session.model_name == others[0]
    assert len(session.segments) == len(before)
    assert not np.allclose(session.scores(ALL), before)


def test_edit_text_reruns_only_that_segment(session, monkeypatch):
    forbid_extraction(monkeypatch)
    old_audio = session.features.features[0].audio.copy()
    old_ids = session.features.features[0].text_ids.copy()
    old_second = session.segments[1].score
    session.edit_segment_text(0, "I hate this, it is the worst thing ever")
    assert session.segments[0].text == "I hate this, it is the worst thing ever"
    assert session.features.segments[0].source == "transcript"
    assert not np.array_equal(session.features.features[0].text_ids, old_ids)
    np.testing.assert_array_equal(session.features.features[0].audio, old_audio)  # re-sliced, same rows
    assert session.segments[1].score == pytest.approx(old_second)


def test_exports_are_valid_files(session, tmp_path):
    js = session.export_json(tmp_path / "r.json")
    data = json.loads(js.read_text())
    assert len(data["segments"]) == len(session.segments)
    assert data["segments"][0]["text"] == session.segments[0].text
    cs = session.export_csv(tmp_path / "r.csv")
    rows = list(csv.DictReader(cs.open()))
    assert len(rows) == len(session.segments)
    assert float(rows[1]["score"]) == pytest.approx(session.segments[1].score, abs=1e-3)


def test_session_file_reopens_without_extraction(session, tmp_path, monkeypatch):
    path = session.save(tmp_path / "s.msasession")
    forbid_extraction(monkeypatch)
    loaded = AnalysisSession.load(path)
    np.testing.assert_allclose(loaded.scores(ALL), session.scores(ALL))
    np.testing.assert_allclose(loaded.scores(frozenset({"text"})), session.scores(frozenset({"text"})))
    assert [s.text for s in loaded.segments] == [s.text for s in session.segments]
    assert loaded.engine is None  # the app loads the model lazily for re-scoring


def test_hover_text_names_the_segment(session):
    text = session.hover_text(1)
    assert session.segments[1].text in text
    assert f"{session.segments[1].score:+.2f}" in text
    assert "Shapley" in text


def test_no_face_means_no_landmarks(session):
    # The generated clip has a moving square, not a face.
    assert session.landmarks_at(1.0) is None

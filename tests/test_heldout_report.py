"""The held-out report (models/recipes/heldout_report.py) that the model cards quote: its table
renders, and rows recompute from the shipped checkpoints through the app's own code paths."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.media_factory import DATA_DIR
from models.defaults import DEFAULT_MODEL

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "assets" / "model_cards" / "reports" / "heldout.json"

requires_report = pytest.mark.skipif(not REPORT.is_file(), reason="no held-out report shipped yet")
requires_data = pytest.mark.skipif(not (DATA_DIR / "mosi" / "label_train_valid.csv").is_file(),
                                   reason=f"shared data not found in {DATA_DIR} (set MSA_DATA_DIR)")


def _report() -> dict:
    return json.loads(REPORT.read_text(encoding="utf-8"))


@requires_report
def test_every_card_quotes_its_heldout_row():
    from models.recipes.heldout_report import format_table

    rep = _report()
    table = format_table(rep)
    for name, row in rep["models"].items():
        card = (ROOT / "assets" / "model_cards" / f"{name}.md").read_text(encoding="utf-8")
        assert "## Held-out report" in card
        cov = row["mosi_dev_text_only"]["interval_coverage"]
        assert f"| {cov:.3f} |" in card, f"{name}: the card does not quote its interval coverage {cov:.3f}"
        assert f"| {name} |" in table


@requires_report
@requires_data
def test_mosi_dev_text_only_row_recomputes_for_the_default_model():
    """Acc-2 / MAE / interval coverage of lnln's row, recomputed through InferenceEngine.analyze."""
    from analysis.engine import InferenceEngine
    from models.metrics import regression_metrics
    from models.recipes.heldout_report import mosi_dev_segments
    from models.recipes.train_all import mosi_dev_text_only

    stored = _report()["models"][DEFAULT_MODEL]["mosi_dev_text_only"]
    engine = InferenceEngine(DEFAULT_MODEL, allow_untrained=False)
    ds = mosi_dev_text_only(DATA_DIR)
    res = engine.analyze(mosi_dev_segments(DATA_DIR), [ds.features(i) for i in range(len(ds))])
    labels = np.asarray(ds.labels, dtype=np.float64)
    m = regression_metrics(np.array([s.score for s in res]), labels)
    # coverage is cross-fitted: each utterance against the half-width calibrated without its video
    cal = engine.meta["metrics"]["calibration"]
    folds, per_fold = cal["cross_fit"]["folds"], cal["cross_fit"]["halfwidth"]
    inside = []
    for s, y, sid in zip(res, labels, ds.ids):
        h = per_fold[folds[sid.rsplit("_", 1)[0]]]["T__"]
        inside.append(max(-3.0, s.score - h) <= y <= min(3.0, s.score + h))
        # the app's interval is the one calibrated on every dev video
        assert s.confidence.low == pytest.approx(max(-3.0, s.score - cal["halfwidth"]["T__"]))
    coverage = float(np.mean(inside))
    assert len(set(folds.values())) == 5 and len(folds) == 10  # MOSI dev: 10 videos, 2 per fold
    assert abs(m["Non0_acc_2"] - stored["Acc2"]) <= 1.0 / 200
    assert abs(m["MAE"] - stored["MAE"]) <= 2e-3
    assert abs(coverage - stored["interval_coverage"]) <= 1.0 / 200


@requires_report
@pytest.mark.skipif(not any((DATA_DIR / "ravdess_video").glob("*.mp4")), reason="ravdess_video not found")
def test_real_face_video_row_recomputes_for_the_default_model():
    """Visual-only recording scores of the real face videos (full pipeline), as the report has them."""
    from analysis.robustness import recording_score
    from analysis.analyzer import Analyzer

    stored = _report()["models"][DEFAULT_MODEL]["ravdess_video_visual_only"]["clips"]
    analyzer = Analyzer.from_pretrained(DEFAULT_MODEL, cache=None)
    for path in sorted((DATA_DIR / "ravdess_video").glob("*.mp4"))[:3]:
        result = analyzer(str(path))
        assert recording_score(result.segments, "__V") == pytest.approx(stored[path.stem]["score"], abs=2e-3)


@requires_report
def test_the_default_model_is_the_one_the_stated_rule_picks():
    """models/defaults.py: the model meeting the most held-out targets, ties broken by MOSI dev MAE."""
    from models.recipes.heldout_report import TARGETS, choose_default, targets_met

    rep = _report()
    assert DEFAULT_MODEL in rep["models"]
    assert choose_default(rep) == DEFAULT_MODEL, {n: len(targets_met(r)) for n, r in rep["models"].items()}
    assert len(TARGETS) == 10

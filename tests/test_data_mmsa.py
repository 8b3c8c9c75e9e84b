"""MMSA pickles (models/data_mmsa.py) are read with a restricted unpickler: the containers and numpy
types the format uses load; anything else (a payload) is refused before it can run (issue 10)."""
from __future__ import annotations

import collections
import os
import pickle
import subprocess
from pathlib import Path

import numpy as np
import pytest

from core.errors import MSAError
from models.data_mmsa import load_mmsa_pickle


def split(n: int, rng: np.random.Generator) -> dict:
    tb = np.zeros((n, 3, 50))
    tb[:, 0, :10] = 1234
    tb[:, 1, :10] = 1
    return {
        "text": rng.standard_normal((n, 50, 768)).astype(np.float32), "text_bert": tb,
        "audio": rng.standard_normal((n, 30, 5)), "vision": rng.standard_normal((n, 40, 20)).astype(np.float32),
        "audio_lengths": np.full(n, 12, dtype=np.int64), "vision_lengths": [40] * n,
        "regression_labels": rng.uniform(-3, 3, n).astype(np.float32),
        "classification_labels": np.ones(n, dtype=np.int64),
        "id": np.array([f"vid$_${i}" for i in range(n)], dtype=object),
        "raw_text": np.array(["a b c"] * n),  # unicode dtype
        "annotations": ["Positive"] * n,
        "count": np.int64(n), "mean": np.float64(0.5), "flags": (True, None, b"x", {1, 2}, frozenset({3})),
    }


def mmsa_data(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return collections.OrderedDict(train=split(4, rng), valid=split(2, rng), test=split(2, rng))


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_genuine_mmsa_pickles_of_every_protocol_load(tmp_path: Path, protocol: int) -> None:
    path = tmp_path / "aligned_50.pkl"
    path.write_bytes(pickle.dumps(mmsa_data(), protocol=protocol))
    spec, splits = load_mmsa_pickle(path)
    assert spec.dims == {"text": 768, "audio": 5, "visual": 20}
    assert {k: len(v) for k, v in splits.items()} == {"train": 4, "valid": 2, "test": 2}
    assert splits["train"].ids[3] == "vid$_$3" and splits["train"].features(0).audio_mask.sum() == 12
    np.testing.assert_allclose(splits["test"].labels, mmsa_data()["test"]["regression_labels"])


class Payload:
    """Unpickling this runs `touch MARKER` (the classic pickle exploit)."""

    def __init__(self, marker: Path, how: str) -> None:
        self.marker, self.how = marker, how

    def __reduce__(self):
        if self.how == "os.system":
            return os.system, (f"touch {self.marker}",)
        if self.how == "subprocess":
            return subprocess.call, (["touch", str(self.marker)],)
        if self.how == "eval":
            return eval, (f"open({str(self.marker)!r}, 'w').close()",)
        # a callable inside numpy, the one package whose types are allowed
        return np.savetxt, (str(self.marker), np.zeros(1))


@pytest.mark.parametrize("how", ["os.system", "subprocess", "eval", "numpy-function"])
@pytest.mark.parametrize("where", ["top", "nested"])
def test_a_pickle_payload_is_refused_and_never_runs(tmp_path: Path, how: str, where: str) -> None:
    marker = tmp_path / "pwned"
    data = mmsa_data()
    if where == "top":
        obj = Payload(marker, how)
    else:
        data["train"]["id"] = np.array([Payload(marker, how)] * 4, dtype=object)  # deep inside an array
        obj = data
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=2 if where == "top" else 4))
    with pytest.raises(MSAError, match="refus") as info:
        load_mmsa_pickle(path)
    assert "\n" not in str(info.value)
    assert not marker.exists(), "the payload ran"


def test_eval_command_refuses_the_payload_with_one_line(tmp_path: Path, capsys) -> None:
    from cli.main import main

    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(Payload(marker, "os.system")))
    from core.feature_spec import default_spec
    from models.checkpoint import save_checkpoint
    from models.registry import build_model

    spec = default_spec()
    ckpt = save_checkpoint(tmp_path / "c", build_model("late-fusion", spec), model_name="late-fusion", config={},
                           spec=spec, training={})
    rc = main(["eval", "--checkpoint", str(ckpt), "--mmsa-pkl", str(path),
               "--out", str(tmp_path / "ev"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not marker.exists(), "the payload ran"
    assert main(["train", "--model", "late-fusion", "--mmsa-pkl", str(path), "--out", str(tmp_path / "tr"),
                 "--quiet"]) == 2
    assert not marker.exists(), "the payload ran"


def test_non_finite_labels_in_a_pickle_are_refused_naming_the_sample(tmp_path: Path) -> None:
    data = mmsa_data()
    data["valid"]["regression_labels"][1] = np.nan
    path = tmp_path / "aligned_50.pkl"
    path.write_bytes(pickle.dumps(data))
    with pytest.raises(MSAError, match=r"valid.*vid\$_\$1.*finite"):
        load_mmsa_pickle(path)

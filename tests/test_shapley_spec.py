"""Exact Shapley values and FeatureSpec compatibility, against hand-computed cases."""
from __future__ import annotations

import numpy as np
import pytest

from core.errors import FeatureSpecMismatch
from core.feature_spec import FeatureSpec, default_spec
from core.shapley import all_coalitions, keep_from_key, mask_key, shapley_values

F = frozenset


def test_additive_game_gives_each_player_its_own_effect() -> None:
    effect = {"text": 1.5, "audio": -0.5, "visual": 0.25}
    values = {c: 0.1 + sum(effect[p] for p in c) for c in all_coalitions()}
    phi = shapley_values(values)
    for p, e in effect.items():
        assert phi[p] == pytest.approx(e)


def test_interaction_is_split_equally_and_efficiency_holds() -> None:
    # v = 2 only when text and audio are both present: each gets 1, visual 0.
    values = {c: (2.0 if {"text", "audio"} <= c else 0.0) for c in all_coalitions()}
    phi = shapley_values(values)
    assert phi["text"] == pytest.approx(1.0)
    assert phi["audio"] == pytest.approx(1.0)
    assert phi["visual"] == pytest.approx(0.0)


def test_hand_computed_three_player_game() -> None:
    v = {F(): 0.0, F({"text"}): 1.0, F({"audio"}): 0.0, F({"visual"}): 0.0,
         F({"text", "audio"}): 3.0, F({"text", "visual"}): 1.0, F({"audio", "visual"}): 0.0,
         F({"text", "audio", "visual"}): 4.0}
    phi = shapley_values(v)
    # text: (1/3)(1-0) + (1/6)(3-0) + (1/6)(1-0) + (1/3)(4-0) = 1/3 + 1/2 + 1/6 + 4/3 = 7/3
    assert phi["text"] == pytest.approx(7 / 3)
    # audio: (1/3)(0) + (1/6)(3-1) + (1/6)(0-0) + (1/3)(4-1) = 1/3 + 1 = 4/3
    assert phi["audio"] == pytest.approx(4 / 3)
    assert sum(phi.values()) == pytest.approx(4.0)


def test_vectorised_over_segments() -> None:
    rng = np.random.default_rng(0)
    values = {c: rng.normal(size=5) for c in all_coalitions()}
    phi = shapley_values(values)
    total = sum(phi.values())
    np.testing.assert_allclose(total, values[F({"text", "audio", "visual"})] - values[F()])


def test_mask_keys_round_trip() -> None:
    for c in all_coalitions():
        assert keep_from_key(mask_key(c)) == c
    assert mask_key(F({"text", "visual"})) == "T_V"
    assert len({mask_key(c) for c in all_coalitions()}) == 8


def test_spec_round_trip_and_fingerprint() -> None:
    spec = default_spec()
    again = FeatureSpec.from_dict(spec.to_dict())
    assert again == spec
    assert again.fingerprint() == spec.fingerprint()
    assert spec.version == 2 and spec.dims == {"text": 384, "audio": 384, "visual": 65}


def test_spec_mismatch_names_every_differing_field() -> None:
    spec = default_spec()
    other = spec.with_modality("audio", dim=74).with_modality("visual", rate_hz=30.0)
    with pytest.raises(FeatureSpecMismatch) as err:
        spec.require_compatible(other)
    msg = str(err.value)
    assert "audio.dim: 384 != 74" in msg
    assert "visual.rate_hz" in msg
    assert "text" not in msg.split("(")[1].split(")")[0]
    spec.require_compatible(FeatureSpec.from_dict(spec.to_dict()))  # identical: no error


def test_malformed_spec_is_a_user_error() -> None:
    with pytest.raises(FeatureSpecMismatch):
        FeatureSpec.from_dict({"text": {"dim": 3}})

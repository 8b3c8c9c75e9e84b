"""The shortcuts that keep a live hop short must not change a single number: the 8 coalition views
of a group scored as one stacked batch, the [UNK] text rows remembered, and a live window's
speech pieces encoded and decoded as one batch."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from analysis.engine import InferenceEngine, RowMemo
from core.shapley import all_coalitions, mask_key
from core.types import SegmentFeatures
from models.base import ModalityBatch
from tests.media_factory import cached_speech, requires_espeak

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _features(spec, n: int, seed: int = 0) -> list[SegmentFeatures]:
    """Segments of different lengths, some without a face, some without audio."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        nt, na, nv = int(rng.integers(3, 30)), int(rng.integers(0, 150)), int(rng.integers(0, 60))
        ids = np.array([101, *rng.integers(2000, 9000, nt - 2), 102], dtype=np.int64)
        face = rng.random(nv) > 0.3
        out.append(SegmentFeatures(
            text=rng.normal(size=(nt, spec.text.dim)).astype(np.float32), text_ids=ids,
            audio=rng.normal(size=(na, spec.audio.dim)).astype(np.float32), audio_mask=np.ones(na, bool),
            visual=(rng.normal(size=(nv, spec.visual.dim)) * face[:, None]).astype(np.float32), visual_mask=face))
    return out


@pytest.fixture(scope="module")
def engine() -> InferenceEngine:
    # a small batch so that 5 segments make 3 groups of at most 2 (8 coalitions x 2 = 16 rows)
    return InferenceEngine("emt-dlfr", device="cpu", batch_size=16)


def test_stacked_coalitions_equal_one_forward_per_coalition(engine):
    feats = _features(engine.spec, 5)
    stacked = engine.score_masks(feats)
    for c in all_coalitions():
        alone = engine.score(feats, keep=c)  # one coalition per forward
        np.testing.assert_allclose(stacked[mask_key(c)], alone, atol=1e-5, err_msg=mask_key(c))
    # the coalitions really differ (the views are not all the same input)
    assert np.ptp([stacked[k][0] for k in stacked]) > 1e-3


def test_scores_do_not_depend_on_what_was_scored_before(engine):
    feats = _features(engine.spec, 3, seed=1)
    first = engine.score_masks(feats)
    engine.score_masks(_features(engine.spec, 7, seed=2))  # other lengths fill the [UNK] memory
    again = engine.score_masks(feats)
    for k in first:
        assert first[k].tobytes() == again[k].tobytes(), k


def test_concat_keeps_rows_in_order_and_refuses_mixed_ids():
    def batch(value: float, ids: bool = True) -> ModalityBatch:
        return ModalityBatch(text=torch.full((2, 3, 4), value), text_mask=torch.ones(2, 3, dtype=torch.bool),
                             audio=torch.full((2, 5, 2), value), audio_mask=torch.ones(2, 5, dtype=torch.bool),
                             visual=torch.full((2, 1, 3), value), visual_mask=torch.zeros(2, 1, dtype=torch.bool),
                             text_ids=torch.full((2, 3), int(value)) if ids else None)

    joined = ModalityBatch.concat([batch(1.0), batch(2.0)])
    assert joined.batch_size == 4
    assert joined.audio[:, 0, 0].tolist() == [1.0, 1.0, 2.0, 2.0]
    assert joined.text_ids[:, 0].tolist() == [1, 1, 2, 2]
    assert ModalityBatch.concat([batch(1.0, ids=False), batch(2.0, ids=False)]).text_ids is None
    with pytest.raises(ValueError, match="text_ids"):
        ModalityBatch.concat([batch(1.0), batch(2.0, ids=False)])


def test_row_memo_encodes_each_distinct_row_once_and_alone():
    calls: list[int] = []

    def expected(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return (ids * mask).float().unsqueeze(-1).repeat(1, 1, 2) + 0.5

    def encode_ids(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        calls.append(len(ids))
        return expected(ids, mask)

    memo = RowMemo(encode_ids, capacity=3)
    ids = torch.tensor([[1, 7, 2], [1, 7, 2], [1, 2, 0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 1], [1, 1, 0]])
    out = memo(ids, mask)
    assert calls == [1, 1]  # two distinct rows, each encoded on its own
    torch.testing.assert_close(out, expected(ids, mask))
    memo(ids[:1], mask[:1])
    assert calls == [1, 1]  # remembered: no new call
    for k in range(3, 6):  # more distinct rows than the capacity: the oldest are dropped
        memo(torch.tensor([[1, k, 2]]), torch.tensor([[1, 1, 1]]))
    assert len(memo._rows) == 3


@requires_espeak
def test_live_window_batch_pass_equals_piece_by_piece():
    from core.extractors.asr import WhisperASR, plan_pieces
    from core.segmentation import speech_regions

    asr = WhisperASR()
    first = np.asarray(cached_speech("I love this movie", pad=0.1), np.float32)
    second = np.asarray(cached_speech("the ending was terrible", pad=0.1), np.float32)
    wave = np.concatenate([first, np.zeros(16000, np.float32), second])
    plan = plan_pieces(wave, speech_regions(wave))
    assert len(plan) >= 2, plan  # the batched path is the one under test
    batched = asr.run(wave, word_timestamps=False, live=True)
    alone = asr._piece_by_piece(wave, plan, word_timestamps=False, live=True)
    assert [s.text for s in batched.segments] == [s.text for s in alone.segments]
    assert len(batched.segments) >= 2
    assert [(p.start, p.end) for p in batched.pieces] == [(p.start, p.end) for p in alone.pieces]
    for a, b in zip(batched.pieces, alone.pieces):
        np.testing.assert_array_equal(a.states, b.states)


@requires_espeak
def test_a_capped_decode_gives_at_most_half_its_max_length_in_ids():
    """What WhisperASR._live_pass relies on to spot a piece whose own, smaller budget would have
    cut its words: CTranslate2's Whisper returns exactly max_length // 2 ids when it is capped."""
    from core.extractors.asr import WhisperASR

    asr = WhisperASR()
    piece = asr.encode(np.asarray(cached_speech("I really love this wonderful movie, it makes me so happy",
                                                pad=0.1), np.float32))
    free = asr.model.model.generate(piece.encoder_output, [asr._prompt], beam_size=1, max_length=120)[0]
    assert len(free.sequences_ids[0]) >= 8  # long enough that the caps below bite
    for cap in (4, 7, 10, 15):
        ids = asr.model.model.generate(piece.encoder_output, [asr._prompt], beam_size=1, max_length=cap)[0].sequences_ids[0]
        assert len(ids) == cap // 2, (cap, len(ids))  # capped: exactly half, never fewer
        assert ids == free.sequences_ids[0][:len(ids)]  # the same greedy text, cut

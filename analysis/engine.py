"""Inference engine: model + checkpoint + device -> per-segment scores, unimodal scores and exact
Shapley contributions over the 8 modality masks.

Masking follows LNLN's missing-data convention: a masked audio/visual modality is zeroed with its mask
False; masked text becomes [CLS] [UNK]*n [SEP] re-encoded by the text encoder.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from core.errors import FeatureSpecMismatch, MSAError
from core.feature_spec import FeatureSpec, default_spec
from core.progress import RunContext
from core.shapley import MODALITY_ORDER, all_coalitions, mask_key, shapley_values
from core.types import ModelInfo, Segment, SegmentFeatures, SegmentResult
from core.uncertainty import PredictionInterval

ALL = frozenset(MODALITY_ORDER)
CHECKPOINT_DIR = Path(__file__).resolve().parent.parent / "assets" / "checkpoints"
SCORE_RANGE = (-3.0, 3.0)


def default_checkpoint(model: str) -> str | None:
    """The shipped checkpoint for a model name, if one exists in assets/checkpoints."""
    path = CHECKPOINT_DIR / f"{model.lower()}.safetensors"
    return str(path) if path.exists() else None


class RowMemo:
    """A text re-encoder, (ids (B, T), attention_mask (B, T)) -> (B, T, D), that remembers the
    output of each distinct (ids, mask) row it has seen (at most `capacity`, oldest dropped)."""

    def __init__(self, encode_ids, capacity: int = 256) -> None:
        self.encode_ids = encode_ids
        self.capacity = capacity
        self._rows: dict[bytes, Any] = {}

    def __call__(self, ids, attention_mask):
        import torch

        keys = [ids[i].cpu().numpy().tobytes() + attention_mask[i].cpu().numpy().tobytes() for i in range(len(ids))]
        for i, k in enumerate(keys):
            if k not in self._rows:
                # one row at a time, so a row's encoding never depends on which rows shared its
                # batch (CPU kernels may round differently by batch size): same input, same bytes
                self._rows[k] = self.encode_ids(ids[i:i + 1], attention_mask[i:i + 1])[0]
        out = torch.stack([self._rows[k] for k in keys])
        while len(self._rows) > self.capacity:
            self._rows.pop(next(iter(self._rows)))
        return out


class InferenceEngine:
    def __init__(
        self,
        model: str,
        checkpoint: str | None = None,
        device: str = "auto",
        allow_untrained: bool = True,
        spec: FeatureSpec | None = None,
        batch_size: int = 64,
        untrained: bool = False,
    ) -> None:
        """`untrained`: randomly initialised weights even when a checkpoint ships (benchmarks that
        measure the work of another feature spec; never for scores anyone reads)."""
        import torch

        from core.devices import resolve_device
        from models.checkpoint import load_checkpoint
        from models.registry import build_model, MODELS, model_names

        self.model_name = model.lower()
        if self.model_name not in model_names():
            raise MSAError(f"unknown model {model!r}; available: {', '.join(MODELS.names())}")
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.checkpoint_path = None if untrained else checkpoint or default_checkpoint(self.model_name)
        self.meta: dict[str, Any] = {}
        if self.checkpoint_path:
            self.model, meta = load_checkpoint(self.checkpoint_path, device=self.device, expected_spec=spec)
            if meta.model_name.lower() != self.model_name:
                raise MSAError(
                    f"checkpoint {self.checkpoint_path} holds model {meta.model_name!r}, not {self.model_name!r}"
                )
            self.meta = meta.to_dict()
            self.spec = meta.spec
            try:
                self.spec.require_current_version()
            except FeatureSpecMismatch as exc:
                raise FeatureSpecMismatch(f"checkpoint {self.checkpoint_path} was {exc}") from None
            self.untrained = False
        else:
            if not allow_untrained:
                raise MSAError(f"no checkpoint for model {self.model_name!r}; pass --checkpoint PATH")
            self.spec = spec or default_spec()
            torch.manual_seed(0)
            self.model = build_model(self.model_name, self.spec).to(self.device)
            self.untrained = True
        self.model.eval()
        self._text_encoder = None
        self._torch_threads = torch.get_num_threads()
        self._unk_rows: RowMemo | None = None

    # -- masking -----------------------------------------------------------------------------
    def text_encoder(self):
        """The text encoder that re-encodes masked text ([CLS] [UNK]*n [SEP]); loaded on first use."""
        if self._text_encoder is None:
            from core.extractors.text import MiniLMTextEncoder

            if self.spec.text.extractor != "minilm-l6":
                raise MSAError(
                    f"text masking needs the {self.spec.text.extractor!r} encoder, which this engine "
                    "cannot load; only minilm-l6 is supported for re-encoding"
                )
            self._text_encoder = MiniLMTextEncoder(max_len=self.spec.text.max_len, device=self.device)
        return self._text_encoder

    def _batches(self, features: list[SegmentFeatures], per_batch: int):
        from models.data import collate

        for i in range(0, len(features), per_batch):
            yield collate(features[i : i + per_batch], self.spec).to(self.device)

    def _masked(self, batch, keep: frozenset[str]):
        from models.missing import mask_modalities

        if keep == ALL:
            return batch
        if "text" in keep:
            return mask_modalities(batch, keep, unk_id=0, reencode=None)
        enc = self.text_encoder()
        return mask_modalities(batch, keep, unk_id=enc.unk_id, reencode=self._unk_reencoder(enc))

    def _unk_reencoder(self, enc):
        """enc.encode_ids with a memory: a masked text row is [CLS] [UNK]*n [SEP], so its encoding
        depends only on n and the padding, and every segment of a recording (every live hop)
        would otherwise run the text encoder again for the same few rows."""
        if self._unk_rows is None:
            self._unk_rows = RowMemo(enc.encode_ids)
        return self._unk_rows

    def _coalition_views(self, batch, coalitions: list[frozenset[str]]) -> list:
        """`batch` as each coalition sees it; the [UNK]-re-encoded text is made once and shared by
        the text-less coalitions."""
        text_masked = None
        views = []
        for c in coalitions:
            if "text" in c:
                views.append(self._masked(batch, c))
                continue
            if text_masked is None:
                text_masked = self._masked(batch, ALL - {"text"})
            views.append(self._masked(text_masked, c | {"text"}))
        return views

    # -- scoring -----------------------------------------------------------------------------
    def _forward_many(
        self, features: list[SegmentFeatures], coalitions: list[frozenset[str]], ctx: RunContext | None = None
    ) -> tuple[dict[frozenset[str], np.ndarray], dict[str, np.ndarray]]:
        """Scores of every segment under every coalition, plus the unimodal heads' scores of the
        complete input. All coalition views of a group of segments go through the model as ONE
        stacked batch: one forward instead of one per coalition, which is what keeps a live hop
        (1 segment x 8 coalitions) cheap; the group size keeps the stacked batch at `batch_size`
        rows, so memory stays what it was. Every view of a group shares the group's padding."""
        import torch

        from models.base import ModalityBatch

        if torch.get_num_threads() != self._torch_threads:
            # CTranslate2 (the ASR) sets OpenMP's thread count for the whole process, and float
            # sums depend on how many threads share them: scoring with the count the engine was
            # loaded with keeps a fresh extraction and a cache hit byte-identical.
            torch.set_num_threads(self._torch_threads)
        scores: dict[frozenset[str], list[np.ndarray]] = {c: [] for c in coalitions}
        unimodal: dict[str, list[np.ndarray]] = {}
        per_batch = max(1, self.batch_size // len(coalitions))
        n_batches = max(1, -(-len(features) // per_batch))
        with torch.no_grad():
            for b, batch in enumerate(self._batches(features, per_batch)):
                if ctx is not None:
                    ctx.check()
                n = batch.batch_size
                out = self.model(ModalityBatch.concat(self._coalition_views(batch, coalitions)))
                fused = out.score.detach().float().cpu().numpy().reshape(-1)
                for k, c in enumerate(coalitions):
                    scores[c].append(fused[k * n:(k + 1) * n])
                    if c == ALL:
                        for m, v in out.unimodal.items():
                            v = v.detach().float().cpu().numpy().reshape(-1)
                            unimodal.setdefault(m, []).append(v[k * n:(k + 1) * n])
                if ctx is not None:
                    ctx.report("model", (b + 1) / n_batches, f"{self.model_name}: batch {b + 1}/{n_batches}")
        empty = np.zeros(0, dtype=np.float64)
        return (
            {c: np.clip(np.concatenate(v), *SCORE_RANGE) if v else empty for c, v in scores.items()},
            {m: np.clip(np.concatenate(v), *SCORE_RANGE) for m, v in unimodal.items()},
        )

    def score(self, features: list[SegmentFeatures], keep: frozenset[str] = ALL) -> np.ndarray:
        return self._forward_many(features, [frozenset(keep)])[0][frozenset(keep)]

    def unimodal(self, features: list[SegmentFeatures]) -> dict[str, np.ndarray]:
        return self._forward_many(features, [ALL])[1]

    def score_masks(self, features: list[SegmentFeatures], ctx: RunContext | None = None) -> dict[str, np.ndarray]:
        values, _ = self._forward_many(features, all_coalitions(), ctx)
        return {mask_key(c): v for c, v in values.items()}

    def analyze(
        self, segments: list[Segment], features: list[SegmentFeatures], ctx: RunContext | None = None
    ) -> list[SegmentResult]:
        if len(segments) != len(features):
            raise ValueError("segments and features differ in length")
        if not features:
            return []
        values, unimodal = self._forward_many(features, all_coalitions(), ctx)
        if ctx is not None:
            ctx.report("shapley", 0.5, "exact Shapley values over 8 masks")
        contrib = shapley_values(values)
        base = values[frozenset()]
        results = []
        for i, (seg, feat) in enumerate(zip(segments, features)):
            score = float(values[ALL][i])
            warnings = []
            if not bool(np.any(feat.visual_mask)):
                warnings.append("no face found in this segment; visual modality is missing")
            if not bool(np.any(feat.audio_mask)):
                warnings.append("no audio in this segment; audio modality is missing")
            if not seg.text.strip():
                warnings.append("no words recognised in this segment")
            results.append(
                SegmentResult(
                    start=seg.start,
                    end=seg.end,
                    text=seg.text,
                    score=score,
                    unimodal={m: float(v[i]) for m, v in unimodal.items()},
                    contributions={m: float(contrib[m][i]) for m in MODALITY_ORDER},
                    base_score=float(base[i]),
                    mask_scores={mask_key(c): float(v[i]) for c, v in values.items()},
                    warnings=warnings,
                    confidence=self.interval(score, seg, feat),
                )
            )
        if ctx is not None:
            ctx.report("shapley", 1.0, "done")
        return results

    def interval(self, score: float, seg: Segment, feat: SegmentFeatures) -> PredictionInterval | None:
        """The checkpoint's calibrated interval for the modalities this segment really has
        (words, valid audio rows, a face); None when the checkpoint carries no calibration."""
        cal = (self.meta.get("metrics") or {}).get("calibration")
        if not cal:
            return None
        present = frozenset(m for m, has in (("text", bool(seg.text.strip())), ("audio", bool(np.any(feat.audio_mask))),
                                              ("visual", bool(np.any(feat.visual_mask)))) if has)
        half = cal["halfwidth"].get(mask_key(present))
        if half is None or not np.isfinite(half):
            return None
        lo, hi = SCORE_RANGE
        return PredictionInterval(level=float(cal["level"]), low=max(lo, score - half), high=min(hi, score + half))

    def describe(self) -> ModelInfo:
        return ModelInfo(
            name=self.model_name,
            checkpoint=self.checkpoint_path,
            untrained=self.untrained,
            device=self.device,
            training=self.meta.get("training", {}),
        )

"""Token-level text features from all-MiniLM-L6-v2 (384-d last hidden state, incl. [CLS]/[SEP]).

The model loads lazily from `resolve_asset("minilm-l6")` (offline wheel unless overridden). `encode`
returns one unpadded (T, 384) array + token ids per text; `encode_ids` re-encodes id tensors (used
after replacing tokens by [UNK] for robustness training and for the text-masking explanations).
"""
from __future__ import annotations

import os
import threading
from typing import Any, Sequence

import numpy as np

from core.assets import resolve_asset
from core.errors import FeatureSpecMismatch, MSAError
from core.extractors import register_extractor
from core.feature_spec import ModalitySpec

DIM = 384


@register_extractor("minilm-l6")
class MiniLMTextEncoder:
    name = "minilm-l6"
    modality = "text"
    dim = DIM

    def __init__(self, model_path: str | None = None, max_len: int = 50, device: str = "cpu",
                 num_threads: int | None = None) -> None:
        if max_len < 2:
            raise ValueError("max_len must leave room for [CLS] and [SEP] (>= 2)")
        self.model_path = model_path
        self.max_len = int(max_len)
        self.device = device
        # None: leave torch's setting alone (the app decides globally); an int is applied on load.
        self.num_threads = num_threads
        self._tokenizer: Any = None
        self._model: Any = None
        self._lock = threading.Lock()

    @classmethod
    def from_spec(cls, spec: ModalitySpec, device: str = "cpu", **_runtime: Any) -> "MiniLMTextEncoder":
        if spec.dim != DIM:
            raise FeatureSpecMismatch(f"text.dim: the spec says {spec.dim}, {cls.name} gives {DIM}")
        return cls(max_len=spec.max_len, device=device)

    def extract(self, texts: Sequence[str], ctx: Any = None, **options: Any) -> list[tuple[np.ndarray, np.ndarray]]:
        """The FeatureExtractor form of `encode`."""
        return self.encode(texts, **options)

    # ---------------------------------------------------------------------------------- loading

    def _ensure_loaded(self) -> None:
        if self._model is not None:
            return
        with self._lock:
            if self._model is not None:
                return
            import torch
            from transformers import AutoModel, AutoTokenizer

            if self.num_threads:
                torch.set_num_threads(int(self.num_threads))
            path = resolve_asset("minilm-l6", self.model_path)
            local = os.path.exists(path)
            try:
                tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=local)
                model = AutoModel.from_pretrained(path, local_files_only=local)
            except (OSError, ValueError) as exc:
                msg = " ".join(str(exc).split())[:300]
                raise MSAError(f"cannot load MiniLM text model from {path}: {msg}") from None
            hidden = getattr(model.config, "hidden_size", None)
            if hidden != DIM:
                raise MSAError(f"text model at {path} has hidden size {hidden}, expected {DIM}")
            model.eval().to(self.device)
            self._tokenizer = tokenizer
            self._model = model

    @property
    def tokenizer(self) -> Any:
        self._ensure_loaded()
        return self._tokenizer

    @property
    def model(self) -> Any:
        self._ensure_loaded()
        return self._model

    @property
    def unk_id(self) -> int:
        return int(self.tokenizer.unk_token_id)

    @property
    def cls_id(self) -> int:
        return int(self.tokenizer.cls_token_id)

    @property
    def sep_id(self) -> int:
        return int(self.tokenizer.sep_token_id)

    @property
    def pad_id(self) -> int:
        return int(self.tokenizer.pad_token_id)

    # --------------------------------------------------------------------------------- encoding

    def tokenize(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Token ids per text incl. [CLS]/[SEP], truncated to max_len (int64)."""
        enc = self.tokenizer([t or "" for t in texts], add_special_tokens=True, truncation=True,
                             max_length=self.max_len, padding=False)
        return [np.asarray(ids, dtype=np.int64) for ids in enc["input_ids"]]

    def encode(self, texts: Sequence[str], batch_size: int = 32
               ) -> list[tuple[np.ndarray, np.ndarray]]:
        """[(features (T, 384) float32, ids (T,) int64)] in input order; T = unpadded length.
        Texts are batched by length so short texts are not padded to the longest one."""
        if isinstance(texts, str):
            raise TypeError("encode() takes a list of texts, not a single string")
        if not texts:
            return []
        import torch

        ids_list = self.tokenize(texts)
        order = sorted(range(len(ids_list)), key=lambda i: len(ids_list[i]))
        out: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(ids_list)
        for b in range(0, len(order), max(1, batch_size)):
            idx = order[b:b + batch_size]
            width = max(len(ids_list[i]) for i in idx)
            ids = torch.full((len(idx), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):
                ids[row, :len(ids_list[i])] = torch.from_numpy(ids_list[i])
                mask[row, :len(ids_list[i])] = 1
            hidden = self.encode_ids(ids, mask).cpu().numpy()
            for row, i in enumerate(idx):
                n = len(ids_list[i])
                out[i] = (np.ascontiguousarray(hidden[row, :n], dtype=np.float32), ids_list[i])
        return out  # type: ignore[return-value]

    def encode_ids(self, ids: Any, attention_mask: Any | None = None) -> Any:
        """(B, T) LongTensor ids -> (B, T, 384) float tensor, no gradients. Positions where the
        mask is 0 hold padding outputs; ignore them."""
        import torch

        model = self.model
        if attention_mask is None:
            attention_mask = (ids != self.pad_id).long()
        # no_grad, not inference_mode: callers may feed these outputs into a model they train.
        with torch.no_grad():
            result = model(input_ids=ids.to(self.device),
                           attention_mask=attention_mask.to(self.device))
        return result.last_hidden_state.float()

    def __call__(self, texts: Sequence[str], batch_size: int = 32
                 ) -> list[tuple[np.ndarray, np.ndarray]]:
        return self.encode(texts, batch_size=batch_size)

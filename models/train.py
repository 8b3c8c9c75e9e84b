"""Training loop shared by every model in the zoo.

One loop for all papers keeps comparisons fair: same optimiser (AdamW), same data order for a seed,
same LNLN missing-data regime, same model selection (best validation score on the *complete*
validation set) and early stopping. Paper-specific parts live in the models' `training_loss` and
optional hooks:

- `init_dataset(n_samples, labels)` once before training (labels: float32 tensor (N,), on device);
- `set_sample_ids(ids)` before every training forward (ids: long tensor (B,) of dataset indices;
  never called in evaluation, where the model is in eval mode);
- `set_input_stats(stats)` (models.base) once before training with per-column mean/std of the
  complete training set;
- `fit_vocabularies(audio_frames, visual_frames)` once before training, with valid training frames
  as float32 numpy arrays (n, Da) / (n, Dv), subsampled to at most `vocab_frames` rows each and
  already standardised with those statistics (the space forward() sees);
- `optimizer_groups(lr, weight_decay) -> list[dict]` to use per-module learning rates;
- `on_epoch_end(epoch)` after each epoch.

Class attributes `uses_complete_view` (pass the complete batch to training_loss) and
`needs_complete_forward` (also run the model on the complete batch and pass its output).
"""
from __future__ import annotations

import copy
import math
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import DataLoader

from core.errors import MSAError
from core.feature_spec import MODALITIES, FeatureSpec
from core.progress import RunContext
from core.types import SegmentFeatures
from models.base import ModalityBatch, MSAModel
from models.checkpoint import save_checkpoint
from models.data import MSADataset, token_id
from models.metrics import METRIC_NAMES, is_better, regression_metrics
from models.missing import (CoalitionRegime, TextReencoder, apply_missing, coalition_targets, modality_targets,
                            mask_modalities_per_sample, training_rates)

#: "lnln": LNLN's random per-step drops; "coalition": complete samples, LNLN drops and whole
#: modalities removed as the engine does for Shapley values, each coalition trained towards the
#: label only where one of its modalities carries evidence (models.missing.CoalitionRegime);
#: "none": complete inputs only.
MISSING_REGIMES = ("lnln", "coalition", "none")


@dataclass
class TrainHistory:
    epochs: list[dict[str, Any]] = field(default_factory=list)  # one row per epoch: loss parts + valid metrics
    best_epoch: int = -1  # 1-based, -1 before the first validation
    select_metric: str = "MAE"
    stopped_early: bool = False
    seconds: float = 0.0
    checkpoint: str | None = None  # path of the saved .safetensors (None without out_dir)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _batches(ds: MSADataset, batch_size: int, shuffle: bool, generator: torch.Generator | None) -> DataLoader:
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, generator=generator,
                      collate_fn=ds.collate_fn, num_workers=0)


def predict(model: MSAModel, ds: MSADataset, *, batch_size: int = 64, device: str | torch.device = "cpu",
            transform: Any = None, ctx: RunContext | None = None) -> np.ndarray:
    """Fused scores for every sample of `ds` in order. `transform(batch) -> batch` is applied to each
    batch before the forward (e.g. missing-data simulation)."""
    was_training = model.training
    model.eval()  # models with per-sample state (Self-MM) ignore sample ids outside training
    preds = []
    with torch.no_grad():
        for batch, _, _ in _batches(ds, batch_size, False, None):
            if ctx is not None:
                ctx.check()
            batch = batch.to(device)
            if transform is not None:
                batch = transform(batch)
            preds.append(model(batch).score.detach().float().cpu().reshape(-1))
    model.train(was_training)
    return torch.cat(preds).numpy() if preds else np.zeros(0, dtype=np.float32)


@dataclass
class _RunningStats:
    """Streaming per-column mean/std (float64), equivalent to models.base.input_stats on the
    collated training set without holding it in memory."""

    n: int = 0
    total: np.ndarray | None = None
    total_sq: np.ndarray | None = None

    def add(self, rows: np.ndarray) -> None:
        if len(rows) == 0:
            return
        r = rows.astype(np.float64)
        self.n += len(r)
        self.total = r.sum(0) if self.total is None else self.total + r.sum(0)
        self.total_sq = (r * r).sum(0) if self.total_sq is None else self.total_sq + (r * r).sum(0)

    def result(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        if self.n == 0 or self.total is None or self.total_sq is None:
            return None
        mean = self.total / self.n
        var = np.maximum(self.total_sq / self.n - mean * mean, 0.0)
        return (torch.as_tensor(mean, dtype=torch.float32),
                torch.as_tensor(np.sqrt(var), dtype=torch.float32).clamp_min(1e-6))


def _valid_rows(f: SegmentFeatures) -> dict[str, np.ndarray]:
    return {
        "text": np.asarray(f.text, dtype=np.float32),
        "audio": np.asarray(f.audio, dtype=np.float32)[np.asarray(f.audio_mask, dtype=bool)],
        "visual": np.asarray(f.visual, dtype=np.float32)[np.asarray(f.visual_mask, dtype=bool)],
    }


def input_statistics(ds: MSADataset) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per-column (mean, std) of every modality over the valid steps of `ds` (for set_input_stats)."""
    acc = {m: _RunningStats() for m in ("text", "audio", "visual")}
    for i in range(len(ds)):
        for m, rows in _valid_rows(ds.features(i)).items():
            acc[m].add(rows)
    return {m: r for m, r in ((m, a.result()) for m, a in acc.items()) if r is not None}


def _training_frames(ds: MSADataset, limit: int, seed: int,
                     stats: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> tuple[np.ndarray, np.ndarray]:
    """Valid audio and visual frames of the training set, uniformly subsampled to `limit` rows and
    standardised with `stats`, i.e. in the same space the model's forward sees them."""
    chunks: dict[str, list[np.ndarray]] = {"audio": [], "visual": []}
    for i in range(len(ds)):
        rows = _valid_rows(ds.features(i))
        for m in chunks:
            chunks[m].append(rows[m])
    rng = np.random.default_rng(seed)
    out = []
    for m in ("audio", "visual"):
        x = np.concatenate(chunks[m]) if chunks[m] else np.zeros((0, ds.spec.dims[m]), np.float32)
        if len(x) > limit:
            x = x[np.sort(rng.choice(len(x), size=limit, replace=False))]
        if m in stats:
            mean, std = (t.numpy() for t in stats[m])
            x = ((x - mean) / std).astype(np.float32)
        out.append(x)
    return out[0], out[1]


def _optimizer(model: MSAModel, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    if hasattr(model, "optimizer_groups"):
        groups = model.optimizer_groups(lr, weight_decay)
    else:
        groups = [{"params": [p for p in model.parameters() if p.requires_grad]}]
    return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)


def training_inputs(batch: ModalityBatch, labels: torch.Tensor, evidence: torch.Tensor | None, missing: str,
                    gen: torch.Generator, unk_id: int, reencode: TextReencoder | None
                    ) -> tuple[ModalityBatch, torch.Tensor]:
    """The (possibly corrupted) training inputs of one batch and the targets they are trained
    towards; all randomness comes from `gen` (models/recipes/reencode_cache.py replays it)."""
    inputs, targets, _ = training_batch(batch, labels, evidence, missing, gen, unk_id, reencode)
    return inputs, targets


def training_batch(batch: ModalityBatch, labels: torch.Tensor, evidence: torch.Tensor | None, missing: str,
                   gen: torch.Generator, unk_id: int, reencode: TextReencoder | None
                   ) -> tuple[ModalityBatch, torch.Tensor, torch.Tensor]:
    """`training_inputs` plus the (B, 3) bool matrix of the modalities each sample keeps (all True
    outside the coalition regime), which the per-modality targets are drawn from."""
    everything = torch.ones(batch.batch_size, len(MODALITIES), dtype=torch.bool)
    if missing == "none":
        return batch, labels, everything
    if missing == "lnln":
        return apply_missing(batch, training_rates(batch.batch_size, gen), gen, unk_id, reencode), labels, everything
    keep, rates = CoalitionRegime().draw(batch.batch_size, gen)
    masked = mask_modalities_per_sample(batch, keep, unk_id, reencode)
    return apply_missing(masked, rates, gen, unk_id, reencode), coalition_targets(labels, keep, evidence), keep


#: "constant": AdamW at `lr` throughout. "cosine": the learning rate of every parameter group falls
#: from its own value to 0 along half a cosine over the planned steps, so the last epochs take
#: small steps and the model chosen on validation is a settled one, not a point the optimiser
#: happened to pass (with a constant rate the composed-dev MAE jumped by up to 0.25 between epochs).
LR_SCHEDULES = ("constant", "cosine")


def _lr_scheduler(opt: torch.optim.Optimizer, schedule: str, n_steps: int):
    """A per-step scheduler for `schedule` (None for a constant rate)."""
    if schedule == "constant":
        return None
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1.0 + math.cos(math.pi * min(s, n_steps) / n_steps)))


def check_training_options(*, epochs: int, batch_size: int, lr: float, weight_decay: float, patience: int,
                           select_metric: str, missing: str, lr_schedule: str = "constant") -> None:
    """One-line MSAError for a value training cannot use (the CLI calls this before loading data)."""
    if lr_schedule not in LR_SCHEDULES:
        raise MSAError(f"unknown learning-rate schedule {lr_schedule!r}; use {' or '.join(LR_SCHEDULES)}")
    if missing not in MISSING_REGIMES:
        raise MSAError(f"unknown missing-data regime {missing!r}; use {' or '.join(MISSING_REGIMES)}")
    if select_metric not in METRIC_NAMES:
        raise MSAError(f"unknown selection metric {select_metric!r}; use one of {', '.join(METRIC_NAMES)}")
    if epochs < 1 or batch_size < 1 or not (lr > 0 and math.isfinite(lr)):
        raise MSAError("epochs and batch size must be >= 1 and the learning rate a finite number > 0")
    if not (weight_decay >= 0 and math.isfinite(weight_decay)):
        raise MSAError(f"the weight decay must be a finite number >= 0, got {weight_decay}")
    if patience < 1:
        raise MSAError(f"the early-stopping patience must be >= 1 epoch, got {patience}")


def build_configured_model(model_name: str, spec: FeatureSpec, config: dict[str, Any]) -> MSAModel:
    """The model with a user's config overrides; a value it cannot take is a one-line MSAError."""
    from models.registry import build_model

    try:
        return build_model(model_name, spec, **config)
    except MSAError:
        raise
    except (TypeError, ValueError, KeyError, RuntimeError) as exc:  # a bad --config override
        raise MSAError(f"cannot build model {model_name!r} with config {config}: {exc}") from None


def _require_finite_labels(ds: MSADataset, name: str) -> None:
    labels = np.asarray(ds.labels, dtype=np.float64).reshape(-1)
    bad = np.flatnonzero(~np.isfinite(labels))
    if bad.size:
        i = int(bad[0])
        more = f" ({bad.size - 1} more)" if bad.size > 1 else ""
        raise MSAError(f"{name} data: sample {ds.ids[i]!r} has label {labels[i]}, not a finite number{more}; "
                       "fix the labels (training would only diverge)")


def train_model(
    model_name: str,
    train_ds: MSADataset,
    valid_ds: MSADataset,
    spec: FeatureSpec,
    *,
    epochs: int = 30,
    batch_size: int = 32,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    seed: int = 1111,
    missing: str = "lnln",
    reencode: TextReencoder | None = None,
    unk_id: int | None = None,
    device: str | torch.device = "cpu",
    ctx: RunContext | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    config: dict[str, Any] | None = None,
    patience: int = 8,
    select_metric: str = "MAE",
    grad_clip: float | None = 1.0,
    vocab_frames: int = 20000,
    data_info: dict[str, Any] | None = None,
    validate: Callable[[MSAModel], dict[str, float]] | None = None,
    lr_schedule: str = "constant",
) -> tuple[MSAModel, TrainHistory, dict[str, float]]:
    """Train `model_name` and return (best model, history, its validation metrics).

    The best model (by `select_metric` on the complete validation set, or on what `validate(model)`
    returns) is restored at the end and,
    with `out_dir`, saved as `<out_dir>/<model_name>.safetensors` + `.json` whenever it improves,
    so a cancelled run (core.errors.Cancelled) keeps its best checkpoint so far."""
    check_training_options(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                           patience=patience, select_metric=select_metric, missing=missing,
                           lr_schedule=lr_schedule)
    if len(train_ds) == 0 or len(valid_ds) == 0:
        raise MSAError(f"need training and validation samples (got {len(train_ds)} train, {len(valid_ds)} valid)")
    for name, ds in (("training", train_ds), ("validation", valid_ds)):
        ds_spec = getattr(ds, "spec", None)
        if ds_spec is not None:
            spec.require_compatible(ds_spec, what=f"{name} data")
        _require_finite_labels(ds, name)
    ctx = ctx or RunContext()
    unk = token_id(spec, "unk_id") if unk_id is None else int(unk_id)
    config = dict(config or {})
    started = time.time()

    torch.manual_seed(seed)  # model initialisation and dropout
    shuffle_gen = torch.Generator().manual_seed(seed)
    missing_gen = torch.Generator().manual_seed(seed + 1)
    model = build_configured_model(model_name, spec, config).to(device)

    # Inputs are standardised inside the model (models.base): statistics come from the complete
    # training set and travel in the checkpoint's state dict.
    stats = input_statistics(train_ds)
    if hasattr(model, "set_input_stats"):
        model.set_input_stats(stats)
    if hasattr(model, "init_dataset"):
        model.init_dataset(len(train_ds), torch.as_tensor(np.asarray(train_ds.labels), dtype=torch.float32, device=device))
    if hasattr(model, "fit_vocabularies"):
        ctx.report("train", 0.0, "building vocabularies from training frames")
        model.fit_vocabularies(*_training_frames(train_ds, vocab_frames, seed,
                                                 stats if hasattr(model, "set_input_stats") else {}))

    opt = _optimizer(model, lr, weight_decay)
    uses_complete = bool(getattr(model, "uses_complete_view", False))
    needs_complete_fwd = bool(getattr(model, "needs_complete_forward", False))
    history = TrainHistory(select_metric=select_metric)
    best_metrics: dict[str, float] = {}
    best_state: dict[str, torch.Tensor] | None = None
    best_value: float | None = None
    n_steps = epochs * math.ceil(len(train_ds) / batch_size)
    step = 0
    scheduler = _lr_scheduler(opt, lr_schedule, n_steps)

    def summary(epochs_run: int) -> dict[str, Any]:
        return {
            "model": model_name, "seed": seed, "epochs": epochs, "epochs_run": epochs_run,
            "best_epoch": history.best_epoch, "batch_size": batch_size, "lr": lr, "lr_schedule": lr_schedule,
            "weight_decay": weight_decay, "missing": missing, "select_metric": select_metric,
            "patience": patience, "grad_clip": grad_clip, "n_train": len(train_ds), "n_valid": len(valid_ds),
            "text_reencoded": reencode is not None, "data": dict(data_info or {}),
            "seconds": round(time.time() - started, 1), "device": str(device),
            "torch": torch.__version__, "python": platform.python_version(),
            "finished_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }

    def save(epochs_run: int) -> None:
        if out_dir is None:
            return
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        # the model's effective config (defaults filled in, values a hook adjusted) rebuilds exactly
        # this architecture even if a later version changes its defaults
        effective = {**config, **dict(getattr(model, "config", {}) or {})}
        path = save_checkpoint(out_dir, model, model_name=model_name, config=effective, spec=spec,
                               training=summary(epochs_run), metrics={"valid": best_metrics})
        history.checkpoint = str(path)

    bad_epochs = 0
    for epoch in range(1, epochs + 1):
        model.train()
        sums: dict[str, float] = {}
        n_batches = 0
        for batch, labels, idx in _batches(train_ds, batch_size, True, shuffle_gen):
            ctx.check()
            batch, labels, idx = batch.to(device), labels.to(device), idx.to(device)
            evidence = None if train_ds.evidence is None else torch.as_tensor(train_ds.evidence[idx.cpu().numpy()])
            raw_labels = labels
            inputs, labels, keep = training_batch(batch, labels, evidence, missing, missing_gen, unk, reencode)
            extra = ({"modality_targets": modality_targets(raw_labels, keep.to(device), evidence)}
                     if getattr(model, "uses_modality_targets", False) else {})
            if hasattr(model, "set_sample_ids"):
                model.set_sample_ids(idx)
            out = model(inputs)
            complete_out = None
            if needs_complete_fwd:
                complete_out = out if inputs is batch else model(batch)
            loss, parts = model.training_loss(out, inputs, labels,
                                              complete=batch if uses_complete else None,
                                              complete_out=complete_out, **extra)
            if not torch.isfinite(loss):
                raise MSAError(f"training diverged (loss {float(loss)} at epoch {epoch}); lower the learning rate")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            opt.step()
            if scheduler is not None:
                scheduler.step()
            n_batches += 1
            sums["loss"] = sums.get("loss", 0.0) + float(loss.detach())
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            step += 1
            ctx.report("train", step / n_steps, f"epoch {epoch}/{epochs} loss {sums['loss'] / n_batches:.4f}")
        if hasattr(model, "on_epoch_end"):
            model.on_epoch_end(epoch)

        if validate is not None:  # e.g. metrics over several coalitions (models/recipes/train_all.py)
            valid = validate(model)
        else:
            valid = regression_metrics(predict(model, valid_ds, batch_size=max(batch_size, 64), device=device,
                                               ctx=ctx), valid_ds.labels)
        row = {"epoch": epoch, **{f"train_{k}": v / max(1, n_batches) for k, v in sums.items()},
               **{f"valid_{k}": v for k, v in valid.items()}}
        history.epochs.append(row)
        if is_better(select_metric, valid[select_metric], best_value):
            best_value = valid[select_metric]
            best_metrics = valid
            history.best_epoch = epoch
            best_state = copy.deepcopy(model.state_dict())
            bad_epochs = 0
            save(epoch)
        else:
            bad_epochs += 1
        ctx.report("train", step / n_steps,
                   f"epoch {epoch}/{epochs} valid {select_metric} {valid[select_metric]:.4f} (best epoch {history.best_epoch})")
        if bad_epochs >= patience:
            history.stopped_early = True
            break

    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    history.seconds = time.time() - started
    save(len(history.epochs))
    return model, history, best_metrics

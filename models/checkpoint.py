"""Checkpoints: `<stem>.safetensors` (weights) + `<stem>.json` (everything needed to rebuild).

The JSON sidecar holds the model name, its constructor config, the FeatureSpec the model was
trained for, a training summary, optional metrics and the SHA-256 of the weights file. Loading
never unpickles anything (safetensors only), verifies the hash, checks the spec against the data
it will be fed, and compares parameter names/shapes before `load_state_dict` so that a mismatch
is reported as a one-line CheckpointError instead of PyTorch's wall of "size mismatch" text.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from core.errors import CheckpointError, MSAError, UnknownNameError
from core.feature_spec import MODALITIES, FeatureSpec
from models.base import MSAModel

FORMAT_VERSION = 1
WEIGHTS_SUFFIX = ".safetensors"
META_SUFFIX = ".json"
_MAX_META_BYTES = 16 * 1024 * 1024  # a sidecar is a few KB; refuse to parse absurd files


@dataclass
class CheckpointMeta:
    model_name: str
    config: dict[str, Any]
    spec: FeatureSpec
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] | None = None
    sha256: str = ""
    format_version: int = FORMAT_VERSION
    weights_path: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "model_name": self.model_name,
            "config": self.config,
            "spec": self.spec.to_dict(),
            "training": self.training,
            "metrics": self.metrics,
            "sha256": self.sha256,
        }


def checkpoint_paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """(weights, sidecar) for a path given as either file or as the common stem."""
    p = Path(path)
    if p.suffix in (WEIGHTS_SUFFIX, META_SUFFIX):
        p = p.with_suffix("")
    return p.with_name(p.name + WEIGHTS_SUFFIX), p.with_name(p.name + META_SUFFIX)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; checkpoints are meant to be shared/installed
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _json_safe(obj: Any) -> Any:
    """Make metrics/config JSON-clean: NaN -> None, numpy scalars -> Python numbers."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)


def save_checkpoint(
    dir_or_path: str | os.PathLike[str],
    model: MSAModel,
    *,
    model_name: str,
    config: dict[str, Any],
    spec: FeatureSpec,
    training: dict[str, Any],
    metrics: dict[str, Any] | None = None,
) -> Path:
    """Write weights + sidecar atomically; returns the .safetensors path.

    `dir_or_path`: an existing directory (files are named after the model) or a path/stem."""
    from safetensors.torch import save

    target = Path(dir_or_path)
    if target.is_dir():
        target = target / model_name
    weights_path, meta_path = checkpoint_paths(target)
    weights_path.parent.mkdir(parents=True, exist_ok=True)

    # clone(): safetensors refuses tensors that share storage (tied weights, views); duplicates
    # cost a little disk but keep the format trivially loadable.
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    blob = save(state, metadata={"format": "pt", "model_name": model_name})
    _atomic_write_bytes(weights_path, blob)

    meta = CheckpointMeta(
        model_name=model_name,
        config=_json_safe(dict(config)),
        spec=spec,
        training=_json_safe(dict(training)),
        metrics=None if metrics is None else _json_safe(dict(metrics)),
        sha256=hashlib.sha256(blob).hexdigest(),
    )
    _atomic_write_bytes(meta_path, json.dumps(meta.to_dict(), indent=2, allow_nan=False).encode())
    return weights_path


def _parse_meta(raw: bytes, meta_path: Path) -> CheckpointMeta:
    try:
        d = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise CheckpointError(f"checkpoint metadata {meta_path.name} is truncated or not valid JSON") from None
    if not isinstance(d, dict):
        raise CheckpointError(f"checkpoint metadata {meta_path.name} is not a JSON object")

    def need(key: str, kind: type | tuple[type, ...]) -> Any:
        if key not in d:
            raise CheckpointError(f"checkpoint metadata {meta_path.name} lacks {key!r}")
        if not isinstance(d[key], kind):
            raise CheckpointError(f"checkpoint metadata {meta_path.name}: {key!r} has the wrong type")
        return d[key]

    version = need("format_version", int)
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint format {version} is newer than this version of MSA Studio supports "
            f"({FORMAT_VERSION}); upgrade the app"
        )
    spec_dict = need("spec", dict)
    try:
        spec = FeatureSpec.from_dict(spec_dict)
    except MSAError as exc:
        raise CheckpointError(f"checkpoint metadata {meta_path.name}: {exc}") from None
    except Exception as exc:  # odd values such as Infinity in an int field
        raise CheckpointError(f"checkpoint metadata {meta_path.name}: malformed spec ({type(exc).__name__})") from None
    metrics = d.get("metrics")
    if metrics is not None and not isinstance(metrics, dict):
        raise CheckpointError(f"checkpoint metadata {meta_path.name}: 'metrics' has the wrong type")
    sha = need("sha256", str)
    if len(sha) != 64:
        raise CheckpointError(f"checkpoint metadata {meta_path.name}: malformed sha256")
    return CheckpointMeta(
        model_name=need("model_name", str),
        config=need("config", dict),
        spec=spec,
        training=need("training", dict),
        metrics=metrics,
        sha256=sha.lower(),
        format_version=version,
    )


def read_checkpoint_meta(path: str | os.PathLike[str]) -> CheckpointMeta:
    """Parse the sidecar only (cheap; for listings and spec checks before loading weights)."""
    weights_path, meta_path = checkpoint_paths(path)
    if not meta_path.is_file():
        raise CheckpointError(f"checkpoint metadata not found: {meta_path}")
    if meta_path.stat().st_size > _MAX_META_BYTES:
        raise CheckpointError(f"checkpoint metadata {meta_path.name} is implausibly large")
    meta = _parse_meta(meta_path.read_bytes(), meta_path)
    meta.weights_path = str(weights_path)
    return meta


def _describe(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


def _check_state(model: torch.nn.Module, state: dict[str, torch.Tensor], name: str) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(
        f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
        for k in set(expected) & set(state)
        if tuple(state[k].shape) != tuple(expected[k].shape)
    )
    problems = []
    if missing:
        problems.append(f"missing {_describe(missing)}")
    if unexpected:
        problems.append(f"unexpected {_describe(unexpected)}")
    if wrong:
        problems.append(f"shape mismatch {_describe(wrong)}")
    if problems:
        raise CheckpointError(f"weights do not fit model {name!r}: " + "; ".join(problems))


def load_checkpoint(
    path: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    expected_spec: FeatureSpec | None = None,
) -> tuple[MSAModel, CheckpointMeta]:
    """Rebuild the model from a checkpoint (in eval mode, on `device`).

    Raises CheckpointError (missing/tampered/corrupt/incompatible files, unknown model) or
    FeatureSpecMismatch (the checkpoint's spec differs from `expected_spec`)."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    from models.registry import build_model

    meta = read_checkpoint_meta(path)
    weights_path = Path(meta.weights_path)
    if not weights_path.is_file():
        raise CheckpointError(f"checkpoint weights not found: {weights_path}")
    blob = weights_path.read_bytes()
    if hashlib.sha256(blob).hexdigest() != meta.sha256:
        raise CheckpointError(
            f"checkpoint {weights_path.name} does not match the hash in its metadata "
            "(modified or corrupted); refusing to load"
        )

    if expected_spec is not None:
        meta.spec.require_compatible(expected_spec, what=f"checkpoint {weights_path.name}")

    try:
        state = load(blob)
    except (SafetensorError, ValueError, RuntimeError, OverflowError) as exc:
        raise CheckpointError(f"checkpoint weights {weights_path.name} are unreadable: {exc}") from None
    # The sidecar is not covered by the hash, so check its spec against the (hashed) weights before
    # building anything: an edited sidecar must not make us allocate a model of arbitrary size.
    _check_sidecar_matches_weights(meta, state, weights_path.name)

    try:
        model = build_model(meta.model_name, meta.spec, **meta.config)
    except UnknownNameError as exc:
        raise CheckpointError(f"checkpoint is for a model this version does not provide: {exc}") from None
    except MSAError:
        raise
    except Exception as exc:
        raise CheckpointError(
            f"cannot rebuild model {meta.model_name!r} from the checkpoint's config: {exc}"
        ) from None

    _check_state(model, state, meta.model_name)
    model.load_state_dict(state, strict=True)
    model.to(device)
    model.eval()
    return model, meta


def _check_sidecar_matches_weights(meta: CheckpointMeta, state: dict[str, torch.Tensor], name: str) -> None:
    """Every MSAModel stores per-modality input statistics of shape (dim,), so the weights themselves
    say which feature dims they were trained on."""
    for m in MODALITIES:
        key = f"input_mean_{m}"
        dim = meta.spec.modality(m).dim
        if key not in state:
            raise CheckpointError(f"checkpoint {name} lacks {key}; it was not written by this version")
        if tuple(state[key].shape) != (dim,):
            raise CheckpointError(
                f"checkpoint {name}: its metadata says {m}.dim={dim} but the weights were trained on "
                f"{tuple(state[key].shape)[0] if state[key].ndim == 1 else tuple(state[key].shape)}; "
                "the .json sidecar was edited or belongs to another checkpoint"
            )

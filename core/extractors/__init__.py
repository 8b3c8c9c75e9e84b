"""The one extractor registry: name -> factory. Modules register on import (see `load_all`)."""
from __future__ import annotations

from core.registry import Registry

EXTRACTORS: Registry = Registry("extractor")
register_extractor = EXTRACTORS.register


def load_all() -> None:
    """Import extractor modules so they register. Heavy deps are imported lazily inside them."""
    from core.extractors import asr, audio, text, visual  # noqa: F401

"""The one extractor registry: name -> extractor class. Modules register on import (`load_all`).

Every extractor class implements `FeatureExtractor`: a registry `name`, a `modality` ("text",
"audio", "visual"; the ASR is "speech"), a `from_spec(modality_spec, **runtime)` classmethod that
checks the spec (dims, rates, params) and returns a lazily-loading instance (weights load on first
use), so building from a spec is cheap and fails before any work when the spec cannot be produced
here, and `extract(data, ctx=None, **options)`. `build_extractor` is the one way the pipeline (and
live mode, through the pipeline) turns the names in a FeatureSpec into extractors, so a new
extractor is one registered class.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, ClassVar, Protocol, TypeVar, runtime_checkable

from core.errors import FeatureSpecMismatch, UnknownNameError
from core.registry import Registry

if TYPE_CHECKING:
    from core.feature_spec import ModalitySpec
    from core.progress import RunContext


@runtime_checkable
class FeatureExtractor(Protocol):
    """What every registered extractor class provides (checked when it registers)."""

    name: ClassVar[str]
    modality: ClassVar[str]

    @classmethod
    def from_spec(cls, spec: "ModalitySpec | None", **runtime: Any) -> "FeatureExtractor":
        """A lazily-loading instance for `spec` (None: an extractor no FeatureSpec names, the ASR)."""
        ...

    def extract(self, data: Any, ctx: "RunContext | None" = None, **options: Any) -> Any:
        """Features of `data` (texts, a waveform, video frames: whatever the modality takes)."""
        ...


EXTRACTORS: Registry = Registry("extractor")
_E = TypeVar("_E", bound=type)


def register_extractor(name: str) -> Callable[[_E], _E]:
    """Class decorator: register an extractor under `name`, refusing a class that does not
    implement FeatureExtractor (so a broken one fails at import, not in the middle of a file)."""
    add = EXTRACTORS.register(name)

    def deco(cls: _E) -> _E:
        missing = [a for a in ("name", "modality", "from_spec", "extract") if not hasattr(cls, a)]
        if missing:
            raise TypeError(f"extractor {name!r} ({cls.__name__}) lacks {', '.join(missing)}")
        if str(getattr(cls, "name")).lower() != name.lower():
            raise TypeError(f"extractor class {cls.__name__} is named {cls.name!r} but registered as {name!r}")
        return add(cls)

    return deco


def load_all() -> None:
    """Import extractor modules so they register. Heavy deps are imported lazily inside them."""
    from core.extractors import asr, audio, text, visual, visual_v2, whisper_audio  # noqa: F401


def build_extractor(modality: str, spec: "ModalitySpec | str", **runtime: Any) -> Any:
    """The extractor a spec's `modality` entry names, built (lazily) from that entry. `spec` may be
    a bare registry name for an extractor no FeatureSpec describes (the "speech" ASR)."""
    load_all()
    name, modality_spec = (spec, None) if isinstance(spec, str) else (spec.extractor, spec)
    try:
        cls = EXTRACTORS.get(name)
    except UnknownNameError:
        known = ", ".join(n for n in EXTRACTORS.names() if getattr(EXTRACTORS.get(n), "modality", "") == modality)
        raise FeatureSpecMismatch(
            f"the feature spec asks for {modality} extractor {name!r}, which this version does not have "
            f"(available: {known})"
        ) from None
    if getattr(cls, "modality", None) != modality:
        raise FeatureSpecMismatch(f"{name!r} is a {getattr(cls, 'modality', '?')} extractor, not {modality}")
    return cls.from_spec(modality_spec, **runtime)

"""Model card summary for reports: name, training data, licence and known limits.

Cards are Markdown files `assets/model_cards/<model>.md` written by the training recipes. The parser
relies only on what the cards promise to keep: a `# Model card: ...` title, a bold line starting
`**Licence of the weights: ...**`, and `## Training data` / `## Known limits` sections. It is tolerant
of everything else (other sections, their order, trailing spaces, "License" spelt the American way,
a missing part): what it cannot find is None, never an exception.

A card describes one checkpoint: the shipped one. `card_for_model` only hands it out when the
result's training summary equals the shipped checkpoint's, so a report on a custom or retrained
checkpoint never borrows a card that is not about it.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from core.types import ModelInfo

CARD_DIR = Path(__file__).resolve().parent.parent.parent / "assets" / "model_cards"
CHECKPOINT_DIR = Path(__file__).resolve().parent.parent.parent / "assets" / "checkpoints"

_TITLE = re.compile(r"^#\s+Model\s+card\s*:?\s*(?P<name>.+?)\s*$", re.IGNORECASE)
# "**Licence of the weights: X** (why)" and "**Licence of the weights:** X" both give X (+ why).
_LICENCE = re.compile(r"\*\*\s*Licen[cs]e\s+of\s+the\s+weights\s*:\s*(?P<inner>[^*\n]*?)\s*\*\*(?P<rest>[^\n]*)",
                      re.IGNORECASE)
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


@dataclass(frozen=True)
class ModelCard:
    name: str | None
    licence: str | None
    training_data: str | None  # Markdown of the section body
    known_limits: str | None  # Markdown of the section body
    source: str = ""  # file the card came from, for the report's footnote


@dataclass(frozen=True)
class CardLookup:
    card: ModelCard | None
    note: str  # why there is no card, or which card it is


def parse_model_card(text: str, source: str = "") -> ModelCard:
    """Parse a card's Markdown (see the module docstring for what is looked for)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    name = None
    for line in lines:
        m = _TITLE.match(line.strip())
        if m:
            name = m.group("name").strip()
            break
    licence = None
    m = _LICENCE.search(text)
    if m:
        licence = " ".join(part for part in (m.group("inner").strip(), m.group("rest").strip()) if part) or None
    return ModelCard(
        name=name,
        licence=licence,
        training_data=_section(lines, "training data"),
        known_limits=_section(lines, "known limits"),
        source=source,
    )


def _section(lines: list[str], title: str) -> str | None:
    """Body of the first heading named `title` (any level, any case) up to the next heading of the
    same or a higher level; None when absent or empty."""
    start, level = None, 0
    for i, line in enumerate(lines):
        m = _HEADING.match(line)
        if not m:
            continue
        if start is None:
            if m.group(2).strip().rstrip(":").lower() == title:
                start, level = i + 1, len(m.group(1))
        elif len(m.group(1)) <= level:
            body = "\n".join(lines[start:i]).strip()
            return body or None
    if start is None:
        return None
    return "\n".join(lines[start:]).strip() or None


def load_model_card(path: str | Path) -> ModelCard | None:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return parse_model_card(text, source=str(path))


def card_for_model(model: ModelInfo, card_dir: Path = CARD_DIR,
                   checkpoint_dir: Path = CHECKPOINT_DIR) -> CardLookup:
    """The card that describes the weights a result was made with (`result.model`), or a note
    saying why none does."""
    name = str(model.name or "").lower()
    if not name:
        return CardLookup(None, "the result does not name its model")
    if model.untrained:
        return CardLookup(None, f"{name} ran without trained weights (untrained): no model card applies")
    card_path = card_dir / f"{name}.md"
    shipped_sidecar = checkpoint_dir / f"{name}.json"
    try:
        shipped = json.loads(shipped_sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        shipped = None
    training = model.training
    if not isinstance(shipped, dict) or not training or training != shipped.get("training"):
        where = model.checkpoint or "an unknown checkpoint"
        return CardLookup(None, f"weights from {where} are not the shipped {name} checkpoint "
                                f"(their training summary differs), so the shipped model card does not describe them")
    card = load_model_card(card_path)
    if card is None:
        return CardLookup(None, f"no model card found for {name} ({card_path.name})")
    return CardLookup(card, f"model card {card_path.name} (shipped {name} weights)")


__all__ = ["CardLookup", "ModelCard", "card_for_model", "load_model_card", "parse_model_card"]

"""User transcripts: SubRip (.srt), WebVTT (.vtt) and plain text.

Plain text carries no times: each non-empty line becomes one `Segment` with start = end = -1
(`UNTIMED`) and source "transcript"; `core.segmentation.align_transcript` places them on the
speech afterwards. Subtitle files keep their cue times.

Encoding: UTF-8 (with or without BOM), UTF-16 when it has a BOM; otherwise cp1252 (what Windows
editors write) and finally latin-1, with a ctx warning, so a stray byte never aborts a run.

Sidecars: `choose_transcript` picks the transcript of a recording for every front end (CLI analyze,
batch, GUI): an explicit file wins; else `NAME.srt`, `NAME.vtt` or `NAME.txt` next to `NAME.ext`
(first found, in that order) unless sidecars are turned off; else none (speech recognition). The
choice's `record()` goes into the result (`recording.transcript`) so every result says which
transcript it used.

Size: files over MAX_TRANSCRIPT_BYTES are refused from their size alone, before a byte is read. A
50 MB one-line "transcript" used to cost ~2 minutes and ~10 GB downstream (alignment, tokenising);
real transcripts are far below the limit (10 hours of speech at 150 words/min is ~0.6 MB).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import MSAError
from core.progress import RunContext
from core.types import Segment

UNTIMED = -1.0
MAX_TRANSCRIPT_BYTES = 2_000_000

# hh:mm:ss,mmm (SRT) or [hh:]mm:ss.mmm (VTT); lenient about the separator and digit counts.
_TIME = r"(?:(\d+):)?(\d{1,2}):(\d{1,2})(?:[.,](\d{1,3}))?"
_CUE_LINE = re.compile(rf"^\s*{_TIME}\s*-->\s*{_TIME}")
_TAG = re.compile(r"<[^>]*>|\{\\[^}]*\}")  # <i>, <c.yellow>, <00:01.000>, {\an8}


def load_transcript(path: str | os.PathLike, ctx: RunContext | None = None) -> list[Segment]:
    """Parse a transcript file into segments (format chosen by content, then extension)."""
    p = Path(path)
    if not p.is_file():
        raise MSAError(f"transcript not found: {p}")
    size = p.stat().st_size
    if size > MAX_TRANSCRIPT_BYTES:
        raise MSAError(f"transcript {p.name} is too large ({size / 1e6:.1f} MB; the limit is "
                       f"{MAX_TRANSCRIPT_BYTES / 1e6:.1f} MB, about 40 hours of speech)")
    text = _decode(p.read_bytes(), p.name, ctx)
    if not text.strip():
        raise MSAError(f"transcript is empty: {p.name}")
    return parse_transcript(text, name=p.name, suffix=p.suffix.lower(), ctx=ctx)


def parse_transcript(text: str, name: str = "transcript", suffix: str = "",
                     ctx: RunContext | None = None) -> list[Segment]:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    stripped = text.lstrip()
    if stripped.startswith("WEBVTT") or suffix == ".vtt":
        segments = _parse_cues(text, name, ctx, vtt=True)
    elif suffix == ".srt" or any(_CUE_LINE.match(line) for line in text.split("\n")):
        segments = _parse_cues(text, name, ctx, vtt=False)
    else:
        segments = _parse_plain(text)
    if not segments:
        raise MSAError(f"transcript has no text: {name}")
    return segments


def is_untimed(segment: Segment) -> bool:
    return segment.start < 0 or segment.end < 0


# ----------------------------------------------------------------------------------- sidecars

# Timed formats first: a recording with both clip.srt and clip.txt gets the cue times.
SIDECAR_SUFFIXES = (".srt", ".vtt", ".txt")


@dataclass(frozen=True)
class TranscriptChoice:
    """The transcript an analysis uses. origin: "sidecar" (the file lies next to the recording with its
    name, whether found or given), "file" (any other file) or "asr" (none: speech recognition)."""

    path: Path | None
    origin: str
    ignored: tuple[Path, ...] = field(default_factory=tuple)  # other sidecars that were not used

    @property
    def transcript(self) -> str | None:
        """The value for the pipeline's `transcript` argument."""
        return None if self.path is None else str(self.path)

    def record(self) -> dict[str, Any]:
        """What the result stores under recording["transcript"]."""
        if self.path is None:
            return {"source": "asr"}
        out: dict[str, Any] = {"source": self.origin, "path": str(self.path),
                               "format": _format_name(self.path)}
        if self.ignored:
            out["ignored"] = [str(p) for p in self.ignored]
        return out

    def describe(self) -> str:
        """One line for people: 'transcript clip.srt (next to the recording)'."""
        return describe_transcript_record(self.record())


def describe_transcript_record(record: Any) -> str:
    """A result's recording["transcript"] in words (also for results written before it existed)."""
    if not isinstance(record, dict):
        return "not recorded (result written before MSA Studio recorded it)"
    if record.get("source") == "asr" or not record.get("path"):
        return "speech recognition (no transcript file)"
    where = "next to the recording" if record.get("source") == "sidecar" else "given"
    return f"transcript {Path(str(record['path'])).name} ({where})"


def _format_name(path: Path) -> str:
    return {".srt": "srt", ".vtt": "vtt"}.get(path.suffix.lower(), "text")


def sidecar_transcripts(media: str | os.PathLike) -> list[Path]:
    """Every `NAME.srt` / `NAME.vtt` / `NAME.txt` (or `.SRT`, ...) next to `NAME.ext`, in preference
    order. Looked up by name (no folder listing: a batch folder may hold thousands of files)."""
    p = Path(media)
    found: list[Path] = []
    for suffix in SIDECAR_SUFFIXES:
        for variant in dict.fromkeys((suffix, suffix.upper())):
            candidate = p.with_name(p.stem + variant)
            if candidate.is_file() and not any(_same(candidate, f) for f in found):
                found.append(candidate)
    return found


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def transcript_choice(media: str | os.PathLike, transcript: str | os.PathLike | None) -> TranscriptChoice:
    """Describe the transcript file an analysis of `media` uses (None: speech recognition)."""
    if not transcript:
        return TranscriptChoice(None, "asr")
    path = Path(transcript)
    sidecars = sidecar_transcripts(media)
    if any(_same(path, s) for s in sidecars):
        return TranscriptChoice(path, "sidecar", tuple(s for s in sidecars if not _same(path, s)))
    return TranscriptChoice(path, "file")


def choose_transcript(media: str | os.PathLike, explicit: str | os.PathLike | None = None,
                      use_sidecar: bool = True) -> TranscriptChoice:
    """The transcript for an analysis of `media`: `explicit` if given, else the first sidecar (unless
    `use_sidecar` is False), else speech recognition. Reads no file."""
    if explicit:
        return transcript_choice(media, explicit)
    sidecars = sidecar_transcripts(media) if use_sidecar else []
    return transcript_choice(media, sidecars[0] if sidecars else None)


def check_transcript_choice(choice: TranscriptChoice, hint: str = "") -> None:
    """Parse the chosen transcript once (size, encoding, format) before any long work. A bad sidecar
    is named as such, with `hint` saying how to leave it out."""
    if choice.path is None:
        return
    try:
        load_transcript(choice.path)
    except MSAError as exc:
        if choice.origin != "sidecar":
            raise
        raise MSAError(f"transcript file next to the recording cannot be used: {exc}"
                       f"{f' ({hint})' if hint else ''}") from None


# ------------------------------------------------------------------------------------ helpers


# Share of control characters (other than whitespace) above which a file is binary, not text.
_MAX_CONTROL_SHARE = 0.05


def _decode(raw: bytes, name: str, ctx: RunContext | None) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")
    if looks_binary(raw):
        raise MSAError(f"{name} is not a text transcript (binary data); use SRT, WebVTT or plain text")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    for encoding in ("cp1252", "latin-1"):  # latin-1 maps every byte, so this always ends
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        if ctx is not None:
            ctx.warn(f"{name} is not UTF-8; read it as {encoding}")
        return text
    raise AssertionError("unreachable: latin-1 decodes any byte string")


def looks_binary(raw: bytes) -> bool:
    """NUL bytes or many control characters in the first 64 KB: not a text file."""
    sample = raw[:65536]
    if not sample:
        return False
    if b"\x00" in sample:
        return True
    control = sum(1 for b in sample if b < 32 and b not in (9, 10, 12, 13))
    return control / len(sample) > _MAX_CONTROL_SHARE


def _seconds(h: str | None, m: str, s: str, frac: str | None) -> float:
    ms = int((frac or "0").ljust(3, "0")[:3])
    return int(h or 0) * 3600 + int(m) * 60 + int(s) + ms / 1000.0


def _clean(line: str) -> str:
    return " ".join(_TAG.sub("", line).split())


def _parse_cues(text: str, name: str, ctx: RunContext | None, vtt: bool) -> list[Segment]:
    """Shared SRT/VTT cue reader: a cue is a time line followed by text lines up to a blank line.
    Index lines (SRT) and cue identifiers (VTT) before the time line are ignored."""
    segments: list[Segment] = []
    skipped = 0
    blocks = re.split(r"\n\s*\n", text)
    for block in blocks:
        lines = [ln for ln in block.split("\n") if ln.strip()]
        if not lines:
            continue
        head = lines[0].strip()
        if vtt and (head.startswith(("WEBVTT", "NOTE", "STYLE", "REGION"))):
            continue
        time_idx = next((i for i, ln in enumerate(lines[:3]) if "-->" in ln), None)
        if time_idx is None:
            extra = _clean(" ".join(lines))
            if segments and extra and not extra.isdigit():
                # A blank line inside a cue's text: the block continues the previous cue.
                prev = segments[-1]
                segments[-1] = Segment(prev.start, prev.end, f"{prev.text} {extra}",
                                       source="transcript")
            else:
                skipped += 1
            continue
        match = _CUE_LINE.match(lines[time_idx])
        if match is None:
            skipped += 1
            continue
        g = match.groups()
        start, end = _seconds(*g[:4]), _seconds(*g[4:])
        if end < start:
            skipped += 1
            continue
        body = _clean(" ".join(lines[time_idx + 1:]))
        if body:
            segments.append(Segment(start=start, end=end, text=body, source="transcript"))
    if skipped and ctx is not None:
        ctx.warn(f"{name}: skipped {skipped} malformed cue(s)")
    segments.sort(key=lambda s: (s.start, s.end))
    return segments


def _parse_plain(text: str) -> list[Segment]:
    return [Segment(start=UNTIMED, end=UNTIMED, text=line, source="transcript")
            for line in (_clean(ln) for ln in text.split("\n")) if line]

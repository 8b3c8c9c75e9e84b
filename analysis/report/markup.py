"""HTML building blocks shared by the recording report and the batch index: escaping, number cells,
a tiny safe Markdown subset for model-card text, and the page shell with its print-friendly CSS.

Everything user- or file-supplied (transcript text, file names, warnings, card text) goes through
`esc`; a transcript line like `<script>` is shown, never run. No external resource is referenced:
fonts are the system's, charts are `data:` URIs, the only script is inline.
"""
from __future__ import annotations

import html
import math
import re
from typing import Any, Iterable

from core import __version__

DASH = "—"


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def finite(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def fmt(value: Any, digits: int = 3, signed: bool = False, scale: float = 1.0) -> str:
    f = finite(value)
    if f is None:
        return DASH
    f *= scale
    if round(f, digits) == 0:
        f = 0.0  # no "-0.000"
    return f"{f:{'+' if signed else ''}.{digits}f}"


def num_cell(value: Any, digits: int = 3, signed: bool = False, scale: float = 1.0, cls: str = "") -> str:
    """A right-aligned cell showing `value` rounded; data-value keeps the exact number (sorting,
    machine reading). Missing / non-finite numbers show a dash and sort last."""
    f = finite(value)
    data = "" if f is None else repr(f)
    classes = " ".join(c for c in ("num", cls) if c)
    return f'<td class="{classes}" data-value="{data}">{fmt(value, digits, signed, scale)}</td>'


def text_cell(value: Any, cls: str = "") -> str:
    attr = f' class="{esc(cls)}"' if cls else ""
    return f"<td{attr}>{esc(value)}</td>"


_NUM_CLASS = ' class="num"'


def table(headers: Iterable[tuple[str, str]], rows: Iterable[str], table_id: str = "", cls: str = "",
          numeric: Iterable[str] = ()) -> str:
    """headers: (key, label); rows: ready '<tr>…</tr>' strings; `numeric`: keys of right-aligned columns."""
    right = set(numeric)
    head = "".join(f'<th data-key="{esc(k)}" scope="col"{_NUM_CLASS if k in right else ""}>{esc(label)}</th>'
                   for k, label in headers)
    attrs = (f' id="{esc(table_id)}"' if table_id else "") + (f' class="{esc(cls)}"' if cls else "")
    return f"<table{attrs}><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def definition_list(items: Iterable[tuple[str, str]]) -> str:
    """(label, already-escaped HTML value) pairs."""
    return "<dl class=\"meta\">" + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


_INLINE = [
    (re.compile(r"!\[[^\]]*\]\([^)]*\)"), ""),  # images: the card's PNGs are not embedded
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),  # links: text only (targets are repo-relative)
    (re.compile(r"\*\*(.+?)\*\*"), r"<strong>\1</strong>"),
    (re.compile(r"(?<![*\w])\*(?!\s)(.+?)(?<!\s)\*(?![*\w])"), r"<em>\1</em>"),
    (re.compile(r"`([^`]+)`"), r"<code>\1</code>"),
]


def inline_markdown(text: str) -> str:
    """One line of Markdown (bold, italics, code, link text) as safe HTML."""
    out = esc(text)  # escape first: the patterns only add our own tags
    for pattern, repl in _INLINE:
        out = pattern.sub(repl, out)
    return out


def markdown(text: str | None) -> str:
    """Paragraphs, '-'/'*' bullet lists, bold, italics and code spans; everything else is text."""
    if not text:
        return ""
    blocks: list[str] = []
    para: list[str] = []
    items: list[str] = []

    def flush() -> None:
        if para:
            blocks.append(f"<p>{inline_markdown(' '.join(para))}</p>")
            para.clear()
        if items:
            blocks.append("<ul>" + "".join(f"<li>{inline_markdown(i)}</li>" for i in items) + "</ul>")
            items.clear()

    for raw in text.split("\n"):
        line = raw.strip()
        bullet = re.match(r"^[-*+]\s+(.*)$", line)
        if not line:
            flush()
        elif bullet:
            if para:
                flush()
            items.append(bullet.group(1))
        elif items and raw.startswith((" ", "\t")):
            items[-1] += " " + line  # continuation of a wrapped bullet
        elif line.startswith("#"):
            flush()
            blocks.append(f"<p><strong>{inline_markdown(line.lstrip('#').strip())}</strong></p>")
        else:
            if items:
                flush()
            para.append(line)
    flush()
    return "".join(blocks)


CSS = """
:root { --fg:#1d1d1f; --muted:#5f6368; --line:#d9dce1; --pos:#2e7d4f; --neg:#c0392b; --warn-bg:#fff4e5;
        --warn-line:#f0a020; --bad-bg:#fde8e8; --bad-line:#c0392b; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", "Liberation Sans", Arial, sans-serif;
       color: var(--fg); margin: 0 auto; padding: 24px 28px 48px; max-width: 1100px; line-height: 1.45; font-size: 14px; }
h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid var(--line);
     padding-bottom: 4px; } h3 { font-size: 15px; margin: 16px 0 6px; }
.sub, .note, figcaption, footer { color: var(--muted); }
.note { font-size: 13px; }
figure { margin: 8px 0 12px; } figure img { width: 100%; height: auto; display: block; }
figure.small img { max-width: 620px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 12px; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 6px; text-align: left; vertical-align: top; }
th { background: #f3f4f6; font-weight: 600; }
table.narrow { width: auto; min-width: 320px; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.pos { color: var(--pos); } td.neg { color: var(--neg); }
.banner { border-left: 5px solid var(--warn-line); background: var(--warn-bg); padding: 8px 12px; margin: 10px 0; }
.banner.bad { border-color: var(--bad-line); background: var(--bad-bg); font-weight: 600; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 10px 0; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 8px 14px; min-width: 150px; }
.card .big { font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; }
.card .label { color: var(--muted); font-size: 12px; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 3px 16px; margin: 6px 0 12px; }
dl.meta dt { color: var(--muted); } dl.meta dd { margin: 0; word-break: break-word; }
code { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12px; }
ul.warnings li { margin: 2px 0; }
th[data-key] { cursor: pointer; user-select: none; }
th.sorted-asc::after { content: " ▲"; } th.sorted-desc::after { content: " ▼"; }
footer { margin-top: 32px; font-size: 12px; border-top: 1px solid var(--line); padding-top: 8px; }
@page { size: A4; margin: 14mm 12mm; }
@media print {
  body { padding: 0; max-width: none; font-size: 11.5px; }
  h2 { break-after: avoid; } figure, .card, .banner, tr { break-inside: avoid; }
  thead { display: table-header-group; }
  a { color: inherit; text-decoration: none; }
  th[data-key] { cursor: default; } th.sorted-asc::after, th.sorted-desc::after { content: ""; }
}
"""


def page(title: str, body: str, script: str = "") -> str:
    """A complete standalone HTML document."""
    js = f"<script>{script}</script>" if script else ""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<meta name=\"generator\" content=\"MSA Studio {esc(__version__)}\">"
        f"<title>{esc(title)}</title><style>{CSS}</style></head>\n<body>\n{body}\n{js}</body></html>\n"
    )


__all__ = ["DASH", "esc", "finite", "fmt", "num_cell", "text_cell", "table", "definition_list", "inline_markdown",
           "markdown", "page"]

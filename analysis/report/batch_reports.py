"""`batch --report`: one report per analysed file next to its JSON, plus a sortable index page.

    <out>/<relative path>.html    the recording report of <out>/<relative path>.json
    <out>/index.html              every file of the batch: score, contributions, warnings, failures

Runs after the batch (any backend), from what is on disk: the JSON outputs and markers of this run
and of earlier ones, so a rerun of `batch --report` on a finished folder writes the reports without
analysing anything. A report newer than its JSON is kept. Missing-rate curves come from the feature
cache (batch fills it by default); the model is loaded once per (model, checkpoint).

The index table sorts in the browser (a few lines of inline JavaScript; without JavaScript it stays
in file order). `index.html#sort=score` or `#sort=-score` opens it sorted (descending with '-').
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Callable
from urllib.parse import quote

from core.errors import MSAError
from analysis.report.markup import esc, num_cell, page, table, text_cell
from analysis.report.missing_curve import MissingCurve, engine_for_result, missing_curve_for
from analysis.report.recording import ReportInputs, write_recording_report
from core.shapley import MODALITY_ORDER

if TYPE_CHECKING:
    from analysis.batch import BatchOptions
    from analysis.engine import InferenceEngine
    from core.result import AnalysisResult

INDEX_NAME = "index.html"
REPORT_SUFFIX = ".html"


@dataclass
class IndexRow:
    name: str  # relative input path (POSIX)
    status: str  # "done" or "failed"
    report: str = ""  # relative link to the report ("" when none)
    duration: float | None = None
    segments: int | None = None
    score: float | None = None
    contributions: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    transcript: str = ""
    error: str = ""


@dataclass
class BatchReportSummary:
    written: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # report newer than its JSON
    failed: list[tuple[str, str]] = field(default_factory=list)  # (name, why no report)
    index: Path | None = None


def report_path(out_dir: str | os.PathLike, rel: str) -> Path:
    return Path(out_dir) / f"{rel}{REPORT_SUFFIX}"


def _index_href(rel: str) -> str:
    depth = len(PurePosixPath(rel).parts) - 1
    return "../" * depth + INDEX_NAME


class _Engines:
    """One engine per (model, checkpoint) for the curves; a model that cannot load is asked once."""

    def __init__(self, device: str) -> None:
        self.device = device
        self._loaded: dict[tuple[str, str], "InferenceEngine | MSAError"] = {}

    def curve(self, result: "AnalysisResult", cache) -> MissingCurve:
        key = (str(result.model.name), str(result.model.checkpoint))
        if key not in self._loaded:
            try:
                self._loaded[key] = engine_for_result(result, device=self.device)
            except MSAError as exc:
                self._loaded[key] = exc
        engine = self._loaded[key]
        if isinstance(engine, MSAError):
            return MissingCurve.absent(f"Not computed: {engine}.")
        return missing_curve_for(result, cache=cache, engine=engine)


def _row_from_result(rel: str, result: "AnalysisResult", report: str) -> IndexRow:
    from analysis.robustness import recording_contributions, recording_score
    from core.transcripts import describe_transcript_record

    segs = result.segments
    return IndexRow(
        name=rel, status="done", report=report,
        duration=result.recording.duration, segments=len(segs),
        score=recording_score(segs) if segs else None,
        contributions=recording_contributions(segs) if segs else {},
        warnings=list(result.warnings) + sorted({w for s in segs for w in s.warnings}),
        transcript=describe_transcript_record(result.recording.transcript),
    )


def write_batch_reports(
    out_dir: str | os.PathLike,
    options: "BatchOptions",
    curves: bool = True,
    device: str = "cpu",
    on_file: Callable[[str], None] | None = None,
) -> BatchReportSummary:
    """Reports for every finished file in `out_dir` and the index page (see the module docstring)."""
    from analysis.batch import BatchState, iter_failures
    from core.result import AnalysisResult

    out = Path(out_dir)
    state = BatchState(out)
    summary = BatchReportSummary()
    cache = None
    if curves:
        from analysis.analyzer import resolve_cache

        cache = resolve_cache(options.cache_policy())
    engines = _Engines(device)
    rows: list[IndexRow] = []
    for outcome in state.done_outcomes():
        rel = outcome.name
        if on_file is not None:
            on_file(rel)
        json_path, html_path = state.output_json(rel), report_path(out, rel)
        try:
            result = AnalysisResult.from_json(json_path)
        except MSAError as exc:
            summary.failed.append((rel, str(exc)))
            rows.append(IndexRow(name=rel, status="failed", error=f"result unreadable: {exc}"))
            continue
        link = quote(f"{rel}{REPORT_SUFFIX}")
        try:
            fresh = html_path.stat().st_mtime_ns >= json_path.stat().st_mtime_ns
        except OSError:
            fresh = False
        if fresh:
            summary.kept.append(rel)
        else:
            if not curves:
                curve = MissingCurve.absent("Not computed (batch --report --no-missing-curve).")
            elif cache is None:
                curve = MissingCurve.absent("Not computed: the batch ran without the feature cache (--no-cache), "
                                            "so the features the curve needs were not kept.")
            else:
                curve = engines.curve(result, cache)
            inputs = ReportInputs(missing_curve=curve, source=json_path.name, index_href=_index_href(rel))
            write_recording_report(html_path, result, inputs)
            summary.written.append(rel)
        rows.append(_row_from_result(rel, result, link))
    done = {r.name for r in rows}
    for rel, error in iter_failures(out):
        if rel not in done:
            rows.append(IndexRow(name=rel, status="failed", error=error))
    rows.sort(key=lambda r: r.name)
    summary.index = write_index(out / INDEX_NAME, rows, title=f"MSA Studio batch: {out.name}")
    return summary


# -------------------------------------------------------------------------------------- index

SORT_SCRIPT = """
(function () {
  var table = document.getElementById('batch-index');
  if (!table) return;
  var body = table.tBodies[0];
  function key(row, col) {
    var cell = row.cells[col], v = cell.getAttribute('data-value');
    if (v === null) return {n: false, v: cell.textContent.trim().toLowerCase()};
    if (v === '') return null;  /* missing numbers sort last either way */
    return {n: true, v: parseFloat(v)};
  }
  function sortBy(col, desc) {
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a, col), y = key(b, col);
      if (x === null || y === null) return (x === null) - (y === null);
      var c = x.n && y.n ? x.v - y.v : String(x.v).localeCompare(String(y.v));
      return desc ? -c : c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      th.classList.remove('sorted-asc', 'sorted-desc');
      if (i === col) th.classList.add(desc ? 'sorted-desc' : 'sorted-asc');
      th.setAttribute('aria-sort', i === col ? (desc ? 'descending' : 'ascending') : 'none');
    });
  }
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, i) {
    th.addEventListener('click', function () { sortBy(i, th.classList.contains('sorted-asc')); });
  });
  var m = /^#sort=(-?)([\\w-]+)$/.exec(window.location.hash);
  if (m) {
    Array.prototype.forEach.call(heads, function (th, i) {
      if (th.getAttribute('data-key') === m[2]) sortBy(i, m[1] === '-');
    });
  }
})();
"""

INDEX_HEADERS = [("file", "file"), ("status", "status"), ("duration", "duration (s)"), ("segments", "segments"),
                 ("score", "score"), *[(m, m) for m in MODALITY_ORDER], ("warnings", "warnings"),
                 ("transcript", "transcript")]


def _index_row(row: IndexRow) -> str:
    name = (f'<a href="{esc(row.report)}">{esc(row.name)}</a>' if row.report else esc(row.name))
    cells = [f'<td class="file" data-value="{esc(row.name.lower())}">{name}</td>', text_cell(row.status, "status")]
    if row.status == "failed":
        cells += [num_cell(None), num_cell(None), num_cell(None), *[num_cell(None) for _ in MODALITY_ORDER],
                  f'<td class="warnings" data-value="">{esc(row.error)}</td>', text_cell("")]
    else:
        warn = "; ".join(row.warnings)
        cells += [num_cell(row.duration, 1, cls="duration"), num_cell(row.segments, 0, cls="segments"),
                  num_cell(row.score, signed=True, cls="score"),
                  *[num_cell(row.contributions.get(m), signed=True, cls=f"c-{m}") for m in MODALITY_ORDER],
                  f'<td class="warnings" data-value="{len(row.warnings)}" title="{esc(warn)}">'
                  f"{len(row.warnings)}</td>",
                  text_cell(row.transcript, "transcript")]
    return f'<tr data-file="{esc(row.name)}">{"".join(cells)}</tr>'


def write_index(path: str | os.PathLike, rows: list[IndexRow], title: str = "MSA Studio batch") -> Path:
    from core.atomic_write import atomic_write_text

    done = [r for r in rows if r.status == "done"]
    failed = len(rows) - len(done)
    body = (
        f"<header><h1>{esc(title)}</h1><p class=\"sub\">{len(rows)} file(s): {len(done)} analysed"
        f"{f', {failed} failed' if failed else ''}. Score: duration-weighted mean sentiment (-3 … +3); "
        "text / audio / visual: whole-recording Shapley contributions. Click a column to sort; click a "
        "file for its report.</p></header>"
        + table(INDEX_HEADERS, [_index_row(r) for r in rows], table_id="batch-index")
        + "<footer>Made by MSA Studio. Self-contained: the page and the linked reports load nothing from "
          "the network.</footer>"
    )
    return atomic_write_text(path, page(title, body, SORT_SCRIPT))


__all__ = ["BatchReportSummary", "INDEX_NAME", "IndexRow", "report_path", "write_batch_reports", "write_index"]

"""Shareable reports (Qt-free, so the CLI, batch and the GUI all call the same code).

* `analysis.report.recording`: one recording's self-contained HTML page from an AnalysisResult;
* `analysis.report.batch_reports`: a page per file of a batch output folder + a sortable index;
* `analysis.report.missing_curve`: where the random-missing-rate curve comes from (or why it is absent);
* `analysis.report.model_card`: the model card summary (tolerant Markdown parser);
* `analysis.report.charts` / `analysis.report.markup`: matplotlib charts as data URIs, HTML helpers.

`report_from_file` is the `msa-studio report` entry: a result JSON or a `.msasession` in, a page out.
"""
from __future__ import annotations

import os
import zipfile
from pathlib import Path

from analysis.report.missing_curve import MissingCurve, missing_curve_for
from analysis.report.recording import ReportInputs, build_recording_report, write_recording_report

SESSION_SUFFIX = ".msasession"


def is_session_file(path: str | os.PathLike) -> bool:
    """A session is a zip (whatever its name); a result is JSON."""
    return Path(path).suffix.lower() == SESSION_SUFFIX or zipfile.is_zipfile(path)


def report_from_file(
    source: str | os.PathLike,
    output: str | os.PathLike,
    curve: bool = True,
    cache_dir: str | None = None,
    use_cache: bool = True,
    device: str = "cpu",
) -> tuple[Path, MissingCurve]:
    """Write the report of a result JSON or session file to `output`; returns (path, curve used).
    Raises MSAError for an input that is neither."""
    from core.result import AnalysisResult

    features = None
    if is_session_file(source):
        from core.session import load_session

        result, features = load_session(source)
    else:
        result = AnalysisResult.from_json(source)
    cache = None
    if curve and features is None:
        from analysis.analyzer import DEFAULT_CACHE, resolve_cache

        cache = resolve_cache((cache_dir or DEFAULT_CACHE) if use_cache else None)
    missing = missing_curve_for(result, features=features, cache=cache, compute=curve, device=device)
    path = write_recording_report(output, result, ReportInputs(missing_curve=missing, source=Path(source).name))
    return path, missing


__all__ = ["MissingCurve", "ReportInputs", "build_recording_report", "is_session_file", "missing_curve_for",
           "report_from_file", "write_recording_report"]

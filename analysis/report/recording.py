"""One recording's report: a self-contained HTML page built from an AnalysisResult.

Sections: summary (recording score, whole-recording contributions), every warning, recording and
analysis metadata, the model card summary, the sentiment timeline with its uncertainty band,
per-segment Shapley contributions, robustness (mask degradation table, random-missing-rate curve),
and the transcript with times, scores and contributions. Numbers are shown rounded; each number cell
carries the exact value in `data-value`.

The page depends only on the result and what the caller hands in (missing-rate curve, model card);
it reads no other file and needs no network, so the same call serves the CLI, batch and the GUI.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from analysis.report import charts
from analysis.report.markup import (
    definition_list, esc, finite, fmt, inline_markdown, markdown, num_cell, page, table, text_cell,
)
from analysis.report.missing_curve import MissingCurve
from analysis.report.model_card import CardLookup, card_for_model
from core.shapley import MODALITY_ORDER, keep_from_key
from core.uncertainty import prediction_interval

if TYPE_CHECKING:
    from core.result import AnalysisResult

MASK_KEYS = ("TAV", "TA_", "T_V", "_AV", "T__", "_A_", "__V", "___")


@dataclass
class ReportInputs:
    """What a report shows beyond the result itself."""

    missing_curve: MissingCurve = field(
        default_factory=lambda: MissingCurve.absent("Not computed for this report."))
    card: CardLookup | None = None  # None: looked up from the result's model
    source: str = ""  # the file the report was made from (shown in the footer)
    index_href: str = ""  # batch reports: relative link back to the index page


def recording_name(result: "AnalysisResult") -> str:
    path = result.recording.path
    return Path(str(path)).name if path else "recording"


def mask_label(key: str) -> str:
    """'T_V' -> 'text + visual'; '___' -> 'none (baseline)'."""
    kept = [m for m in MODALITY_ORDER if m in keep_from_key(key)]
    return " + ".join(kept) if kept else "none (baseline)"


def _signed_class(value: Any) -> str:
    f = finite(value)
    return "" if f is None else ("pos" if f >= 0 else "neg")


# ------------------------------------------------------------------------------------ sections


def _summary(result: "AnalysisResult") -> str:
    from analysis.robustness import recording_contributions, recording_score

    segs = result.segments
    score = recording_score(segs)
    duration = finite(result.recording.duration)
    cards = [
        ("recording score", fmt(score, 3, signed=True), "duration-weighted mean of the segment scores (-3 … +3)",
         "recording-score"),
        ("duration", f"{fmt(duration, 1)} s", "", "duration"),
        ("segments", str(len(segs)), "", "segment-count"),
        ("model", esc(result.model.name), "", "model-name"),
    ]
    html = ['<div class="cards">']
    for label, value, title, ident in cards:
        html.append(f'<div class="card" title="{esc(title)}"><div class="big" id="{ident}">{value}</div>'
                    f'<div class="label">{esc(label)}</div></div>')
    html.append("</div>")
    if segs:
        contrib = recording_contributions(segs)
        html.append("<h3>Whole-recording contributions</h3>")
        html.append(_figure(charts.recording_contributions_chart(contrib),
                            "Whole-recording Shapley contributions per modality",
                            "How much each modality moved the score away from the all-masked baseline, "
                            "averaged over the recording weighted by segment duration.", cls="small"))
        rows = [f'<tr data-modality="{m}">{text_cell(m)}{num_cell(contrib[m], signed=True)}</tr>'
                for m in MODALITY_ORDER]
        html.append(table([("modality", "modality"), ("contribution", "contribution")], rows,
                          table_id="recording-contributions", cls="narrow", numeric=("contribution",)))
    return "".join(html)


def _segment_ranges(indices: list[int]) -> str:
    """[0, 1, 2, 5] -> '1–3, 6' (1-based, as the transcript table numbers segments)."""
    parts, start, prev = [], None, None
    for i in indices + [None]:  # type: ignore[list-item]
        if start is None:
            start = prev = i
        elif i is not None and i == prev + 1:
            prev = i
        else:
            parts.append(f"{start + 1}" if start == prev else f"{start + 1}–{prev + 1}")
            start = prev = i
    return ", ".join(parts)


def _warnings(result: "AnalysisResult") -> str:
    from core.result import UNTRAINED_WARNING

    html = []
    if result.untrained:
        html.append(f'<div class="banner bad" id="untrained">{esc(UNTRAINED_WARNING)}</div>')
    items = [f"<li>{esc(w)}</li>" for w in result.warnings if w != UNTRAINED_WARNING]
    by_message: dict[str, list[int]] = {}
    for i, s in enumerate(result.segments):
        for w in s.warnings:
            by_message.setdefault(w, []).append(i)
    for message, idx in by_message.items():
        items.append(f"<li>{esc(message)} — {len(idx)} of {len(result.segments)} segments "
                     f"(segment{'s' if len(idx) > 1 else ''} {esc(_segment_ranges(idx))})</li>")
    if items:
        html.append(f'<ul class="warnings" id="warning-list">{"".join(items)}</ul>')
    elif not result.untrained:
        html.append('<p class="note" id="warning-list">No warnings.</p>')
    return "".join(html)


def _metadata(result: "AnalysisResult", source: str) -> str:
    from core.transcripts import describe_transcript_record

    rec = result.recording
    video = "none"
    if rec.has_video:
        video = f"{rec.width or '?'}×{rec.height or '?'}"
        if finite(rec.video_fps):
            video += f" @ {fmt(rec.video_fps, 2)} fps"
    audio = "none"
    if rec.has_audio:
        audio = f"{rec.audio_sample_rate or '?'} Hz, {rec.audio_channels or '?'} channel(s)"
    size = finite(rec.size_bytes)
    recording = [
        ("file", esc(recording_name(result))),
        ("path", f"<code>{esc(rec.path)}</code>"),
        ("duration", f"{fmt(rec.duration, 2)} s"),
        ("size", f"{size / 1e6:.2f} MB" if size is not None else "?"),
        ("container", esc(rec.container or "?")),
        ("video", esc(video)),
        ("audio", esc(audio)),
        ("transcript", f'<span id="transcript-source">{esc(describe_transcript_record(rec.transcript))}</span>'),
    ]
    spec = result.feature_spec
    spec_text = "; ".join(f"{m}: {spec.modality(m).extractor} ({spec.modality(m).dim} dims)" for m in MODALITY_ORDER)
    analysis = [
        ("model", esc(result.model.name)),
        ("checkpoint", f"<code>{esc(result.model.checkpoint or 'none (untrained)')}</code>"),
        ("device", esc(result.model.device or "?")),
        ("features", esc(spec_text)),
        ("analysed", esc(result.created or "?")),
        ("MSA Studio", esc(result.version or "?")),
    ]
    if source:
        analysis.append(("report made from", f"<code>{esc(source)}</code>"))
    return (f"<h3>Recording</h3>{definition_list(recording)}"
            f"<h3>Analysis</h3>{definition_list(analysis)}")


def _model_card(result: "AnalysisResult", lookup: CardLookup) -> str:
    card = lookup.card
    if card is None:
        return f'<p class="note" id="model-card-note">No model card: {esc(lookup.note)}.</p>'
    missing = "<p class=\"note\">(not stated in the card)</p>"
    return (
        f'<div id="model-card">'
        f"{definition_list([('model', inline_markdown(card.name or str(result.model.name))), ('licence of the weights', inline_markdown(card.licence or 'not stated in the card'))])}"
        f"<h3>Training data</h3>{markdown(card.training_data) or missing}"
        f"<h3>Known limits</h3>{markdown(card.known_limits) or missing}"
        f'<p class="note">From {esc(lookup.note)}.</p></div>'
    )


def _figure(uri: str, alt: str, caption: str, cls: str = "") -> str:
    attr = f' class="{esc(cls)}"' if cls else ""
    return f'<figure{attr}><img src="{uri}" alt="{esc(alt)}"><figcaption>{esc(caption)}</figcaption></figure>'


def _timeline(result: "AnalysisResult") -> str:
    segs = result.segments
    if not segs:
        return '<p class="note">No segments were scored.</p>'
    intervals = [prediction_interval(s.confidence) for s in segs]
    n_band = sum(iv is not None for iv in intervals)
    duration = finite(result.recording.duration) or 0.0
    if n_band == 0:
        band_note = ('<p class="note" id="uncertainty-note">No uncertainty estimate: the model gave no '
                     "prediction interval for these scores, so no band is drawn.</p>")
    else:
        level = next(iv for iv in intervals if iv is not None).percent
        band_note = (f'<p class="note" id="uncertainty-note">Shaded band: the {esc(level)} prediction interval '
                     f"of each segment's score")
        band_note += (f" (given for {n_band} of {len(segs)} segments; the others have no estimate).</p>"
                      if n_band < len(segs) else ".</p>")
    chart = charts.timeline_chart([s.start for s in segs], [s.end for s in segs], [s.score for s in segs],
                                  intervals, duration)
    return _figure(chart, "Sentiment over time", "Each stroke is one segment's fused score over its time "
                   "span (green ≥ 0, red < 0).") + band_note


def _segment_contributions(result: "AnalysisResult") -> str:
    segs = result.segments
    if not segs:
        return ""
    matrix = np.array([[s.contributions.get(m, 0.0) or 0.0 for m in MODALITY_ORDER] for s in segs], dtype=np.float64)
    duration = finite(result.recording.duration) or 0.0
    chart = charts.segment_contributions_chart([s.start for s in segs], [s.end for s in segs], matrix,
                                               MODALITY_ORDER, duration)
    return _figure(chart, "Shapley contributions per segment",
                   "Exact Shapley values over the 8 modality masks: baseline (all masked) + text + audio + visual "
                   "= the segment's score. Numbers per segment are in the transcript table below.")


def _degradation(result: "AnalysisResult") -> str:
    from analysis.robustness import mask_degradation_table

    segs = result.segments
    if not segs or not all(all(k in s.mask_scores for k in MASK_KEYS) for s in segs):
        return ('<p class="note" id="degradation-note">No degradation table: the result does not hold the '
                "scores under all 8 modality masks.</p>")
    scores = {k: np.array([s.mask_scores[k] for s in segs], dtype=np.float64) for k in MASK_KEYS}
    rows = []
    degradation = mask_degradation_table(scores)
    for key in MASK_KEYS:  # full prediction first, then fewer and fewer modalities
        row = degradation[key]
        rows.append(f'<tr data-mask="{esc(key)}"><td><code>{esc(key)}</code></td>{text_cell(mask_label(key))}'
                    f"{num_cell(row['mae'])}{num_cell(row['corr'])}"
                    f"{num_cell(row['sign_agreement'], digits=1, scale=100.0)}</tr>")
    headers = [("mask", "mask"), ("present", "modalities present"), ("mae", "MAE"), ("corr", "Corr"),
               ("sign", "sign agreement (%)")]
    return (table(headers, rows, table_id="degradation-table", numeric=("mae", "corr", "sign"))
            + '<p class="note">Each mask removes the modalities marked “_” and compares the scores with the '
              "full prediction (TAV) over all segments of this recording.</p>")


def _missing_curve(curve: MissingCurve) -> str:
    if not curve.rows:
        return f'<p class="note" id="missing-curve-note">{esc(curve.note)}</p>'
    rows = [f'<tr data-rate="{esc(r.get("rate"))}">{num_cell(r.get("rate"), 1)}'
            f"{num_cell(r.get('mae'))}{num_cell(r.get('mae_std'))}"
            f"{num_cell(r.get('corr'))}"
            f"{num_cell(r.get('sign_agreement'), 1, scale=100.0)}{num_cell(r.get('sign_agreement_std'), 1, scale=100.0)}</tr>"
            for r in sorted(curve.rows, key=lambda r: float(r.get("rate", 0.0)))]
    headers = [("rate", "missing rate"), ("mae", "MAE"), ("mae_std", "± std"), ("corr", "Corr"),
               ("sign", "sign agreement (%)"), ("sign_std", "± std")]
    return (_figure(charts.missing_curve_chart(curve.rows), "Random missing-rate curve", curve.note)
            + table(headers, rows, table_id="missing-curve-table", numeric=[k for k, _ in headers]))


def _transcript(result: "AnalysisResult") -> str:
    segs = result.segments
    if not segs:
        return '<p class="note">No segments.</p>'
    rows = []
    for i, s in enumerate(segs):
        iv = prediction_interval(s.confidence)
        interval = f"{iv.low:+.3f} … {iv.high:+.3f}" if iv else "—"
        contrib = "".join(num_cell(s.contributions.get(m), signed=True, cls=f"c-{m}") for m in MODALITY_ORDER)
        rows.append(
            f'<tr data-segment="{i}"><td class="num">{i + 1}</td>'
            f"{num_cell(s.start, 2, cls='start')}{num_cell(s.end, 2, cls='end')}"
            f"{text_cell(s.text or '(no words)', cls='text')}"
            f"{num_cell(s.score, signed=True, cls='score ' + _signed_class(s.score))}"
            f'<td class="num interval">{esc(interval)}</td>{contrib}'
            f"{num_cell(s.base_score, signed=True, cls='base')}"
            f"{text_cell('; '.join(s.warnings), cls='seg-warnings')}</tr>"
        )
    headers = [("n", "#"), ("start", "start (s)"), ("end", "end (s)"), ("text", "text"), ("score", "score"),
               ("interval", "interval"), ("text_c", "text"), ("audio_c", "audio"), ("visual_c", "visual"),
               ("base", "baseline"), ("warnings", "warnings")]
    numeric = ("n", "start", "end", "score", "interval", "text_c", "audio_c", "visual_c", "base")
    return (table(headers, rows, table_id="transcript-table", numeric=numeric)
            + '<p class="note">text / audio / visual: Shapley contributions; baseline: the score with every '
              "modality masked; interval: the prediction interval where the model gives one.</p>")


# ---------------------------------------------------------------------------------------- page


def _is_number(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def check_numbers(result: "AnalysisResult") -> None:
    """A hand-edited or foreign result with text where numbers belong is one clear error, not a
    traceback from deep inside a chart. (null is allowed: it is how a result stores NaN.)"""
    from core.errors import MSAError

    for i, s in enumerate(result.segments):
        fields = {"start": s.start, "end": s.end, "score": s.score, "base_score": s.base_score}
        for name, mapping in (("contributions", s.contributions), ("mask_scores", s.mask_scores)):
            if not isinstance(mapping, dict):
                raise MSAError(f"result segment {i + 1}: {name} is not a mapping")
            fields.update({f"{name}.{k}": v for k, v in mapping.items()})
        for name, value in fields.items():
            if not _is_number(value):
                raise MSAError(f"result segment {i + 1}: {name} is not a number ({value!r})")
        if finite(s.start) is None or finite(s.end) is None:
            raise MSAError(f"result segment {i + 1}: start and end must be numbers")


def _nan_for_null(result: "AnalysisResult") -> "AnalysisResult":
    """A copy whose null numbers (NaN in the JSON) are NaN again, so sums and charts just skip them."""
    nan = float("nan")

    def num(v: Any) -> float:
        return nan if v is None else float(v)

    segments = [
        replace(s, start=num(s.start), end=num(s.end), score=num(s.score), base_score=num(s.base_score),
                contributions={k: num(v) for k, v in s.contributions.items()},
                mask_scores={k: num(v) for k, v in s.mask_scores.items()})
        for s in result.segments
    ]
    return replace(result, segments=segments)


def build_recording_report(result: "AnalysisResult", inputs: ReportInputs | None = None) -> str:
    """The report as one HTML string. Raises MSAError for a result whose numbers are not numbers."""
    from core import __version__

    check_numbers(result)
    result = _nan_for_null(result)
    inputs = inputs or ReportInputs()
    lookup = inputs.card if inputs.card is not None else card_for_model(result.model)
    name = recording_name(result)
    back = f'<p class="sub"><a href="{esc(inputs.index_href)}">← all files of this batch</a></p>' if inputs.index_href else ""
    body = f"""{back}
<header><h1>Sentiment report: {esc(name)}</h1>
<p class="sub">Multimodal sentiment (text, audio, face) on a -3 … +3 scale, analysed with
{esc(result.model.name)} on {esc(result.created or '?')}.</p></header>
<section id="summary"><h2>Summary</h2>{_summary(result)}</section>
<section id="warnings"><h2>Warnings</h2>{_warnings(result)}</section>
<section id="timeline"><h2>Sentiment over time</h2>{_timeline(result)}</section>
<section id="contributions"><h2>Contributions per segment</h2>{_segment_contributions(result)}</section>
<section id="robustness"><h2>Robustness</h2><h3>Modality masks</h3>{_degradation(result)}
<h3>Random missing-rate curve</h3>{_missing_curve(inputs.missing_curve)}</section>
<section id="transcript"><h2>Transcript</h2>{_transcript(result)}</section>
<section id="metadata"><h2>Recording and analysis</h2>{_metadata(result, inputs.source)}</section>
<section id="model"><h2>Model card</h2>{_model_card(result, lookup)}</section>
<footer>Made by MSA Studio {esc(__version__)}. This page is self-contained: it loads nothing from the
network or other files. Scores are model estimates, not facts about the people recorded.</footer>"""
    return page(f"Sentiment report: {name}", body)


def write_recording_report(path: str | os.PathLike, result: "AnalysisResult",
                           inputs: ReportInputs | None = None) -> Path:
    """Write the report atomically (an interrupted write never leaves half a page)."""
    from core.atomic_write import atomic_write_text

    return atomic_write_text(path, build_recording_report(result, inputs))


__all__ = ["ReportInputs", "build_recording_report", "mask_label", "recording_name", "write_recording_report"]

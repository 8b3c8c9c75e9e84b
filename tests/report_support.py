"""Results for the report tests: hand-made ones (exact numbers, any shape) and real ones scored by a
real model on synthetic features (the missing-rate curve needs a model that reproduces the scores)."""
from __future__ import annotations

from html.parser import HTMLParser

import numpy as np
import pytest

from analysis.robustness import mask_degradation_table, recording_contributions, recording_score
from core.result import AnalysisResult
from core.feature_spec import v1_spec
from core.types import MediaInfo, ModelInfo, SegmentResult
from core.uncertainty import prediction_interval

MASKS = ("TAV", "TA_", "T_V", "_AV", "T__", "_A_", "__V", "___")
NO_FACE = "no face found in this segment; visual modality is missing"


def hand_made_result(n: int = 12, intervals: str = "some", path: str = "/data/talk <1>.mp4") -> AnalysisResult:
    """`intervals`: "all", "some" (every third segment has none) or "none". Scores obey Shapley
    efficiency (baseline + contributions = score) like real ones."""
    segments = []
    for i in range(n):
        score = round(-2.5 + 5.0 * ((i * 7) % n) / max(n - 1, 1), 6)
        contrib = {"text": score * 0.55, "audio": score * 0.25 - 0.05, "visual": 0.1 - 0.02 * i}
        base = score - sum(contrib.values())
        masks = {k: max(-3.0, min(3.0, score * (len(k.replace("_", "")) / 3.0) + 0.01 * j))
                 for j, k in enumerate(MASKS)}
        masks["TAV"] = score
        has_interval = intervals == "all" or (intervals == "some" and i % 3 != 0)
        segments.append(SegmentResult(
            start=2.0 * i, end=2.0 * i + 1.75, text=f"sentence {i}" if i != 2 else "<script>alert('x')</script> & co",
            score=score, unimodal={"text": score * 0.9}, contributions=contrib, base_score=base, mask_scores=masks,
            confidence={"level": 0.8, "low": score - 0.4 - 0.01 * i, "high": score + 0.5} if has_interval else None,
            warnings=[NO_FACE] if i in (0, 1, 2, 5) else [],
        ))
    return AnalysisResult(
        recording=MediaInfo(path=path, duration=2.0 * n, has_audio=True, has_video=True, width=640,
                            height=360, video_fps=25.0, audio_sample_rate=16000, audio_channels=1,
                            container="mov,mp4", size_bytes=1_234_567,
                            transcript={"source": "sidecar", "path": "/data/talk <1>.srt", "format": "srt"}),
        feature_spec=v1_spec(),  # minilm-l6 (384), librosa-v1 (69), mediapipe-face-v1 (58)
        model=ModelInfo(name="lnln", checkpoint="/elsewhere/custom.safetensors", untrained=False, device="cpu",
                        training={"seed": 7}),
        segments=segments,
        warnings=["no face found in the video: visual modality is missing (scored as masked)"],
        created="2025-01-02T03:04:05+00:00",
        version="0.1.0",
    )


def real_scored_recording(path: str, n_segments: int = 4, model: str = "late-fusion"):
    """(result, features, engine): synthetic features of `path` scored by a real model."""
    from analysis.analyzer import Analyzer, record_transcript
    from analysis.engine import InferenceEngine
    from tests.test_feature_cache import _recording

    engine = InferenceEngine(model, device="cpu")
    rec = _recording(path=str(path), n_segments=n_segments)
    record_transcript(rec, str(path), None)
    return Analyzer(engine, cache=None).rescore(rec), rec, engine


# ------------------------------------------------------------------------------ reading pages


VOID = {"img", "meta", "br", "hr", "input", "link", "source", "col", "wbr"}


class Cells(HTMLParser):
    """What a page shows: the text and data-value of every table cell (tables[id] = rows of
    (text, data-value)), the text of every element with an id, and every src/href."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[tuple[str, str | None]]]] = {}
        self.ids: dict[str, str] = {}
        self.srcs: list[str] = []
        self._stack: list[tuple[str, dict[str, str | None], list[str]]] = []  # (tag, attrs, text)
        self._tables: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.srcs += [a[k] for k in ("src", "href") if a.get(k) is not None]
        if tag in VOID:
            return
        if tag == "table":
            self._tables.append(a.get("id") or "")
            self.tables[self._tables[-1]] = []
        elif tag == "tr" and self._tables:
            self.tables[self._tables[-1]].append([])
        self._stack.append((tag, a, []))

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        while self._stack:
            open_tag, a, text = self._stack.pop()
            content = "".join(text).strip()
            if self._stack:
                self._stack[-1][2].append("".join(text))
            if a.get("id"):
                self.ids[a["id"]] = content
            if open_tag in ("td", "th") and self._tables:
                self.tables[self._tables[-1]][-1].append((content, a.get("data-value")))
            if open_tag == "table" and self._tables:
                self._tables.pop()
            if open_tag == tag:
                break

    def handle_data(self, data):
        if self._stack:
            self._stack[-1][2].append(data)


def parse(html: str) -> Cells:
    p = Cells()
    p.feed(html)
    return p


def shown(text: str) -> float:
    """A number as the page shows it; the dash for a missing number is NaN."""
    return float("nan") if text == "—" else float(text)


def assert_page_shows(result: AnalysisResult, page: Cells) -> None:
    """Every number of the transcript table, summary, whole-recording contributions and degradation
    table equals the result's to the shown precision (and data-value holds the exact score)."""
    rows = page.tables["transcript-table"][1:]
    assert len(rows) == len(result.segments)
    for seg, row in zip(result.segments, rows):
        cells = dict(zip(["n", "start", "end", "text", "score", "interval", "t", "a", "v", "base", "warn"], row))
        assert shown(cells["start"][0]) == pytest.approx(seg.start, abs=0.005)
        assert shown(cells["end"][0]) == pytest.approx(seg.end, abs=0.005)
        assert shown(cells["score"][0]) == pytest.approx(seg.score, abs=0.0005)
        assert float(cells["score"][1]) == seg.score  # exact value kept in data-value
        for key, m in (("t", "text"), ("a", "audio"), ("v", "visual")):
            assert shown(cells[key][0]) == pytest.approx(seg.contributions[m], abs=0.0005)
        assert shown(cells["base"][0]) == pytest.approx(seg.base_score, abs=0.0005)
        assert cells["text"][0] == (seg.text or "(no words)")
        iv = prediction_interval(seg.confidence)
        if iv is None:
            assert cells["interval"][0] == "—"
        else:
            low, high = (shown(x) for x in cells["interval"][0].split("…"))
            assert (low, high) == (pytest.approx(iv.low, abs=0.0005), pytest.approx(iv.high, abs=0.0005))
        assert cells["warn"][0] == "; ".join(seg.warnings)
    assert shown(page.ids["recording-score"]) == pytest.approx(recording_score(result.segments), abs=0.0005)
    contrib = recording_contributions(result.segments)
    for modality, value in page.tables["recording-contributions"][1:]:
        assert shown(value[0]) == pytest.approx(contrib[modality[0]], abs=0.0005)
    table = mask_degradation_table({k: np.array([s.mask_scores[k] for s in result.segments]) for k in MASKS})
    shown_masks = page.tables["degradation-table"][1:]
    assert [r[0][0] for r in shown_masks] == list(MASKS)
    for row in shown_masks:
        expected = table[row[0][0]]
        assert shown(row[2][0]) == pytest.approx(expected["mae"], abs=0.0005)
        assert shown(row[3][0]) == pytest.approx(expected["corr"], abs=0.0005, nan_ok=True)
        assert shown(row[4][0]) == pytest.approx(expected["sign_agreement"] * 100, abs=0.05)

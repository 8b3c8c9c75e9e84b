"""What a finished run leaves: batch_summary.csv (from every done marker) and the failure list."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Iterable

from analysis.batch.markers import BatchState
from analysis.batch.options import STATE_DIR, SUMMARY_NAME, FileOutcome
from core.atomic_write import atomic_open


def outcome_from_result(name: str, result, seconds: float, cached: bool) -> FileOutcome:
    from analysis.robustness import recording_contributions, recording_score
    from core.result import UNTRAINED_WARNING

    segs = result.segments
    score = recording_score(segs) if segs else None
    return FileOutcome(
        name=name,
        status="done",
        seconds=round(float(seconds), 3),
        segments=len(segs),
        duration=float(result.recording.duration or 0.0),
        score=None if score is None or score != score else round(score, 4),
        contributions={m: round(v, 4) for m, v in recording_contributions(segs).items()} if segs else {},
        cached=cached,
        warnings=[w for w in result.warnings if w != UNTRAINED_WARNING],
    )


# ------------------------------------------------------------------------------------- summary


SUMMARY_FIELDS = ["file", "segments", "duration_s", "score", "contribution_text", "contribution_audio",
                  "contribution_visual", "seconds", "cached", "warnings"]


def write_summary_csv(out_dir: str | os.PathLike) -> Path:
    """batch_summary.csv from every done marker (this run and earlier ones)."""
    out = Path(out_dir)
    rows = []
    for o in BatchState(out).done_outcomes():
        rows.append({
            "file": o.name,
            "segments": o.segments,
            "duration_s": round(o.duration, 3),
            "score": "" if o.score is None else o.score,
            "contribution_text": o.contributions.get("text", ""),
            "contribution_audio": o.contributions.get("audio", ""),
            "contribution_visual": o.contributions.get("visual", ""),
            "seconds": o.seconds,
            "cached": int(o.cached),
            "warnings": "; ".join(o.warnings),
        })
    path = out / SUMMARY_NAME
    with atomic_open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=SUMMARY_FIELDS)
        w.writeheader()
        w.writerows(rows)
    return path


def iter_failures(out_dir: str | os.PathLike) -> Iterable[tuple[str, str]]:
    """(relative name, error) of every recorded failure in an output folder."""
    for path in sorted((Path(out_dir) / STATE_DIR / "failed").glob("*.json")):
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
            yield str(rec.get("name", path.stem)), str(rec.get("error", ""))
        except (OSError, ValueError):
            continue

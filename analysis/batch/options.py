"""Batch options, per-file outcomes and the run summary (plain data; see analysis.batch)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from models.defaults import DEFAULT_MODEL

STATE_DIR = ".msa-batch"
LOCK_NAME = "lock"
SUMMARY_NAME = "batch_summary.csv"
MARKER_VERSION = 1

# (event, relative name, outcome or None); events: "start", "done", "failed", "skipped"
BatchEventCallback = Callable[[str, str, "FileOutcome | None"], None]


# ----------------------------------------------------------------------------------- options


@dataclass
class BatchOptions:
    model: str = DEFAULT_MODEL
    checkpoint: str | None = None
    device: str = "cpu"
    allow_untrained: bool = True
    write_csv: bool = False
    recursive: bool = True
    retry_failed: bool = False
    use_cache: bool = True
    cache_dir: str | None = None  # None: core.feature_cache.default_cache_dir()
    ship_files: bool = False  # Ray only: send file bytes to workers instead of paths
    sidecar_transcripts: bool = True  # use NAME.srt/.vtt/.txt next to NAME.ext (core.transcripts)

    def transcript_for(self, path: str | os.PathLike) -> str | None:
        """The transcript file a recording is analysed with (None: speech recognition)."""
        from core.transcripts import choose_transcript

        return choose_transcript(path, use_sidecar=self.sidecar_transcripts).transcript

    def cache_policy(self):
        """The feature-cache policy (analysis.analyzer) these options name."""
        from analysis.analyzer import DEFAULT_CACHE

        return (self.cache_dir or DEFAULT_CACHE) if self.use_cache else None

    def resolved_checkpoint(self) -> str | None:
        from analysis.engine import default_checkpoint

        return self.checkpoint or default_checkpoint(self.model.lower())

    def job_fingerprint(self) -> dict[str, Any]:
        """What makes an earlier output reusable: the model and the exact checkpoint file."""
        ckpt = self.resolved_checkpoint()
        stamp = None
        if ckpt and Path(ckpt).exists():
            st = Path(ckpt).stat()
            stamp = [st.st_size, st.st_mtime_ns]
        return {"model": self.model.lower(), "checkpoint": ckpt, "checkpoint_stamp": stamp}


@dataclass
class FileOutcome:
    name: str  # path relative to the input folder (POSIX separators)
    status: str  # "done", "skipped", "failed"
    seconds: float = 0.0
    segments: int = 0
    duration: float = 0.0
    score: float | None = None
    contributions: dict[str, float] = field(default_factory=dict)
    cached: bool = False
    warnings: list[str] = field(default_factory=list)
    error: str = ""
    worker: str = ""  # "local" or "ray:<pid>" (which process analysed it)


@dataclass
class BatchSummary:
    input_dir: str
    out_dir: str
    outcomes: list[FileOutcome] = field(default_factory=list)
    previously_failed: list[str] = field(default_factory=list)  # skipped because they failed before
    backend: str = "local"

    def names(self, status: str) -> list[str]:
        return [o.name for o in self.outcomes if o.status == status]

    @property
    def done(self) -> list[str]:
        return self.names("done")

    @property
    def skipped(self) -> list[str]:
        return self.names("skipped")

    @property
    def failed(self) -> list[str]:
        return self.names("failed")

"""Session files: an AnalysisResult plus the cached features, so a recording reopens (and can be
re-scored with another model or mask) without re-extracting. A zip of the result JSON and one
feature-cache entry (core.feature_cache's format: JSON + .npz, no pickle)."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

from core.atomic_write import atomic_open
from core.errors import MSAError
from core.feature_cache import decode_features, encode_features
from core.pipeline import RecordingFeatures
from core.result import AnalysisResult

SESSION_VERSION = 2


def save_session(path: str | Path, result: AnalysisResult, rec: RecordingFeatures) -> None:
    # atomic: an interrupted save never clobbers the old session
    with atomic_open(path, "wb") as fh, zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("session.json", json.dumps({"session_version": SESSION_VERSION, "result": result.to_dict()}))
        zf.writestr("features.bin", encode_features(rec))


def load_session(path: str | Path) -> tuple[AnalysisResult, RecordingFeatures]:
    try:
        with zipfile.ZipFile(path) as zf:
            meta = json.loads(zf.read("session.json"))
            features = zf.read("features.bin")
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise MSAError(f"not a readable MSA Studio session: {path} ({exc})") from None
    if meta.get("session_version") != SESSION_VERSION:
        raise MSAError(f"session {path} has version {meta.get('session_version')}, expected {SESSION_VERSION}")
    return AnalysisResult.from_dict(meta["result"]), decode_features(features, str(path))

"""Session files: an AnalysisResult plus the cached features, so a recording reopens (and can be
re-scored with another model or mask) without re-extracting. A zip of JSON + one .npz; no pickle."""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np

from core.errors import MSAError
from core.feature_spec import FeatureSpec
from core.pipeline import RecordingFeatures
from core.result import AnalysisResult
from core.types import AudioTrack, MediaInfo, Segment, SegmentFeatures, VisualTrack, Word

SESSION_VERSION = 1
_SEG_FIELDS = ("text", "text_ids", "audio", "audio_mask", "visual", "visual_mask")


def save_session(path: str | Path, result: AnalysisResult, rec: RecordingFeatures) -> None:
    arrays: dict[str, np.ndarray] = {}
    for i, f in enumerate(rec.features):
        for name in _SEG_FIELDS:
            arrays[f"seg{i}_{name}"] = getattr(f, name)
    if rec.audio_track is not None:
        arrays["audio_times"], arrays["audio_features"] = rec.audio_track.times, rec.audio_track.features
    if rec.visual_track is not None:
        v = rec.visual_track
        arrays["visual_times"], arrays["visual_features"], arrays["visual_face_mask"] = v.times, v.features, v.face_mask
        if v.landmarks is not None:
            arrays["visual_landmarks"] = v.landmarks
    meta = {
        "session_version": SESSION_VERSION,
        "info": rec.info.to_dict(),
        "spec": rec.spec.to_dict(),
        "segments": [
            {"start": s.start, "end": s.end, "text": s.text, "source": s.source,
             "words": [w.__dict__ for w in s.words]}
            for s in rec.segments
        ],
        "warnings": rec.warnings,
        "result": result.to_dict(),
    }
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("session.json", json.dumps(meta))
        zf.writestr("features.npz", buf.getvalue())
    tmp.replace(path)


def load_session(path: str | Path) -> tuple[AnalysisResult, RecordingFeatures]:
    try:
        with zipfile.ZipFile(path) as zf:
            meta = json.loads(zf.read("session.json"))
            data = np.load(io.BytesIO(zf.read("features.npz")), allow_pickle=False)
            arrays = {k: data[k] for k in data.files}
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise MSAError(f"not a readable MSA Studio session: {path} ({exc})") from None
    if meta.get("session_version") != SESSION_VERSION:
        raise MSAError(f"session {path} has version {meta.get('session_version')}, expected {SESSION_VERSION}")
    segments = [
        Segment(s["start"], s["end"], s["text"], [Word(**w) for w in s.get("words", [])], s.get("source", "asr"))
        for s in meta["segments"]
    ]
    features = [
        SegmentFeatures(**{name: arrays[f"seg{i}_{name}"] for name in _SEG_FIELDS}) for i in range(len(segments))
    ]
    audio = AudioTrack(arrays["audio_times"], arrays["audio_features"]) if "audio_times" in arrays else None
    visual = (
        VisualTrack(arrays["visual_times"], arrays["visual_features"], arrays["visual_face_mask"],
                    arrays.get("visual_landmarks"))
        if "visual_times" in arrays
        else None
    )
    rec = RecordingFeatures(
        info=MediaInfo(**meta["info"]),
        spec=FeatureSpec.from_dict(meta["spec"]),
        segments=segments,
        features=features,
        audio_track=audio,
        visual_track=visual,
        warnings=list(meta.get("warnings", [])),
    )
    return AnalysisResult.from_dict(meta["result"]), rec

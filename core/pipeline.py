"""Feature pipeline: media file -> segments -> per-segment model inputs (SegmentFeatures).

Whole-recording tracks are computed once (audio frames, visual frames) and sliced per segment, so
re-segmenting (transcript edits in the UI, live windows) never re-decodes or re-extracts. The visual
extractor runs in a background thread next to ASR and audio: MediaPipe, CTranslate2 and librosa's
numpy kernels release the GIL, so the two CPU cores are used together.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.errors import MediaError
from core.extractors import build_extractor
from core.extractors.asr import SpeechPass
from core.extractors.slicing import slice_track
from core.feature_spec import FeatureSpec, default_spec
from core.progress import RunContext
from core.types import AudioTrack, MediaInfo, Segment, SegmentFeatures, VisualTrack

SR = 16000
# The speech pass (words + Whisper encoder states). Not part of FeatureSpec: its options are
# pipeline options (asr_options), and any registered "speech" extractor could take its place.
ASR_EXTRACTOR = "whisper-tiny.en"
# When there is no audio (so no ASR/VAD), fall back to windows of this length.
_NO_AUDIO_WINDOW_S = 4.0
# Audio is decoded and analysed in blocks of this length (a multiple of the 40 ms feature hop).
AUDIO_BLOCK_S = 300.0
# Peak amplitude below which a block counts as digital silence.
_SILENCE_PEAK = 1e-4
# Videos at least this long are split into time ranges decoded and tracked in parallel: MediaPipe
# runs single-threaded (~16 ms per frame here), so one visual thread was the critical path.
_PARALLEL_VISUAL_MIN_S = 8.0


@dataclass
class RecordingFeatures:
    info: MediaInfo
    spec: FeatureSpec
    segments: list[Segment]
    features: list[SegmentFeatures]
    audio_track: AudioTrack | None = None
    visual_track: VisualTrack | None = None
    warnings: list[str] = field(default_factory=list)


class FeaturePipeline:
    """Builds the extractors a FeatureSpec names, from the extractor registry (lazily: the first
    use loads the weights)."""

    def __init__(
        self,
        spec: FeatureSpec | None = None,
        device: str = "cpu",
        keep_landmarks: bool = False,
        asr_options: dict[str, Any] | None = None,
        visual_workers: int | None = None,
    ) -> None:
        self.spec = spec or default_spec()
        self.device = device
        self.keep_landmarks = keep_landmarks
        # None: one per core, at most 2 (the audio side needs CPU too); 1 turns the split off.
        self.visual_workers = visual_workers if visual_workers is not None else min(2, os.cpu_count() or 1)
        self.asr_options = dict(asr_options or {})
        # Built now, only from the registry by name (cheap: weights load on first use), so a spec
        # that cannot be produced here fails before any work, naming the field.
        self.asr = build_extractor("speech", ASR_EXTRACTOR, **self.asr_options)
        self.text_encoder = build_extractor("text", self.spec.text, device=device)
        self.audio_extractor = build_extractor("audio", self.spec.audio, asr=self.asr)
        self.new_visual_extractor().close()

    def new_visual_extractor(self):
        """A fresh visual extractor: one per recording or time range (a landmarker in VIDEO mode
        needs increasing timestamps within one stream and is not thread-safe)."""
        return build_extractor("visual", self.spec.visual, keep_landmarks=self.keep_landmarks)

    # -- whole recordings -------------------------------------------------------------------
    def extract(self, path: str, transcript: str | None = None, ctx: RunContext | None = None) -> RecordingFeatures:
        from core import media

        ctx = ctx or RunContext()
        info = media.probe(path)
        if not info.has_audio and not info.has_video:
            raise MediaError(f"no audio or video stream in {info.path}")
        visual_box: dict[str, Any] = {}
        visual_thread = None
        # The visual thread gets its own cancel token (sharing progress and warnings), so that an
        # error on the audio side can stop it without cancelling the caller's token.
        visual_ctx = RunContext(progress=ctx.progress, warnings=ctx.warnings)
        if info.has_video:
            visual_thread = threading.Thread(
                target=self._visual_worker, args=(path, info, visual_ctx, visual_box), name="visual", daemon=True
            )
            visual_thread.start()
        else:
            ctx.warn("no video stream: visual modality is missing (scored as masked)")
        try:
            audio_track, segments = self._audio_and_segments(path, info, transcript, ctx)
        except BaseException:
            visual_ctx.cancel.cancel()  # stop the visual thread too, then re-raise
            if visual_thread is not None:
                visual_thread.join(timeout=5)
            raise
        visual_track = None
        if visual_thread is not None:
            while visual_thread.is_alive():
                visual_thread.join(timeout=0.2)
                if ctx.cancel.cancelled:
                    visual_ctx.cancel.cancel()
                    visual_thread.join(timeout=5)
                    ctx.check()
            if "error" in visual_box:
                err = visual_box["error"]
                if isinstance(err, MediaError) and audio_track is not None:
                    ctx.warn(f"video could not be decoded ({err}); visual modality is missing")
                else:
                    raise err
            visual_track = visual_box.get("track")
            if visual_track is not None and len(visual_track.face_mask) and not visual_track.face_mask.any():
                ctx.warn("no face found in the video: visual modality is missing (scored as masked)")
        rec = RecordingFeatures(info, self.spec, segments, [], audio_track, visual_track, ctx.warnings)
        rec.features = self.features_for_segments(rec, segments, ctx)
        return rec

    def _visual_worker(self, path: str, info: MediaInfo, ctx: RunContext, box: dict[str, Any]) -> None:
        """Whole-recording visual track; long videos are cut into `visual_workers` time ranges, each
        with its own decoder and landmarker (the tracker restarts at a cut: one detection more)."""
        try:
            fps = float(self.spec.visual.rate_hz or 10.0)
            n = self.visual_workers if info.duration >= _PARALLEL_VISUAL_MIN_S else 1
            n = max(1, n)
            cuts = [round(info.duration * i / n * fps) / fps for i in range(n)] + [None]
            progress = _PartsProgress(ctx, n)
            parts: list[dict[str, Any]] = [{} for _ in range(n)]
            threads = []
            for i in range(1, n):
                t = threading.Thread(target=self._visual_range,
                                     args=(path, fps, cuts[i], cuts[i + 1], info, progress.part(i), parts[i]),
                                     name=f"visual-{i}", daemon=True)
                t.start()
                threads.append(t)
            self._visual_range(path, fps, cuts[0], cuts[1], info, progress.part(0), parts[0])
            if "error" in parts[0]:
                ctx.cancel.cancel()  # the track is lost anyway: stop the other ranges (ctx is private)
            for t in threads:
                t.join()
            for part in parts:
                if "error" in part:
                    raise part["error"]
            box["track"] = VisualTrack.concatenate([part["track"] for part in parts])
            ctx.report("visual features", 1.0)
        except BaseException as exc:  # handed to the main thread, which decides
            box["error"] = exc

    def _visual_range(self, path: str, fps: float, start: float, end: float | None, info: MediaInfo,
                      ctx: RunContext, box: dict[str, Any]) -> None:
        from core import media

        try:
            stop = end if end is not None else info.duration
            total = int(max(0.0, stop - start) * fps) + 1 if stop else None
            frames = media.iter_frames(path, fps=fps, ctx=ctx, start=start, end=end)
            with self.new_visual_extractor() as extractor:
                box["track"] = extractor.extract(frames, ctx=ctx, total=total)
        except BaseException as exc:
            box["error"] = exc

    def _load_audio(self, path: str, info: MediaInfo, ctx: RunContext) -> np.ndarray | None:
        from core import media

        if not info.has_audio:
            ctx.warn("no audio stream: audio and speech (text) modalities are missing")
            return None
        try:
            wave = media.load_audio(path, sr=SR, ctx=ctx)
        except MediaError as exc:
            if not info.has_video:
                raise
            ctx.warn(f"audio could not be decoded ({exc}); audio and text modalities are missing")
            return None
        if float(np.max(np.abs(wave))) < _SILENCE_PEAK:
            ctx.warn("the audio track is silent")
        return wave

    def _audio_and_segments(
        self, path: str, info: MediaInfo, transcript: str | None, ctx: RunContext
    ) -> tuple[AudioTrack | None, list[Segment]]:
        """Audio features, VAD and ASR in blocks of AUDIO_BLOCK_S, so an hours-long recording never
        sits in memory whole (only its 25 Hz feature track does). Block boundaries: audio frames are
        stitched exactly (hop divides the block); ASR may split a word that straddles a boundary."""
        from core import media, segmentation
        from core.transcripts import is_untimed, load_transcript

        user = load_transcript(transcript, ctx=ctx) if transcript else None
        if not info.has_audio:
            ctx.warn("no audio stream: audio and speech (text) modalities are missing")
            return None, self._windows_without_audio(info, user, ctx)
        # A timed transcript (SRT/VTT) replaces ASR; an untimed one needs ASR word times to align to.
        need_asr = user is None or any(is_untimed(s) for s in user)
        block_len = int(AUDIO_BLOCK_S * SR)
        times, feats, regions, asr_segs = [], [], [], []
        peak, n_samples = 0.0, 0
        try:
            for start, block in media.iter_audio_blocks(path, SR, AUDIO_BLOCK_S, ctx):
                ctx.check()
                n_samples = int(start * SR) + len(block)
                level = float(np.max(np.abs(block))) if len(block) else 0.0
                peak = max(peak, level)
                # digital silence: no speech to find, skip VAD and Whisper
                block_regions = segmentation.speech_regions(block, sr=SR) if level >= _SILENCE_PEAK else []
                regions.extend((a + start, b + start) for a, b in block_regions)
                speech = self._speech_pass(block, block_regions, start, need_asr, ctx)
                asr_segs.extend(speech.segments)
                track = self.audio_extractor.extract(block, speech=speech, offset=start)
                keep = track.times < start + len(block) / SR if len(block) == block_len else slice(None)
                times.append(track.times[keep])
                feats.append(track.features[keep])
        except MediaError as exc:
            if not info.has_video:
                raise
            ctx.warn(f"audio could not be decoded ({exc}); audio and text modalities are missing")
            return None, self._windows_without_audio(info, user, ctx)
        audio_track = AudioTrack(np.concatenate(times) if times else np.zeros(0),
                                 np.concatenate(feats).astype(np.float32, copy=False) if feats
                                 else np.zeros((0, self.spec.audio.dim), np.float32))
        ctx.report("audio features", 1.0, "")
        if peak < _SILENCE_PEAK:
            ctx.warn("the audio track is silent")
        if not regions:
            ctx.warn("no speech detected")
        duration = info.duration if info.duration > 0 else n_samples / SR
        if duration <= 0:
            raise MediaError(f"{info.path}: the recording has zero length")
        if user is not None:
            if need_asr:
                words = [w for s in asr_segs for w in s.words]
                user = segmentation.align_transcript(user, words, regions, duration)
            base = user
        else:
            base = asr_segs
        segs = segmentation.segment_utterances(base, duration, speech_regions=regions)
        ctx.report("segment", 1.0, f"{len(segs)} segments")
        return audio_track, segs

    def _speech_pass(self, wave: np.ndarray, regions: list[tuple[float, float]], offset: float, decode: bool,
                     ctx: RunContext | None) -> SpeechPass:
        """One Whisper pass over the speech regions of `wave`, when the words or the audio
        features need it; the encoder states serve both (nothing is encoded twice)."""
        if not regions or not (decode or self.audio_extractor.uses_speech_pass):
            return SpeechPass([], [])
        return self.asr.run(wave, regions=regions, offset=offset, decode=decode, ctx=ctx)

    def _windows_without_audio(self, info: MediaInfo, user: list[Segment] | None, ctx: RunContext) -> list[Segment]:
        from core import segmentation

        if info.duration <= 0:
            raise MediaError(f"{info.path}: the recording has zero length")
        if user:
            ctx.warn("a transcript was given but there is no audio to align it with; it is ignored")
        return segmentation.fixed_windows(info.duration, window=_NO_AUDIO_WINDOW_S, hop=_NO_AUDIO_WINDOW_S)

    # -- per-segment inputs -----------------------------------------------------------------
    def features_for_segments(
        self, rec: RecordingFeatures, segments: list[Segment], ctx: RunContext | None = None
    ) -> list[SegmentFeatures]:
        """Text is (re-)encoded; audio/visual rows are sliced from the cached whole-recording tracks."""
        texts = [s.text for s in segments]
        if ctx is not None:
            ctx.report("text", 0.0, f"encoding {len(texts)} segments")
        encoded = self.text_encoder.encode(texts) if texts else []
        if ctx is not None:
            ctx.report("text", 1.0, "")
        return [self.assemble_segment(rec.audio_track, rec.visual_track, s, enc) for s, enc in zip(segments, encoded)]

    def assemble_segment(
        self, audio: AudioTrack | None, visual: VisualTrack | None, seg: Segment, encoded: tuple
    ) -> SegmentFeatures:
        """One segment's model inputs: `encoded` = (text features, token ids) from the text
        encoder; audio/visual rows sliced from the tracks (None: the modality is missing). File
        segments, dataset clips and live windows all go through here, so their layouts agree."""
        text, ids = encoded
        a_spec, v_spec = self.spec.audio, self.spec.visual
        if audio is not None:
            a, a_mask = slice_track(audio.times, audio.features, seg.start, seg.end, a_spec.max_len)
        else:
            a, a_mask = np.zeros((1, a_spec.dim), np.float32), np.zeros(1, bool)
        if visual is not None:
            v, v_mask = slice_track(
                visual.times, visual.features, seg.start, seg.end, v_spec.max_len, mask=visual.face_mask
            )
        else:
            v, v_mask = np.zeros((1, v_spec.dim), np.float32), np.zeros(1, bool)
        return SegmentFeatures(
            text=np.asarray(text, np.float32),
            text_ids=np.asarray(ids, np.int64),
            audio=np.asarray(a, np.float32),
            audio_mask=np.asarray(a_mask, bool),
            visual=np.asarray(v, np.float32),
            visual_mask=np.asarray(v_mask, bool),
        )

    # -- one clip = one sample (dataset building) --------------------------------------------
    def utterance_audio(self, wave: np.ndarray, decode: bool = True,
                        ctx: RunContext | None = None) -> tuple[AudioTrack, str]:
        """Audio features of a whole clip (and its words when `decode`), from the same VAD + Whisper
        pass a file analysis makes, so dataset rows equal the rows the pipeline gives at inference."""
        from core import segmentation

        loud = float(np.max(np.abs(wave), initial=0.0)) >= _SILENCE_PEAK
        regions = segmentation.speech_regions(wave, sr=SR) if loud else []
        speech = self._speech_pass(wave, regions, 0.0, decode, ctx)
        track = self.audio_extractor.extract(wave, ctx, speech=speech)
        return track, " ".join(s.text for s in speech.segments).strip()

    def extract_utterance(self, path: str, text: str | None = None, ctx: RunContext | None = None) -> SegmentFeatures:
        """The whole clip is one segment; `text` (e.g. from a label.csv) overrides ASR. Missing audio or
        video streams give masked-out modalities and warnings in ctx.warnings instead of errors."""
        from core import media

        from core import segmentation

        ctx = ctx or RunContext()
        info = media.probe(path)
        wave = self._load_audio(path, info, ctx)
        audio_track = None
        if wave is not None:
            audio_track, heard = self.utterance_audio(wave, decode=text is None, ctx=ctx)
            text = heard if text is None else text
        visual_track = None
        if info.has_video:
            fps = float(self.spec.visual.rate_hz or 10.0)
            with self.new_visual_extractor() as extractor:
                visual_track = extractor.extract(media.iter_frames(path, fps=fps, ctx=ctx), ctx=ctx)
        else:
            ctx.warn("no video stream: visual modality is missing")
        duration = info.duration or (len(wave) / SR if wave is not None else 0.0)
        seg = Segment(0.0, max(duration, 1e-3), text=text or "", source="clip")
        return self.assemble_segment(audio_track, visual_track, seg, self.text_encoder.encode([text])[0])


class _PartsProgress:
    """Per-part RunContexts (sharing the cancel token and warnings) whose progress is reported as
    the mean over parts, so parallel ranges give one steadily growing bar per stage."""

    def __init__(self, ctx: RunContext, n: int) -> None:
        self.ctx, self.n = ctx, n
        self._done: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def part(self, i: int) -> RunContext:
        def report(stage: str, fraction: float, message: str) -> None:
            with self._lock:
                done = self._done.setdefault(stage, [0.0] * self.n)
                done[i] = fraction
                mean = sum(done) / self.n
            if self.ctx.progress is not None:
                self.ctx.progress(stage, mean, message)

        return RunContext(progress=report, cancel=self.ctx.cancel, warnings=self.ctx.warnings)

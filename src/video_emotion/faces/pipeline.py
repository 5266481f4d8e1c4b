"""The faces stage: frames -> followed face -> landmarks -> aligned crops, per video and per shard.

:class:`FacePipeline` holds one backend (one model load) and processes a stream of frames with bounded memory:
frames wait only in a short lookahead buffer (``max_gap + 1 + smooth`` frames, plus one chunk of ``batch_size``
frames for a batched backend). :func:`process_shard`
runs it over the frames folders of one shard and writes the HDF5 file, the QC table and a montage.

Frames that are already aligned face crops (the in-the-wild datasets' face frames; ``aligned``) are taken as they
are: resized to ``crop_size``, with no detection and no landmarks (NaN), into the same files.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from video_emotion.faces.align import TEMPLATE, align_face
from video_emotion.faces.backends import make_backend
from video_emotion.faces.track import ChunkTracker, FaceTracker, LandmarkFilter
from video_emotion.frames import IMAGE_SUFFIXES, read_images
from video_emotion.io import atomic_path, read_json, write_parquet

log = logging.getLogger(__name__)

DEFAULTS = {
    "aligned": None,              # the frames are face crops already: resized, not detected (None: the dataset's;
                                  # outside the workflow, false)
    "backend": "auto",            # auto | face_alignment | dlib
    "device": "cpu",
    "crop_size": 112,             # as in the paper (the demo uses 64)
    "margin": 0.2,                # template shrunk by 1 / (1 + margin): forehead and chin stay in the crop
    "detect_every": 5,            # run the detector every k frames, follow the landmarks' box in between
    "min_face": 40,               # smallest face height in SOURCE video pixels that the detector must find
    "detect_scale": None,         # None: from min_face (see detect_scale()); a number: fixed factor on the frame
    "select": "largest",          # which face to follow when several are seen: largest | central
    "switch_threshold": 0.5,      # a re-detected face whose centre moves / size changes more than this (box widths
                                  # / ratio - 1) counts as an identity switch
    "box_smooth": 0.5,            # weight of the followed box's size when the same face is detected again
    "fallback": "cnn",            # cnn: dlib's CNN detector on scheduled detection frames where HOG found nothing
                                  # (dlib backend); none: off
    "fallback_min_face": 80,      # smallest face (source px) the fallback must find (sets its image size)
    "redetect_threshold": 0.5,    # tracking confidence (patch correlation with the last detection, -1..1) under
                                  # which we detect at once
    "smooth": 1,                  # landmark moving-average radius in frames (0 = raw)
    "max_gap": 12,                # gaps up to this many frames are interpolated
    "min_detection_rate": 0.5,    # a video with fewer frames with a face is rejected
    "fa_detector": "sfd",         # face_alignment's detector: sfd | blazeface | dlib
    "batch_size": 16,             # face_alignment: frames per chunk (one FAN call each)
    "upsample": 1,                # dlib HOG upsampling of the detection image
}
QC_COLUMNS = ["video_id", "n_frames", "detection_rate", "mean_score", "max_gap", "max_faces", "identity_switches",
              "select", "outside_rate", "fallback_calls", "fallback_found", "fallback_seconds", "detect_scale",
              "backend", "status", "reason"]
QC_DEFAULTS = {"max_faces": 0, "identity_switches": 0, "select": "", "outside_rate": 0.0, "fallback_calls": 0,
               "fallback_found": 0, "fallback_seconds": 0.0, "detect_scale": 0.0}


class FaceFrame(NamedTuple):
    """What the pipeline gives for one frame."""

    crop: np.ndarray            # uint8 (S, S, 3)
    landmarks: np.ndarray       # float32 (68, 2), frame pixels
    landmarks_crop: np.ndarray  # float32 (68, 2), crop pixels
    box: np.ndarray             # float32 (4,)
    score: float
    detected: bool              # False where interpolated or held
    keyframe: bool              # the detector found the face on this frame (else tracked, interpolated or held)
    n_faces: int                # faces the latest detection saw
    outside: int                # landmarks outside the frame (a face cut by the frame edge)


def detect_scale(params: dict, backend, source_ratio: float = 1.0, fallback: bool = False) -> float:
    """The factor the detector's image is resized by: a fixed ``detect_scale``, or (None) the one that brings a face
    of ``min_face`` source pixels (``fallback_min_face`` for the fallback detector) to the detector's smallest face
    ``backend.min_face``, after its own upsampling. ``source_ratio`` is stored frame height / source height."""
    if not fallback and params["detect_scale"] is not None:
        return float(params["detect_scale"])
    upsample = 0 if fallback else int(getattr(backend, "upsample", 0) or 0)
    wanted = params["fallback_min_face" if fallback else "min_face"] * source_ratio
    return float(np.clip(backend.min_face / (2 ** upsample * wanted), 0.05, 8.0))


@dataclass
class FaceResult:
    """The arrays of one video (T frames); ``detected`` is False where the face was interpolated or held."""

    crops: np.ndarray           # uint8 (T, S, S, 3)
    landmarks: np.ndarray       # float32 (T, 68, 2), source pixels
    landmarks_crop: np.ndarray  # float32 (T, 68, 2), crop pixels
    boxes: np.ndarray           # float32 (T, 4) x0, y0, x1, y1
    scores: np.ndarray          # float32 (T,)
    detected: np.ndarray        # bool (T,)
    keyframe: np.ndarray        # bool (T,) found by the detector on this frame
    n_faces: np.ndarray         # uint8 (T,) faces the latest detection saw
    outside: np.ndarray         # uint8 (T,) landmarks outside the frame
    backend: str
    stats: dict                 # per video: identity_switches, fallback_calls, ...


def _keyed(box, score, landmarks, detected_now) -> tuple:
    """A :class:`FaceTracker` step as ``(box, score, landmarks, found by the detector on this frame)``."""
    return box, score, landmarks, detected_now and landmarks is not None


def longest_run(mask: np.ndarray) -> int:
    """Length of the longest run of True in a 1-D mask."""
    best = run = 0
    for value in np.asarray(mask, bool):
        run = run + 1 if value else 0
        best = max(best, run)
    return best


class FacePipeline:
    """One loaded backend and the stage's parameters (the config's ``faces`` section; missing keys take
    :data:`DEFAULTS`)."""

    def __init__(self, params: dict | None = None, backend=None):
        unknown = set(params or {}) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"unknown faces settings {sorted(unknown)}; known: {sorted(DEFAULTS)}")
        self.params = {**DEFAULTS, **(params or {})}
        p = self.params
        if p["select"] not in ("largest", "central") or p["fallback"] not in ("cnn", "none"):
            raise ValueError(f"faces select must be largest or central (got {p['select']!r}) and fallback cnn or "
                             f"none (got {p['fallback']!r})")
        self.backend = backend or make_backend(p["backend"], p["device"], p["fa_detector"], p["batch_size"],
                                               p["upsample"])
        self.stats: dict = {}  # of the last video processed
        log.info("faces backend: %s %s", self.backend.name, self.backend.versions)

    def iter_process(self, frames: Iterable[np.ndarray], source_ratio: float = 1.0) -> Iterator[FaceFrame]:
        """Yield a :class:`FaceFrame` per frame, in order. ``source_ratio`` is the frames' height / the source
        video's height (faces are looked for down to ``min_face`` source pixels). ``stats`` holds the video's
        figures once the iterator is exhausted."""
        p = self.params
        scale = detect_scale(p, self.backend, source_ratio)
        if getattr(self.backend, "batched", False):  # chunks of frames through one landmark call each
            tracker = ChunkTracker(self.backend, p["batch_size"], p["detect_every"], scale, p["select"],
                                   p["switch_threshold"])
            steps = tracker.run(frames)
        else:  # frame by frame, each box from the previous frame's landmarks
            use_fallback = p["fallback"] == "cnn" and hasattr(self.backend, "detect_fallback")
            tracker = FaceTracker(self.backend, p["detect_every"], scale, p["redetect_threshold"], p["select"],
                                  p["switch_threshold"], p["box_smooth"],
                                  detect_scale(p, self.backend, source_ratio, fallback=True) if use_fallback else None)
            steps = ((frame, *_keyed(*tracker.update(frame))) for frame in frames)
        smoother = LandmarkFilter(p["max_gap"], p["smooth"])
        waiting: deque = deque()  # (frame, box, score, detected, keyframe, n_faces) until its landmarks are final
        for frame, box, score, landmarks, keyframe in steps:
            waiting.append((frame, box, score, landmarks is not None, keyframe, tracker.n_faces))
            yield from self._finish(smoother.push(landmarks), waiting)
        yield from self._finish(smoother.flush(), waiting)
        self.stats = {"detect_scale": scale, "select": p["select"], "identity_switches": int(tracker.switches),
                      "fallback_calls": int(getattr(tracker, "fallback_calls", 0)),
                      "fallback_found": int(getattr(tracker, "fallback_found", 0)),
                      "fallback_seconds": float(getattr(tracker, "fallback_seconds", 0.0))}

    def _finish(self, final, waiting):
        size, margin = self.params["crop_size"], self.params["margin"]
        for _, landmarks in final:
            frame, box, score, detected, keyframe, n_faces = waiting.popleft()
            if landmarks is None:  # no face seen yet anywhere near: an empty crop
                nan = np.full((68, 2), np.nan, np.float32)
                yield FaceFrame(np.zeros((size, size, 3), np.uint8), nan, nan, np.full(4, np.nan, np.float32), 0.0,
                                False, False, n_faces, 0)
                continue
            crop, in_crop = align_face(frame, landmarks, size, margin)
            if not detected:
                box = np.concatenate([landmarks.min(0), landmarks.max(0)])
                score = 0.0
            h, w = frame.shape[:2]
            outside = int(((landmarks[:, 0] < 0) | (landmarks[:, 0] > w - 1) | (landmarks[:, 1] < 0)
                           | (landmarks[:, 1] > h - 1)).sum())
            yield FaceFrame(crop, landmarks, in_crop, np.asarray(box, np.float32), score, detected, keyframe, n_faces,
                            outside)

    def process(self, frames: Iterable[np.ndarray], source_ratio: float = 1.0) -> FaceResult:
        """All arrays of one video (the crops are kept; the source frames are not)."""
        rows = list(self.iter_process(frames, source_ratio))
        size = self.params["crop_size"]
        if not rows:
            empty = np.zeros((0, 68, 2), np.float32)
            return FaceResult(np.zeros((0, size, size, 3), np.uint8), empty, empty.copy(),
                              np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, bool),
                              np.zeros(0, bool), np.zeros(0, np.uint8), np.zeros(0, np.uint8), self.backend.name, self.stats)
        c = list(zip(*rows, strict=True))
        return FaceResult(np.stack(c[0]), np.stack(c[1]), np.stack(c[2]), np.stack(c[3]), np.asarray(c[4], np.float32),
                          np.asarray(c[5], bool), np.asarray(c[6], bool), np.asarray(c[7], np.uint8),
                          np.asarray(c[8], np.uint8),
                          self.backend.name, self.stats)


ALIGNED = "aligned"  # the backend name of frames taken as aligned faces


def aligned_faces(frames: Iterable[np.ndarray], size: int) -> dict[str, np.ndarray]:
    """The arrays of a video (:class:`_GroupWriter`'s datasets) whose frames are face crops already: each frame
    resized to ``size`` (area averaging), the whole frame its box, no landmarks (NaN), counted as found. Built whole:
    such clips are short, and one write per dataset is what keeps the stage at the decoder's speed."""
    crops, sides = [], []
    for frame in frames:
        sides.append(frame.shape[1::-1])
        crops.append(frame if frame.shape[:2] == (size, size)
                     else cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA))
    t = len(crops)
    nan = np.full((t, 68, 2), np.nan, np.float32)
    boxes = np.zeros((t, 4), np.float32)
    boxes[:, 2:] = np.asarray(sides, np.float32).reshape(t, 2)
    return {"crops": np.stack(crops) if t else np.zeros((0, size, size, 3), np.uint8), "landmarks": nan,
            "landmarks_crop": nan, "boxes": boxes, "scores": np.ones(t, np.float32), "detected": np.ones(t, bool),
            "keyframe": np.zeros(t, bool), "n_faces": np.ones(t, np.uint8), "outside": np.zeros(t, np.uint8)}


class _GroupWriter:
    """Writes the per-frame arrays of one video to its HDF5 group with bounded memory and little slack on disk.

    The small per-frame arrays (landmarks, boxes, ...; about 1.1 KB a frame) wait for the end of the video and are
    written contiguous, at their exact size. Crops are written contiguous too when the video fits in one block of
    ``BLOCK`` frames; a longer video streams its crops in chunks of ``CHUNK`` frames (at most ``CHUNK - 1`` frames of
    slack).
    """

    BLOCK = 64
    CHUNK = 8
    # dataset -> (FaceFrame field, shape of one frame, dtype)
    SMALL = {"landmarks": ("landmarks", (68, 2), np.float32), "landmarks_crop": ("landmarks_crop", (68, 2), np.float32),
             "boxes": ("box", (4,), np.float32), "scores": ("score", (), np.float32), "detected": ("detected", (), bool),
             "keyframe": ("keyframe", (), bool), "n_faces": ("n_faces", (), np.uint8), "outside": ("outside", (), np.uint8)}

    def __init__(self, group, crop_size: int):
        self.group, self.size = group, crop_size
        self.crops = None  # the chunked crops dataset once a video outgrows one block
        self.buffer: list[np.ndarray] = []
        self.small: dict[str, list] = {name: [] for name in self.SMALL}
        self.n = 0

    @property
    def detected(self) -> np.ndarray:
        return np.asarray(self.small["detected"], bool)

    @property
    def scores(self) -> np.ndarray:
        return np.asarray(self.small["scores"], np.float32)

    def add(self, row: FaceFrame) -> None:
        self.buffer.append(row.crop)
        for name, (field, _, _) in self.SMALL.items():
            self.small[name].append(getattr(row, field))
        if len(self.buffer) >= self.BLOCK:
            self._flush_crops()

    def _flush_crops(self) -> None:
        s = self.size
        if self.crops is None:
            self.crops = self.group.create_dataset("crops", shape=(0, s, s, 3), maxshape=(None, s, s, 3),
                                                   dtype=np.uint8, chunks=(self.CHUNK, s, s, 3))
        k = len(self.buffer)
        if k:
            self.crops.resize(self.n + k, axis=0)
            self.crops[self.n:] = np.stack(self.buffer)
        self.n += k
        self.buffer = []

    def write(self, arrays: dict[str, np.ndarray]) -> None:
        """Write a whole video's arrays at once (``crops`` and every :attr:`SMALL` dataset), instead of ``add`` and
        ``flush``."""
        self.group.create_dataset("crops", data=arrays["crops"])
        self.n = len(arrays["crops"])
        for name, (_, shape, dtype) in self.SMALL.items():
            self.small[name] = np.asarray(arrays[name], dtype).reshape(-1, *shape)
            self.group.create_dataset(name, data=self.small[name])

    def flush(self) -> None:
        """Write what is left (call once, at the end of the video)."""
        s = self.size
        if self.crops is None:
            crops = np.stack(self.buffer) if self.buffer else np.zeros((0, s, s, 3), np.uint8)
            self.group.create_dataset("crops", data=crops)
            self.n, self.buffer = len(crops), []
        else:
            self._flush_crops()
        for name, (_, shape, dtype) in self.SMALL.items():
            values = np.asarray(self.small[name], dtype).reshape(-1, *shape)
            self.group.create_dataset(name, data=values)


def _reject_row(video_id: str, backend: str, reason: str, n_frames: int = 0, rate: float = 0.0,
                mean_score: float = 0.0, gap: int = 0, **figures) -> dict:
    return {**QC_DEFAULTS, "video_id": video_id, "n_frames": n_frames, "detection_rate": rate,
            "mean_score": mean_score, "max_gap": gap, **figures, "backend": backend, "status": "rejected",
            "reason": reason}


def source_ratio(meta: dict) -> float:
    """Stored frame height / source video height from a frames ``meta.json`` (1.0 when it does not say)."""
    try:
        return float(meta["height"]) / float(meta["source_height"])
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return 1.0


def process_shard(items: list[tuple[str, str | Path]], out_h5: str | Path, out_qc: str | Path,
                  params: dict | None = None, progress: bool = True, images: bool = False):
    """Faces of every ``(video_id, frames_dir)`` of a shard into ``out_h5`` (one group per accepted video), the
    QC table ``out_qc`` (one row per video, rejected ones with their reason).

    ``frames_dir`` is the frames stage's folder of a video (``meta.json`` beside its frames) or, with ``images``, a
    dataset's own folder of frames (JPEG or PNG, in the order of the numbers in their names). With
    ``params["aligned"]`` the frames are face crops already: resized to ``crop_size``, no detector is loaded.
    Returns the QC DataFrame. Every file appears atomically; a bad video (or frame) is recorded, never fatal.
    """
    import h5py
    import pandas as pd
    from tqdm import tqdm

    from video_emotion import __version__

    aligned = bool((params or {}).get("aligned"))
    pipeline = None if aligned else FacePipeline(params)
    p = {**DEFAULTS, **(params or {})} if aligned else pipeline.params
    backend = ALIGNED if aligned else pipeline.backend.name
    versions = {} if aligned else pipeline.backend.versions
    rows = []
    out_h5 = Path(out_h5)
    with atomic_path(out_h5) as tmp, h5py.File(tmp, "w") as h5:
        h5.attrs.update(backend=backend, crop_size=p["crop_size"], margin=p["margin"],
                        template=json.dumps(TEMPLATE.tolist()), params=json.dumps(p, sort_keys=True),
                        versions=json.dumps({"video_emotion": __version__, **versions}))
        for video_id, frames_dir in tqdm(items, desc=f"faces {out_h5.stem}", disable=not progress):
            frames_dir = Path(frames_dir)
            if images:
                ratio = 1.0
                if not frames_dir.is_dir():
                    rows.append(_reject_row(video_id, backend, f"frame folder {frames_dir} is missing"))
                    continue
            else:
                meta_path = frames_dir / "meta.json"
                if not meta_path.is_file():
                    rows.append(_reject_row(video_id, backend, f"{meta_path} is missing; rerun the frames stage"))
                    continue
                meta = read_json(meta_path)
                if meta.get("status") != "ok":
                    rows.append(_reject_row(video_id, backend, f"frames: {meta.get('reason', 'rejected')}"))
                    continue
                ratio = source_ratio(meta)
            group = h5.create_group(video_id)
            writer = _GroupWriter(group, p["crop_size"])
            try:
                if aligned:
                    writer.write(aligned_faces(read_images(frames_dir, p["crop_size"]), p["crop_size"]))
                else:
                    for row in pipeline.iter_process(read_images(frames_dir), ratio):
                        writer.add(row)
                    writer.flush()
            except OSError as err:
                del h5[video_id]
                fix = "" if images else f"; delete {frames_dir} and rerun the frames stage"
                rows.append(_reject_row(video_id, backend, f"{err}{fix}"))
                continue
            if writer.n == 0 and images:
                del h5[video_id]
                rows.append(_reject_row(video_id, backend, f"no frames ({', '.join(IMAGE_SUFFIXES)}) in {frames_dir}"))
                continue
            detected, n = writer.detected, writer.n
            rate = float(detected.mean()) if n else 0.0
            figures = {**QC_DEFAULTS, "mean_score": float(writer.scores[detected].mean()) if detected.any() else 0.0,
                       "max_gap": longest_run(~detected),
                       "max_faces": int(max(writer.small["n_faces"], default=0)),
                       "outside_rate": float(np.mean(np.asarray(writer.small["outside"]) > 0)) if n else 0.0,
                       **(pipeline.stats if pipeline else {})}
            if n == 0 or rate < p["min_detection_rate"]:
                del h5[video_id]
                rows.append(_reject_row(video_id, backend, f"face found in {rate:.0%} of {n} frames (minimum "
                                        f"{p['min_detection_rate']:.0%})", n, rate, **figures))
                continue
            group.attrs.update(n_frames=n, detection_rate=rate, source=str(frames_dir))
            rows.append({"video_id": video_id, "n_frames": n, "detection_rate": rate, **figures, "backend": backend,
                         "status": "ok", "reason": ""})
    qc = pd.DataFrame(rows, columns=QC_COLUMNS).astype(
        {name: "int64" for name in ("n_frames", "max_gap", "max_faces", "identity_switches", "fallback_calls",
                                    "fallback_found")})
    write_parquet(qc, out_qc, metadata={"backend": backend, "params": p})
    n_ok = int((qc["status"] == "ok").sum())
    log.info("faces %s: %d of %d videos kept (backend %s)", out_h5.stem, n_ok, len(qc), backend)
    return qc

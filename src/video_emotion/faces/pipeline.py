"""The faces stage: frames -> followed face -> landmarks -> aligned crops, per video and per shard.

:class:`FacePipeline` holds one backend (one model load) and processes a stream of frames with bounded memory:
frames wait only in a short lookahead buffer (``max_gap + 1 + smooth`` frames, plus one chunk of ``batch_size``
frames for a batched backend). :func:`process_shard`
runs it over the frames folders of one shard and writes the HDF5 file, the QC table and a montage.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from video_emotion.faces.align import TEMPLATE, align_face
from video_emotion.faces.backends import make_backend
from video_emotion.faces.track import ChunkTracker, FaceTracker, LandmarkFilter
from video_emotion.io import atomic_path, read_json, write_parquet

log = logging.getLogger(__name__)

DEFAULTS = {
    "backend": "auto",            # auto | face_alignment | dlib
    "device": "cpu",
    "crop_size": 112,             # as in the paper (the demo uses 64)
    "margin": 0.2,                # template shrunk by 1 / (1 + margin): forehead and chin stay in the crop
    "detect_every": 5,            # run the detector every k frames, follow the landmarks' box in between
    "detect_scale": 0.5,          # the detector sees the frame downscaled by this factor
    "redetect_threshold": 0.5,    # tracking confidence (patch correlation with the last detection, -1..1) under
                                  # which we detect at once
    "smooth": 1,                  # landmark moving-average radius in frames (0 = raw)
    "max_gap": 12,                # gaps up to this many frames are interpolated
    "min_detection_rate": 0.5,    # a video with fewer frames with a face is rejected
    "fa_detector": "sfd",         # face_alignment's detector: sfd | blazeface | dlib
    "batch_size": 16,             # face_alignment: frames per chunk (one FAN call each)
    "upsample": 1,                # dlib HOG upsampling of the detection image
}
QC_COLUMNS = ["video_id", "n_frames", "detection_rate", "mean_score", "max_gap", "backend", "status", "reason"]


@dataclass
class FaceResult:
    """The arrays of one video (T frames); ``detected`` is False where the face was interpolated or held."""

    crops: np.ndarray           # uint8 (T, S, S, 3)
    landmarks: np.ndarray       # float32 (T, 68, 2), source pixels
    landmarks_crop: np.ndarray  # float32 (T, 68, 2), crop pixels
    boxes: np.ndarray           # float32 (T, 4) x0, y0, x1, y1
    scores: np.ndarray          # float32 (T,)
    detected: np.ndarray        # bool (T,)
    backend: str


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
        self.backend = backend or make_backend(p["backend"], p["device"], p["fa_detector"], p["batch_size"],
                                               p["upsample"])
        log.info("faces backend: %s %s", self.backend.name, self.backend.versions)

    def iter_process(self, frames: Iterable[np.ndarray]) -> Iterator[tuple]:
        """Yield per frame, in order: ``(crop, landmarks, landmarks_crop, box, score, detected)``."""
        p = self.params
        if getattr(self.backend, "batched", False):  # chunks of frames through one landmark call each
            steps = ChunkTracker(self.backend, p["batch_size"], p["detect_every"], p["detect_scale"]).run(frames)
        else:  # frame by frame, each box from the previous frame's landmarks
            tracker = FaceTracker(self.backend, p["detect_every"], p["detect_scale"], p["redetect_threshold"])
            steps = ((frame, *tracker.update(frame)[:3]) for frame in frames)
        smoother = LandmarkFilter(p["max_gap"], p["smooth"])
        waiting: deque = deque()  # (frame, box, score, detected) until its landmarks are final
        for frame, box, score, landmarks in steps:
            waiting.append((frame, box, score, landmarks is not None))
            yield from self._finish(smoother.push(landmarks), waiting)
        yield from self._finish(smoother.flush(), waiting)

    def _finish(self, final, waiting):
        size, margin = self.params["crop_size"], self.params["margin"]
        for _, landmarks in final:
            frame, box, score, detected = waiting.popleft()
            if landmarks is None:  # no face seen yet anywhere near: an empty crop
                nan = np.full((68, 2), np.nan, np.float32)
                yield (np.zeros((size, size, 3), np.uint8), nan, nan, np.full(4, np.nan, np.float32), 0.0, False)
                continue
            crop, in_crop = align_face(frame, landmarks, size, margin)
            if not detected:
                box = np.concatenate([landmarks.min(0), landmarks.max(0)])
                score = 0.0
            yield crop, landmarks, in_crop, np.asarray(box, np.float32), score, detected

    def process(self, frames: Iterable[np.ndarray]) -> FaceResult:
        """All arrays of one video (the crops are kept; the source frames are not)."""
        rows = list(self.iter_process(frames))
        size = self.params["crop_size"]
        if not rows:
            empty = np.zeros((0, 68, 2), np.float32)
            return FaceResult(np.zeros((0, size, size, 3), np.uint8), empty, empty.copy(),
                              np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, bool),
                              self.backend.name)
        crops, lms, in_crop, boxes, scores, detected = zip(*rows, strict=True)
        return FaceResult(np.stack(crops), np.stack(lms), np.stack(in_crop), np.stack(boxes),
                          np.asarray(scores, np.float32), np.asarray(detected, bool), self.backend.name)


def read_frames(frames_dir: Path) -> Iterator[np.ndarray]:
    """The RGB frames ``000001.jpg ...`` of a frames folder, one at a time."""
    for path in sorted(frames_dir.glob("*.jpg")):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise OSError(f"{path}: unreadable image; delete {frames_dir} and rerun the frames stage")
        yield cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class _GroupWriter:
    """Appends the per-frame arrays of one video to its HDF5 group in blocks (bounded memory)."""

    BLOCK = 64

    def __init__(self, group, crop_size: int):
        s = crop_size
        chunk = max(1, min(64, (512 * 1024) // (s * s * 3)))
        specs = {"crops": ((s, s, 3), np.uint8, (chunk, s, s, 3)), "landmarks": ((68, 2), np.float32, None),
                 "landmarks_crop": ((68, 2), np.float32, None), "boxes": ((4,), np.float32, None),
                 "scores": ((), np.float32, None), "detected": ((), bool, None)}
        self.names = list(specs)
        self.sets = {name: group.create_dataset(name, shape=(0, *shape), maxshape=(None, *shape), dtype=dtype,
                                                chunks=chunks or (1024, *shape))
                     for name, (shape, dtype, chunks) in specs.items()}
        self.buffer: list = []
        self.n = 0
        self.detected: list[bool] = []
        self.scores: list[float] = []

    def add(self, row) -> None:
        self.buffer.append(row)
        self.detected.append(bool(row[5]))
        self.scores.append(float(row[4]))
        if len(self.buffer) >= self.BLOCK:
            self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return
        columns = list(zip(*self.buffer, strict=True))
        k = len(self.buffer)
        for name, values in zip(self.names, columns, strict=True):
            data = self.sets[name]
            data.resize(self.n + k, axis=0)
            data[self.n:] = np.asarray(values, dtype=data.dtype)
        self.n += k
        self.buffer = []


def _reject_row(video_id: str, backend: str, reason: str, n_frames: int = 0, rate: float = 0.0,
                mean_score: float = 0.0, gap: int = 0) -> dict:
    return {"video_id": video_id, "n_frames": n_frames, "detection_rate": rate, "mean_score": mean_score,
            "max_gap": gap, "backend": backend, "status": "rejected", "reason": reason}


def process_shard(items: list[tuple[str, str | Path]], out_h5: str | Path, out_qc: str | Path,
                  params: dict | None = None, progress: bool = True):
    """Faces of every ``(video_id, frames_dir)`` of a shard into ``out_h5`` (one group per accepted video), the
    QC table ``out_qc`` (one row per video, rejected ones with their reason) and ``<out_h5 stem>_montage.png``.

    Returns the QC DataFrame. Every file appears atomically; a bad video is recorded, never fatal.
    """
    import h5py
    import pandas as pd
    from tqdm import tqdm

    from video_emotion import __version__

    pipeline = FacePipeline(params)
    p, backend = pipeline.params, pipeline.backend.name
    rows, montage = [], []
    out_h5 = Path(out_h5)
    with atomic_path(out_h5) as tmp, h5py.File(tmp, "w") as h5:
        h5.attrs.update(backend=backend, crop_size=p["crop_size"], margin=p["margin"],
                        template=json.dumps(TEMPLATE.tolist()), params=json.dumps(p, sort_keys=True),
                        versions=json.dumps({"video_emotion": __version__, **pipeline.backend.versions}))
        for video_id, frames_dir in tqdm(items, desc=f"faces {out_h5.stem}", disable=not progress):
            frames_dir = Path(frames_dir)
            meta_path = frames_dir / "meta.json"
            if not meta_path.is_file():
                rows.append(_reject_row(video_id, backend, f"{meta_path} is missing; rerun the frames stage"))
                continue
            meta = read_json(meta_path)
            if meta.get("status") != "ok":
                rows.append(_reject_row(video_id, backend, f"frames: {meta.get('reason', 'rejected')}"))
                continue
            group = h5.create_group(video_id)
            writer = _GroupWriter(group, p["crop_size"])
            try:
                for row in pipeline.iter_process(read_frames(frames_dir)):
                    writer.add(row)
                writer.flush()
            except OSError as err:
                del h5[video_id]
                rows.append(_reject_row(video_id, backend, str(err)))
                continue
            detected = np.asarray(writer.detected, bool)
            n = len(detected)
            rate = float(detected.mean()) if n else 0.0
            mean_score = float(np.mean(np.asarray(writer.scores)[detected])) if detected.any() else 0.0
            gap = longest_run(~detected)
            if n == 0 or rate < p["min_detection_rate"]:
                del h5[video_id]
                rows.append(_reject_row(video_id, backend, f"face found in {rate:.0%} of {n} frames (minimum "
                                        f"{p['min_detection_rate']:.0%})", n, rate, mean_score, gap))
                continue
            group.attrs.update(n_frames=n, detection_rate=rate, source=str(frames_dir))
            rows.append({"video_id": video_id, "n_frames": n, "detection_rate": rate, "mean_score": mean_score,
                         "max_gap": gap, "backend": backend, "status": "ok", "reason": ""})
            montage.append((video_id, group["crops"][n // 2]))
    qc = pd.DataFrame(rows, columns=QC_COLUMNS).astype({"n_frames": "int64", "max_gap": "int64"})
    write_parquet(qc, out_qc, metadata={"backend": backend, "params": p})
    write_montage(montage, out_h5.with_name(f"{out_h5.stem}_montage.png"))
    n_ok = int((qc["status"] == "ok").sum())
    log.info("faces %s: %d of %d videos kept (backend %s)", out_h5.stem, n_ok, len(qc), backend)
    return qc


def write_montage(crops: list[tuple[str, np.ndarray]], path: str | Path, columns: int = 8) -> None:
    """A grid of one aligned crop per video, titled with its id (a note when there is none)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(1, len(crops))
    cols = min(columns, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.8 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (video_id, crop) in zip(axes.flat, crops, strict=False):
        ax.imshow(crop)
        ax.set_title(video_id, fontsize=6)
    if not crops:
        axes[0, 0].text(0.5, 0.5, "no face kept", ha="center", va="center")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)

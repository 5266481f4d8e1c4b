"""Follow one face through a video: sparse detection, landmark-based box tracking, gap filling and smoothing.

:class:`FaceTracker` gives the landmarks of the followed face on every frame. It runs the detector on a downscaled
frame every ``detect_every`` frames; in between, the landmarks of one frame give the box of the next (their
bounding box, shifted and scaled the way the detector's box related to the landmarks at the last detection), so
no separate box tracker runs. Its confidence is the normalised cross-correlation of a small grey patch under the
landmarks with the patch at the last detection: when it falls below ``redetect_threshold`` (face gone, occluded or
lost) it detects again at once on that frame. With several faces it keeps the one overlapping its current box;
with no current box it takes the largest one (``select="largest"``) or the one nearest the frame centre
(``"central"``). A new detection of the followed face whose centre or size jumps beyond ``switch_threshold`` from
the last face is counted as an identity switch; the box size is smoothed over re-detections of the same face.
When the detector finds nothing on a scheduled detection frame, an optional ``fallback`` detector (dlib's CNN) tries
that frame.

:class:`ChunkTracker` does the same for backends that landmark many frames at once (FAN on a GPU): per chunk of
frames it detects on every ``detect_every``-th frame, interpolates the boxes in between and landmarks the whole
chunk in one call.

:class:`LandmarkFilter` turns the per-frame landmarks (``None`` where no face) into final ones, with a bounded
lookahead: gaps of at most ``max_gap`` frames are interpolated linearly between the faces around them, longer gaps
hold the nearest face, and a centred moving average of radius ``smooth`` frames removes jitter (0 = raw).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

import cv2
import numpy as np

# A detection must overlap the followed box this much to be taken as the same face.
MIN_IOU = 0.2
# Side of the grey patch whose correlation with the last detection is the tracking confidence.
PATCH = 16


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two x0,y0,x1,y1 boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def pick_target(boxes: np.ndarray, width: int, height: int, select: str = "largest") -> int:
    """Index of the box to follow when none is followed yet: the largest (``"largest"``) or the one whose centre is
    nearest the frame centre (``"central"``)."""
    if select == "central":
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        return int(np.argmin(np.hypot(centres[:, 0] - width / 2, centres[:, 1] - height / 2)))
    if select != "largest":
        raise ValueError(f"unknown face selection {select!r}; choose largest or central")
    return int(np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])))


def choose_face(boxes: np.ndarray, scores: np.ndarray, previous: np.ndarray | None, width: int,
                height: int, select: str = "largest") -> tuple[np.ndarray | None, float]:
    """``(box, score)`` of the followed face among detections in frame pixels, ``(None, 0.0)`` when there are
    none: the one overlapping ``previous`` (the followed box) most, else the one ``select`` picks."""
    if len(boxes) == 0:
        return None, 0.0
    best = -1
    if previous is not None:
        overlaps = [iou(previous, b) for b in boxes]
        best = int(np.argmax(overlaps)) if max(overlaps) >= MIN_IOU else -1
    if best < 0:
        best = pick_target(boxes, width, height, select)
    return boxes[best].astype(np.float32), float(scores[best])


def is_switch(previous: np.ndarray | None, box: np.ndarray | None, threshold: float) -> bool:
    """Whether ``box`` is a jump from ``previous`` (the followed face's last box): its centre moved more than
    ``threshold`` box widths, or its width changed by more than a factor ``1 + threshold``."""
    if previous is None or box is None:
        return False
    width = max(1.0, float(previous[2] - previous[0]))
    shift = np.hypot(*((box[:2] + box[2:]) / 2 - (previous[:2] + previous[2:]) / 2)) / width
    ratio = max(1.0, float(box[2] - box[0])) / width
    return bool(shift > threshold or max(ratio, 1 / ratio) > 1 + threshold)


def downscale(frame: np.ndarray, scale: float) -> np.ndarray:
    """The frame resized by ``scale`` for the detector (contiguous, as it is at 1.0)."""
    if scale == 1.0:
        return np.ascontiguousarray(frame)
    h, w = frame.shape[:2]
    return cv2.resize(frame, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def landmark_box(landmarks: np.ndarray) -> np.ndarray:
    """The x0,y0,x1,y1 bounding box of landmarks (N,2)."""
    return np.concatenate([landmarks.min(0), landmarks.max(0)]).astype(np.float32)


def patch(frame: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The grey ``PATCH`` x ``PATCH`` patch under ``box``, zero-mean and unit-norm (all zeros when flat or outside
    the frame), as a flat vector: the dot product of two is their normalised cross-correlation."""
    h, w = frame.shape[:2]
    x0, y0 = max(0, int(box[0])), max(0, int(box[1]))
    x1, y1 = min(w, int(np.ceil(box[2])) + 1), min(h, int(np.ceil(box[3])) + 1)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return np.zeros(PATCH * PATCH, np.float32)
    small = cv2.resize(frame[y0:y1, x0:x1], (PATCH, PATCH), interpolation=cv2.INTER_AREA)
    vec = small.reshape(PATCH * PATCH, -1).mean(1, dtype=np.float32)
    vec -= vec.mean()
    norm = float(np.linalg.norm(vec))
    return vec / norm if norm > 1e-3 * PATCH else np.zeros_like(vec)


class FaceTracker:
    """The followed face on each frame: ``update(frame) -> (box or None, score, landmarks or None, detected_now)``,
    ``box`` being the box the landmarks were computed from. After each frame ``n_faces`` is the number of faces
    the latest detection saw; ``switches``, ``fallback_calls``, ``fallback_found`` and ``fallback_seconds`` add up
    over the video."""

    def __init__(self, backend, detect_every: int = 5, detect_scale: float = 0.5, redetect_threshold: float = 0.5,
                 select: str = "largest", switch_threshold: float = 0.5, box_smooth: float = 0.5,
                 fallback_scale: float | None = None):
        self.backend = backend
        self.detect_every = max(1, int(detect_every))
        self.scale = float(detect_scale)
        self.threshold = float(redetect_threshold)
        self.select, self.switch_threshold, self.box_smooth = select, float(switch_threshold), float(box_smooth)
        self.fallback_scale = fallback_scale  # None: no fallback detector
        self.box: np.ndarray | None = None  # box for the next frame
        self.score = 0.0
        self.since_detect = 0
        self.n_detections = 0
        self.t = -1  # index of the current frame
        self.n_faces = 0
        self.switches = 0
        self.fallback_calls = self.fallback_found = 0
        self.fallback_seconds = 0.0
        self._last_face: np.ndarray | None = None  # the followed face's box at its last detection
        self._offset = np.zeros(4, np.float32)  # detector box - landmark box, in landmark-box widths/heights
        self._reference: np.ndarray | None = None  # patch under the landmarks at the last detection

    def update(self, frame: np.ndarray) -> tuple[np.ndarray | None, float, np.ndarray | None, bool]:
        self.t += 1
        if self.box is not None and self.since_detect < self.detect_every - 1:
            box = self.box
            landmarks = self.backend.landmarks([frame], box[None])[0]
            if float(patch(frame, landmark_box(landmarks)) @ self._reference) >= self.threshold:
                self.since_detect += 1
                self.box = self._next_box(landmarks)
                return box, self.score, landmarks, False
        return self._detect(frame)

    def _next_box(self, landmarks: np.ndarray) -> np.ndarray:
        lbox = landmark_box(landmarks)
        size = np.tile(lbox[2:] - lbox[:2], 2)
        return lbox + self._offset * size

    def _find(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Detections in frame pixels; the fallback detector tries scheduled detection frames where there are none."""
        boxes, scores = self.backend.detect(downscale(frame, self.scale))
        boxes = boxes / self.scale
        if len(boxes) == 0 and self.fallback_scale is not None and self.t % self.detect_every == 0:
            start = time.perf_counter()
            boxes, scores = self.backend.detect_fallback(downscale(frame, self.fallback_scale))
            boxes = boxes / self.fallback_scale
            self.fallback_seconds += time.perf_counter() - start
            self.fallback_calls += 1
            self.fallback_found += int(len(boxes) > 0)
        return boxes, scores

    def _detect(self, frame: np.ndarray):
        self.n_detections += 1
        self.since_detect = 0
        boxes, scores = self._find(frame)
        self.n_faces = len(boxes)
        box, score = choose_face(boxes, scores, self.box, frame.shape[1], frame.shape[0], self.select)
        if box is None:
            self.box = None
            return None, 0.0, None, True
        if self.box is not None and iou(self.box, box) >= MIN_IOU and self.box_smooth > 0:
            # the same face again: keep the detector's centre, smooth its size with the followed box's
            centre, size = (box[:2] + box[2:]) / 2, box[2:] - box[:2]
            size = (1 - self.box_smooth) * size + self.box_smooth * (self.box[2:] - self.box[:2])
            box = np.concatenate([centre - size / 2, centre + size / 2]).astype(np.float32)
        self.switches += is_switch(self._last_face, box, self.switch_threshold)
        self._last_face = box
        self.score = score
        landmarks = self.backend.landmarks([frame], box[None])[0]
        lbox = landmark_box(landmarks)
        self._offset = (box - lbox) / np.maximum(np.tile(lbox[2:] - lbox[:2], 2), 1.0)
        self._reference = patch(frame, lbox)
        self.box = self._next_box(landmarks)
        return box, self.score, landmarks, True


class ChunkTracker:
    """The followed face for backends that landmark many frames at once (``backend.batched``), one chunk of
    ``batch_size`` frames at a time: ``run(frames)`` yields ``(frame, box or None, score, landmarks or None,
    found_by_detector)``.

    In each chunk the detector (``backend.detect_batch``) sees the frames at every ``detect_every``-th index of the
    video and the chunk's last frame; the followed face is chosen as :class:`FaceTracker` chooses it. Between two
    such frames the box and score are interpolated linearly; where either has no face, or the two boxes are not
    the same face (IoU under ``MIN_IOU``), the frames in between are detected as well. Then all boxes of the
    chunk go through ``backend.landmarks`` in one call. Frames wait only within their chunk.
    """

    def __init__(self, backend, batch_size: int = 16, detect_every: int = 5, detect_scale: float = 0.5,
                 select: str = "largest", switch_threshold: float = 0.5):
        self.backend = backend
        self.select, self.switch_threshold = select, float(switch_threshold)
        self.counts: dict[int, int] = {}  # chunk index -> faces the detector saw
        self.n_faces = 0
        self.switches = 0
        self.batch_size = max(1, int(batch_size))
        self.detect_every = max(1, int(detect_every))
        self.scale = float(detect_scale)
        self.start = 0  # video index of the chunk's first frame
        self.last: tuple[np.ndarray | None, float] | None = None  # the previous chunk's last frame: (box, score)
        self.n_detections = 0

    def run(self, frames: Iterable[np.ndarray]) -> Iterator[tuple]:
        chunk: list[np.ndarray] = []
        for frame in frames:
            chunk.append(frame)
            if len(chunk) == self.batch_size:
                yield from self._chunk(chunk)
                chunk = []
        if chunk:
            yield from self._chunk(chunk)

    def _detect(self, frames: list[np.ndarray], indices: list[int], found: dict) -> None:
        """Detect on ``frames[indices]`` (one batch) and put the followed face of each into ``found``."""
        self.n_detections += len(indices)
        h, w = frames[0].shape[:2]
        results = self.backend.detect_batch([downscale(frames[i], self.scale) for i in indices])
        for i, (boxes, scores) in zip(indices, results, strict=True):
            previous = found[max(j for j in found if j < i)][0] if any(j < i for j in found) else None
            found[i] = choose_face(boxes / self.scale, scores, previous, w, h, self.select)
            self.counts[i] = len(boxes)

    def _chunk(self, frames: list[np.ndarray]) -> Iterator[tuple]:
        n = len(frames)
        self.counts = {}
        found = {} if self.last is None else {-1: self.last}  # chunk index -> (box or None, score)
        self._detect(frames, sorted({i for i in range(n) if (self.start + i) % self.detect_every == 0} | {n - 1}),
                     found)
        known = sorted(found)
        between = [i for a, b in zip(known, known[1:], strict=False) if b - a > 1
                   and (found[a][0] is None or found[b][0] is None or iou(found[a][0], found[b][0]) < MIN_IOU)
                   for i in range(a + 1, b)]
        if between:
            self._detect(frames, between, found)
            known = sorted(found)
        boxes, scores = [], []
        for i in range(n):
            if i in found:
                box, score = found[i]
            else:  # a box on each side, the same face: interpolate
                k = int(np.searchsorted(known, i))
                a, b = known[k - 1], known[k]
                w = (i - a) / (b - a)
                box = ((1 - w) * found[a][0] + w * found[b][0]).astype(np.float32)
                score = (1 - w) * found[a][1] + w * found[b][1]
            boxes.append(box)
            scores.append(float(score))
        have = [i for i in range(n) if boxes[i] is not None]
        landmarks = {}
        if have:  # one landmark call for the whole chunk
            out = self.backend.landmarks([frames[i] for i in have], np.stack([boxes[i] for i in have]))
            landmarks = dict(zip(have, out, strict=True))
        faces = [found[i][0] for i in sorted(found) if found[i][0] is not None]
        self.switches += sum(is_switch(a, b, self.switch_threshold) for a, b in zip(faces, faces[1:], strict=False))
        self.last, self.start = found[n - 1], self.start + n
        for i, frame in enumerate(frames):
            self.n_faces = self.counts.get(i, self.n_faces)
            yield frame, boxes[i], scores[i], landmarks.get(i), i in self.counts and found[i][0] is not None


class LandmarkFilter:
    """Fill gaps and smooth landmarks with a lookahead of ``max_gap + 1 + smooth`` frames.

    ``push(landmarks or None)`` returns the frames that became final, as ``(index, landmarks or None)``; ``None``
    only while no face has been seen at all. ``flush()`` returns the rest at the end of the video.
    """

    def __init__(self, max_gap: int = 12, smooth: int = 1):
        self.max_gap, self.smooth = int(max_gap), int(smooth)
        self.lookahead = self.max_gap + 1 + self.smooth
        self.raw: dict[int, np.ndarray | None] = {}
        self.filled: dict[int, np.ndarray | None] = {}
        self.last_seen: int | None = None  # last index with a face among the filled frames, and its landmarks
        self.last_landmarks: np.ndarray | None = None
        self.n = 0
        self.next_out = 0
        self.next_fill = 0

    def push(self, landmarks: np.ndarray | None) -> list[tuple[int, np.ndarray | None]]:
        self.raw[self.n] = landmarks
        self.n += 1
        return self._emit(self.n - self.lookahead)

    def flush(self) -> list[tuple[int, np.ndarray | None]]:
        return self._emit(self.n - 1, final=True)

    def _fill(self, t: int, final: bool) -> np.ndarray | None:
        lm = self.raw[t]
        if lm is not None:
            self.last_seen, self.last_landmarks = t, lm
            return lm
        horizon = self.n if final else min(self.n, t + self.max_gap + 1)
        nxt = next((j for j in range(t + 1, horizon) if self.raw[j] is not None), None)
        prev = self.last_seen
        if prev is not None and nxt is not None and nxt - prev - 1 <= self.max_gap:
            w = (t - prev) / (nxt - prev)
            return ((1 - w) * self.last_landmarks + w * self.raw[nxt]).astype(np.float32)
        if prev is not None:
            return self.last_landmarks
        return self.raw[nxt] if nxt is not None else None

    def _emit(self, upto: int, final: bool = False) -> list[tuple[int, np.ndarray | None]]:
        fill_upto = self.n - 1 if final else upto + self.smooth
        while self.next_fill <= fill_upto:
            self.filled[self.next_fill] = self._fill(self.next_fill, final)
            self.next_fill += 1
        out = []
        while self.next_out <= upto:
            t = self.next_out
            window = [self.filled[j] for j in range(t - self.smooth, t + self.smooth + 1)
                      if j in self.filled and self.filled[j] is not None]
            lm = self.filled[t]
            if lm is not None and self.smooth > 0:
                lm = np.mean(window, axis=0).astype(np.float32)
            out.append((t, lm))
            self.next_out += 1
            self.filled.pop(t - self.smooth, None)  # no later window reaches it
            self.raw.pop(t, None)
        return out

"""Follow one face through a video: sparse detection, box tracking in between, gap filling and smoothing.

:class:`FaceTracker` runs the detector on a downscaled frame every ``detect_every`` frames and follows the box with
dlib's correlation tracker in between; when the tracker's confidence (peak-to-sidelobe ratio) falls below
``redetect_threshold`` it detects again at once. With several faces it keeps the one overlapping its current box;
with no current box it takes the largest, most central face, so the same person is followed throughout.

:class:`LandmarkFilter` turns the per-frame landmarks (``None`` where no face) into final ones, with a bounded
lookahead: gaps of at most ``max_gap`` frames are interpolated linearly between the faces around them, longer gaps
hold the nearest face, and a centred moving average of radius ``smooth`` frames removes jitter (0 = raw).
"""

from __future__ import annotations

import cv2
import dlib
import numpy as np

# A detection must overlap the followed box this much to be taken as the same face.
MIN_IOU = 0.2


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two x0,y0,x1,y1 boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def pick_target(boxes: np.ndarray, width: int, height: int) -> int:
    """Index of the largest, most central box: area x (1 - distance of its centre to the frame centre / half
    diagonal)."""
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    dist = np.hypot(centres[:, 0] - width / 2, centres[:, 1] - height / 2) / (np.hypot(width, height) / 2)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return int(np.argmax(area * np.clip(1.0 - dist, 0.05, None)))


class FaceTracker:
    """Per-frame face box of the followed person: ``update(frame) -> (box or None, score, detected_now)``."""

    def __init__(self, backend, detect_every: int = 5, detect_scale: float = 0.5, redetect_threshold: float = 7.0):
        self.backend = backend
        self.detect_every = max(1, int(detect_every))
        self.scale = float(detect_scale)
        self.threshold = float(redetect_threshold)
        self.box: np.ndarray | None = None
        self.score = 0.0
        self.since_detect = 0
        self.n_detections = 0
        self._tracker = dlib.correlation_tracker()

    def _small(self, frame: np.ndarray) -> np.ndarray:
        if self.scale == 1.0:
            return np.ascontiguousarray(frame)
        h, w = frame.shape[:2]
        size = (max(1, round(w * self.scale)), max(1, round(h * self.scale)))
        return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)

    def update(self, frame: np.ndarray) -> tuple[np.ndarray | None, float, bool]:
        small = self._small(frame)
        gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        if self.box is not None and self.since_detect < self.detect_every - 1:
            confidence = self._tracker.update(gray)
            if confidence >= self.threshold:
                pos = self._tracker.get_position()
                self.box = np.array([pos.left(), pos.top(), pos.right(), pos.bottom()], np.float32) / self.scale
                self.since_detect += 1
                return self.box, self.score, False
        return self._detect(frame, small, gray)

    def _detect(self, frame, small, gray):
        self.n_detections += 1
        self.since_detect = 0
        boxes, scores = self.backend.detect(small)
        if len(boxes) == 0:
            self.box = None
            return None, 0.0, True
        boxes = boxes / self.scale
        best = -1
        if self.box is not None:
            overlaps = [iou(self.box, b) for b in boxes]
            best = int(np.argmax(overlaps)) if max(overlaps) >= MIN_IOU else -1
        if best < 0:
            best = pick_target(boxes, frame.shape[1], frame.shape[0])
        self.box, self.score = boxes[best].astype(np.float32), float(scores[best])
        x0, y0, x1, y1 = (float(v) * self.scale for v in self.box)
        self._tracker.start_track(gray, dlib.drectangle(x0, y0, x1, y1))
        return self.box, self.score, True


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

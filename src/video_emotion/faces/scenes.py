"""Test scenes for the faces stage made from the real photos the demo uses (scikit-image's astronaut, matplotlib's
Grace Hopper): faces of a chosen size placed in a frame, several people, the lower face covered, the head turned
in the image plane, the face cut by the frame edge; and short videos of them panning.

Face size is the width of dlib's HOG box on the unaltered photo (about the distance between the outer cheeks), in
pixels of the composed frame. Each placed face keeps its reference landmarks (dlib's, on the unaltered photo, moved
with the photo), so the landmark error of a detection can be measured against them.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np


@dataclass(frozen=True)
class Photo:
    name: str
    image: np.ndarray      # RGB uint8
    box: np.ndarray        # dlib's HOG box of the face, x0, y0, x1, y1
    landmarks: np.ndarray  # (68, 2) dlib's landmarks on the unaltered photo


@lru_cache(maxsize=1)
def photos() -> tuple[Photo, ...]:
    """The demo's photos, cut to head and shoulders (one face box around the face), with the face dlib finds on
    each (the most confident one)."""
    from video_emotion.demo import _photos
    from video_emotion.faces.backends import DlibBackend

    backend = DlibBackend(upsample=1)
    out = []
    for name, image in _photos().items():
        image = np.ascontiguousarray(image)
        boxes, scores = backend.detect(image)
        box = boxes[int(np.argmax(scores))]
        w = float(box[2] - box[0])
        x0, y0 = int(max(0, box[0] - w)), int(max(0, box[1] - w))
        image = np.ascontiguousarray(image[y0:int(box[3] + w), x0:int(box[2] + w)])
        box = box - np.array([x0, y0, x0, y0], np.float32)
        out.append(Photo(name.split()[-1].removesuffix(".jpg"), image, box, backend.landmarks([image], box[None])[0]))
    return tuple(out)


@dataclass
class Placed:
    """A face in a composed frame: its reference landmarks and face box there (frame pixels)."""

    landmarks: np.ndarray
    box: np.ndarray


def _affine(photo: Photo, size: float, centre: tuple[float, float], angle: float) -> np.ndarray:
    """2x3 matrix taking photo pixels to frame pixels: face ``size`` px wide, face centre at ``centre``, rotated
    ``angle`` degrees (counter-clockwise in the image)."""
    x0, y0, x1, y1 = photo.box
    scale = size / float(x1 - x0)
    matrix = cv2.getRotationMatrix2D(((x0 + x1) / 2, (y0 + y1) / 2), angle, scale)
    matrix[:, 2] += np.asarray(centre) - np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    return matrix


def occlude(photo: Photo, colour=(60, 60, 140)) -> np.ndarray:
    """The photo with the mouth and jaw covered by a filled rectangle (from the upper lip down, cheek to cheek), like
    a mask or a hand."""
    lm = photo.landmarks
    image = photo.image.copy()
    top, bottom = int(lm[48:68, 1].min()) - 2, int(lm[8, 1]) + 10
    image[max(0, top):bottom, max(0, int(lm[0, 0]) - 5):int(lm[16, 0]) + 5] = colour
    return image


def compose(height: int, width: int, faces: list[tuple[Photo, float, tuple[float, float], float, bool]],
            background: int = 110) -> tuple[np.ndarray, list[Placed]]:
    """A ``height`` x ``width`` frame with each ``(photo, size, centre, angle, occluded)`` pasted onto a grey
    background (the photo's whole rectangle, so hair and shoulders come along), later faces on top; and the
    reference landmarks and box of each in the frame."""
    frame = np.full((height, width, 3), background, np.uint8)
    placed = []
    for photo, size, centre, angle, covered in faces:
        matrix = _affine(photo, size, centre, angle)
        image = occlude(photo) if covered else photo.image
        warped = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_AREA)
        mask = cv2.warpAffine(np.full(image.shape[:2], 255, np.uint8), matrix, (width, height),
                              flags=cv2.INTER_NEAREST)
        frame[mask > 0] = warped[mask > 0]
        lm = photo.landmarks @ matrix[:, :2].T + matrix[:, 2]
        corners = np.array([[photo.box[0], photo.box[1]], [photo.box[2], photo.box[3]]]) @ matrix[:, :2].T \
            + matrix[:, 2]
        placed.append(Placed(lm.astype(np.float32), np.concatenate([corners.min(0), corners.max(0)])))
    return frame, placed


def pan(height: int, width: int, faces: list, n: int, step: float = 1.0) -> tuple[np.ndarray, list[list[Placed]]]:
    """``n`` frames of :func:`compose` with every face moving ``step`` px to the right per frame (a slow pan)."""
    frames, refs = [], []
    for t in range(n):
        moved = [(photo, size, (cx + step * t, cy), angle, covered) for photo, size, (cx, cy), angle, covered in faces]
        frame, placed = compose(height, width, moved)
        frames.append(frame)
        refs.append(placed)
    return np.stack(frames), refs


def encode(path: str | Path, frames: np.ndarray, fps: float = 25) -> Path:
    """Encode RGB frames (T, H, W, 3) with ffmpeg (imageio-ffmpeg's when none is on PATH) as MJPEG."""
    from video_emotion.frames import ffmpeg_exe

    t, h, w, _ = frames.shape
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
                    "-r", str(fps), "-i", "-", "-c:v", "mjpeg", "-q:v", "3", str(path)],
                   input=np.ascontiguousarray(frames).tobytes(), check=True)
    return Path(path)

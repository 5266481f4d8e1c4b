"""Similarity alignment of a face to a canonical template from five landmark anchors.

The anchors are the eye centres, the nose tip and the mouth corners of the iBUG 68-point scheme; the template is
the widely used 112x112 five-point face template (eyes, nose, mouth corners), normalised to the unit square.
``margin`` shrinks the template towards the crop centre so more of the forehead and chin stays in the crop.
"""

from __future__ import annotations

import cv2
import numpy as np

# Five-point template (left eye, right eye, nose tip, left and right mouth corner) in a 112x112 crop, / 112.
TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                     [41.5493, 92.3655], [70.7299, 92.2041]], np.float32) / 112.0


def anchor_points(landmarks: np.ndarray) -> np.ndarray:
    """The five anchors (5,2) of 68 iBUG landmarks (image left eye first, as in the template)."""
    lm = np.asarray(landmarks, np.float32)
    return np.stack([lm[36:42].mean(0), lm[42:48].mean(0), lm[30], lm[48], lm[54]])


def template_points(crop_size: int, margin: float = 0.0) -> np.ndarray:
    """The template anchors in pixels of a ``crop_size`` crop, shrunk by ``1 / (1 + margin)`` about the centre."""
    return ((TEMPLATE - 0.5) / (1.0 + margin) + 0.5) * crop_size


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 least-squares similarity transform (rotation, uniform scale, shift) taking ``src`` onto ``dst``
    (Umeyama 1991)."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    flip = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rot = u @ flip @ vt
    scale = np.trace(np.diag(sig) @ flip) / s.var(0).sum()
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rot
    matrix[:, 2] = mu_d - scale * rot @ mu_s
    return matrix


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine ``matrix`` to points (..., 2)."""
    return (np.asarray(points, np.float64) @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)


def align_face(image: np.ndarray, landmarks: np.ndarray, crop_size: int = 64,
               margin: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """The aligned ``crop_size`` x ``crop_size`` RGB crop and the 68 landmarks in the crop's coordinates."""
    matrix = similarity(anchor_points(landmarks), template_points(crop_size, margin))
    crop = cv2.warpAffine(np.ascontiguousarray(image), matrix, (crop_size, crop_size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return crop, transform_points(landmarks, matrix)

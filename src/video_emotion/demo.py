"""The embedded demo dataset: synthetic face videos in eNTERFACE'05's own layout.

The faces come from four real photographs of four people: two that ship inside installed packages
(scikit-image's astronaut, matplotlib's Grace Hopper) and two official White House portraits that ship with this
package (``data/``, see its README). They form two disjoint pairs: the astronaut and Biden make the odd subjects,
Hopper and Obama the even ones. Each synthetic subject is a landmark-based morph of its pair's two photos (or their
mirror images, :data:`MORPHS`), with its own face shape, skin tone, size and background. The demo's folds split
the subjects by parity (workflow/presets/demo.yaml), so that no test subject shares a photograph, or a person,
with a training or validation subject (:func:`subject_sources`). Each of the six emotions is a deformation of the
68 iBUG landmarks (plus two cheek points), turned into one dense displacement field per subject and emotion by
thin-plate-spline interpolation; every frame scales that field by an intensity that grows from neutral to apex,
and adds head motion, expression lines and sensor noise. Clips are encoded with ffmpeg (MPEG-4 in AVI)::

    out_dir/subject {n}/{emotion}/sentence {k}/s{n}_{ab}_{k}.avi

The same seed gives the same files, byte for byte, on one machine.
"""

from __future__ import annotations

import functools
import os
import subprocess
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np

from video_emotion.faces.align import similarity, transform_points
from video_emotion.io import atomic_path
from video_emotion.labels import EMOTIONS, ENTERFACE_CODES

CROP = 256  # side of the canonical face crop, px
IOD = 52.0  # inter-ocular distance in the canonical crop, px (a face box ~120 px tall)
EYES_Y = 0.40 * CROP  # height of the eye line in the canonical crop
FIELD_STRIDE = 4  # displacement fields are solved on a coarse grid, then upsampled
NOISE_MARGIN = 64  # sensor noise windows shift by up to this many px from frame to frame
CODES = {emotion: code for code, emotion in ENTERFACE_CODES.items()}

# iBUG 68-point groups; "left" is the image's left. Points 68 and 69 are cheeks, added by `_with_cheeks`.
JAW = {3: 0.04, 4: 0.1, 5: 0.2, 6: 0.3, 7: 0.37, 8: 0.4, 9: 0.37, 10: 0.3, 11: 0.2, 12: 0.1, 13: 0.04}
BROW_IN, BROW_INMID, BROW_MID, BROW_OUTMID, BROW_OUT = [21, 22], [20, 23], [19, 24], [18, 25], [17, 26]
UPPER_LID, LOWER_LID = [37, 38, 43, 44], [40, 41, 46, 47]
NOSE_WING, NOSTRIL = [31, 35], [32, 33, 34]
CORNERS = [48, 54, 60, 64]
UPPER_LIP_SIDE, UPPER_LIP_MID, UPPER_LIP_INNER = [49, 53], [50, 51, 52], [61, 62, 63]
LOWER_LIP_SIDE, LOWER_LIP_MID, LOWER_LIP_CENTRE, LOWER_LIP_INNER = [55, 59], [56, 58], [57], [65, 66, 67]
INNER_LIPS = list(range(60, 68))
CHEEKS = [68, 69]

# Apex displacement of each emotion as (points, outward, down) in units of the inter-ocular distance;
# "outward" is away from the face's midline, so one entry moves both sides symmetrically.
EXPRESSIONS: dict[str, list[tuple[list[int], float, float]]] = {
    "anger": [  # brows down and together, lids tensed, lips pressed
        (BROW_IN, -0.10, 0.17), (BROW_INMID, -0.07, 0.14), (BROW_MID, -0.03, 0.09), (BROW_OUTMID, 0.0, 0.06),
        (BROW_OUT, 0.0, 0.03), (UPPER_LID, 0.0, 0.03), (LOWER_LID, 0.0, -0.04), (NOSE_WING, 0.02, -0.02),
        (UPPER_LIP_SIDE + UPPER_LIP_MID, 0.0, 0.05), (UPPER_LIP_INNER, 0.0, 0.06),
        (LOWER_LIP_SIDE + LOWER_LIP_MID + LOWER_LIP_CENTRE, 0.0, -0.06), (LOWER_LIP_INNER, 0.0, -0.07),
        (CORNERS, -0.07, 0.01), ([8], 0.0, -0.04),
    ],
    "disgust": [  # upper lip raised, nose wrinkled, brows slightly down, lids narrowed
        (UPPER_LIP_MID, 0.0, -0.17), (UPPER_LIP_SIDE, 0.01, -0.11), (UPPER_LIP_INNER, 0.0, -0.15),
        (CORNERS, -0.02, -0.04), (LOWER_LIP_SIDE + LOWER_LIP_MID + LOWER_LIP_CENTRE, 0.0, 0.03),
        (NOSE_WING, 0.05, -0.08), (NOSTRIL, 0.0, -0.08), ([30], 0.0, -0.05), ([29], 0.0, -0.03),
        (BROW_IN, -0.04, 0.08), (BROW_INMID, -0.02, 0.07), (BROW_MID, 0.0, 0.05), (BROW_OUTMID + BROW_OUT, 0.0, 0.03),
        (LOWER_LID, 0.0, -0.05), (UPPER_LID, 0.0, 0.02), (CHEEKS, 0.0, -0.06),
    ],
    "fear": [  # brows up and together, eyes wide, mouth stretched sideways and a little open
        (BROW_IN, -0.07, -0.22), (BROW_INMID, -0.05, -0.18), (BROW_MID, -0.02, -0.12), (BROW_OUTMID, 0.0, -0.08),
        (BROW_OUT, 0.0, -0.04), (UPPER_LID, 0.0, -0.09), (LOWER_LID, 0.0, 0.02),
        (CORNERS, 0.16, 0.04), (UPPER_LIP_SIDE, 0.08, 0.0), ([50, 52], 0.03, 0.0), ([61, 63], 0.05, 0.0),
        (LOWER_LIP_SIDE, 0.08, 0.06), (LOWER_LIP_MID, 0.03, 0.12), (LOWER_LIP_CENTRE, 0.0, 0.14),
        ([65, 67], 0.05, 0.10), ([66], 0.0, 0.12), ([6, 7, 9, 10], 0.0, 0.08), ([8], 0.0, 0.10),
    ],
    "happiness": [  # mouth corners up and out, cheeks up, lower lids raised
        (CORNERS, 0.17, -0.17), (UPPER_LIP_SIDE, 0.07, -0.07), ([50, 52], 0.02, -0.04), ([51], 0.0, -0.03),
        ([61, 63], 0.03, -0.05), ([62], 0.0, -0.03), (LOWER_LIP_SIDE, 0.07, -0.05), (LOWER_LIP_MID, 0.03, 0.0),
        (LOWER_LIP_CENTRE, 0.0, 0.02), ([65, 67], 0.03, -0.04), (CHEEKS, 0.03, -0.10), (LOWER_LID, 0.0, -0.05),
        (NOSE_WING, 0.03, -0.02), ([4, 5, 11, 12], 0.02, -0.02),
    ],
    "sadness": [  # inner brows up, mouth corners down, lids drooping, chin pushed up
        (BROW_IN, -0.03, -0.17), (BROW_INMID, -0.02, -0.10), (BROW_MID, 0.0, -0.03), (BROW_OUTMID, 0.0, 0.02),
        (BROW_OUT, 0.0, 0.06), (UPPER_LID, 0.0, 0.04), ([36, 45], 0.0, 0.02),
        (CORNERS, -0.02, 0.15), (UPPER_LIP_SIDE, 0.0, 0.05), (LOWER_LIP_SIDE, 0.0, 0.06),
        (LOWER_LIP_CENTRE, 0.0, -0.04), (LOWER_LIP_MID, 0.0, -0.01), (LOWER_LIP_INNER, 0.0, -0.03), ([8], 0.0, -0.03),
    ],
    "surprise": [  # brows way up, eyes wide, jaw dropped into an O
        (BROW_IN + BROW_INMID, 0.0, -0.27), (BROW_MID + BROW_OUTMID, 0.0, -0.26), (BROW_OUT, 0.0, -0.22),
        (UPPER_LID, 0.0, -0.09), (LOWER_LID, 0.0, 0.03),
        *[([i], 0.0, dy) for i, dy in JAW.items()],
        (LOWER_LIP_CENTRE, 0.0, 0.42), (LOWER_LIP_MID, 0.0, 0.38), (LOWER_LIP_SIDE, -0.02, 0.30),
        ([66], 0.0, 0.40), ([65, 67], 0.0, 0.36), (CORNERS, -0.07, 0.12),
        (UPPER_LIP_SIDE, -0.04, 0.0), (UPPER_LIP_MID, 0.0, -0.03), (UPPER_LIP_INNER, 0.0, -0.02),
    ],
}
# The source photographs, in the order of `_base_faces` (each followed there by its mirror image at index + 4).
SOURCES = ("scikit-image astronaut", "matplotlib grace_hopper.jpg", "video_emotion/data/biden.jpg",
           "video_emotion/data/obama.jpg")
# Which two base faces each subject blends, in turn (the photos 0..3, their mirror images 4..7): odd subjects blend
# the astronaut (0) and Biden (2), even ones Hopper (1) and Obama (3), so a photo never makes subjects of both
# parities.
MORPHS = ((0, 2), (1, 3), (6, 4), (7, 5), (2, 4), (3, 5), (4, 6), (5, 7))
OPEN_MOUTH = {"surprise": 0.9, "fear": 0.5}  # how dark the opened mouth gets at apex


@dataclass
class _Subject:
    """One synthetic identity in the canonical crop, plus what places it in a frame."""

    face: np.ndarray  # (CROP, CROP, 3) uint8
    mask: np.ndarray  # (CROP, CROP) float32 in [0, 1]: head and shoulders
    landmarks: np.ndarray  # (70, 2) float32: the 68 iBUG points and two cheeks
    background: np.ndarray  # (height, width, 3) uint8
    scale: float


@dataclass(frozen=True)
class _Settings:
    seed: int
    n_frames: int
    fps: int
    width: int
    height: int
    sentences: int


def make_demo(
    out_dir: str | os.PathLike,
    *,
    subjects: int = 6,
    sentences: int = 3,
    seconds: float = 2.0,
    fps: int = 25,
    width: int = 320,
    height: int = 240,
    seed: int = 0,
) -> list[Path]:
    """Write ``subjects x 6 x sentences`` demo videos under ``out_dir`` and return their paths, sorted.

    Existing files of the same names are replaced; each video is written atomically. Clips are rendered by a
    pool of two spawned processes, so a script that calls this needs the ``if __name__ == "__main__":`` guard.
    A subject's clips do not depend on how many subjects or sentences are asked for.
    """
    for name, value in dict(subjects=subjects, sentences=sentences, fps=fps).items():
        if int(value) != value or value < 1:
            raise ValueError(f"demo: {name} must be a positive integer, got {value!r}")
    if int(seed) != seed or seed < 0:
        raise ValueError(f"demo: seed must be a non-negative integer, got {seed!r}")
    if width < 64 or height < 64 or width % 2 or height % 2:
        raise ValueError(f"demo: frame size {width}x{height} must be even and at least 64x64")
    n_frames = round(seconds * fps)
    if n_frames < 2:
        raise ValueError(f"demo: {seconds} s at {fps} fps gives {n_frames} frame(s); at least 2 are needed")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"demo: {out_dir} exists and is not a folder; remove it or choose another out_dir")

    settings = _Settings(seed, n_frames, fps, width, height, sentences)
    bases = _base_faces()
    people = [_make_subject(bases, settings, n) for n in range(1, subjects + 1)]
    jobs = [(out_dir, n, emotion) for n in range(1, subjects + 1) for emotion in EMOTIONS]
    workers = min(2, os.cpu_count() or 1, len(jobs))
    with ProcessPoolExecutor(workers, get_context("spawn"), _init_worker, (people, settings)) as pool:
        return sorted(path for paths in pool.map(_write_clips, jobs) for path in paths)


def subject_sources(subject: int) -> tuple[str, str]:
    """The two photographs demo subject ``subject`` (1-based) is a morph of (:data:`SOURCES` names)."""
    return tuple(SOURCES[b % len(SOURCES)] for b in MORPHS[(int(subject) - 1) % len(MORPHS)])


def clip_path(out_dir: str | os.PathLike, subject: int, emotion: str, sentence: int) -> Path:
    """Where eNTERFACE'05 keeps the clip of ``subject`` showing ``emotion`` in ``sentence``."""
    name = f"s{subject}_{CODES[emotion]}_{sentence}.avi"
    return Path(out_dir) / f"subject {subject}" / emotion / f"sentence {sentence}" / name


# ---- base photographs -------------------------------------------------------------------------------------


def _landmarks(image: np.ndarray, upsample: int = 1) -> np.ndarray | None:
    """The 68 landmarks (x, y) of the most confident face in an RGB uint8 image, or None."""
    from video_emotion.faces.backends import load_dlib_models, shape_points

    detector, predictor = load_dlib_models()
    boxes, scores, _ = detector.run(np.ascontiguousarray(image), upsample, 0.0)
    if not boxes:
        return None
    return shape_points(predictor(image, boxes[int(np.argmax(scores))]))


def _photos() -> dict[str, np.ndarray]:
    import matplotlib.image
    import skimage.data
    from matplotlib import cbook

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        hopper = np.asarray(matplotlib.image.imread(f, format="jpg"))
    here = Path(__file__).parent / "data"
    portraits = [cv2.cvtColor(cv2.imread(str(here / name)), cv2.COLOR_BGR2RGB) for name in ("biden.jpg", "obama.jpg")]
    return dict(zip(SOURCES, (skimage.data.astronaut(), hopper, *portraits), strict=True))


@functools.lru_cache(maxsize=1)
def _base_faces() -> list[tuple[np.ndarray, np.ndarray]]:
    """The photos, then their mirror images, in the canonical crop (eyes level, fixed distance): (image, landmarks)."""
    bases = []
    photos = _photos()
    mirrored = {f"{name} (mirrored)": np.ascontiguousarray(photo[:, ::-1]) for name, photo in photos.items()}
    for name, image in {**photos, **mirrored}.items():
            points = _landmarks(image)
            if points is None:
                raise RuntimeError(f"demo: no face found in the {name} photo; reinstall scikit-image and matplotlib")
            left, right = points[36:42].mean(0), points[42:48].mean(0)
            matrix = similarity([left, right], [(CROP / 2 - IOD / 2, EYES_Y), (CROP / 2 + IOD / 2, EYES_Y)])
            crop = cv2.warpAffine(image, matrix, (CROP, CROP), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT101)
            bases.append((crop, _with_cheeks(transform_points(points, matrix))))
    return bases


def _with_cheeks(points: np.ndarray) -> np.ndarray:
    cheeks = [points[[1, 2, 31, 41]].mean(0), points[[15, 14, 35, 46]].mean(0)]
    return np.vstack([points[:68], cheeks]).astype(np.float32)


# ---- subjects ---------------------------------------------------------------------------------------------


def _make_subject(bases, settings: _Settings, n: int) -> _Subject:
    """Identity ``n``: a morph of two base faces, reshaped, recoloured, on its own background."""
    rng = np.random.default_rng([settings.seed, 0, n])
    first, second = MORPHS[(n - 1) % len(MORPHS)]
    (face_a, points_a), (face_b, points_b) = bases[first], bases[second]
    w = rng.uniform(0.25, 0.5)
    target = _reshape((1 - w) * points_a + w * points_b, rng)
    anchors = _border_points(12)
    face = (1 - w) * _warp(face_a, points_a, target, anchors) + w * _warp(face_b, points_b, target, anchors)

    tone = rng.uniform(-1.0, 1.5)  # skin tone from paler to darker, then lighting and a slight colour cast
    gain = np.array([1.0, 0.93, 0.85]) ** tone * rng.uniform(0.95, 1.05, 3) * rng.uniform(0.85, 1.1)
    gamma = rng.uniform(0.85, 1.15)
    face = 255.0 * (np.clip(face * gain, 0, 255) / 255.0) ** gamma
    return _Subject(
        face=np.clip(face, 0, 255).astype(np.uint8),
        mask=_head_mask(target),
        landmarks=target.astype(np.float32),
        background=_background(rng, settings.width, settings.height),
        scale=rng.uniform(0.9, 1.12),
    )


def _reshape(points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A new face shape: face width, eye spacing, nose length, mouth width and height varied a little."""
    p = points.copy()
    mid = p[27:31, 0].mean()
    p[:17, 0] = mid + (p[:17, 0] - mid) * rng.uniform(0.92, 1.08)
    eyes = list(range(17, 27)) + list(range(36, 48))
    p[eyes, 0] = mid + (p[eyes, 0] - mid) * rng.uniform(0.95, 1.05)
    p[31:36, 1] += rng.uniform(-0.06, 0.06) * IOD
    mouth = list(range(48, 68))
    centre = p[mouth].mean(0)
    p[mouth, 0] = centre[0] + (p[mouth, 0] - centre[0]) * rng.uniform(0.92, 1.08)
    p[mouth, 1] += rng.uniform(-0.05, 0.05) * IOD
    p[:17, 1] += np.clip((p[:17, 1] - EYES_Y) / IOD, 0, None) * rng.uniform(-0.05, 0.05) * IOD
    return _with_cheeks(p)


def _head_mask(points: np.ndarray) -> np.ndarray:
    """A soft head-and-shoulders silhouette around the landmarks."""
    mask = np.zeros((CROP, CROP), np.float32)
    cx, cy = points[27:31, 0].mean(), points[:68, 1].mean()
    cv2.ellipse(mask, (round(cx), round(cy - 0.25 * IOD)), (round(1.75 * IOD), round(2.3 * IOD)), 0, 0, 360, 1.0, -1)
    cv2.ellipse(mask, (round(cx), round(cy + 3.0 * IOD)), (round(2.4 * IOD), round(1.5 * IOD)), 0, 0, 360, 1.0, -1)
    cv2.rectangle(mask, (round(cx - 0.8 * IOD), round(cy)), (round(cx + 0.8 * IOD), round(cy + 2.5 * IOD)), 1.0, -1)
    return cv2.GaussianBlur(mask, (0, 0), 5.0)


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A gradient, a blurred coloured noise, or soft stripes, in colours of its own."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    c1, c2 = rng.uniform(20, 235, 3), rng.uniform(20, 235, 3)
    kind = rng.integers(3)
    if kind == 0:
        angle = rng.uniform(0, 2 * np.pi)
        t = (x * np.cos(angle) + y * np.sin(angle)) / np.hypot(width, height) + 0.5
    elif kind == 1:
        noise = rng.standard_normal((height // 8 + 2, width // 8 + 2)).astype(np.float32)
        t = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
        t = (t - t.min()) / (np.ptp(t) + 1e-6)
    else:
        angle, period = rng.uniform(0, np.pi), rng.uniform(20, 60)
        t = 0.5 + 0.35 * np.sin(2 * np.pi * (x * np.cos(angle) + y * np.sin(angle)) / period)
    image = c1 + np.clip(t, 0, 1)[..., None] * (c2 - c1)
    image += rng.normal(0, 4, (height, width, 3))  # a little texture
    return np.clip(image, 0, 255).astype(np.uint8)


# ---- warps ------------------------------------------------------------------------------------------------


def _border_points(per_side: int) -> np.ndarray:
    t = np.linspace(0, CROP - 1, per_side)
    lo, hi = np.zeros_like(t), np.full_like(t, CROP - 1)
    return np.unique(np.vstack([np.c_[t, lo], np.c_[t, hi], np.c_[lo, t], np.c_[hi, t]]), axis=0)


def _offset_field(points: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """A smooth (CROP, CROP, 2) field through ``offsets`` at ``points``: a thin-plate spline on a coarse grid."""
    from scipy.interpolate import RBFInterpolator

    coarse = np.arange(0, CROP + FIELD_STRIDE, FIELD_STRIDE, dtype=np.float64)
    gx, gy = np.meshgrid(coarse, coarse)
    spline = RBFInterpolator(points.astype(np.float64), offsets.astype(np.float64), kernel="thin_plate_spline")
    field = spline(np.c_[gx.ravel(), gy.ravel()]).reshape(len(coarse), len(coarse), 2).astype(np.float32)
    size = round(len(coarse) * FIELD_STRIDE)
    return np.ascontiguousarray(cv2.resize(field, (size, size), interpolation=cv2.INTER_LINEAR)[:CROP, :CROP])


def _grid() -> np.ndarray:
    gx, gy = np.meshgrid(np.arange(CROP, dtype=np.float32), np.arange(CROP, dtype=np.float32))
    return np.dstack([gx, gy])


def _warp(image: np.ndarray, source: np.ndarray, target: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """Move ``image`` so that its points ``source`` land on ``target`` (float32 result)."""
    points = np.vstack([target, anchors])
    offsets = np.vstack([source - target, np.zeros_like(anchors)])
    maps = _grid() + _offset_field(points, offsets)
    return cv2.remap(image, maps, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101).astype(np.float32)


def _apex_displacement(emotion: str, points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(70, 2) forward displacement of each point at apex, in px, with a little per-subject variation."""
    mid = points[27:31, 0].mean()
    side = np.sign(np.where(np.abs(points[:, 0] - mid) < 2.0, 0.0, points[:, 0] - mid))
    move = np.zeros_like(points)
    for index, outward, down in EXPRESSIONS[emotion]:
        move[index, 0] = outward * side[index]
        move[index, 1] = down
    return move * IOD * rng.uniform(0.9, 1.1)


def _expression_lines(emotion: str, p: np.ndarray) -> np.ndarray:
    """A (CROP, CROP) shading mask of the lines the expression carves at apex (points ``p`` at apex)."""
    mask = np.zeros((CROP, CROP), np.float32)
    mid, u = p[27:31, 0].mean(), IOD
    brow_top = p[17:27, 1].min()

    def line(*xy):
        cv2.polylines(mask, [np.round(np.array(xy, np.float32) * 4).astype(np.int32)], False, 1.0, 2, cv2.LINE_AA, 2)

    if emotion == "anger":  # frown lines between the brows
        for dx in (-0.09, 0.09):
            line((mid + dx * u, p[21, 1] - 0.2 * u), (mid + dx * 0.6 * u, p[21, 1] + 0.2 * u))
    elif emotion in ("surprise", "fear"):  # forehead lines
        count, half = (3, 0.55) if emotion == "surprise" else (2, 0.3)
        for k in range(count):
            yy = brow_top - (0.25 + 0.2 * k) * u
            line((mid - half * u, yy + 0.04 * u), (mid, yy), (mid + half * u, yy + 0.04 * u))
    elif emotion == "sadness":  # the inverted U over the inner brows
        line((mid - 0.2 * u, p[21, 1] - 0.05 * u), (mid - 0.12 * u, p[21, 1] - 0.3 * u), (mid + 0.12 * u, p[22, 1] - 0.3 * u),
             (mid + 0.2 * u, p[22, 1] - 0.05 * u))
    elif emotion == "disgust":  # nose wrinkles and deep nasolabial folds
        for s in (-1, 1):
            for k in range(3):
                yy = p[28, 1] + (k - 1) * 0.1 * u
                line((mid + s * 0.06 * u, yy), (mid + s * 0.2 * u, yy - 0.06 * u))
            line(tuple(p[31 if s < 0 else 35] + (s * 0.1 * u, 0)), tuple(p[48 if s < 0 else 54] + (s * 0.1 * u, 0.05 * u)))
    elif emotion == "happiness":  # nasolabial folds and crow's feet
        for s in (-1, 1):
            wing, corner, eye = p[31 if s < 0 else 35], p[48 if s < 0 else 54], p[36 if s < 0 else 45]
            line(tuple(wing + (s * 0.12 * u, -0.05 * u)), tuple(corner + (s * 0.15 * u, 0.0)),
                 tuple(corner + (s * 0.1 * u, 0.2 * u)))
            for k in (-1, 0, 1):
                line(tuple(eye + (s * 0.12 * u, k * 0.06 * u)), tuple(eye + (s * 0.3 * u, k * 0.12 * u)))
    return cv2.GaussianBlur(mask, (0, 0), 1.2)


# ---- clips ------------------------------------------------------------------------------------------------

_PEOPLE: list[_Subject] = []
_SETTINGS: _Settings | None = None


def _init_worker(people: list[_Subject], settings: _Settings) -> None:
    global _PEOPLE, _SETTINGS
    cv2.setNumThreads(1)
    _PEOPLE, _SETTINGS = people, settings


def _write_clips(job: tuple[Path, int, str]) -> list[Path]:
    """All sentences of one subject showing one emotion: the apex field is solved once for them."""
    out_dir, n, emotion = job
    person, settings = _PEOPLE[n - 1], _SETTINGS
    e = EMOTIONS.index(emotion)
    rng = np.random.default_rng([settings.seed, 1, n, e])
    move = _apex_displacement(emotion, person.landmarks, rng)
    apex = person.landmarks + move
    ring = _ring(person.landmarks)
    points = np.vstack([apex, ring, _border_points(8)])
    offsets = np.vstack([-move, np.zeros((len(points) - len(move), 2), np.float32)])
    field = _offset_field(points, offsets)  # where each apex pixel comes from, relative to itself
    lines = _expression_lines(emotion, apex)

    paths = []
    for k in range(1, settings.sentences + 1):
        clip_rng = np.random.default_rng([settings.seed, 2, n, e, k])
        frames = _render(person, emotion, move, field, lines, settings, clip_rng)
        path = clip_path(out_dir, n, emotion, k)
        _encode(frames, path, settings.fps)
        paths.append(path)
    return paths


def _ring(points: np.ndarray) -> np.ndarray:
    """Fixed points on an ellipse around the face, so that expressions stay on the face."""
    cx, cy = points[27:31, 0].mean(), points[:68, 1].mean()
    angles = np.linspace(0, 2 * np.pi, 20, endpoint=False)
    return np.c_[cx + 1.9 * IOD * np.cos(angles), cy - 0.1 * IOD + 2.4 * IOD * np.sin(angles)].astype(np.float32)


def _render(person, emotion, move, field, lines, settings: _Settings, rng: np.random.Generator) -> np.ndarray:
    """(T, H, W, 3) uint8 frames: the expression grows from neutral to apex while the head drifts."""
    t = np.linspace(0.0, 1.0, settings.n_frames)
    onset = rng.uniform(0.05, 0.3)
    rise = rng.uniform(0.3, 0.5)
    apex = rng.uniform(1.0, 1.3)
    ramp = np.clip((t - onset) / rise, 0, 1)
    intensity = apex * ramp * ramp * (3 - 2 * ramp)  # smoothstep from neutral to apex, then held

    def drift(amplitude):
        f, phase = rng.uniform(0.3, 1.2, 2), rng.uniform(0, 2 * np.pi, 2)
        return amplitude * 0.5 * (np.sin(2 * np.pi * f[0] * t + phase[0]) + np.sin(2 * np.pi * f[1] * t + phase[1]))

    w, h = settings.width, settings.height
    scale = person.scale * h / 240 * (1 + drift(0.03))  # the face keeps its share of the frame
    angle = rng.uniform(-5, 5) + drift(3.0)
    squash = rng.uniform(0.9, 1.0)  # a slight turn of the head
    shift_x = rng.uniform(-0.05, 0.05) * w + drift(5.0)
    shift_y = rng.uniform(-0.04, 0.04) * h + drift(4.0)
    # sensor noise: each frame a different window of one Gaussian field (drawing it anew costs more than the rest)
    noise = rng.standard_normal((h + NOISE_MARGIN, w + NOISE_MARGIN, 3), dtype=np.float32)
    noise *= rng.uniform(2.0, 4.0)
    mouth_alpha = OPEN_MOUTH.get(emotion, 0.0)
    centre = person.landmarks[27:31].mean(0)

    grid = _grid()
    face = person.face.astype(np.float32)
    background = person.background.astype(np.float32)
    frames = np.empty((settings.n_frames, h, w, 3), np.uint8)
    for i, s in enumerate(intensity.astype(np.float32)):
        image = cv2.remap(face, grid + s * field, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
        shade = s * 0.35 * lines
        if mouth_alpha:
            inner = np.round((person.landmarks[INNER_LIPS] + s * move[INNER_LIPS]) * 4).astype(np.int32)
            hole = np.zeros((CROP, CROP), np.float32)
            cv2.fillPoly(hole, [inner], float(mouth_alpha * s), cv2.LINE_AA, 2)
            shade = np.maximum(shade, hole)
        image *= 1 - shade[..., None]

        rot = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), float(angle[i]), float(scale[i]))
        rot[0, :2] *= squash
        rot[:, 2] = (w / 2 + shift_x[i], h / 2 + shift_y[i]) - rot[:, :2] @ centre
        placed = cv2.warpAffine(image, rot, (w, h), flags=cv2.INTER_LINEAR)
        alpha = cv2.warpAffine(person.mask, rot, (w, h), flags=cv2.INTER_LINEAR)[..., None]
        frame = placed - background
        frame *= alpha
        frame += background
        dx, dy = rng.integers(0, NOISE_MARGIN, 2)
        frame += noise[dy : dy + h, dx : dx + w]
        np.clip(frame, 0, 255, out=frame)
        frames[i] = frame
    return frames


def _encode(frames: np.ndarray, path: Path, fps: int, container: str = "avi") -> None:
    """Encode RGB frames to MPEG-4 in AVI (or ``container``) with the ffmpeg that imageio-ffmpeg ships, atomically."""
    import imageio_ffmpeg

    _, h, w, _ = frames.shape
    with atomic_path(path) as tmp:
        cmd = [
            imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(fps), "-i", "-",
            "-c:v", "mpeg4", "-q:v", "3", "-pix_fmt", "yuv420p", "-threads", "1",
            "-fflags", "+bitexact", "-flags", "+bitexact", "-f", container, str(tmp),
        ]  # fmt: skip
        done = subprocess.run(cmd, input=frames.tobytes(), capture_output=True)
        if done.returncode != 0:
            message = done.stderr.decode(errors="replace").strip()
            raise RuntimeError(f"demo: ffmpeg could not write {path}: {message}")

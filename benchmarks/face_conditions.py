"""Face detection and landmarks under real-footage conditions, per condition and backend.

    python benchmarks/face_conditions.py [--heights 240 576]

Scenes are composed from the real photos the demo uses (scikit-image's astronaut, matplotlib's Grace Hopper) in a
720x576 frame at several positions each: one face 30-300 px wide; a group of four; the lower face covered; the head
turned +-15 and +-30 degrees in the image plane; a face cut by the frame edge (a quarter of it outside). The frame
is then stored as the frames stage stores it (``--heights``: lines of the stored JPEG-quality frame; 240 is the
workflow's default) and goes through the faces stage's detection (detector image sized by ``min_face``, the
stage's defaults) and landmarks.

Per condition and backend: detection rate (faces found / faces present; a detection counts when its centre lies in
the face's reference box), landmark error (mean distance to the landmarks dlib gives on the unaltered photo, moved
with the photo, / outer-eye-corner distance; median over found faces) and frames per second (detection +
landmarks, one thread). Backends: dlib HOG; dlib HOG + CNN fallback (the stage's default: CNN only where HOG
finds nothing). face-alignment (FAN, S3FD) needs weights that are not installable offline: reported as not run.

Limits: the whole run under 10 minutes; faces of 40 px and more found at the default frames height (HOG + fallback);
the rows are recorded in benchmarks/out/face_conditions.jsonl; exit 1 when missed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench import Table  # noqa: E402

from video_emotion.faces.backends import DlibBackend, missing_fa_weights  # noqa: E402
from video_emotion.faces.pipeline import DEFAULTS, detect_scale  # noqa: E402
from video_emotion.faces.scenes import compose, photos  # noqa: E402
from video_emotion.faces.track import FaceTracker  # noqa: E402

H, W = 576, 720
POSITIONS = [(260, 250), (420, 300), (360, 200)]


def conditions() -> dict[str, list[list[tuple]]]:
    """Condition -> scenes (each a list of faces for :func:`compose`)."""
    ph = photos()
    single = {f"size {s}px": [[(p, s, c, 0, False)] for p in ph for c in POSITIONS] for s in (30, 40, 60, 80, 120, 200)}
    single["size 300px"] = [[(p, 300, (360, 290), 0, False)] for p in ph]
    out = dict(single)
    out["group of 4 (50-70px)"] = [[(ph[k % 2], 50 + 5 * k, (110, 200 + 20 * k), 0, False),
                                    (ph[(k + 1) % 2], 70 - 5 * k, (290, 330), 0, False),
                                    (ph[k % 2], 60, (460, 180 + 30 * k), 0, False),
                                    (ph[(k + 1) % 2], 65, (630, 360), 0, False)] for k in range(3)]
    out["lower face covered (120px)"] = [[(p, 120, c, 0, True)] for p in ph for c in POSITIONS]
    for angle in (-30, -15, 15, 30):
        out[f"turned {angle:+d} deg (120px)"] = [[(p, 120, c, angle, False)] for p in ph for c in POSITIONS]
    out["cut: 1/4 outside (120px)"] = [[(p, 120, (30, c[1]), 0, False)] for p in ph for c in POSITIONS]
    return out


def stored(frame: np.ndarray, height: int) -> np.ndarray:
    """The frame as the frames stage keeps it: resized to ``height`` lines, through JPEG at its quality."""
    width = max(2, int(W * height / (2 * H) + 0.5) * 2)
    small = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
    ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    return cv2.cvtColor(cv2.imdecode(jpg, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def nme(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean landmark distance / outer-eye-corner distance of the reference."""
    return float(np.linalg.norm(found - truth, axis=-1).mean() / np.linalg.norm(truth[45] - truth[36]))


def run(backend: DlibBackend, scenes: list, height: int, fallback: bool,
        scale: float | None = None) -> tuple[int, int, list[float], float, int]:
    """``(faces found, faces present, landmark errors, seconds, frames)`` of one condition (``scale``: a fixed
    ``detect_scale`` instead of the default)."""
    ratio = height / H
    params = {**DEFAULTS, "detect_scale": scale}
    tracker = FaceTracker(backend, 1, detect_scale(params, backend, ratio),
                          fallback_scale=detect_scale(params, backend, ratio, fallback=True) if fallback else None)
    found = present = 0
    errors, seconds = [], 0.0
    for faces in scenes:
        frame, placed = compose(H, W, faces)
        image = stored(frame, height)
        start = time.process_time()
        tracker.t = -1  # every frame is a scheduled detection frame
        boxes, _ = tracker._find(image)
        marks = backend.landmarks([image] * len(boxes), boxes) if len(boxes) else np.zeros((0, 68, 2))
        seconds += time.process_time() - start
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2 / ratio if len(boxes) else np.zeros((0, 2))
        for face in placed:
            present += 1
            x0, y0, x1, y1 = face.box
            hit = [i for i, (cx, cy) in enumerate(centres) if x0 <= cx <= x1 and y0 <= cy <= y1]
            if hit:
                found += 1
                errors.append(nme(marks[hit[0]] / ratio, face.landmarks))
    return found, present, errors, seconds, len(scenes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heights", type=int, nargs="+", default=[240, 576],
                        help="stored frame heights (the frames stage's frames.height); sizes are run at each")
    parser.add_argument("--detect-scale", type=float, help="a fixed detect_scale (0.5 was the old default)")
    parser.add_argument("--only", default="", help="run only the conditions whose name starts with this")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    start = time.perf_counter()
    backend = DlibBackend(upsample=DEFAULTS["upsample"])
    results, smallest = [], {}
    for height in args.heights:
        for name, scenes in conditions().items():
            if (height != args.heights[0] and not name.startswith("size")) or not name.startswith(args.only):
                continue
            for label, fallback in (("dlib HOG", False), ("dlib HOG + CNN fallback", True)):
                found, present, errors, seconds, frames = run(backend, scenes, height, fallback, args.detect_scale)
                rate = found / present
                results.append((height, name, label, rate, float(np.median(errors)) if errors else float("nan"),
                              frames / seconds))
                if name.startswith("size") and rate == 1.0:
                    size = int(name.split()[1].removesuffix("px"))
                    smallest[(height, label)] = min(size, smallest.get((height, label), size))
    elapsed = time.perf_counter() - start
    print("| frames.height | condition | backend | detection rate | landmark error (NME, median) | frames/s |")
    print("|---|---|---|---|---|---|")
    for height, name, label, rate, err, fps in results:
        print(f"| {height} | {name} | {label} | {rate:.2f} | {err:.3f} | {fps:.2f} |")
    missing = missing_fa_weights("sfd")
    print(f"| - | all | face_alignment (FAN + S3FD) | not run: weights {', '.join(missing)} are not installable "
          "offline | | |" if missing else "| - | all | face_alignment | weights present but not benchmarked here | | |")
    print()
    for (height, label), size in sorted(smallest.items()):
        print(f"smallest face found in every scene, frames.height {height}, {label}: {size} px")
    small_ok = smallest.get((args.heights[0], "dlib HOG + CNN fallback"), 999) <= 40
    table = Table("face_conditions", f"frames heights {args.heights}; dlib, one thread")
    for height, name, label, rate, err, fps in results:
        table.row(f"[{height}] {name}, {label}: detection rate", rate,
                  note=f"landmark error {err:.3f}, {fps:.2f} frames/s")
    table.row("whole run", elapsed, "< 600", ok=elapsed < 600, unit="s")
    table.row(f"smallest face always found at frames.height {args.heights[0]}",
              smallest.get((args.heights[0], "dlib HOG + CNN fallback"), "none"), "<= 40", ok=small_ok, unit="px")
    table.extra(heights=args.heights, detect_scale=args.detect_scale, only=args.only)
    sys.exit(table.finish())

if __name__ == "__main__":
    main()

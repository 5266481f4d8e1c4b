"""Face detector + 68-point landmark backends behind one interface.

Both give the iBUG 68-point landmarks in source pixels:

- ``dlib``: HOG detector and the 68-point shape predictor from face-recognition-models; offline, always there.
- ``face_alignment``: FAN 2D (face-alignment 1.5) with a configurable detector (sfd, blazeface, dlib); used only
  when its weights are already in torch's hub cache (``$TORCH_HOME/hub/checkpoints``): nothing downloads.
- ``auto``: face_alignment when its weights are present, else dlib.

A backend has ``name``, ``versions``, ``detect(image) -> (boxes (N,4), scores (N,))`` and
``landmarks(images, boxes) -> (N,68,2)``, one box per image, batched where the backend can batch. A backend with
``batched = True`` (face_alignment) also has ``detect_batch(images) -> [(boxes, scores), ...]``, and the pipeline
then hands it whole chunks of frames (:class:`~video_emotion.faces.track.ChunkTracker`) instead of one frame at a
time (:class:`~video_emotion.faces.track.FaceTracker`, for dlib).
"""

from __future__ import annotations

import importlib.util
import itertools
import logging
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

# The files face-alignment 1.5 looks for in $TORCH_HOME/hub/checkpoints (the basenames of its download URLs).
FAN_WEIGHTS = "2DFAN4-11f355bf06.pth.tar"
FA_DETECTOR_WEIGHTS = {"sfd": ("s3fd-619a316812.pth",), "blazeface": ("blazeface.pth", "anchors.npy"), "dlib": ()}


def dlib_model_path(name: str = "shape_predictor_68_face_landmarks.dat") -> Path:
    """Path of a model file shipped by face-recognition-models (found without importing the package)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("face-recognition-models is not installed; pip install face-recognition-models==0.3.0")
    path = Path(spec.submodule_search_locations[0]) / "models" / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; reinstall face-recognition-models==0.3.0")
    return path


@lru_cache(maxsize=1)
def load_dlib_models():
    """``(detector, predictor)``: dlib's HOG frontal face detector and the 68-point shape predictor (loaded once)."""
    import dlib

    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(dlib_model_path()))


@lru_cache(maxsize=1)
def load_cnn_detector():
    """dlib's CNN (MMOD) face detector from face-recognition-models (loaded once): slower than HOG, finds partly
    covered faces HOG misses."""
    import dlib

    return dlib.cnn_face_detection_model_v1(str(dlib_model_path("mmod_human_face_detector.dat")))


def hub_checkpoints() -> Path:
    """torch's hub cache folder for downloaded weights, found as ``torch.hub.get_dir()`` finds it ($TORCH_HOME,
    else $XDG_CACHE_HOME/torch, else ~/.cache/torch) without importing torch."""
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "torch")
    return Path(os.path.expanduser(torch_home)) / "hub" / "checkpoints"


def missing_fa_weights(detector: str = "sfd") -> list[str]:
    """The face-alignment weight files (for FAN and ``detector``) that are not in torch's hub cache."""
    if detector not in FA_DETECTOR_WEIGHTS:
        raise ValueError(f"unknown face_alignment detector {detector!r}; choose one of {sorted(FA_DETECTOR_WEIGHTS)}")
    folder = hub_checkpoints()
    return [name for name in (FAN_WEIGHTS, *FA_DETECTOR_WEIGHTS[detector]) if not (folder / name).is_file()]


def _rect_boxes(rects) -> np.ndarray:
    """dlib rectangles as an (N, 4) float32 array of x0, y0, x1, y1."""
    return np.array([[r.left(), r.top(), r.right(), r.bottom()] for r in rects], np.float32).reshape(-1, 4)


def shape_points(shape) -> np.ndarray:
    """The (68, 2) float32 points of a dlib ``full_object_detection``, in one pass over its parts."""
    parts = shape.parts()
    return np.fromiter(itertools.chain.from_iterable((p.x, p.y) for p in parts), np.float32,
                       2 * len(parts)).reshape(-1, 2)


class DlibBackend:
    """dlib HOG detector + 68-point shape predictor; ``upsample`` doubles the image before detection (finds
    faces down to ~40 px instead of ~80 px, at 4x the cost).

    ``min_face`` is the smallest face (px in the image it is given) the detector finds at ``upsample`` 0: the
    pipeline scales each video's detection image so that the smallest face asked for reaches it. ``fallback``
    (``detect_fallback``) is dlib's CNN face detector, for detection frames where HOG finds nothing.
    """

    name = "dlib"
    batched = False  # landmarks frame by frame, each frame's box from the previous frame's landmarks
    min_face = 80  # HOG's 80x80 window

    def __init__(self, upsample: int = 1):
        import dlib

        self.detector, self.predictor = load_dlib_models()
        self.upsample = upsample
        self._rect = dlib.rectangle
        self.versions = {"dlib": dlib.__version__, "models": "face-recognition-models 0.3.0"}

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rects, scores, _ = self.detector.run(image, self.upsample, 0.0)
        return _rect_boxes(rects), np.asarray(scores, np.float32)

    def detect_fallback(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """dlib's CNN (MMOD) detector on ``image`` (no upsampling; it finds faces of ~80 px and more)."""
        found = load_cnn_detector()(np.ascontiguousarray(image), 0)
        return _rect_boxes([d.rect for d in found]), np.array([d.confidence for d in found], np.float32)

    def landmarks(self, images: Sequence[np.ndarray], boxes: np.ndarray) -> np.ndarray:
        out = np.empty((len(images), 68, 2), np.float32)
        rounded = np.rint(np.asarray(boxes, np.float64)).astype(int).tolist()
        for i, (image, (x0, y0, x1, y1)) in enumerate(zip(images, rounded, strict=True)):
            out[i] = shape_points(self.predictor(image, self._rect(x0, y0, x1, y1)))
        return out


class FaceAlignmentBackend:
    """face-alignment's FAN 2D landmarks (batched over frames) and its detector, on ``device``.

    Faces of many frames are cropped the way face-alignment crops them and go through FAN ``batch_size`` at a time
    (its own ``get_landmarks_from_batch`` runs FAN once per frame).
    """

    name = "face_alignment"
    batched = True  # the pipeline sends whole chunks of frames to detect_batch and landmarks
    min_face = 20  # S3FD's smallest anchor is 16 px (not measured here: its weights are not available offline)

    def __init__(self, device: str = "cpu", detector: str = "sfd", batch_size: int = 16):
        missing = missing_fa_weights(detector)
        if missing:
            raise FileNotFoundError(
                f"face-alignment weights {missing} are not in {hub_checkpoints()}; copy them there "
                "(face-alignment 1.5 file names) or use the dlib backend (faces.backend: dlib)")
        import face_alignment
        import torch
        from face_alignment.detection.core import FaceDetector

        kwargs = {}
        if detector == "dlib" and "cuda" in device:  # dlib's CNN detector: the copy face-recognition-models ships
            kwargs["path_to_detector"] = str(dlib_model_path("mmod_human_face_detector.dat"))
        self.fa = face_alignment.FaceAlignment(
            face_alignment.LandmarksType.TWO_D, device=device, face_detector=detector,
            face_detector_kwargs=kwargs, flip_input=False, compile=not device.startswith("cpu"),
            max_batch_size=batch_size)
        self.device, self.batch_size, self.detector_name = device, batch_size, detector
        # sfd and blazeface detect a batch in one pass; the base class (dlib's detector) only raises
        self.batch_detect = (type(self.fa.face_detector).detect_from_batch
                             is not FaceDetector.detect_from_batch)
        self.versions = {"face_alignment": face_alignment.__version__, "torch": torch.__version__,
                         "detector": detector}

    @staticmethod
    def _boxes(found) -> tuple[np.ndarray, np.ndarray]:
        """face-alignment's detections (x0, y0, x1, y1[, score] each) as ``(boxes, scores)``."""
        if len(found) == 0:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        found = np.asarray(found, np.float32).reshape(len(found), -1)
        scores = found[:, 4] if found.shape[1] > 4 else np.ones(len(found), np.float32)
        return found[:, :4], scores.astype(np.float32)

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._boxes(self.fa.face_detector.detect_from_image(image.copy()))

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """``detect`` on equally sized images, in one pass of the detector where it can batch."""
        if not self.batch_detect or len(images) < 2:
            return [self.detect(image) for image in images]
        import torch

        batch = torch.from_numpy(np.stack(images).transpose(0, 3, 1, 2).astype(np.float32))  # RGB, as detect
        with torch.no_grad():
            return [self._boxes(found) for found in self.fa.face_detector.detect_from_batch(batch)]

    def landmarks(self, images: Sequence[np.ndarray], boxes: np.ndarray) -> np.ndarray:
        import torch
        from face_alignment.utils import CENTER_Y_OFFSET, crop, get_preds_fromhm

        reference = self.fa.face_detector.reference_scale
        centers, scales, crops = [], [], []
        for image, (x0, y0, x1, y1) in zip(images, boxes, strict=True):
            center = np.array([(x0 + x1) / 2.0, (y0 + y1) / 2.0 - (y1 - y0) * CENTER_Y_OFFSET], np.float64)
            scale = float(x1 - x0 + y1 - y0) / reference
            centers.append(center)
            scales.append(scale)
            crops.append(crop(image, center, scale).transpose(2, 0, 1))
        out = np.empty((len(images), 68, 2), np.float32)
        with torch.no_grad():
            for start in range(0, len(crops), self.batch_size):
                batch = torch.from_numpy(np.stack(crops[start:start + self.batch_size]).astype(np.float32) / 255.0)
                heatmaps = self.fa.face_alignment_net(batch.to(self.device))
                if isinstance(heatmaps, list):
                    heatmaps = heatmaps[-1]
                heatmaps = heatmaps.float().cpu().numpy()
                for j, hm in enumerate(heatmaps):
                    i = start + j
                    _, pts_img, _ = get_preds_fromhm(hm[None], centers[i], scales[i])
                    out[i] = pts_img.reshape(68, 2)
        return out


def make_backend(name: str = "auto", device: str = "cpu", fa_detector: str = "sfd", batch_size: int = 16,
                 upsample: int = 1):
    """The backend called ``name`` (auto | face_alignment | dlib); ``auto`` takes face_alignment when its
    weights are in torch's hub cache, else dlib, and logs which it took."""
    if name == "auto":
        missing = missing_fa_weights(fa_detector)
        name = "dlib" if missing else "face_alignment"
        log.info("faces backend auto -> %s%s", name, f" (no {', '.join(missing)} in {hub_checkpoints()})"
                 if missing else "")
    if name == "dlib":
        return DlibBackend(upsample=upsample)
    if name == "face_alignment":
        return FaceAlignmentBackend(device=device, detector=fa_detector, batch_size=batch_size)
    raise ValueError(f"unknown faces backend {name!r}; choose auto, face_alignment or dlib")



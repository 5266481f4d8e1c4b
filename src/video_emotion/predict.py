"""The emotion timeline of a new video: a trained checkpoint over a sliding window of clips.

The video goes through the training's own preprocessing, by calling the same code with the settings that travel with
the checkpoint (``ckpt["config"]``): ffmpeg decoding at the configured fps and height
(:func:`video_emotion.frames.iter_frames`), face tracking and alignment (:class:`video_emotion.faces.FacePipeline`),
and the clip normalisation of the clip cache (:func:`video_emotion.clips.normalize_clip`, by the checkpoint's input
convention). Frames stream through:
only one window of aligned crops (plus the face stage's short lookahead) is held at any time, so memory does not grow
with the video's length.

Each window of ``window`` frames (default: the checkpoint's clip length, i.e. exactly the clips evaluation reads)
starting every ``stride`` frames is scored; windows where a face was detected in fewer than the face stage's
``min_detection_rate`` of frames get no probabilities. The overall emotion is the class with the highest mean
probability over the windows with a face, as evaluation averages the probabilities of a video's clips.
"""

from __future__ import annotations

import json
import logging
import os
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from video_emotion.clips import normalize_clip
from video_emotion.faces import DEFAULTS as FACE_DEFAULTS
from video_emotion.faces import FacePipeline
from video_emotion.frames import VideoError, iter_frames, probe
from video_emotion.inference import load_checkpoint, resolve_device
from video_emotion.io import atomic_path, safe_name, write_parquet

log = logging.getLogger(__name__)

BATCH = 8  # windows scored together


def timeline_paths(video: str | os.PathLike, out_dir: str | os.PathLike, name: str | None = None) -> tuple[Path, Path]:
    """``<out_dir>/<name>.timeline.parquet`` and ``.timeline.png``; ``name`` defaults to the video's file-safe stem."""
    stem = name or safe_name(Path(video).stem)
    return Path(out_dir) / f"{stem}.timeline.parquet", Path(out_dir) / f"{stem}.timeline.png"


def window_indices(n_frames: int, clip_len: int) -> np.ndarray:
    """Which of a window's ``n_frames`` frames make the model's clip: evenly spaced, looped when there are fewer."""
    if n_frames >= clip_len:
        return np.linspace(0, n_frames - 1, clip_len).round().astype(int)
    return np.arange(clip_len) % n_frames  # as ClipDataset does for videos shorter than a clip


def sliding_windows(items: Iterable, window: int, stride: int) -> Iterator[tuple[int, list]]:
    """``(start, the window's items)`` every ``stride`` items as they stream in, holding one window at a time; a last
    window ends at the last item, and fewer items than ``window`` make one shorter window."""
    recent: deque = deque(maxlen=window)
    n, last = 0, None
    for n, item in enumerate(items, start=1):
        recent.append(item)
        if n >= window and (n - window) % stride == 0:
            last = n - window
            yield last, list(recent)
    if n and last != max(n - window, 0):
        yield max(n - window, 0), list(recent)


def window_starts(n_frames: int, window: int, stride: int) -> list[int]:
    """The window starts of :func:`sliding_windows` over ``n_frames`` frames."""
    return [start for start, _ in sliding_windows(range(n_frames), window, stride)]


def overall_emotion(timeline: pd.DataFrame, classes: list[str]) -> tuple[str | None, np.ndarray]:
    """The class with the highest mean probability over the windows with a face (None when there is none)."""
    found = timeline[timeline["face_found"]]
    if found.empty:
        return None, np.full(len(classes), np.nan)
    mean = found[[f"p_{c}" for c in classes]].to_numpy(np.float64).mean(0)
    return classes[int(mean.argmax())], mean


FRAMES_KEYS = ("fps", "height")


def _preprocessing(ckpt: dict, checkpoint: Path, overrides: dict | None = None) -> tuple[dict, dict]:
    """The frames and faces settings the model was trained with (from the checkpoint), updated by
    ``overrides`` ``{"frames": {...}, "faces": {...}}``; unknown sections or keys are refused, naming the valid ones."""
    config = ckpt.get("config") or {}
    if "frames" not in config or "faces" not in config:
        raise ValueError(f"{checkpoint} does not record the frames/faces settings it was trained with "
                         "(ckpt['config']['frames'|'faces']); retrain it with this version of video-emotion")
    frames, faces = dict(config["frames"]), dict(config["faces"])
    overrides = overrides or {}
    unknown = set(overrides) - {"frames", "faces"}
    bad_frames = set(overrides.get("frames") or {}) - set(FRAMES_KEYS)
    bad_faces = set(overrides.get("faces") or {}) - set(FACE_DEFAULTS)
    if unknown or bad_frames or bad_faces:
        raise ValueError(f"unknown predict overrides {sorted(unknown | bad_frames | bad_faces)}; valid: frames "
                         f"{list(FRAMES_KEYS)}, faces {sorted(FACE_DEFAULTS)}")
    frames.update(overrides.get("frames") or {})
    faces.update(overrides.get("faces") or {})
    if overrides:
        log.info("predict overrides the checkpoint's settings: %s", json.dumps(overrides, sort_keys=True))
    if str(faces.get("device", "cpu")).startswith("cuda") and not torch.cuda.is_available():
        faces["device"] = "cpu"
    return frames, faces


def _score(model: torch.nn.Module, clips: list[np.ndarray], device: torch.device, norm: dict | None) -> np.ndarray:
    x = normalize_clip(torch.from_numpy(np.stack(clips)).to(device), norm=norm)
    with torch.no_grad():
        return model(x).float().softmax(-1).cpu().numpy()


class Predictor:
    """A checkpoint loaded once, with the preprocessing it was trained with, to score any number of videos.

    ``overrides`` (``{"frames": {...}, "faces": {...}}``) replace the checkpoint's preprocessing settings."""

    def __init__(self, checkpoint: str | os.PathLike, device: str = "auto", overrides: dict | None = None):
        self.checkpoint, self.overrides = Path(checkpoint), overrides or {}
        self.device = resolve_device(device)
        self.model, self.ckpt = load_checkpoint(self.checkpoint, self.device)
        self.frames_cfg, faces_cfg = _preprocessing(self.ckpt, self.checkpoint, overrides)
        ckpt = self.ckpt
        self.trained_on = ckpt.get("dataset") or (ckpt.get("config") or {}).get("dataset") or "an unrecorded dataset"
        log.info("%s: %s trained on %s (fold %s)", checkpoint, ckpt["model_name"], self.trained_on, ckpt.get("fold"))
        if self.trained_on == "demo":
            log.warning("%s was trained on the synthetic demo dataset: its predictions on real faces mean little; "
                        "train on a real dataset (workflow/presets/) for real use", checkpoint)
        self.classes, self.clip_len = [str(c) for c in ckpt["classes"]], int(ckpt["clip_len"])
        self.pipeline = FacePipeline(faces_cfg)
        if int(self.pipeline.params["crop_size"]) != int(ckpt["crop_size"]):
            raise ValueError(f"{checkpoint} was trained on {ckpt['crop_size']} px crops but its faces settings make "
                             f"{self.pipeline.params['crop_size']} px ones; the checkpoint is inconsistent, retrain it")
        log.info("settings used: frames %s; faces %s", json.dumps(self.frames_cfg, sort_keys=True),
                 json.dumps(self.pipeline.params, sort_keys=True))

    def __call__(self, video: str | os.PathLike, out_dir: str | os.PathLike, *, window: int | None = None,
                 stride: int | None = None, name: str | None = None, error: str | None = None) -> pd.DataFrame:
        """Write and return the emotion timeline of ``video``; print its overall emotion (see :func:`predict`).
        With ``error`` (why the video could not be read), write an empty timeline that records it instead."""
        video = Path(video)
        window = int(window or self.clip_len)
        stride = int(stride or max(1, window // 2))
        if window < 1 or stride < 1:
            raise ValueError(f"window ({window}) and stride ({stride}) must be at least 1 frame")
        parquet_path, png_path = timeline_paths(video, out_dir, name)
        fps = float(self.frames_cfg.get("fps") or 0.0)
        starts, spans, probs, found = [], [], [], []
        if error is None:
            if not video.is_file():
                raise FileNotFoundError(f"{video}: no such video file")
            info = probe(video)
            fps = float(self.frames_cfg.get("fps") or info["fps"])
            self._windows(video, info, window, stride, starts, spans, probs, found)
        n = starts[-1] + spans[-1] if starts else 0  # frames decoded: the last window ends at the last one

        classes = self.classes
        nan = np.full(len(classes), np.nan, np.float32)
        p = np.stack([q if q is not None else nan for q in probs]).astype(np.float32) if probs else \
            np.zeros((0, len(classes)), np.float32)
        timeline = pd.DataFrame({
            "time_s": (np.asarray(starts, float) + np.asarray(spans, float) / 2) / (fps or 1.0),
            **{f"p_{c}": p[:, i] for i, c in enumerate(classes)},
            "pred": pd.Categorical([classes[int(q.argmax())] if f else None for q, f in zip(p, found, strict=True)],
                                   categories=classes),
            "face_found": np.asarray(found, bool),
        })
        overall, mean = overall_emotion(timeline, classes)
        meta = {"video": str(video), "checkpoint": str(self.checkpoint), "model": self.ckpt["model_name"],
                "classes": classes, "trained_on": self.trained_on,
                "overall": overall, "overall_probs": [None if np.isnan(v) else float(v) for v in mean],
                "fps": fps, "window": window, "stride": stride, "clip_len": self.clip_len, "n_frames": n,
                "frames": self.frames_cfg, "faces": self.pipeline.params, "backend": self.pipeline.backend.name,
                "overrides": self.overrides, "error": error}
        timeline.attrs.update(meta)
        write_parquet(timeline, parquet_path, meta)
        empty = f"not readable: {error}" if error is not None else "ffmpeg decoded no frames" if n == 0 else None
        title = video.name if empty else f"{video.name}: {overall or 'no face found'}"
        plot_timeline(timeline, classes, png_path, title=title, empty=empty)

        if error is not None:
            message = f"{video}: {error}; nothing predicted"
        elif n == 0:
            message = f"{video}: ffmpeg decoded no frames; nothing to predict"
        elif overall is None:
            message = (f"{video}: no face found (in no window of {window} frames was a face detected in at least "
                       f"{self.pipeline.params['min_detection_rate']:.0%} of the frames); no emotion predicted. "
                       f"Timeline: {parquet_path}")
        else:
            k = int(timeline["face_found"].sum())
            message = (f"{video}: overall emotion {overall} (mean probability {mean.max():.2f} over {k} of "
                       f"{len(timeline)} windows with a face, {n / fps:.1f} s). Timeline: {parquet_path}")
        print(message, flush=True)
        log.info(message)
        return timeline

    def _windows(self, video: Path, info: dict, window: int, stride: int, starts: list, spans: list, probs: list,
                 found: list) -> None:
        """Score every window of ``video``, appending to the lists: start frame, length, probabilities (None without
        a face) and whether a face was found."""
        clips: list[np.ndarray] = []
        pending: list[int] = []  # positions in `starts` waiting for the next batch
        min_share = float(self.pipeline.params["min_detection_rate"])

        def flush() -> None:
            if clips:
                scores = _score(self.model, clips, self.device, self.ckpt.get("input_norm"))
                for i, q in zip(pending, scores, strict=True):
                    probs[i] = q
                clips.clear()
                pending.clear()

        fps = float(self.frames_cfg.get("fps") or info["fps"])
        height = self.frames_cfg.get("height")
        frames = iter_frames(video, fps, height)
        ratio = float(height) / info["height"] if height else 1.0
        faces = ((face.crop, bool(face.detected)) for face in self.pipeline.iter_process(frames, ratio))
        for start, items in sliding_windows(faces, window, stride):
            crops, detected = zip(*items, strict=True)
            starts.append(start)
            spans.append(len(items))
            found.append(float(np.mean(detected)) >= min_share)
            probs.append(None)
            if found[-1]:
                clips.append(np.stack(crops)[window_indices(len(crops), self.clip_len)])
                pending.append(len(starts) - 1)
            if len(clips) >= BATCH:
                flush()
        flush()


def predict(
    video: str | os.PathLike,
    checkpoint: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    window: int | None = None,
    stride: int | None = None,
    device: str = "auto",
    name: str | None = None,
    overrides: dict | None = None,
) -> pd.DataFrame:
    """Write and return the emotion timeline of ``video``; print its overall emotion.

    One row per window: ``time_s`` (the window's centre), ``p_<class>`` (float32, NaN without a face), ``pred``
    (categorical over the classes, missing without a face) and ``face_found``. ``window`` and ``stride`` are in
    frames at the training fps (defaults: the checkpoint's clip length and half of it). The overall emotion and
    the settings used are in the Parquet schema metadata and ``timeline.attrs``. ``overrides``
    (``{"frames": {...}, "faces": {...}}``) replace the checkpoint's preprocessing settings.
    """
    if not Path(video).is_file():
        raise FileNotFoundError(f"{video}: no such video file")
    return Predictor(checkpoint, device, overrides)(video, out_dir, window=window, stride=stride, name=name)


def predict_many(
    videos: list[str | os.PathLike],
    checkpoint: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    names: list[str] | None = None,
    window: int | None = None,
    stride: int | None = None,
    device: str = "auto",
    overrides: dict | None = None,
) -> dict[str, str]:
    """:func:`predict` for many videos in one process: the model and the face models load once. A video that cannot
    be read gets an empty timeline recording why (metadata ``error``), and the others go on. Returns ``{video:
    error}`` of the videos that could not be read."""
    names = names or [None] * len(videos)
    if len(names) != len(videos):
        raise ValueError(f"{len(videos)} videos but {len(names)} names")
    predictor = Predictor(checkpoint, device, overrides)
    failed = {}
    for video, name in zip(videos, names, strict=True):
        try:
            predictor(video, out_dir, window=window, stride=stride, name=name)
        except (VideoError, FileNotFoundError) as err:
            failed[str(video)] = getattr(err, "reason", None) or "no such video file"
            log.error("%s", err)
            predictor(video, out_dir, window=window, stride=stride, name=name, error=failed[str(video)])
    return failed


def plot_timeline(timeline: pd.DataFrame, classes: list[str], path: Path, title: str, empty: str | None = None) -> None:
    """Probability of each class against time; spans without a face shaded grey. A timeline without windows shows
    ``empty`` (why there is none) instead of axes."""
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    from video_emotion.plotting import OKABE_ITO, STYLE

    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(10, 3.8), layout="constrained")
        ax = fig.add_subplot()
        if timeline.empty:
            ax.set_axis_off()
            ax.set_title(title, loc="left")
            ax.text(0.5, 0.5, textwrap.fill(empty or "no windows", 90), ha="center", va="center",
                    transform=ax.transAxes)
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format="png", dpi=120)
            return
        t = timeline["time_s"].to_numpy()
        for i, c in enumerate(classes):
            ax.plot(t, timeline[f"p_{c}"], color=OKABE_ITO[i % len(OKABE_ITO)], lw=2, marker="o", ms=3, label=c)
        step = np.median(np.diff(t)) if len(t) > 1 else 1.0
        for time in t[~timeline["face_found"].to_numpy()]:
            ax.axvspan(time - step / 2, time + step / 2, color="0.85", lw=0)
        handles, _ = ax.get_legend_handles_labels()
        handles.append(Patch(color="0.85", label="no face"))
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
        ax.set_xlabel("Time (s, window centre)")
        ax.set_ylabel("Probability")
        ax.set_ylim(0, 1)
        ax.set_title(title, loc="left")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=120)

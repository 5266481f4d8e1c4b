"""Clips of the HDF5 clip cache for PyTorch: :class:`ClipDataset` reads them, :func:`normalize_clip` turns them into
the model's input.

:class:`ClipDataset` opens the file lazily in each process that reads it (never open, then fork: PyTorch issue
11929) with a chunk cache sized to one clip read. The cache itself (its layout, building it, its index) is
:mod:`video_emotion.cache`, which does not import torch: the cache job starts without it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import torch

from video_emotion.cache import open_cache, read_index
from video_emotion.io import DamagedFileError

# Per-channel normalisation of [0, 1] RGB (the Kinetics statistics used by pytorchvideo's video models).
MEAN = (0.45, 0.45, 0.45)
STD = (0.225, 0.225, 0.225)


@dataclass(frozen=True)
class InputNorm:
    """A model's input convention: pixels in [0, ``scale``] (1 or 255), channels in ``order`` (RGB or BGR), minus
    ``mean``, divided by ``std`` (both per channel, in ``order`` and in units of ``scale``). Weights carry the one
    they were trained with (``models.pretrained.INPUT_NORMS``); models from scratch use the default (MEAN, STD)."""

    mean: tuple[float, float, float] = MEAN
    std: tuple[float, float, float] = STD
    scale: float = 1.0
    order: str = "RGB"

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        object.__setattr__(self, "scale", float(self.scale))
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0 or self.scale not in (1.0, 255.0) \
                or self.order not in ("RGB", "BGR"):
            raise ValueError(f"an input normalisation needs 3 means, 3 positive stds, scale 1 or 255 and order RGB or "
                             f"BGR, got {self}")

    @classmethod
    def of(cls, spec: InputNorm | Mapping | None) -> InputNorm:
        """``spec`` as an InputNorm: one, its dict (``as_dict``, a checkpoint's ``input_norm``) or None (default)."""
        return spec if isinstance(spec, cls) else cls(**spec) if spec else cls()

    def as_dict(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std), "scale": self.scale, "order": self.order}

    def describe(self) -> str:
        """A few words for tables: ``RGB [0, 1], mean (0.45, 0.45, 0.45), std (0.225, 0.225, 0.225)``."""
        def fmt(v: tuple) -> str:
            return "(" + ", ".join(f"{x:g}" for x in v) + ")"
        std = "" if self.std == (1.0, 1.0, 1.0) else f", std {fmt(self.std)}"
        return f"{self.order} [0, {self.scale:g}], mean {fmt(self.mean)}{std}"


def uses_channels_last(device: str | torch.device) -> bool:
    """Whether models (``optimize_for_device``) and their inputs (``normalize_clip``) are channels_last_3d on
    ``device``: on CUDA, where cuDNN runs 3D convolutions faster in it; not on the CPU, where oneDNN ran the
    paper-size res_att training step slower in it than in the plain layout (``benchmarks/models.py
    --channels-last`` measures it)."""
    return torch.device(device).type == "cuda"


def normalize_clip(
    frames: np.ndarray | torch.Tensor, gain: float | torch.Tensor = 1.0, bias: float | torch.Tensor = 0.0,
    norm: InputNorm | Mapping | None = None,
) -> torch.Tensor:
    """uint8 RGB frames (T, H, W, 3) or a batch (B, T, H, W, 3) -> normalised float32 (3, T, H, W) or (B, 3, T, H, W).

    The one normalisation of the project (training, evaluation, predict, report), by the model's input convention
    ``norm`` (:class:`InputNorm`; default ``(x / 255 - MEAN) / STD``): channels in its order, ``(x * scale / 255 -
    mean) / std``, then ``x * gain + bias``. ``gain`` and ``bias`` are numbers or, for a batch, one value per clip
    (the colour jitter that :class:`ClipDataset` draws; ``bias`` in units of the default STD, rescaled to ``norm``'s,
    so that a jitter is the same change of brightness whatever the convention). It runs where ``frames`` are: the
    training loop calls it on the uint8 batch on the training device, so only uint8 frames cross worker processes
    and the host-device link.

    The arithmetic runs on the channels-last frames (one multiply-add per value); the result is a channels-first
    view of that memory, i.e. channels_last_3d, where the models use that layout (CUDA); elsewhere it is copied to
    the plain layout (``uses_channels_last``, ``optimize_for_device``).
    """
    x = torch.as_tensor(frames)
    batched = x.ndim == 5
    if not batched:
        x = x.unsqueeze(0)
    if x.ndim != 5 or x.shape[-1] != 3:
        raise ValueError(f"expected frames (T, H, W, 3) or (B, T, H, W, 3), got {tuple(x.shape)}")
    # Per-clip, per-channel constants in float64, then float32 (as numbers: the same values as in float64 math).
    norm = InputNorm.of(norm)
    if norm.order == "BGR":
        x = x.flip(-1)
    gain = torch.as_tensor(gain, dtype=torch.float64).reshape(-1, 1)
    bias = torch.as_tensor(bias, dtype=torch.float64).reshape(-1, 1)
    mean = torch.tensor(norm.mean, dtype=torch.float64, device=gain.device)
    std = torch.tensor(norm.std, dtype=torch.float64, device=gain.device)
    if norm != InputNorm():  # the jitter's brightness in this convention's units (the default's: as drawn)
        bias = bias * (STD[0] * norm.scale / std)
    scale = (gain * norm.scale / (255 * std)).to(x.device, torch.float32)
    shift = (bias - gain * mean / std).to(x.device, torch.float32)
    shape = (-1, 1, 1, 1, 3)
    y = x.to(torch.float32) * scale.reshape(shape)
    y += shift.reshape(shape)
    y = y.permute(0, 4, 1, 2, 3)
    if not uses_channels_last(y.device):
        y = y.contiguous()
    return y if batched else y[0]


def clip_starts(length: int, clip_len: int, n: int) -> list[int]:
    """``n`` evenly spaced clip starts over a video of ``length`` frames (0 when the video is shorter)."""
    last = max(length - clip_len, 0)
    return [int(round(s)) for s in np.linspace(0, last, n)] if n > 1 else [last // 2]


# How a clip's frames are taken from its video: ``windows``, clip_len consecutive frames (short videos loop);
# ``segments``, the field's sampling for variable-length clips (DFEW, FERV39k, MAFW): the whole video cut into
# clip_len equal segments, one frame from each (random within the segment for training, its centre for evaluation).
SAMPLINGS = ("windows", "segments")


def segment_frames(lengths: np.ndarray, clip_len: int, position: np.ndarray) -> np.ndarray:
    """(B, clip_len) frame offsets: segment ``j`` of a video of ``L`` frames is ``[j L / clip_len, (j + 1) L /
    clip_len)``; its frame is the one at ``position`` (in [0, 1), per clip and segment, (B, clip_len)) within it.
    A video shorter than a clip is stretched, not looped: its frames repeat in order (the nearest frame of each
    segment), so a clip always spans the whole video once."""
    lengths = np.asarray(lengths, np.int64)[:, None]
    at = (np.arange(clip_len)[None, :] + position) * lengths / clip_len
    return np.minimum(at.astype(np.int64), lengths - 1)


def sampling_of(checkpoint: dict) -> str:
    """The clip sampling a checkpoint was trained with (``windows`` for checkpoints that do not say)."""
    return str(checkpoint.get("config", {}).get("train", {}).get("sampling", "windows"))


class ClipDataset(torch.utils.data.Dataset):
    """Clips of the videos in an HDF5 clip cache.

    Item ``i`` is clip ``i % clips_per_video`` of video ``i // clips_per_video``: the uint8 frames
    (clip_len, S, S, 3), the label, the video's position in :attr:`index`, and the clip's colour jitter as a float64
    tensor ``(gain, bias)``. :func:`normalize_clip` turns a batch of them into the model's input:
    ``normalize_clip(frames, jitter[:, 0], jitter[:, 1])``, on the training device. Items stay uint8 (a quarter of
    the float32 bytes) because moving clips between processes, not augmenting them, is what limits the loader.

    With ``sampling="windows"`` a clip is ``clip_len`` consecutive frames: training clips start at a random frame,
    evaluation clips are evenly spaced, videos shorter than a clip loop. With ``"segments"`` a clip takes one frame
    from each of ``clip_len`` equal segments of the whole video (:func:`segment_frames`): at a random place for
    training, at ``(k + 0.5) / clips_per_video`` of each segment for evaluation clip ``k`` (one clip: the centres).
    Training clips also get a random crop (``crop_scale`` to 1 of the side, resized back), a horizontal flip (both
    on the uint8 frames) and a mild brightness/contrast jitter (``jitter``); evaluation clips are unaugmented (gain
    1, bias 0). Randomness comes from ``(seed, epoch, i)`` only, so it does not depend on the workers; call
    :meth:`set_epoch` before each epoch.
    """

    def __init__(
        self,
        h5_path: str | os.PathLike,
        videos: pd.DataFrame | Sequence[str] | None = None,
        clip_len: int = 8,
        train: bool = False,
        clips_per_video: int = 1,
        *,
        crop_scale: float = 0.8,
        jitter: float = 0.1,
        seed: int = 0,
        sampling: str = "windows",
    ):
        if sampling not in SAMPLINGS:
            raise ValueError(f"clip sampling {sampling!r} is not one of {', '.join(SAMPLINGS)}")
        self.h5_path = Path(h5_path)
        index, attrs = read_index(h5_path)
        if isinstance(videos, pd.DataFrame):
            videos = videos["video_id"].tolist()
        if videos is not None:
            missing = set(videos) - set(index["video_id"])
            if missing:
                raise KeyError(f"{len(missing)} video(s) not in {h5_path}, e.g. {sorted(missing)[:3]}")
            index = index.set_index("video_id").loc[list(videos)].reset_index()
        self.index = index.reset_index(drop=True)
        self.classes = attrs["classes"]
        self.crop_size = int(attrs["crop_size"])
        self.clip_len, self.train, self.clips_per_video = int(clip_len), bool(train), int(clips_per_video)
        self.crop_scale, self.jitter, self.seed, self.epoch = crop_scale, jitter, seed, 0
        self.sampling = sampling
        self._starts = self.index["start"].to_numpy()
        self._lengths = self.index["length"].to_numpy()
        self._labels = self.index["label"].to_numpy()
        self._file: h5py.File | None = None
        self._dset: h5py.Dataset | None = None
        self._pid = None
        self._draws: tuple[int, np.ndarray] | None = None  # (epoch, uniforms): _uniforms()
        chunk = int(attrs.get("chunk_frames", clip_len))
        # Enough chunk cache for one clip read: the chunks it spans, plus one (or a short looped video).
        self._rdcc = (math.ceil(max(self.clip_len, chunk) / chunk) + 1) * chunk * self.crop_size ** 2 * 3

    def __len__(self) -> int:
        return len(self.index) * self.clips_per_video

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_file": None, "_dset": None, "_pid": None, "_draws": None}

    def _frames(self) -> h5py.Dataset:
        if self._file is None or self._pid != os.getpid():
            self._file = open_cache(self.h5_path, rdcc_nbytes=self._rdcc)
            self._dset = self._file["frames"]
            self._pid = os.getpid()
        return self._dset

    def read(self, video: int, offsets: np.ndarray) -> np.ndarray:
        """uint8 frames (clip_len, S, S, 3) of ``video`` at frame ``offsets`` (:meth:`clip_frames`)."""
        s0 = int(self._starts[video])
        first, last = int(offsets.min()), int(offsets.max())
        frames = self._frames()
        try:
            span = frames[s0 + first: s0 + last + 1]
        except OSError as e:  # a chunk that cannot be read: the file was cut off or overwritten
            raise DamagedFileError(self.h5_path, e) from e
        if len(span) == self.clip_len and (np.diff(offsets) == 1).all():
            return span
        return span[offsets - first]

    def clip_frames(self, i: int) -> np.ndarray:
        """The frame offsets (clip_len,) of evaluation clip ``i`` in its video (training clips draw their own)."""
        return self._eval_frames(np.array([i]))[0]

    def _eval_frames(self, items: np.ndarray) -> np.ndarray:
        videos, k = np.divmod(items, self.clips_per_video)
        lengths = self._lengths[videos]
        if self.sampling == "segments":
            position = np.broadcast_to(((k + 0.5) / self.clips_per_video)[:, None], (len(items), self.clip_len))
            return segment_frames(lengths, self.clip_len, position)
        start = np.array([clip_starts(int(n), self.clip_len, self.clips_per_video)[j] for n, j in zip(lengths, k, strict=True)],
                         dtype=np.int64).reshape(-1)
        return self._window(start, lengths)

    def _window(self, start: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """(B, clip_len) offsets of windows from ``start``; short videos loop."""
        return (start[:, None] + np.arange(self.clip_len)) % np.asarray(lengths, np.int64)[:, None]

    def draw(self, items: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Where B items come from: their frames' offsets in their videos (B, clip_len), the rows and columns of
        their crops (B, S) (resized back to S and flipped), and their colour jitter (B, 2) ``(gain, bias)``;
        evaluation items take the whole, unflipped frame. The one definition of the draws, for one item
        (``__getitem__``) or a whole batch (``device_data``): item ``i`` gets the same values either way."""
        items = np.asarray(items, dtype=np.int64)
        s, grid = self.crop_size, np.arange(self.crop_size)
        if not self.train:
            whole = np.broadcast_to(grid, (len(items), s))
            return self._eval_frames(items), whole, whole, np.tile([1.0, 0.0], (len(items), 1))
        u = self._uniforms()[items].T
        lengths = self._lengths[items // self.clips_per_video]
        # A random start (windows) or place in each segment (segments); a random crop of crop_scale..1 of the side,
        # resized back to S (nearest neighbour: one gather on uint8), flipped half of the time; then brightness and
        # contrast (about the normalised mean) within +-jitter, applied by normalize_clip on the batch.
        if self.sampling == "segments":
            offsets = segment_frames(lengths, self.clip_len, u[7:].T)
        else:
            offsets = self._window((u[0] * (np.maximum(lengths - self.clip_len, 0) + 1)).astype(np.int64), lengths)
        side = np.round(s * (self.crop_scale + (1 - self.crop_scale) * u[1])).astype(np.int64)
        y0, x0 = ((v * (s - side + 1)).astype(np.int64) for v in u[2:4])
        rows = y0[:, None] + grid * side[:, None] // s
        cols = x0[:, None] + grid * side[:, None] // s
        cols = np.where((u[4] < 0.5)[:, None], cols[:, ::-1], cols)
        brightness, contrast = self.jitter * (2 * u[5:7] - 1)
        return offsets, rows, cols, np.stack([1 + contrast, brightness / STD[0]], axis=1)

    def _uniforms(self) -> np.ndarray:
        """(items, 7) uniforms in [0, 1) of this epoch (7 + clip_len with segment sampling: one per segment), drawn
        for every item at once and kept for the epoch; row ``i`` depends on ``(seed, epoch, i)`` only (a generator
        fills the rows in order)."""
        if self._draws is None or self._draws[0] != self.epoch:
            width = 7 + (self.clip_len if self.sampling == "segments" else 0)
            self._draws = (self.epoch, np.random.default_rng((self.seed, self.epoch)).random((len(self), width)))
        return self._draws[1]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int, torch.Tensor]:
        video = i // self.clips_per_video
        label = int(self._labels[video])
        offsets, rows, cols, jitter = self.draw([i])
        frames = self.read(video, offsets[0])
        if self.train:
            frames = frames.take(rows[0], axis=1).take(cols[0], axis=2)
        return torch.from_numpy(frames), label, video, torch.from_numpy(jitter[0])

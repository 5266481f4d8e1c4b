"""The clip cache held on the training device: clips drawn by indexing, no loader workers.

When a split's uint8 frames fit a memory budget on the device (``data: auto``, the default, on CUDA), training and
evaluation copy them there once (:class:`DeviceClips`) and :class:`DeviceLoader` yields the very batches a
``DataLoader`` over the same :class:`~video_emotion.clips.ClipDataset` would: the same sampler order, the same
draws (``ClipDataset.draw``: start, crop rows and columns, flip, colour jitter, from ``(seed, epoch, i)``), the
frames gathered, cropped, resized and flipped by one indexing operation on the device. Normalisation and colour
jitter then run there too (``normalize_clip``, as for the loader's batches). On the CPU with a fixed seed both paths
give the same training history and predictions, bit for bit (``tests/test_device_data.py``).

Caches that do not fit take the ``DataLoader`` path (:func:`make_loader` chooses).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from video_emotion.clips import ClipDataset

log = logging.getLogger(__name__)

DATA_DEFAULTS = {"data": "auto", "data_budget": 0.5}


def frames_bytes(dataset: ClipDataset) -> int:
    """Bytes of the uint8 frames of every video in ``dataset``."""
    return int(dataset._lengths.sum()) * dataset.crop_size ** 2 * 3


def device_budget(device: torch.device, share: float) -> int:
    """``share`` of the memory that is free on ``device`` now (CUDA), or of the memory available (CPU)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(share * free)
    try:
        import psutil

        return int(share * psutil.virtual_memory().available)
    except ImportError:
        import os

        return int(share * os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def on_device(dataset: ClipDataset, device: torch.device, mode: str = "auto", share: float = 0.5) -> bool:
    """Whether ``dataset`` should live on ``device``: ``mode`` device|loader forces it; ``auto`` says yes on CUDA
    when its frames take at most ``share`` of the free device memory (on the CPU the loader reads from the page
    cache as fast as the model needs, so ``auto`` keeps the loader there)."""
    if mode not in ("auto", "device", "loader"):
        raise ValueError(f"unknown data path {mode!r}; use auto, device or loader")
    if mode != "auto":
        return mode == "device"
    return device.type == "cuda" and frames_bytes(dataset) <= device_budget(device, share)


class DeviceClips:
    """The uint8 frames (N, S, S, 3) of a :class:`ClipDataset`'s videos, copied once onto ``device``."""

    def __init__(self, dataset: ClipDataset, device: torch.device | str):
        self.dataset, self.device = dataset, torch.device(device)
        lengths = dataset._lengths.astype(np.int64)
        self.starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        s = dataset.crop_size
        self.frames = torch.empty((int(lengths.sum()), s, s, 3), dtype=torch.uint8, device=self.device)
        source = dataset._frames()
        for v, (first, n) in enumerate(zip(dataset._starts, lengths, strict=True)):
            block = torch.from_numpy(source[int(first): int(first) + int(n)])
            self.frames[int(self.starts[v]): int(self.starts[v]) + int(n)].copy_(block)

    @property
    def nbytes(self) -> int:
        return self.frames.numel()

    def batch(self, items: Iterable[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Items of the dataset as a collated batch: uint8 frames (B, T, S, S, 3) on the device, labels and video
        positions (int64) and jitter (float64, (B, 2)) on the CPU: what a DataLoader yields for the same items."""
        ds = self.dataset
        items = np.fromiter(items, dtype=np.int64)
        videos = items // ds.clips_per_video
        offsets, rows, cols, jitter = ds.draw(items)  # the whole batch's draws at once
        frame_rows = self.starts[videos][:, None] + offsets
        # The three index arrays cross to the device as one (B, T + 2 S) array.
        index = torch.from_numpy(np.concatenate([frame_rows, rows, cols], axis=1)).to(self.device, non_blocking=True)
        f, r, c = index.split([ds.clip_len, ds.crop_size, ds.crop_size], dim=1)
        # One gather: (B, T, 1, 1) frames x (B, 1, S, 1) rows x (B, 1, 1, S) columns -> (B, T, S, S, 3).
        frames = self.frames[f[:, :, None, None], r[:, None, :, None], c[:, None, None, :]]
        labels = torch.from_numpy(ds._labels[videos].astype(np.int64))
        return frames, labels, torch.from_numpy(videos), torch.from_numpy(jitter)


class DeviceLoader:
    """Batches of a :class:`DeviceClips` in a sampler's order, as ``DataLoader(dataset, batch_size, sampler,
    drop_last)`` would give them; ``.dataset`` and ``len()`` as a DataLoader's."""

    def __init__(self, clips: DeviceClips, batch_size: int, sampler: Sampler | None = None, drop_last: bool = False):
        self.clips, self.dataset = clips, clips.dataset
        self.batch_size, self.sampler, self.drop_last = int(batch_size), sampler, bool(drop_last)

    def _order(self) -> list[int]:
        return list(self.sampler) if self.sampler is not None else list(range(len(self.dataset)))

    def __len__(self) -> int:
        n = len(self.sampler) if self.sampler is not None else len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
        # A DataLoader draws its workers' base seed from torch's generator at every pass; so do we, or the
        # model's own random numbers (dropout) would differ between the two paths from the first epoch on.
        torch.empty((), dtype=torch.int64).random_()
        order = self._order()
        for k in range(len(self)):
            yield self.clips.batch(order[k * self.batch_size: (k + 1) * self.batch_size])


def make_loader(dataset: ClipDataset, device: torch.device, p: dict, *, batch_size: int,
                sampler: Sampler | None = None, drop_last: bool = False) -> DataLoader | DeviceLoader:
    """The data path for ``dataset``: a :class:`DeviceLoader` when it goes on ``device`` (``p["data"]``,
    ``p["data_budget"]``), else a DataLoader with ``p["num_workers"]`` workers. Both yield the same batches."""
    p = {**DATA_DEFAULTS, **p}
    if on_device(dataset, device, p["data"], p["data_budget"]):
        clips = DeviceClips(dataset, device)
        log.info("data on %s: %d videos, %.1f MB of uint8 frames, clips drawn there", device, len(dataset.index),
                 clips.nbytes / 1e6)
        return DeviceLoader(clips, batch_size, sampler, drop_last)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=drop_last,
                      num_workers=p.get("num_workers", 0), pin_memory=device.type == "cuda")

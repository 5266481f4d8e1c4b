"""The device-resident clip path gives the DataLoader's batches, and so the same training and predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from test_cache import make_cache
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from video_emotion.cache import read_index
from video_emotion.clips import ClipDataset
from video_emotion.device_data import DeviceClips, DeviceLoader, make_loader, on_device
from video_emotion.evaluate import evaluate
from video_emotion.train import train

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    # Videos of 7 to 9 frames and 8-frame clips: some clips loop over a short video.
    return make_cache(tmp_path_factory.mktemp("cache"), clip_len=8, subjects=4, n_frames=7)


def batches(loader) -> list[tuple]:
    return [tuple(t.cpu() for t in batch) for batch in loader]


@pytest.mark.parametrize("training", [True, False])
def test_device_batches_equal_the_data_loaders(cache, training):
    index, _ = read_index(cache)
    rows = index[index["subject"] != "0"]
    ds = ClipDataset(cache, rows, 8, train=training, clips_per_video=3, seed=5)
    clips = DeviceClips(ds, "cpu")
    assert clips.nbytes == int(rows["length"].sum()) * 16 * 16 * 3
    for epoch in (0, 1):
        sampler = DistributedSampler(ds, num_replicas=1, rank=0, shuffle=training, seed=5)
        sampler.set_epoch(epoch)
        ds.set_epoch(epoch)
        want = batches(DataLoader(ds, batch_size=5, sampler=sampler, drop_last=training))
        got = batches(DeviceLoader(clips, 5, sampler, drop_last=training))
        assert len(got) == len(want) == len(DeviceLoader(clips, 5, sampler, drop_last=training)) > 2
        for g, w in zip(got, want, strict=True):
            assert [t.dtype for t in g] == [t.dtype for t in w]
            for a, b in zip(g, w, strict=True):
                assert torch.equal(a, b)
    if training:  # the draws differ between epochs (crop, flip, start), so the comparison above can fail
        assert not torch.equal(got[0][0], want[0][0]) or len({tuple(b[2].tolist()) for b in got}) > 1


@pytest.mark.parametrize("training", [True, False])
def test_a_batch_draws_what_its_items_draw_alone(cache, training):
    # The device path draws a whole batch at once, the DataLoader one item at a time: item i gets the same values
    # whatever the batch around it.
    ds = ClipDataset(cache, None, 8, train=training, clips_per_video=4, seed=2)
    rng = np.random.default_rng(0)
    seen = []
    for epoch in (0, 1, 7):
        ds.set_epoch(epoch)
        items = rng.permutation(len(ds))
        start, rows, cols, jitter = ds.draw(items)
        for k, i in enumerate(items):
            alone = ds.draw([i])
            for whole, one in zip((start, rows, cols, jitter), alone, strict=True):
                np.testing.assert_array_equal(whole[k], one[0])
        lengths = ds._lengths[items // ds.clips_per_video]
        assert (start[:, 0] >= 0).all() and (start[:, 0] <= np.maximum(lengths - 8, 0)).all()
        assert rows.min() >= 0 and max(rows.max(), cols.max()) < ds.crop_size
        seen.append((start[np.argsort(items)], cols[np.argsort(items)]))
    flipped = cols[:, 0] > cols[:, -1]
    if training:  # random starts, crops and flips, new each epoch
        assert 0 < flipped.mean() < 1 and len(set(start[:, 0].tolist())) > 1
        assert not np.array_equal(seen[0][1], seen[1][1]) and not np.array_equal(seen[0][0], seen[2][0])
    else:  # the whole frame, unflipped, the same clips every epoch
        assert not flipped.any() and (rows == np.arange(ds.crop_size)).all() and (jitter == [1, 0]).all()
        assert all(np.array_equal(s[0], seen[0][0]) for s in seen)


def test_both_paths_train_and_predict_identically(cache, tmp_path):
    def run(path: str):
        params = {"train": {"epochs": 2, "batch_size": 8, "lr": 3e-3, "seed": 0, "clips_per_video": 2,
                            "data": path},
                  "model_kwargs": {"width": 4, "layers": [1, 1, 1, 1], "heads": 2},
                  "folds": {"val_subjects": 1, "seed": 0}}
        out = tmp_path / path
        train(cache, "res_att", 1, out, params)
        table = evaluate(cache, out / "best.pt", 1, tmp_path / f"{path}.parquet",
                         {"clips_per_video": 2, "data": path})
        history = pd.read_parquet(out / "history.parquet").drop(columns=["seconds", "clips_per_s"])
        return history, table, torch.load(out / "last.pt", weights_only=True)["model"]

    h_loader, p_loader, w_loader = run("loader")
    h_device, p_device, w_device = run("device")
    pd.testing.assert_frame_equal(h_device, h_loader, check_exact=True)
    pd.testing.assert_frame_equal(p_device, p_loader, check_exact=True)
    assert all(torch.equal(w_device[k], w_loader[k]) for k in w_loader)
    assert h_loader["train_loss"].iloc[0] != h_loader["train_loss"].iloc[1]  # it did train


def test_auto_keeps_the_loader_on_the_cpu_and_checks_the_mode(cache):
    ds = ClipDataset(cache, None, 8)
    assert not on_device(ds, torch.device("cpu"))
    assert isinstance(make_loader(ds, torch.device("cpu"), {}, batch_size=4), DataLoader)
    assert isinstance(make_loader(ds, torch.device("cpu"), {"data": "device"}, batch_size=4), DeviceLoader)
    with pytest.raises(ValueError, match="data path"):
        on_device(ds, torch.device("cpu"), "gpu")


def test_looped_short_video_frames_come_from_the_video_itself(cache):
    ds = ClipDataset(cache, None, 8)
    short = int(np.argmin(ds._lengths))
    assert ds._lengths[short] < 8
    frames = DeviceLoader(DeviceClips(ds, "cpu"), 1).clips.batch([short])[0][0].numpy()
    np.testing.assert_array_equal(frames, ds.read(short, ds.clip_frames(short)))

"""The HDF5 clip cache: building it from faces files, and reading clips through ClipDataset."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from video_emotion.cache import build_cache, qc_path, read_index
from video_emotion.clips import MEAN, STD, ClipDataset, clip_starts, normalize_clip, segment_frames
from video_emotion.io import DamagedFileError, write_parquet
from video_emotion.labels import EMOTIONS


def class_frames(label: int, n_frames: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Noisy frames with a bright square whose position depends on the class: learnable from the pixels."""
    frames = rng.integers(0, 60, size=(n_frames, size, size, 3), dtype=np.uint8)
    cell = size // 3
    y, x = divmod(label, 3)
    frames[:, y * cell:(y + 1) * cell, x * cell:(x + 1) * cell] = 220
    return frames


def write_faces(
    root: Path,
    subjects: int = 6,
    per_class: int = 1,
    n_frames: int = 12,
    size: int = 16,
    folds: int = 3,
    rejected: tuple[str, ...] = (),
    seed: int = 0,
) -> tuple[Path, list[Path]]:
    """A manifest and one faces file (+ QC table) per subject in the faces stage's layout; returns their paths."""
    rng = np.random.default_rng(seed)
    rows, faces = [], []
    for s in range(subjects):
        path = root / "faces" / f"s{s}.h5"
        path.parent.mkdir(parents=True, exist_ok=True)
        qc = []
        with h5py.File(path, "w") as f:
            f.attrs.update(backend="test", template="test", crop_size=size, versions="{}")
            for label, emotion in enumerate(EMOTIONS):
                for k in range(per_class):
                    vid = f"s{s}_{emotion}_{k}"
                    rows.append({"video_id": vid, "path": f"{vid}.avi", "subject": str(s), "label": emotion,
                                 "fold": s % folds, "shard": f"s{s}"})
                    if vid in rejected:
                        qc.append({"video_id": vid, "n_frames": 0, "status": "rejected", "reason": "no face found"})
                        continue
                    t = n_frames + (k + label) % 3  # lengths vary a little
                    g = f.create_group(vid)
                    g["crops"] = class_frames(label, t, size, rng)
                    g["detected"] = np.ones(t, bool)
                    qc.append({"video_id": vid, "n_frames": t, "status": "ok", "reason": ""})
        write_parquet(pd.DataFrame(qc), qc_path(path))
        faces.append(path)
    manifest = pd.DataFrame(rows)
    manifest["label"] = pd.Categorical(manifest["label"], categories=list(EMOTIONS))
    write_parquet(manifest, root / "manifest.parquet", metadata={"dataset": "test"})
    return root / "manifest.parquet", faces


def make_cache(root: Path, clip_len: int = 4, **kw) -> Path:
    manifest, faces = write_faces(root, **kw)
    out = root / "cache" / "clips.h5"
    build_cache(manifest, faces, out, {"clip_len": clip_len})
    return out


def test_build_cache_layout_and_skipped(tmp_path):
    manifest, faces = write_faces(tmp_path, subjects=3, rejected=("s1_fear_0",))
    # A video the faces stage never wrote (and no QC row) is skipped too.
    m = pd.read_parquet(manifest)
    extra = pd.DataFrame([{"video_id": "ghost", "path": "g.avi", "subject": "0", "label": "anger", "fold": 0,
                           "shard": "s0"}])
    extra["label"] = pd.Categorical(extra["label"], categories=list(EMOTIONS))
    write_parquet(pd.concat([m, extra], ignore_index=True), manifest)

    out = tmp_path / "cache" / "clips.h5"
    summary = build_cache(manifest, faces, out, {"clip_len": 4})
    assert summary["videos"] == 3 * 6 - 1
    assert {s["video_id"]: s["reason"] for s in summary["skipped"]} == {
        "s1_fear_0": "faces: no face found", "ghost": "not in the faces files"}
    skipped = pd.read_parquet(out.parent / "skipped.parquet")
    assert set(skipped["video_id"]) == {"s1_fear_0", "ghost"} and list(skipped.columns) == [
        "video_id", "subject", "reason"]

    index, attrs = read_index(out)
    assert attrs["classes"] == list(EMOTIONS) and attrs["crop_size"] == 16
    assert list(index.columns) == ["video_id", "label", "subject", "fold", "start", "length"]
    with h5py.File(out, "r") as f:
        frames = f["frames"]
        assert frames.dtype == np.uint8 and frames.shape[1:] == (16, 16, 3)
        assert frames.chunks == (4, 16, 16, 3)
        assert frames.shape[0] == index["length"].sum()
        # Every video's frames are its crops, back to back.
        for row in index.itertuples():
            with h5py.File(tmp_path / "faces" / f"s{row.subject}.h5", "r") as src:
                np.testing.assert_array_equal(frames[row.start:row.start + row.length], src[row.video_id]["crops"])
            assert EMOTIONS[row.label] in row.video_id


def test_frames_and_hash_do_not_depend_on_the_write_blocks(tmp_path, monkeypatch):
    """Videos that straddle write blocks, or span several, land back to back all the same, with the same hash."""
    import video_emotion.cache

    manifest, faces = write_faces(tmp_path, subjects=2, n_frames=11)
    build_cache(manifest, faces, tmp_path / "a.h5", {"clip_len": 4})
    monkeypatch.setattr(video_emotion.cache, "BLOCK_CHUNKS", 1)  # blocks of 4 frames: each video spans 3-4
    build_cache(manifest, faces, tmp_path / "b.h5", {"clip_len": 4})
    index, attrs = read_index(tmp_path / "b.h5")
    assert attrs["content_hash"] == read_index(tmp_path / "a.h5")[1]["content_hash"]
    with h5py.File(tmp_path / "b.h5", "r") as f:
        frames = f["frames"][()]
    assert len(frames) == index["length"].sum() and set(index["length"]) == {11, 12, 13}
    for row in index.itertuples():
        with h5py.File(tmp_path / "faces" / f"s{row.subject}.h5", "r") as src:
            np.testing.assert_array_equal(frames[row.start:row.start + row.length], src[row.video_id]["crops"])


def test_cache_job_does_not_import_torch(tmp_path):
    """The cache job, run as the rule runs it, builds the cache without importing torch or matplotlib: their
    start-up (~2.5 s CPU for torch) would be a large share of the job at a real dataset's size
    (benchmarks/cache_layout.py)."""
    manifest, faces = write_faces(tmp_path, subjects=2)
    out = tmp_path / "cache" / "clips.h5"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "src"),
                                                        os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-X", "importtime", "-m", "video_emotion", "cache", "--manifest", str(manifest),
           "--faces", *map(str, faces), "--out", str(out), "--params", json.dumps({"clip_len": 4})]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert {"video_emotion.cache", "h5py"} <= imported  # the import log covers the job's imports
    assert read_index(out)[0]["video_id"].tolist() == pd.read_parquet(manifest)["video_id"].tolist()
    heavy = sorted(m for m in imported if m.split(".")[0] in ("torch", "matplotlib"))
    assert not heavy, f"the cache job imports {heavy[:5]}"


def test_corrupt_faces_file_names_file_and_keeps_old_cache(tmp_path):
    manifest, faces = write_faces(tmp_path, subjects=2)
    out = tmp_path / "clips.h5"
    build_cache(manifest, faces, out, {"clip_len": 4})
    before = out.read_bytes()
    faces[1].write_bytes(b"not an hdf5 file")
    with pytest.raises(DamagedFileError, match=rf"{faces[1]} is damaged .*snakemake --cores all --forcerun {faces[1]}"):
        build_cache(manifest, faces, out, {"clip_len": 4})
    assert out.read_bytes() == before
    assert not list(tmp_path.glob(".clips.h5*"))  # no temporary left behind


@pytest.mark.parametrize("keep", [0.3, 0.7, 0.98])
def test_truncated_faces_file_is_named_with_the_command_that_rebuilds_it(tmp_path, keep):
    manifest, faces = write_faces(tmp_path, subjects=2, n_frames=40, size=32)
    data = faces[0].read_bytes()
    faces[0].write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(DamagedFileError, match=rf"{faces[0]} is damaged .*--forcerun {faces[0]}$"):
        build_cache(manifest, faces, tmp_path / "clips.h5", {"clip_len": 4})
    assert not (tmp_path / "clips.h5").exists()


@pytest.mark.parametrize("keep", [0.0, 0.01, 0.5, 0.99])
def test_truncated_cache_is_named_with_the_command_that_rebuilds_it(tmp_path, keep):
    out = make_cache(tmp_path, subjects=3, n_frames=20)
    data = out.read_bytes()
    out.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(DamagedFileError, match=rf"{out} is damaged .*--forcerun {out}$"):
        ds = ClipDataset(out, clip_len=4)
        for i in range(len(ds)):
            ds[i]


def test_content_hash_identifies_the_content(tmp_path):
    a = make_cache(tmp_path / "a", subjects=2)
    b = make_cache(tmp_path / "b", subjects=2)  # the same content, written again
    c = make_cache(tmp_path / "c", subjects=2, seed=1)  # other pixels
    d = make_cache(tmp_path / "d", clip_len=5, subjects=2)  # other settings
    hashes = [read_index(x)[1]["content_hash"] for x in (a, b, c, d)]
    assert hashes[0] == hashes[1] and len(set(hashes)) == 3


def test_stale_temporaries_of_a_killed_writer_are_removed_by_the_next_one(tmp_path):
    import os

    manifest, faces = write_faces(tmp_path, subjects=2)
    out = tmp_path / "cache" / "clips.h5"
    out.parent.mkdir()
    stale = out.parent / ".clips.h5.k1ll3d_x.tmp.h5"
    stale.write_bytes(b"half a file")
    os.utime(stale, (0, 0))  # older than this process
    other = out.parent / ".clips.h5.old.h5.k1ll3d_x.tmp.h5"  # another target's
    other.write_bytes(b"x")
    os.utime(other, (0, 0))
    build_cache(manifest, faces, out, {"clip_len": 4})
    assert not stale.exists() and other.exists()


def test_eval_clips_evenly_spaced_and_normalised(tmp_path):
    out = make_cache(tmp_path, subjects=1, n_frames=12)
    ds = ClipDataset(out, clip_len=4, train=False, clips_per_video=3)
    assert len(ds) == 6 * 3
    assert clip_starts(12, 4, 3) == [0, 4, 8] and clip_starts(3, 4, 2) == [0, 0]
    index, _ = read_index(out)
    with h5py.File(out, "r") as f:
        for i in (0, 1, 2, 7):
            frames, y, v, jitter = ds[i]
            assert frames.shape == (4, 16, 16, 3) and frames.dtype == torch.uint8
            assert y == index["label"][v] and v == i // 3 and jitter.tolist() == [1.0, 0.0]
            start = int(index["start"][v]) + int(ds.clip_frames(i)[0])
            assert torch.equal(frames, torch.from_numpy(f["frames"][start:start + 4]))
            x = normalize_clip(frames, *jitter)
            assert x.shape == (3, 4, 16, 16) and x.dtype == torch.float32
            raw = frames.permute(3, 0, 1, 2).float() / 255
            torch.testing.assert_close(x, (raw - MEAN[0]) / STD[0])
    # Evaluation is deterministic.
    assert torch.equal(ds[5][0], ds[5][0])


def test_normalize_batch_equals_each_clip_with_its_jitter():
    rng = np.random.default_rng(0)
    frames = torch.from_numpy(rng.integers(0, 256, size=(5, 4, 6, 6, 3), dtype=np.uint8))
    gain, bias = torch.tensor(rng.uniform(0.9, 1.1, 5)), torch.tensor(rng.uniform(-0.4, 0.4, 5))
    batch = normalize_clip(frames, gain, bias)
    assert batch.shape == (5, 3, 4, 6, 6) and batch.dtype == torch.float32
    assert batch.is_contiguous()  # the plain layout on the CPU (channels_last_3d on CUDA: uses_channels_last)
    for k in range(5):
        one = normalize_clip(frames[k].numpy(), float(gain[k]), float(bias[k]))
        assert torch.equal(batch[k], one)  # bit for bit: batching changes no number
        expected = ((frames[k].permute(3, 0, 1, 2).double() / 255 - MEAN[0]) / STD[0]) * gain[k] + bias[k]
        torch.testing.assert_close(one, expected.float())
    with pytest.raises(ValueError, match="expected frames"):
        normalize_clip(frames[..., :2])


def test_short_video_loops(tmp_path):
    out = make_cache(tmp_path, subjects=1, n_frames=3)
    index, _ = read_index(out)
    v = int(np.flatnonzero(index["length"] == 3)[0])
    for train in (False, True):
        ds = ClipDataset(out, clip_len=8, train=train, clips_per_video=2)
        frames, _, _, _ = ds[2 * v]
        assert frames.shape == (8, 16, 16, 3)
    raw = ClipDataset(out, clip_len=8).read(v, np.arange(8) % 3)
    np.testing.assert_array_equal(raw[:3], raw[3:6])


def test_segment_frames_span_the_whole_clip():
    # 32 frames, 16 segments of 2: centres pick 1, 3, ..., 31; random places stay inside their segment.
    centres = segment_frames([32], 16, np.full((1, 16), 0.5))[0]
    assert centres.tolist() == list(range(1, 32, 2))
    drawn = segment_frames([32, 32], 16, np.random.default_rng(0).random((2, 16)))
    assert ((drawn // 2) == np.arange(16)).all()
    # 8 frames stretched to 16: each frame twice, in order (never looped back to the start).
    short = segment_frames([8], 16, np.full((1, 16), 0.5))[0]
    assert short.tolist() == [i // 2 for i in range(16)]
    # 5 frames: every frame used, in order, none past the end.
    five = segment_frames([5], 16, np.full((1, 16), 0.99))[0]
    assert sorted(set(five.tolist())) == [0, 1, 2, 3, 4] and (np.diff(five) >= 0).all()


def test_segment_sampling_reads_one_frame_per_segment(tmp_path):
    out = make_cache(tmp_path, subjects=1, n_frames=3)
    index, _ = read_index(out)
    with h5py.File(out, "r") as f:
        every = f["frames"][:]
    for v in range(len(index)):
        n, first = int(index["length"][v]), int(index["start"][v])
        ev = ClipDataset(out, clip_len=4, sampling="segments", clips_per_video=1)
        expected = segment_frames([n], 4, np.full((1, 4), 0.5))[0]
        np.testing.assert_array_equal(ev[v][0].numpy(), every[first + expected])
        tr = ClipDataset(out, clip_len=4, train=True, crop_scale=1.0, sampling="segments", seed=3)
        offsets = tr.draw([v])[0][0]
        j = np.arange(4)
        assert (np.floor(j * n / 4) <= offsets).all() and (offsets <= np.ceil((j + 1) * n / 4) - 1).all()
        assert tr.draw([v])[0].tolist() == ClipDataset(out, clip_len=4, train=True, sampling="segments",
                                                       seed=3).draw([v])[0].tolist()  # (seed, epoch, i) only
    with pytest.raises(ValueError, match="sampling"):
        ClipDataset(out, clip_len=4, sampling="uniform")


def test_training_augmentation_seeded_by_epoch_not_workers(tmp_path):
    out = make_cache(tmp_path, subjects=2, n_frames=12)
    ds = ClipDataset(out, clip_len=4, train=True, clips_per_video=2, seed=3)

    def clips() -> torch.Tensor:
        return torch.stack([normalize_clip(x, *jitter) for x, _, _, jitter in (ds[i] for i in range(len(ds)))])

    a = clips()
    ds.set_epoch(1)
    b = clips()
    assert not torch.equal(a, b)  # a new epoch draws new clips
    ds.set_epoch(0)
    # Two worker processes (each opening the file itself) give the very same clips as the main process.
    loader = DataLoader(ds, batch_size=5, num_workers=2, shuffle=False)
    c = torch.cat([normalize_clip(x, jitter[:, 0], jitter[:, 1]) for x, _, _, jitter in loader])
    assert torch.equal(a, c)
    assert a.shape == (24, 3, 4, 16, 16)
    # Jitter is drawn per clip: gains and biases differ, and stay within +-jitter.
    jitter = torch.stack([ds[i][3] for i in range(len(ds))])
    assert jitter[:, 0].unique().numel() > 1 and ((jitter[:, 0] - 1).abs() <= ds.jitter).all()


def test_dataset_is_lazy_and_picklable(tmp_path):
    import pickle

    out = make_cache(tmp_path, subjects=1)
    ds = ClipDataset(out, ["s0_anger_0", "s0_fear_0"], clip_len=4)
    assert ds._file is None  # nothing open until the first read
    ds[0]
    assert ds._file is not None
    copy = pickle.loads(pickle.dumps(ds))
    assert copy._file is None and copy.index["video_id"].tolist() == ["s0_anger_0", "s0_fear_0"]
    with pytest.raises(KeyError, match="not in"):
        ClipDataset(out, ["nope"], clip_len=4)

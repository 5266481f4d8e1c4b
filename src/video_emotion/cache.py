"""The HDF5 clip cache: one file holding every kept video's aligned face crops (reading clips: ``clips``).

Layout of ``clips.h5``::

    frames            uint8 (N, S, S, 3)   all videos back to back, chunked (chunk_frames, S, S, 3)
    index/video_id    str   (V,)           one row per video, in manifest order
    index/label       int64 (V,)           class index into attrs["classes"]
    index/subject     str   (V,)
    index/fold        int64 (V,)           the video's test fold
    index/start       int64 (V,)           first row of the video in `frames`
    index/length      int64 (V,)           number of frames
    attrs: classes (JSON list), crop_size, clip_len, chunk_frames, compression, dataset (the manifest's),
           content_hash (blake2b of the frames' CRC-32, the index and the attrs, computed while writing)

Chunks of ``chunk_frames`` frames (default: one clip length) and no compression were chosen by measurement
(``benchmarks/cache_layout.py``): a random clip then touches at most two chunks, and decoding costs nothing.

This module does not import torch (nor does the ``cache`` command): the cache job pays no start-up for it
(``tests/test_cache.py`` runs the command and checks).
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from video_emotion.io import (
    DamagedFileError,
    atomic_path,
    read_parquet,
    read_parquet_metadata,
    read_table,
    write_parquet,
)

CACHE_DEFAULTS = {"clip_len": 16, "chunk_frames": None, "compression": None}
INDEX_COLUMNS = ("video_id", "label", "subject", "fold", "start", "length")
BLOCK_CHUNKS = 4  # chunks written at a time by build_cache: a few MB, that stay in the CPU cache



def qc_path(faces_h5: str | os.PathLike) -> Path:
    """The per-video QC table written beside a faces file: ``<shard>_qc.parquet``."""
    faces_h5 = Path(faces_h5)
    return faces_h5.with_name(f"{faces_h5.stem}_qc.parquet")


def _scan_faces(face_files: Sequence[str | os.PathLike], files: dict) -> tuple[dict, dict, int | None]:
    """Map video_id -> (faces file, crops dataset) for every video with crops, video_id -> QC reason, and crop size.

    The faces files are opened into ``files`` (path -> h5py.File) and left open for the copy: the caller closes them.
    """
    found: dict[str, tuple[Path, h5py.Dataset]] = {}
    reasons: dict[str, str] = {}
    crop_size = None
    for path in map(Path, face_files):
        qc = qc_path(path)
        if qc.exists():
            for row in read_table(qc, columns=["video_id", "status", "reason"]).to_pylist():  # one per shard: lean
                if row["status"] != "ok":
                    reasons[str(row["video_id"])] = f"faces: {row['reason'] or row['status']}"
        try:
            f = files[path] = h5py.File(path, "r")
            for vid in f:  # names only, and one object opened per video: at 1,000s of videos it counts
                crops = None if vid in reasons else f.get(f"{vid}/crops")
                if crops is None:
                    continue
                if crops.ndim != 4 or crops.shape[1] != crops.shape[2] or crops.shape[3] != 3:
                    raise ValueError(f"/{vid}/crops has shape {crops.shape}, expected (T, S, S, 3)")
                if crop_size is not None and crops.shape[1] != crop_size:
                    raise ValueError(f"/{vid}/crops are {crops.shape[1]} px, other videos are {crop_size} px")
                crop_size = crops.shape[1]
                found[vid] = (path, crops)
        except FileNotFoundError:
            raise
        except (OSError, ValueError, KeyError) as e:
            raise DamagedFileError(path, e) from e
    return found, reasons, crop_size


def _pack(sources: Sequence[tuple[Path, h5py.Dataset]], frames: h5py.Dataset) -> int:
    """Copy the crops of ``sources`` (faces file, crops dataset) back to back into ``frames``; their CRC-32.

    Each video's crops are read straight into one reused buffer and written out in whole chunks of ``frames``
    (whose file has no chunk cache): every byte is copied once in and once out. A fresh array per video and writes
    that straddle chunks cost as much again (``benchmarks/cache_layout.py``).
    """
    block = frames.chunks[0] * BLOCK_CHUNKS
    buf = np.empty((block + max(len(crops) for _, crops in sources), *frames.shape[1:]), np.uint8)
    fill = at = crc = 0

    def write(rows: np.ndarray) -> None:
        nonlocal at, crc
        frames[at:at + len(rows)] = rows
        crc = zlib.crc32(rows, crc)
        at += len(rows)

    for path, crops in sources:
        n = len(crops)
        try:
            # The whole dataset into a view of the buffer: no selections to build, half read_direct's CPU.
            crops.id.read(h5py.h5s.ALL, h5py.h5s.ALL, buf[fill:fill + n])
        except OSError as e:
            raise DamagedFileError(path, e) from e
        fill += n
        if fill >= block:
            done = fill - fill % block
            for start in range(0, done, block):
                write(buf[start:start + block])
            buf[:fill - done] = buf[done:fill]  # the rest of a block waits for the next video
            fill -= done
    if fill:
        write(buf[:fill])
    return crc


def build_cache(
    manifest_path: str | os.PathLike,
    face_files: Sequence[str | os.PathLike],
    out_h5: str | os.PathLike,
    params: dict,
) -> dict:
    """Pack the crops of every manifest video found in ``face_files`` into ``out_h5``; return a summary.

    Videos without crops (rejected upstream) are listed with their reason in the summary and in
    ``skipped.parquet`` beside ``out_h5``. ``params`` is the config's ``cache`` section.
    """
    p = {**CACHE_DEFAULTS, **(params or {})}
    out_h5 = Path(out_h5)
    manifest = read_parquet(manifest_path)
    dataset = read_parquet_metadata(manifest_path).get("dataset", "unknown")
    has_folds = "fold" in manifest  # a manifest with folds (library use); the workflow keeps folds apart
    if not isinstance(manifest["label"].dtype, pd.CategoricalDtype):
        raise ValueError(f"{manifest_path}: 'label' must be categorical over the classes; rerun the manifest rule")
    classes = [str(c) for c in manifest["label"].cat.categories]
    files: dict[Path, h5py.File] = {}  # the faces files, open from the scan to the end of the copy
    try:
        found, reasons, crop_size = _scan_faces(face_files, files)
        kept, skipped = [], []
        for row in manifest.itertuples():
            vid = str(row.video_id)
            if vid in found and len(found[vid][1]) > 0:
                kept.append(row)
            else:
                reason = reasons.get(vid) or ("no frames" if vid in found else "not in the faces files")
                skipped.append({"video_id": vid, "subject": str(row.subject), "reason": reason})
        if not kept:
            raise ValueError(f"no video of {manifest_path} has face crops in {[str(f) for f in face_files]}")
        ids = [str(r.video_id) for r in kept]
        lengths = np.array([len(found[v][1]) for v in ids], dtype=np.int64)
        columns = {
            "video_id": ids,
            "label": np.array([classes.index(str(r.label)) for r in kept], dtype=np.int64),
            "subject": [str(r.subject) for r in kept],
            **({"fold": np.array([int(r.fold) for r in kept], dtype=np.int64)} if has_folds else {}),
            "start": np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64),
            "length": lengths,
        }
        compression = p["compression"] or None
        attrs = {"classes": json.dumps(classes), "crop_size": int(crop_size), "clip_len": int(p["clip_len"]),
                 "chunk_frames": int(p["chunk_frames"] or p["clip_len"]), "compression": str(compression),
                 "dataset": str(dataset)}
        with atomic_path(out_h5) as tmp:
            content_hash = _write(tmp, [found[v] for v in ids], columns, attrs, compression)
    finally:
        for f in files.values():
            f.close()
    write_parquet(pd.DataFrame(skipped, columns=["video_id", "subject", "reason"]), out_h5.with_name("skipped.parquet"))
    n, chunk_frames = int(lengths.sum()), attrs["chunk_frames"]
    return {
        "videos": len(kept), "frames": n, "skipped": skipped, "classes": classes, "crop_size": crop_size,
        "chunks": [min(chunk_frames, n), crop_size, crop_size, 3], "compression": str(compression),
        "bytes": out_h5.stat().st_size, "content_hash": content_hash,
    }


def _write(path: Path, sources: Sequence[tuple[Path, h5py.Dataset]], columns: dict, attrs: dict,
           compression: str | None) -> str:
    """Write the cache file: the frames of ``sources`` back to back, the index ``columns``, the ``attrs`` and the
    content hash, which it returns.

    The content hash (of the frames' CRC-32, the index and the attrs) identifies what training reads: a rebuilt cache
    with the same content keeps its trained models, another content starts them afresh (train.fingerprint). CRC-32
    costs a third of blake2b, whose cost was that of the copy itself; it misses a change once in 2**32, enough to
    tell a rebuilt cache from another.
    """
    n, size, chunk = int(columns["length"].sum()), attrs["crop_size"], attrs["chunk_frames"]
    with h5py.File(path, "w", rdcc_nbytes=0) as out:  # no chunk cache: _pack writes whole chunks
        frames = out.create_dataset("frames", shape=(n, size, size, 3), dtype=np.uint8,
                                    chunks=(min(chunk, n), size, size, 3), compression=compression)
        crc = _pack(sources, frames)
        for name, values in columns.items():
            if isinstance(values, list):  # of strings
                values = np.array(values, dtype=object).astype(h5py.string_dtype())
            out[f"index/{name}"] = values
        digest = hashlib.blake2b(crc.to_bytes(4, "big"), digest_size=16)
        digest.update(json.dumps([{k: np.asarray(v).tolist() for k, v in columns.items()}, attrs],
                                 sort_keys=True).encode())
        out.attrs.update(**attrs, content_hash=digest.hexdigest())
    return digest.hexdigest()


def open_cache(path: str | os.PathLike, **kw) -> h5py.File:
    if not Path(path).is_file():
        raise FileNotFoundError(f"clip cache {path} not found; build it with: snakemake --cores all --until cache")
    try:
        return h5py.File(path, "r", **kw)
    except OSError as e:
        raise DamagedFileError(path, e) from e


def read_index(h5_path: str | os.PathLike, folds: str | os.PathLike | None = None, *,
               need_folds: bool = False) -> tuple[pd.DataFrame, dict]:
    """The cache's index table (one row per video) and its attrs (``classes`` decoded to a list).

    ``folds``: a folds table (video_id, fold; the workflow's ``results/folds.parquet``) that gives the ``fold``
    column; without it the cache's own fold column is used, if it has one (``need_folds``: refuse a cache without).
    """
    with open_cache(h5_path) as f:
        try:
            cols = {c: f["index"][c][()] for c in INDEX_COLUMNS if c in f["index"]}
            attrs = dict(f.attrs)
            f["frames"].shape  # noqa: B018 (a cut-off file may have lost it)
            attrs["classes"] = json.loads(attrs["classes"])
        except (OSError, KeyError, ValueError) as e:
            raise DamagedFileError(h5_path, e) from e
    for c in ("video_id", "subject"):
        cols[c] = [v.decode() if isinstance(v, bytes) else str(v) for v in cols[c]]
    index = pd.DataFrame(cols)
    if folds is not None:
        table = read_parquet(folds, columns=["video_id", "fold"]).set_index("video_id")["fold"]
        index["fold"] = index["video_id"].map(table).fillna(-1).astype(np.int64)
    elif need_folds and "fold" not in index:
        raise ValueError(f"{h5_path} holds no fold assignment; pass the folds table (results/folds.parquet)")
    return index[[c for c in INDEX_COLUMNS if c in index]], attrs

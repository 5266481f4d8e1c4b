"""The HDF5 clip cache: one file holding every kept video's aligned face crops (reading clips: :mod:`video_emotion.clips`).

Layout of ``clips.h5``::

    frames            uint8 (N, S, S, 3)   all videos back to back, chunked (chunk_frames, S, S, 3)
    index/video_id    str   (V,)           one row per video, in manifest order
    index/label       int64 (V,)           class index into attrs["classes"]
    index/subject     str   (V,)
    index/fold        int64 (V,)           the video's test fold
    index/start       int64 (V,)           first row of the video in `frames`
    index/length      int64 (V,)           number of frames
    attrs: classes (JSON list), crop_size, clip_len, chunk_frames, compression, dataset (the manifest's),
           content_hash (blake2b of the frames, index and attrs, computed while writing)

Chunks of ``chunk_frames`` frames (default: one clip length) and no compression were chosen by measurement
(``benchmarks/cache_layout.py``): a random clip then touches at most two chunks, and decoding costs nothing.

This module does not import torch (nor does the ``cache`` command): the cache job pays no start-up for it
(``tests/test_cache.py`` runs the command and checks).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from video_emotion.io import DamagedFileError, atomic_path, read_parquet, read_parquet_metadata, write_parquet

CACHE_DEFAULTS = {"clip_len": 16, "chunk_frames": None, "compression": None}
INDEX_COLUMNS = ("video_id", "label", "subject", "fold", "start", "length")



def qc_path(faces_h5: str | os.PathLike) -> Path:
    """The per-video QC table written beside a faces file: ``<shard>_qc.parquet``."""
    faces_h5 = Path(faces_h5)
    return faces_h5.with_name(f"{faces_h5.stem}_qc.parquet")


def _scan_faces(face_files: Sequence[str | os.PathLike]) -> tuple[dict, dict, int | None]:
    """Map video_id -> (faces file, n_frames) for every video with crops, video_id -> QC reason, and crop size."""
    found: dict[str, tuple[Path, int]] = {}
    reasons: dict[str, str] = {}
    crop_size = None
    for path in map(Path, face_files):
        qc = qc_path(path)
        if qc.exists():
            for row in read_parquet(qc, columns=["video_id", "status", "reason"]).itertuples():
                if row.status != "ok":
                    reasons[str(row.video_id)] = f"faces: {row.reason or row.status}"
        try:
            with h5py.File(path, "r") as f:
                for vid, group in f.items():
                    if vid in reasons or "crops" not in group:
                        continue
                    crops = group["crops"]
                    if crops.ndim != 4 or crops.shape[1] != crops.shape[2] or crops.shape[3] != 3:
                        raise ValueError(f"/{vid}/crops has shape {crops.shape}, expected (T, S, S, 3)")
                    if crop_size is not None and crops.shape[1] != crop_size:
                        raise ValueError(f"/{vid}/crops are {crops.shape[1]} px, other videos are {crop_size} px")
                    crop_size = crops.shape[1]
                    found[vid] = (path, crops.shape[0])
        except FileNotFoundError:
            raise
        except (OSError, ValueError, KeyError) as e:
            raise DamagedFileError(path, e) from e
    return found, reasons, crop_size


def _crops(files: dict, path: Path, video_id: str) -> np.ndarray:
    """The crops of one video, from a faces file kept open in ``files``; a damaged file is named."""
    try:
        if path not in files:
            files[path] = h5py.File(path, "r")
        return files[path][video_id]["crops"][()]
    except (OSError, KeyError) as e:
        raise DamagedFileError(path, e) from e


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
    found, reasons, crop_size = _scan_faces(face_files)

    kept, skipped = [], []
    for row in manifest.itertuples():
        vid = str(row.video_id)
        if vid in found and found[vid][1] > 0:
            kept.append(row)
        else:
            reason = reasons.get(vid) or ("no frames" if vid in found else "not in the faces files")
            skipped.append({"video_id": vid, "subject": str(row.subject), "reason": reason})
    if not kept:
        raise ValueError(f"no video of {manifest_path} has face crops in {[str(f) for f in face_files]}")

    lengths = np.array([found[str(r.video_id)][1] for r in kept], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    chunk_frames = int(p["chunk_frames"] or p["clip_len"])
    compression = p["compression"] or None
    n = int(lengths.sum())
    # The content hash (of every frame, the index and the attrs) identifies what training reads: a rebuilt cache
    # with the same content keeps its trained models, another content starts them afresh (train.fingerprint).
    digest = hashlib.blake2b(digest_size=16)
    with atomic_path(out_h5) as tmp:
        with h5py.File(tmp, "w") as out:
            frames = out.create_dataset(
                "frames", shape=(n, crop_size, crop_size, 3), dtype=np.uint8,
                chunks=(min(chunk_frames, n), crop_size, crop_size, 3), compression=compression,
            )
            open_files: dict[Path, h5py.File] = {}
            try:
                for row, start, length in zip(kept, starts, lengths, strict=True):
                    crops = np.ascontiguousarray(_crops(open_files, found[str(row.video_id)][0], str(row.video_id)))
                    frames[start:start + length] = crops
                    digest.update(crops.data)
            finally:
                for f in open_files.values():
                    f.close()
            index = out.create_group("index")
            columns = {
                "video_id": [str(r.video_id) for r in kept],
                "label": np.array([classes.index(str(r.label)) for r in kept], dtype=np.int64),
                "subject": [str(r.subject) for r in kept],
                **({"fold": np.array([int(r.fold) for r in kept], dtype=np.int64)} if has_folds else {}),
                "start": starts.astype(np.int64),
                "length": lengths,
            }
            str_dtype = h5py.string_dtype()
            for name, values in columns.items():
                index[name] = np.array(values, dtype=object).astype(str_dtype) if isinstance(values, list) else values
            attrs = {"classes": json.dumps(classes), "crop_size": int(crop_size), "clip_len": int(p["clip_len"]),
                     "chunk_frames": chunk_frames, "compression": str(compression), "dataset": str(dataset)}
            digest.update(json.dumps([{k: np.asarray(v).tolist() for k, v in columns.items()}, attrs],
                                     sort_keys=True).encode())
            content_hash = digest.hexdigest()
            out.attrs.update(**attrs, content_hash=content_hash)
    skipped_df = pd.DataFrame(skipped, columns=["video_id", "subject", "reason"])
    write_parquet(skipped_df, out_h5.with_name("skipped.parquet"))
    return {
        "videos": len(kept), "frames": n, "skipped": skipped, "classes": classes, "crop_size": crop_size,
        "chunks": [min(chunk_frames, n), crop_size, crop_size, 3], "compression": str(compression),
        "bytes": out_h5.stat().st_size, "content_hash": content_hash,
    }


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

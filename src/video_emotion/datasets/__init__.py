"""Dataset adapters: a dataset root (or a CSV list) becomes a manifest, one row per video.

Each adapter module (``enterface05``, ``ravdess``, ``crema_d``, ``csv_list``) has ``LABELS`` (the canonical
labels it can produce), ``OPTIONS`` (its ``dataset_options`` and their defaults) and
``scan(root, options) -> (rows, rejected)``. The adapters only read names: they never open a video, so an
unreadable file is found later by the frames stage. :func:`build_manifest` adds what is common to all of them:
the class filter, the canonical label order, unique ids and a stable row order.

Videos whose label is not in the configured ``classes`` are left out and listed in ``rejected`` with the reason
``label <x> is not in classes``, like every other skipped file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import pandas as pd

from video_emotion.datasets import crema_d, csv_list, enterface05, ravdess
from video_emotion.datasets.common import DatasetError, source_path
from video_emotion.io import safe_name
from video_emotion.labels import CANONICAL
from video_emotion.splits import assign_folds, sorted_subjects, subject_key

__all__ = ["ADAPTERS", "DatasetError", "add_folds", "add_shards", "build_manifest", "source_path", "summarize"]

# `demo` is generated in eNTERFACE'05's layout and read by the same adapter.
ADAPTERS: dict[str, ModuleType] = {
    "demo": enterface05,
    "enterface05": enterface05,
    "ravdess": ravdess,
    "crema_d": crema_d,
    "csv": csv_list,
}
BASE_COLUMNS = ["video_id", "path", "subject", "label"]


def build_manifest(
    dataset: str,
    root: str | Path,
    classes: Sequence[str] | None = None,
    options: dict | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """List the videos of ``dataset`` under ``root``: returns (manifest, rejected).

    manifest: ``video_id``, ``path`` (POSIX, relative to ``root``; for csv as written in the CSV), ``subject``
    (str), ``label`` (categorical over ``classes`` in canonical order; None means every label the dataset has),
    then the dataset's own columns. rejected: ``path``, ``reason`` for every file left out.
    Raises :class:`DatasetError` when nothing usable can be listed, naming the problem and its fix.
    """
    adapter = ADAPTERS.get(dataset)
    if adapter is None:
        raise DatasetError(f"unknown dataset {dataset!r}; use one of {', '.join(ADAPTERS)}")
    root = Path(root)
    if not root.exists():
        what = "the CSV list of videos" if dataset == "csv" else f"the {dataset} videos"
        raise DatasetError(f"dataset_root {root} does not exist; set it to {what} (--config dataset_root=PATH)")
    if dataset == "csv" and not root.is_file():
        raise DatasetError(f"dataset_root {root} is a folder; for dataset csv it must be the CSV file itself")
    if dataset != "csv" and not root.is_dir():
        raise DatasetError(f"dataset_root {root} is a file; for dataset {dataset} it must be the dataset folder")

    categories = resolve_classes(dataset, adapter, classes)
    options = dict(options or {})
    unknown = sorted(set(options) - set(adapter.OPTIONS))
    if unknown:
        takes = ", ".join(adapter.OPTIONS) or "none"
        raise DatasetError(f"unknown dataset_options {unknown} for dataset {dataset} (it takes: {takes})")

    rows, rejected = adapter.scan(root, {**adapter.OPTIONS, **options})
    if not rows and not rejected:
        raise DatasetError(f"dataset_root {root} holds no files; point dataset_root at the {dataset} videos")
    kept = [r for r in rows if r["label"] in categories]
    rejected += [{"path": r["path"], "reason": f"label {r['label']} is not in classes"}
                 for r in rows if r["label"] not in categories]
    rejected_df = pd.DataFrame(rejected, columns=["path", "reason"]).sort_values("path", ignore_index=True)
    if not kept:
        raise DatasetError(
            f"found no usable {dataset} videos under {root} ({len(rejected_df)} files skipped: "
            f"{reason_counts(rejected_df)}); check dataset, dataset_root and classes"
        )

    manifest = pd.DataFrame(kept)
    manifest["subject"] = manifest["subject"].astype(str)
    order = sorted(range(len(manifest)), key=lambda i: (
        subject_key(manifest.at[i, "subject"]), CANONICAL.index(manifest.at[i, "label"]), manifest.at[i, "path"]))
    manifest = manifest.iloc[order].reset_index(drop=True)
    manifest["video_id"] = unique_ids(manifest["video_id"])
    manifest["label"] = pd.Categorical(manifest["label"], categories=categories)
    extras = [c for c in manifest.columns if c not in BASE_COLUMNS]
    for c in extras:  # whole numbers with gaps (a sentence number not found) stay integers
        if pd.api.types.is_float_dtype(manifest[c]) and (manifest[c].dropna() % 1 == 0).all():
            manifest[c] = manifest[c].astype("Int64")
    return manifest[BASE_COLUMNS + extras], rejected_df


def resolve_classes(dataset: str, adapter: ModuleType, classes: Sequence[str] | None) -> list[str]:
    """The class set in canonical order; every class must be canonical and occur in the dataset."""
    if classes is None:
        return [c for c in CANONICAL if c in adapter.LABELS]
    unknown = [c for c in classes if c not in CANONICAL]
    if unknown:
        raise DatasetError(f"classes {unknown} are not canonical labels; choose from {', '.join(CANONICAL)}")
    absent = [c for c in classes if c not in adapter.LABELS]
    if absent:
        raise DatasetError(
            f"classes {absent} do not occur in {dataset} (it has {', '.join(adapter.LABELS)}); remove them from classes"
        )
    if len(set(classes)) < 2:
        raise DatasetError(f"classes {list(classes)} must name at least two emotions")
    return [c for c in CANONICAL if c in classes]


def unique_ids(ids: pd.Series) -> list[str]:
    """Keep each id; a repeat (in row order) gets ``_2``, ``_3`` ... appended, skipping ids already taken."""
    taken = set(ids)
    seen: set[str] = set()
    out = []
    for vid in ids:
        new, n = vid, 1
        while new in seen or (n > 1 and new in taken):
            n += 1
            new = f"{vid}_{n}"
        seen.add(new)
        out.append(new)
    return out


def add_folds(manifest: pd.DataFrame, folds_cfg: dict) -> pd.DataFrame:
    """The manifest with an int ``fold`` column: the test fold of each video's subject (-1: never tested).

    ``folds_cfg`` is the config's ``folds`` section: scheme (kfold), k (5), seed (0), fixed (None).
    """
    cfg = {"scheme": "kfold", "k": 5, "seed": 0, "fixed": None, **(folds_cfg or {})}
    folds = assign_folds(manifest["subject"], cfg["scheme"], k=cfg["k"], seed=cfg["seed"], fixed=cfg["fixed"])
    return manifest.assign(fold=manifest["subject"].astype(str).map(folds).astype(int))


def add_shards(manifest: pd.DataFrame, min_videos: int = 1) -> pd.DataFrame:
    """The manifest with a ``shard`` column: the frames and faces stages run one job per shard.

    Whole subjects, in subject order, are packed into a shard until it holds at least ``min_videos`` videos (the
    last may hold fewer). A shard of one subject is named after it (file-safe), one of several ``<first>-<last>``.
    """
    counts = manifest["subject"].astype(str).value_counts()
    groups: list[list[str]] = [[]]
    for subject in sorted_subjects(counts.index):
        if sum(counts[s] for s in groups[-1]) >= min_videos:
            groups.append([])
        groups[-1].append(subject)
    names = {s: safe_name(g[0]) if len(g) == 1 else f"{safe_name(g[0])}-{safe_name(g[-1])}" for g in groups for s in g}
    return manifest.assign(shard=manifest["subject"].astype(str).map(names))


def reason_counts(rejected: pd.DataFrame) -> str:
    counts = rejected["reason"].value_counts()
    return "; ".join(f"{reason}: {n}" for reason, n in counts.items()) or "none"


def summarize(manifest: pd.DataFrame, rejected: pd.DataFrame, max_paths: int = 20) -> str:
    """Counts per subject and emotion, then every skipped file grouped by reason (at most ``max_paths`` each)."""
    subjects = sorted_subjects(manifest["subject"])
    table = pd.crosstab(manifest["subject"].astype(str), manifest["label"], dropna=False)
    table = table.reindex(subjects).fillna(0).astype(int)
    table["total"] = table.sum(axis=1)
    table.loc["total"] = table.sum(axis=0)
    table.index.name, table.columns.name = "subject", None
    lines = [f"{len(manifest)} videos, {len(subjects)} subjects, {len(table.columns) - 1} classes; "
             f"{len(rejected)} files skipped", "", table.to_string()]
    empty = [c for c in table.columns[:-1] if table.at["total", c] == 0]
    if empty:
        lines += ["", f"warning: no videos for class(es) {empty}"]
    if "fold" in manifest:
        per_fold = manifest.groupby("fold")["subject"].agg(lambda s: ", ".join(sorted_subjects(s)))
        lines += ["", "test subjects per fold (-1: never tested, trains in every fold):"]
        lines += [f"  {fold}: {subs}" for fold, subs in per_fold.items()]
    if len(rejected):
        lines += ["", "skipped:"]
        for reason, group in rejected.groupby("reason", sort=True):
            lines.append(f"  {reason} ({len(group)}):")
            lines += [f"    {p}" for p in group["path"].head(max_paths)]
            if len(group) > max_paths:
                lines.append(f"    ... and {len(group) - max_paths} more (see manifest_rejected.parquet)")
    return "\n".join(lines)

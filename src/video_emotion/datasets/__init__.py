"""Dataset adapters: a dataset root (or a CSV list) becomes a manifest, one row per video.

Each adapter module (``enterface05``, ``ravdess``, ``crema_d``, ``csv_list``) has ``LABELS`` (the canonical
labels it can produce), ``OPTIONS`` (its ``dataset_options`` and their defaults) and
``scan(root, options) -> (rows, rejected, skipped)``; a dataset's adapter also has ``DEFECTS``, the files its
maintainers or a paper document as defective (:class:`~video_emotion.datasets.common.Defect`, with the source). The
adapters only read names: they never open a video, so an unreadable file is found later by the frames stage.
:func:`build_manifest` adds what is common to all of them: the documented defects (left out unless the option
``keep_documented_defects``), the class filter, the canonical label order, unique ids and a stable row order.

Three outcomes for a file under the root: a video in the manifest; a video rejected, listed with the reason (a name
that does not parse, a label not in ``classes`` (``label <x> is not in classes``), a documented defect (with its
source) ...); a file that is not a video (audio, text, image, other), counted by kind and never listed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import pandas as pd

from video_emotion.datasets import crema_d, csv_list, dfew, enterface05, ferv39k, mafw, ravdess
from video_emotion.datasets.common import KEEP_DEFECTS, DatasetError, Defect, source_path
from video_emotion.datasets.wild import VIDEO, Source
from video_emotion.io import safe_name
from video_emotion.labels import CANONICAL
from video_emotion.splits import assign_folds, sorted_subjects, subject_key

__all__ = ["ADAPTERS", "REJECTED_COLUMNS", "DatasetError", "add_folds", "add_shards", "build_manifest",
           "clip_source", "not_videos_line", "source_path", "summarize"]

# `demo` is generated in eNTERFACE'05's layout and read by the same adapter.
ADAPTERS: dict[str, ModuleType] = {
    "demo": enterface05,
    "enterface05": enterface05,
    "ravdess": ravdess,
    "crema_d": crema_d,
    "csv": csv_list,
    "dfew": dfew,
    "ferv39k": ferv39k,
    "mafw": mafw,
}
BASE_COLUMNS = ["video_id", "path", "subject", "label"]
REJECTED_COLUMNS = ["path", "reason", "source"]
DEFECT_REASON = "documented defect: "


def build_manifest(
    dataset: str,
    root: str | Path,
    classes: Sequence[str] | None = None,
    options: dict | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """List the videos of ``dataset`` under ``root``: returns (manifest, rejected, skipped).

    manifest: ``video_id``, ``path`` (POSIX, relative to ``root``; for csv as written in the CSV), ``subject``
    (str), ``label`` (categorical over ``classes`` in canonical order; None means every label the dataset has),
    then the dataset's own columns; a dataset with a defect table adds ``defect`` (what is wrong with a documented
    defect kept by ``keep_documented_defects``, else empty). rejected: ``path``, ``reason``, ``source`` (where a
    documented defect is documented, else empty) for every video left out. skipped: the files that are not videos,
    counted by kind (``{"audio": 14884, ...}``).
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
    options = {**adapter.OPTIONS, **options}

    rows, rejected, skipped = adapter.scan(root, options)
    skipped = dict(sorted(Counter(skipped).items(), key=lambda kv: (-kv[1], kv[0])))
    if not rows and not rejected and not skipped:
        raise DatasetError(f"dataset_root {root} holds no files; point dataset_root at the {dataset} videos")
    if hasattr(adapter, "DEFECTS"):
        keep = options[KEEP_DEFECTS]
        if not isinstance(keep, bool):
            raise DatasetError(f"dataset_options.{KEEP_DEFECTS} = {keep!r}; use true or false")
        rows, defective = mark_defects(rows, adapter.DEFECTS, keep)
        rejected += defective
    kept = [r for r in rows if r["label"] in categories]
    rejected += [{"path": r["path"], "reason": f"label {r['label']} is not in classes"}
                 for r in rows if r["label"] not in categories]
    rejected_df = pd.DataFrame([{"source": "", **r} for r in rejected], columns=REJECTED_COLUMNS)
    rejected_df = rejected_df.sort_values("path", ignore_index=True)
    if not kept:
        raise DatasetError(
            f"found no usable {dataset} videos under {root} ({len(rejected_df)} videos rejected: "
            f"{reason_counts(rejected_df)}; {not_videos_line(skipped)}); check dataset, dataset_root and classes"
        )

    manifest = pd.DataFrame(kept)
    manifest["subject"] = manifest["subject"].astype(str)
    keys = list(zip(map(subject_key, manifest["subject"]), map(CANONICAL.index, manifest["label"]), manifest["path"],
                    strict=True))
    order = sorted(range(len(manifest)), key=keys.__getitem__)
    manifest = manifest.iloc[order].reset_index(drop=True)
    manifest["video_id"] = unique_ids(manifest["video_id"])
    manifest["label"] = pd.Categorical(manifest["label"], categories=categories)
    extras = [c for c in manifest.columns if c not in BASE_COLUMNS]
    for c in extras:  # whole numbers with gaps (a sentence number not found) stay integers
        if pd.api.types.is_float_dtype(manifest[c]) and (manifest[c].dropna() % 1 == 0).all():
            manifest[c] = manifest[c].astype("Int64")
    return manifest[BASE_COLUMNS + extras], rejected_df, skipped


def clip_source(dataset: str, options: dict | None = None) -> Source:
    """What the dataset's clips are, as configured: videos (the frames stage decodes them), or folders of frames
    (read as they are by the faces stage), and whether those frames are already aligned face crops."""
    adapter = ADAPTERS.get(dataset)
    if adapter is None or not hasattr(adapter, "source"):
        return Source(VIDEO, False, "")
    return adapter.source({**adapter.OPTIONS, **(options or {})})


def mark_defects(rows: list[dict], defects: Sequence[Defect], keep: bool) -> tuple[list[dict], list[dict]]:
    """Rows with a ``defect`` column (the problem of a documented defect, else empty) and the rejections: every
    documented defect, with its reason and source, unless ``keep``."""
    out, rejected = [], []
    for row in rows:
        defect = next((d for d in defects if d.matches(row)), None)
        if defect is not None and not keep:
            rejected.append({"path": row["path"], "reason": DEFECT_REASON + defect.problem, "source": defect.source})
        else:
            out.append({**row, "defect": defect.problem if defect else ""})
    return out, rejected


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

    ``folds_cfg`` is the config's ``folds`` section: scheme (kfold), k (5), seed (0), fixed (None). Scheme
    ``official`` takes the folds of the dataset's official split files (the manifest's ``official_fold``).
    """
    cfg = {"scheme": "kfold", "k": 5, "seed": 0, "fixed": None, **(folds_cfg or {})}
    if cfg["scheme"] == "official":
        if "official_fold" not in manifest:
            official = ", ".join(name for name, a in ADAPTERS.items() if hasattr(a, "source"))
            raise DatasetError(f"folds.scheme official takes the folds of a dataset's official split files ({official});"
                               " this manifest has none: use kfold, loso or fixed")
        return manifest.assign(fold=manifest["official_fold"].astype(int))
    folds = assign_folds(manifest["subject"], cfg["scheme"], k=cfg["k"], seed=cfg["seed"], fixed=cfg["fixed"])
    return manifest.assign(fold=manifest["subject"].astype(str).map(folds).astype(int))


def add_shards(manifest: pd.DataFrame, min_videos: int = 1) -> pd.DataFrame:
    """The manifest with a ``shard`` column: the frames and faces stages run one job per shard.

    Whole subjects, in subject order, are packed into a shard until it holds at least ``min_videos`` videos (the
    last may hold fewer). A shard of one subject is named after it (file-safe), one of several ``<first>-<last>``.
    """
    counts = manifest["subject"].astype(str).value_counts().to_dict()
    groups: list[list[str]] = [[]]
    size = 0
    for subject in sorted_subjects(counts):
        if size >= min_videos:
            groups.append([])
            size = 0
        groups[-1].append(subject)
        size += counts[subject]
    names = {s: safe_name(g[0]) if len(g) == 1 else f"{safe_name(g[0])}-{safe_name(g[-1])}" for g in groups for s in g}
    return manifest.assign(shard=manifest["subject"].astype(str).map(names))


def reason_counts(rejected: pd.DataFrame) -> str:
    counts = rejected["reason"].value_counts()
    return "; ".join(f"{reason}: {n}" for reason, n in counts.items()) or "none"


def not_videos_line(skipped: dict[str, int] | None) -> str:
    """The one line that accounts for the files that are not videos: ``not videos, skipped: 14884 audio, 2 text``."""
    counts = ", ".join(f"{n} {kind}" for kind, n in (skipped or {}).items() if n)
    return f"not videos, skipped: {counts or 'none'}"


def summarize(manifest: pd.DataFrame, rejected: pd.DataFrame, skipped: dict[str, int] | None = None,
              max_paths: int = 20) -> str:
    """Counts per subject and emotion; the files that are not videos, by kind, in one line; the rejected videos
    grouped by reason (at most ``max_paths`` each); the documented defects apart, excluded or kept, with their
    source."""
    subjects = sorted_subjects(manifest["subject"])
    clips = not manifest["subject"].astype(str).duplicated().any()  # no subject ids: every clip its own subject
    if clips and "official_fold" in manifest:  # rows: the official test folds (-1: training only)
        table = pd.crosstab(manifest["official_fold"], manifest["label"], dropna=False)
        table.index = [f"fold {f}" if f >= 0 else "train only" for f in table.index]
        table.index.name = "test fold"
    else:
        table = pd.crosstab(manifest["subject"].astype(str), manifest["label"], dropna=False)
        table = table.reindex(subjects).fillna(0).astype(int)
        table.index.name = "subject"
    table["total"] = table.sum(axis=1)
    table.loc["total"] = table.sum(axis=0)
    table.columns.name = None
    defect = rejected["source"].fillna("") != "" if "source" in rejected else rejected["path"].isna()
    excluded, refused = rejected[defect], rejected[~defect]
    kept = manifest[manifest["defect"] != ""] if "defect" in manifest else manifest.iloc[:0]
    who = "no subject ids" if clips and "official_fold" in manifest else f"{len(subjects)} subjects"
    lines = [f"{len(manifest)} videos, {who}, {len(table.columns) - 1} classes; "
             f"{len(refused)} rejected; {len(excluded)} documented defects excluded, {len(kept)} kept",
             not_videos_line(skipped), "", table.to_string()]
    empty = [c for c in table.columns[:-1] if table.at["total", c] == 0]
    if empty:
        lines += ["", f"warning: no videos for class(es) {empty}"]
    if "fold" in manifest and not clips:
        per_fold = manifest.groupby("fold")["subject"].agg(lambda s: ", ".join(sorted_subjects(s)))
        lines += ["", "test subjects per fold (-1: never tested, trains in every fold):"]
        lines += [f"  {fold}: {subs}" for fold, subs in per_fold.items()]
    if len(refused):
        lines += ["", "rejected:"]
        for reason, group in refused.groupby("reason", sort=True):
            lines.append(f"  {reason} ({len(group)}):")
            lines += [f"    {p}" for p in group["path"].head(max_paths)]
            if len(group) > max_paths:
                lines.append(f"    ... and {len(group) - max_paths} more (see manifest_rejected.parquet)")
    keepable = excluded["reason"].str.startswith(DEFECT_REASON)
    for rows, header in ((excluded[keepable], f"documented defects, excluded (dataset_options: {{{KEEP_DEFECTS}: "
                                               "true} keeps them):"),
                         (excluded[~keepable], "rejected as the dataset's documentation explains:")):
        if len(rows):
            lines += ["", header]
            lines += [f"  {r.path}: {r.reason.removeprefix(DEFECT_REASON)} [{r.source}]" for r in rows.itertuples()]
    if len(kept):
        lines += ["", f"documented defects, kept (dataset_options.{KEEP_DEFECTS}):"]
        lines += [f"  {r.path}: {r.defect}" for r in kept.itertuples()]
    return "\n".join(lines)

"""A user's own list of videos: a CSV file with ``path``, ``label`` and ``subject`` columns.

``path`` is relative to the CSV file's folder or absolute; ``label`` is a canonical emotion name or a common
alias (``angry``, ``happy``, ``sad``, ``an``, ``HAP`` ...); ``subject`` is any non-empty text. An optional
``video_id`` column gives the ids (``[A-Za-z0-9_.-]+``); without it the id is the file name without extension.
Every other column is kept in the manifest as text. Rows whose file does not exist, or with an empty path or
subject, are skipped with the line number named; a label that is not an emotion stops the run.

Option ``columns`` maps the required names to yours, e.g. ``{path: file, label: emotion, subject: speaker}``.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path, PurePath

import pandas as pd

from video_emotion.datasets.common import DatasetError, canonical_label, reject, source_path
from video_emotion.io import safe_name
from video_emotion.labels import CANONICAL

LABELS = CANONICAL
OPTIONS: dict = {"columns": {}}
REQUIRED = ("path", "label", "subject")
SAFE_ID = re.compile(r"^[A-Za-z0-9_.-]+$")


def scan(root: Path, options: dict) -> tuple[list[dict], list[dict], Counter]:
    columns = options["columns"] or {}
    if not isinstance(columns, dict) or not set(columns) <= set(REQUIRED):
        raise DatasetError(
            f"dataset_options.columns = {columns!r}; map some of {list(REQUIRED)} to your column names, "
            "e.g. {path: file, label: emotion}"
        )
    try:
        table = pd.read_csv(root, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DatasetError(f"cannot read the video list {root} as CSV ({err}); fix the file") from None
    table = table.rename(columns={v: k for k, v in columns.items()})
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise DatasetError(
            f"{root} lacks column(s) {missing}; a video list needs {', '.join(REQUIRED)} "
            f"(found: {list(table.columns)}); rename the header or set dataset_options.columns"
        )
    unknown = sorted({v for v in table["label"] if canonical_label(v) is None})
    if unknown:
        raise DatasetError(
            f"{root}: label(s) {unknown[:10]} are not emotions; use one of {', '.join(CANONICAL)} "
            "(or an alias such as angry, happy, sad), or drop those rows"
        )
    extras = [c for c in table.columns if c not in (*REQUIRED, "video_id")]
    rows, rejected = [], []
    for line, rec in enumerate(table.to_dict("records"), start=2):
        path = PurePath(rec["path"].strip()).as_posix() if rec["path"].strip() else ""
        if not path:
            rejected.append(reject(f"{root.name}:{line}", "empty path"))
            continue
        if not rec["subject"].strip():
            rejected.append(reject(path, f"empty subject (line {line})"))
            continue
        if not source_path(root, path).is_file():
            rejected.append(reject(path, f"file not found (line {line})"))
            continue
        video_id = (rec.get("video_id") or "").strip() or safe_name(PurePath(path).stem)
        if not SAFE_ID.match(video_id):
            raise DatasetError(
                f"{root} line {line}: video_id {video_id!r} may only hold letters, digits, '_', '.' and '-'; "
                "fix it or drop the video_id column"
            )
        rows.append({"video_id": video_id, "path": path, "subject": rec["subject"].strip(),
                     "label": canonical_label(rec["label"]), **{c: rec[c] for c in extras}})
    return rows, rejected, Counter()  # a list names its videos: nothing to skip by kind

"""What the in-the-wild sets (DFEW, FERV39k, MAFW) share: official split files, clips given as folders of face frames
(or as videos), and no subject ids.

Their adapters read the split files as the maintainers distribute them, never the folders: a clip is listed by a
split file, found (or not) where its frames or video should be, and gets the official test fold of the file that
tests it. Each clip is its own "subject" (``subject`` = ``video_id``), so that everything keyed on subjects
(folds, inner validation, intervals, paired tests) works on clips: intervals and paired tests then resample videos.

The split files are licensed with the data and never ship with this project; tests build trees in their formats
(``datasets.placeholder``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from video_emotion.datasets.common import DatasetError, reject
from video_emotion.io import safe_name
from video_emotion.splits import TRAIN_ONLY

# Where a clip lives: a folder of frames (face crops, or full frames) or a video file.
FRAMES, VIDEO = "frames", "video"


@dataclass(frozen=True)
class Source:
    """What a dataset version gives: ``kind`` frames or video; ``aligned``: frames that are already face crops
    (the faces stage takes them as they are unless ``faces.aligned: false``); ``folder``: under the root."""

    kind: str
    aligned: bool
    folder: str


@dataclass(frozen=True)
class Listed:
    """One line of a split file: the clip as the file names it, its label as written, the file's set (0-based: the
    test fold it stands for), whether it is a test list, and where it was read (``file:line``, for messages)."""

    clip: str
    label: str
    split: int
    test: bool
    where: str


def read_lines(path: Path, expected: str) -> list[tuple[int, str]]:
    """The non-empty lines of a split file as (line number, text), CRLF and a byte-order mark removed. A file that
    is missing or not text stops the run with one line naming it and the format it should have."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise DatasetError(f"split file {path} is missing; expected {expected} (dataset_options.splits names "
                           "a renamed split folder)") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(f"cannot read split file {path} ({err}); expected {expected}") from None
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def parse_pairs(path: Path, split: int, test: bool, expected: str, sep: str | None = None,
                header: str | None = None) -> list[Listed]:
    """A split file of ``clip<sep>label`` lines (``sep`` None: any white space), after an optional header line.
    A line that is not two fields stops the run naming the file, the line and the format."""
    lines = read_lines(path, expected)
    if header is not None:
        if not lines or lines[0][1].replace(" ", "").lower() != header:
            got = lines[0][1][:60] if lines else "an empty file"
            raise DatasetError(f"split file {path} starts with {got!r}, not the header {header!r}; expected {expected}")
        lines = lines[1:]
    out, name = [], "/".join(path.parts[-2:])
    for n, line in lines:
        fields = [f.strip() for f in (line.split(sep) if sep else line.split())]
        if len(fields) != 2 or not all(fields):
            raise DatasetError(f"split file {path} line {n} is {line[:60]!r}; expected {expected}")
        out.append(Listed(fields[0], fields[1], split, test, f"{name}:{n}"))
    return out


def official_folds(listed: Iterable[Listed], name: str) -> dict[str, tuple[Listed, int]]:
    """Each clip with its test fold: the set of the test list that names it (``TRAIN_ONLY`` for a clip in training
    lists only). A clip tested in two sets, trained in the set that tests it, or given two labels stops the run
    naming it: the split files are not the official ones."""
    listed = list(listed)
    tests: dict[str, Listed] = {}
    for item in listed:
        if item.test:
            seen = tests.setdefault(item.clip, item)
            if seen.split != item.split:
                raise DatasetError(f"{name} split files test clip {item.clip} in two sets ({seen.where}, "
                                   f"{item.where}); use the official split files")
    clips: dict[str, tuple[Listed, int]] = {}
    for item in listed:
        tested = tests.get(item.clip)
        if not item.test and tested is not None and tested.split == item.split:
            raise DatasetError(f"{name} clip {item.clip} is in both the training list ({item.where}) and the test "
                               f"list ({tested.where}) of set {item.split + 1}; use the official split files")
        seen = clips.setdefault(item.clip, (tested or item, TRAIN_ONLY if tested is None else tested.split))[0]
        if seen.label != item.label:
            raise DatasetError(f"{name} split files give clip {item.clip} two labels ({seen.label} at {seen.where}, "
                               f"{item.label} at {item.where}); use the official split files")
    return clips


def clip_rows(
    root: Path,
    clips: dict[str, tuple[Listed, int]],
    labels: dict[str, str],
    locate: Callable[[str], str],
    source: Source,
    missing: tuple[str, str] = ("", ""),
) -> tuple[list[dict], list[dict]]:
    """Manifest rows and rejections for the listed ``clips``.

    ``labels`` maps the dataset's label names (as written in its split files) to canonical ones: any other label is
    rejected. ``locate(clip)`` is the clip's path relative to ``root`` (a frame folder, or a video for
    ``source.kind`` video); a clip whose path is absent is rejected with ``missing`` = (reason, source) when the
    dataset documents why, else a plain reason. Row order: the split files'.
    """
    rows, rejected = [], []
    for clip, (item, fold) in clips.items():
        path = locate(clip)
        label = labels.get(item.label)
        if label is None:
            rejected.append(reject(path, f"label {item.label} ({item.where}) is not one of the dataset's "
                                         f"{', '.join(labels)}"))
            continue
        if not (root / path).exists():
            what = "frame folder" if source.kind == FRAMES else "video"
            reason, doc = missing
            rejected.append({"path": path, "reason": reason or f"{what} {path} is missing (listed at {item.where})",
                             "source": doc})
            continue
        vid = safe_name(Path(clip).stem if clip.endswith(".mp4") else clip)
        rows.append({"video_id": vid, "path": path, "subject": vid, "label": label, "official_fold": fold})
    return rows, rejected


def check_options(options: dict, versions: dict[str, Source], name: str) -> Source:
    """The dataset version ``options["frames"]`` names (one of ``versions``), or a one-line error listing them."""
    version = options["frames"]
    if version not in versions:
        raise DatasetError(f"dataset_options.frames = {version!r} is not a {name} version; use one of "
                           f"{', '.join(versions)}")
    if not isinstance(options["splits"], str) or not options["splits"]:
        raise DatasetError(f"dataset_options.splits = {options['splits']!r}; give the split folder under the "
                           f"dataset root")
    return versions[version]


COMPOUND = re.compile(r"[,;+&/|_]")


def refuse_compound(listed: Iterable[Listed], known: Iterable[str], name: str) -> None:
    """Split files of multi-label (compound) emotions stop the run: multi-label training is not supported."""
    known = {k.lower() for k in known}
    for item in listed:
        parts = [p for p in COMPOUND.split(item.label.lower()) if p]
        if len(parts) > 1 and all(p in known for p in parts):
            raise DatasetError(f"{name} label {item.label!r} ({item.where}) is a compound (multi-label) emotion: "
                               "multi-label training is not supported; use the single-label split files")

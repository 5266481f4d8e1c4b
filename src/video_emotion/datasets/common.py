"""What every dataset adapter shares: the error type, the folder walk, the kinds of file, the documented defects'
form, the emotion names it accepts, and where the file of a manifest ``path`` is."""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from video_emotion.labels import CANONICAL, ENTERFACE_CODES

# Containers the frames stage can decode. Other files under a dataset root are counted by kind (file_kind), not
# listed: a rejection is a video that was refused.
VIDEO_EXTENSIONS = (".avi", ".mp4", ".m4v", ".mov", ".mkv", ".flv", ".webm", ".mpg", ".mpeg", ".wmv")
AUDIO_EXTENSIONS = (".wav", ".mp3", ".flac", ".aac", ".m4a", ".ogg")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
TEXT_EXTENSIONS = (".txt", ".csv", ".tsv", ".md", ".rst", ".pdf", ".doc", ".docx", ".rtf", ".json", ".xml", ".html",
                   ".htm", ".xls", ".xlsx", ".r", ".py", ".m")
KINDS = {"video": VIDEO_EXTENSIONS, "audio": AUDIO_EXTENSIONS, "image": IMAGE_EXTENSIONS, "text": TEXT_EXTENSIONS}

# The dataset option that keeps a dataset's documented defects in the manifest (excluded by default).
KEEP_DEFECTS = "keep_documented_defects"

# Names users and datasets give the canonical emotions (lower case). Canonical names map to themselves.
ALIASES = {
    **{name: name for name in CANONICAL},
    **ENTERFACE_CODES,
    "angry": "anger", "ang": "anger",
    "disgusted": "disgust", "dis": "disgust",
    "fearful": "fear", "fea": "fear", "afraid": "fear",
    "happy": "happiness", "hap": "happiness", "joy": "happiness",
    "sad": "sadness",
    "surprised": "surprise", "sur": "surprise",
    "neu": "neutral",
}


class DatasetError(ValueError):
    """A dataset root or list that cannot be read as configured; the message says what is wrong and the fix."""


def source_path(root: str | Path, path: str) -> Path:
    """The file a manifest ``path`` names: relative to the dataset root folder, or for a CSV list (the root is the CSV
    file) to the CSV's folder; an absolute ``path`` as it is. The one place this rule is coded."""
    root = Path(root)
    return (root.parent if root.is_file() else root) / path


def canonical_label(name: str) -> str | None:
    """The canonical emotion for ``name`` (case and surrounding spaces ignored), or None if it is not an emotion."""
    return ALIASES.get(str(name).strip().lower())


def walk_files(root: Path) -> Iterator[tuple[str, tuple[str, ...]]]:
    """Every non-hidden file under ``root`` in sorted order, as (POSIX path relative to root, its parts).

    Hidden files and folders (names starting with ".") are system clutter and are passed over silently.
    Symbolic links to folders are followed, so a root assembled from links works.
    """
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        rel = Path(folder).relative_to(root)
        for name in sorted(files):
            if not name.startswith("."):
                path = rel / name
                yield path.as_posix(), path.parts


def file_kind(name: str) -> str:
    """'video', 'audio', 'image', 'text' or 'other', from the file name's extension."""
    suffix = Path(name).suffix.lower()
    return next((kind for kind, extensions in KINDS.items() if suffix in extensions), "other")


def reject(path: str, reason: str) -> dict:
    return {"path": path, "reason": reason}


@dataclass(frozen=True)
class Defect:
    """A file that its dataset's maintainers (or a paper) document as not showing what its name says.

    ``match``: the manifest fields that identify the file(s), e.g. ``{"video_id": "1076_MTI_NEU_XX"}`` (the file
    name without extension, so a converted copy matches too); ``problem``: what is wrong, as the source says it;
    ``source``: where it is documented (the dataset README's URL, or the paper's title).
    """

    match: dict
    problem: str
    source: str

    def matches(self, row: dict) -> bool:
        return all(str(row.get(field)) == str(value) for field, value in self.match.items())


def named_videos(root: Path, pattern: re.Pattern, naming: str, rejected: list[dict],
                 skipped: Counter) -> Iterator[tuple[str, tuple[str, ...], re.Match]]:
    """Video files under ``root`` whose stem matches ``pattern``, as (path, parts, match).

    Files that are not videos are counted in ``skipped`` by kind (:func:`file_kind`); videos named otherwise are
    appended to ``rejected`` with the reason.
    """
    for path, parts in walk_files(root):
        kind = file_kind(parts[-1])
        if kind != "video":
            skipped[kind] += 1
            continue
        m = pattern.match(Path(parts[-1]).stem)
        if m is None:
            rejected.append(reject(path, f"name is not {naming}"))
            continue
        yield path, parts, m

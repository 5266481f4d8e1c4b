"""What every dataset adapter shares: the error type, the folder walk, the emotion names it accepts, and where the
file of a manifest ``path`` is."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from video_emotion.labels import CANONICAL, ENTERFACE_CODES

# Containers the frames stage can decode. Anything else found under a dataset root is listed as skipped.
VIDEO_EXTENSIONS = (".avi", ".mp4", ".m4v", ".mov", ".mkv", ".flv", ".webm", ".mpg", ".mpeg", ".wmv")
AUDIO_EXTENSIONS = (".wav", ".mp3", ".flac", ".aac", ".m4a", ".ogg")

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
    """'video', 'audio' or 'other', from the file name's extension."""
    suffix = Path(name).suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    if suffix in AUDIO_EXTENSIONS:
        return "audio"
    return "other"


def reject(path: str, reason: str) -> dict:
    return {"path": path, "reason": reason}


def named_videos(root: Path, pattern: re.Pattern, naming: str,
                 rejected: list[dict]) -> Iterator[tuple[str, tuple[str, ...], re.Match]]:
    """Video files under ``root`` whose stem matches ``pattern``, as (path, parts, match).

    Audio-only files, other files and videos named otherwise are appended to ``rejected`` with the reason.
    """
    for path, parts in walk_files(root):
        kind = file_kind(parts[-1])
        if kind != "video":
            rejected.append(reject(path, "audio-only file" if kind == "audio" else "not a video file"))
            continue
        m = pattern.match(Path(parts[-1]).stem)
        if m is None:
            rejected.append(reject(path, f"name is not {naming}"))
            continue
        yield path, parts, m

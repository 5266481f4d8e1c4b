"""DFEW (Jiang et al., ACM MM 2020): 16,372 movie clips, 7 classes, 11,697 single-labelled in 5 official folds.

As distributed::

    Clip/clip_224x224/<05d>/*.jpg        face frames (15,906 clips: no face was found in the other 466, README)
    Clip/clip_224x224_16f/<05d>/*.jpg    16 time-interpolated face frames per clip
    Clip/original/<05d>.mp4              the clips themselves
    EmoLabel_DataSplit/train(single-labeled)/set_{1..5}.csv    video_name,label
    EmoLabel_DataSplit/test(single-labeled)/set_{1..5}.csv     (labels 1..7: Happy, Sad, Neutral, Angry, Surprise,
                                                                 Disgust, Fear)

Options: ``frames`` (``clip_224x224``, ``clip_224x224_16f`` or ``original``), ``splits`` (the split folder under
the root). The clip of set ``k``'s test file is in test fold ``k - 1``. A clip listed in a split whose frame folder
is absent is rejected as the README documents it; a label outside 1..7 is rejected with its file and line.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from video_emotion.datasets.common import DatasetError
from video_emotion.datasets.wild import (
    FRAMES,
    VIDEO,
    Listed,
    Source,
    check_options,
    clip_rows,
    official_folds,
    parse_pairs,
)

NAMES = {"1": "happiness", "2": "sadness", "3": "neutral", "4": "anger", "5": "surprise", "6": "disgust", "7": "fear"}
LABELS = tuple(NAMES.values())
VERSIONS = {
    "clip_224x224": Source(FRAMES, True, "Clip/clip_224x224"),
    "clip_224x224_16f": Source(FRAMES, True, "Clip/clip_224x224_16f"),
    "original": Source(VIDEO, False, "Clip/original"),
}
OPTIONS: dict = {"frames": "clip_224x224", "splits": "EmoLabel_DataSplit"}
SETS = 5
# The split folders' names as users have them: the distribution's, and a variant met in the wild.
SPLIT_FOLDERS = ("{}(single-labeled)", "{}(single_labeled)")
FORMAT = "a CSV file with the header video_name,label and lines like 1,5 (clip number, label 1..7)"
# Why a listed clip may lack face frames, and where that is documented. (The split files leave out the 362
# single-labelled ones of the 466: in a complete copy every listed clip has its frames.)
NO_FACE = ("no face frames (the README: no face was detected in 466 clips, which have none)",
           "DFEW README (Clip/: 15,906 of the 16,372 clips have face frames)")


def source(options: dict) -> Source:
    return check_options(options, VERSIONS, "DFEW")


def _split_folder(splits: Path, kind: str) -> Path:
    for pattern in SPLIT_FOLDERS:
        if (splits / pattern.format(kind)).is_dir():
            return splits / pattern.format(kind)
    raise DatasetError(f"{splits} has no {SPLIT_FOLDERS[0].format(kind)} folder of split files; point dataset_root "
                       "at the DFEW folder (or dataset_options.splits at the renamed EmoLabel_DataSplit)")


def _clip(item: Listed, path: Path) -> Listed:
    if not item.clip.isdigit():
        raise DatasetError(f"split file {path} ({item.where}) names clip {item.clip!r}; expected {FORMAT}")
    return Listed(f"{int(item.clip):05d}", item.label, item.split, item.test, item.where)


def scan(root: Path, options: dict) -> tuple[list[dict], list[dict], Counter]:
    src = source(options)
    splits = root / options["splits"]
    listed = []
    for test in (True, False):
        folder = _split_folder(splits, "test" if test else "train")
        for k in range(SETS):
            path = folder / f"set_{k + 1}.csv"
            listed += [_clip(item, path) for item in parse_pairs(path, k, test, FORMAT, ",", "video_name,label")]
    rows, rejected = clip_rows(root, official_folds(listed, "DFEW"), NAMES, lambda clip: _locate(src, clip), src,
                               NO_FACE if src.kind == FRAMES else ("", ""))
    return rows, rejected, Counter()


def _locate(src: Source, clip: str) -> str:
    return f"{src.folder}/{clip}" + (".mp4" if src.kind == VIDEO else "")

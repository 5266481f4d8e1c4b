"""FERV39k (Wang et al., CVPR 2022): 38,935 clips of 22 scenes, 7 classes, one official train/test split.

As distributed::

    2_ClipsforFaceCrop/<Scene>/<Emotion>/<NNNN>/*.jpg     face frames
    3_ClipsforScenImages/<Scene>/<Emotion>/<NNNN>/*.jpg   scene frames (whole images)
    4_setups/All_scenes/train_All.csv, test_All.csv        no header, space-separated: Action/Happy/0267 Happy
    4_setups/22_scenes/...                                 per-scene setups

Options: ``frames`` (``2_ClipsforFaceCrop``, or ``3_ClipsforScenImages``, whose faces are then detected) and
``splits`` (the setup folder under the root). The 7,847 clips of ``test_All`` are test fold 0; the 31,088 of
``train_All`` train only (fold -1). The manifest keeps each clip's ``scene``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from video_emotion.datasets.wild import FRAMES, Source, check_options, clip_rows, official_folds, parse_pairs

NAMES = {"Happy": "happiness", "Sad": "sadness", "Neutral": "neutral", "Angry": "anger", "Surprise": "surprise",
         "Disgust": "disgust", "Fear": "fear"}
LABELS = tuple(NAMES.values())
VERSIONS = {
    "2_ClipsforFaceCrop": Source(FRAMES, True, "2_ClipsforFaceCrop"),
    "3_ClipsforScenImages": Source(FRAMES, False, "3_ClipsforScenImages"),
}
OPTIONS: dict = {"frames": "2_ClipsforFaceCrop", "splits": "4_setups/All_scenes"}
FORMAT = "no header, one clip a line: its path and label separated by a space (Action/Happy/0267 Happy)"


def source(options: dict) -> Source:
    return check_options(options, VERSIONS, "FERV39k")


def scan(root: Path, options: dict) -> tuple[list[dict], list[dict], Counter]:
    src = source(options)
    splits = root / options["splits"]
    listed = parse_pairs(splits / "test_All.csv", 0, True, FORMAT) + parse_pairs(splits / "train_All.csv", 0, False,
                                                                                   FORMAT)
    rows, rejected = clip_rows(root, official_folds(listed, "FERV39k"), NAMES, lambda c: f"{src.folder}/{c}", src)
    for row in rows:
        row["scene"] = row["path"].split("/")[1]
    return rows, rejected, Counter()

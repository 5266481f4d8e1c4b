"""MAFW (Liu et al., ACM MM 2022): 10,045 clips, 11 classes; 9,172 single-labelled in 5 official folds.

As distributed::

    data/clips/<05d>.mp4                         the clips
    data/frames/<05d>/*.jpg                      their face frames
    Train & Test set/single/no_caption/set_{1..5}/{train,test}.txt     00025.mp4 anger  (CRLF line ends)
    Train & Test set/compound/...                the multi-label sets (not supported)

Options: ``frames`` (``frames``: the face frames, taken as aligned; ``clips``: the videos, whose faces are
detected) and ``splits`` (the single-label split folder under the root). The clips of ``set_k/test.txt`` are test
fold ``k - 1``. A compound (multi-label) label stops the run: multi-label training is not supported.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from video_emotion.datasets.wild import (
    FRAMES,
    VIDEO,
    Source,
    check_options,
    clip_rows,
    official_folds,
    parse_pairs,
    refuse_compound,
)

LABELS = ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise", "contempt", "anxiety",
          "helplessness", "disappointment")
NAMES = {name: name for name in LABELS}
VERSIONS = {"frames": Source(FRAMES, True, "data/frames"), "clips": Source(VIDEO, False, "data/clips")}
OPTIONS: dict = {"frames": "frames", "splits": "Train & Test set/single/no_caption"}
SETS = 5
FORMAT = "one clip a line: its file name and label separated by a space (00025.mp4 anger)"


def source(options: dict) -> Source:
    return check_options(options, VERSIONS, "MAFW")


def scan(root: Path, options: dict) -> tuple[list[dict], list[dict], Counter]:
    src = source(options)
    splits = root / options["splits"]
    if not splits.is_dir() and options["splits"] == OPTIONS["splits"]:  # the README's own capital S
        splits = root / OPTIONS["splits"].replace("Test set", "Test Set")
    listed = [item for k in range(SETS) for test in (True, False)
              for item in parse_pairs(splits / f"set_{k + 1}" / ("test.txt" if test else "train.txt"), k, test,
                                      FORMAT)]
    refuse_compound(listed, LABELS, "MAFW")
    stem = {item.clip: item.clip.rsplit(".", 1)[0] for item in listed}
    suffix = ".mp4" if src.kind == VIDEO else ""
    rows, rejected = clip_rows(root, official_folds(listed, "MAFW"), NAMES,
                               lambda clip: f"{src.folder}/{stem[clip]}{suffix}", src)
    return rows, rejected, Counter()

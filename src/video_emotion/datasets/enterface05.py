"""eNTERFACE'05 audio-visual emotion database (Martin et al., 2006), and the generated demo in its layout.

Layout: ``subject N/<emotion>/sentence K/sN_<ab>_K.avi`` under the root (one more folder level above or below is
fine). The real archive is untidy, so subject and emotion are read from the *folder path*, never from the file name:

- folder names contain spaces (``subject 1``, ``sentence 1``);
- subject 11's files are named ``s12_*`` and several of subject 3's ``s_3_*``;
- one file is named ``s16_su_3avi`` (no dot): any name ending in ``avi`` is a video;
- some sentence folders hold an extra subfolder level; subject 6 has no sentence folders;
- a file's sentence number can disagree with its folder (``subject 2/anger/sentence 1/s2_an_2.avi``): the
  folder wins, and without a sentence folder the number comes from the file name.

``subject`` is the folder's number as a string without leading zeros (``"1"`` .. ``"44"``). ``video_id`` is
``s<subject>_<code>_<sentence>`` (e.g. ``s11_an_3``); a second video with the same id gets ``_2`` appended.
An emotion folder that is not one of the six stops the run with its path named. Files that are not videos are
counted as skipped by kind, not listed.

:data:`DEFECTS` is empty. The database's page (https://enterface.net/enterface05/emotion.html) and paper ("The
eNTERFACE'05 Audio-Visual Emotion Database", Martin et al., 2006) name no defective file; the page counts 42
subjects where the archive holds 44 folders, without saying which are extra. Subject 6 (about one video per
emotion) and subject 23 (two happiness videos) are the archive's shape, not documented defects: the eNTERFACE'05
preset keeps subject 6 out of the test folds instead. Option ``keep_documented_defects`` is there for the day the
table holds one.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path, PurePosixPath

from video_emotion.datasets.common import (
    KEEP_DEFECTS,
    DatasetError,
    Defect,
    canonical_label,
    file_kind,
    reject,
    walk_files,
)
from video_emotion.io import safe_name
from video_emotion.labels import EMOTIONS, ENTERFACE_CODES

LABELS = EMOTIONS
OPTIONS: dict = {KEEP_DEFECTS: False}
DEFECTS: tuple[Defect, ...] = ()
CODES = {name: code for code, name in ENTERFACE_CODES.items()}

SUBJECT_DIR = re.compile(r"^subject[\s_-]*0*(\d+)$", re.IGNORECASE)
SENTENCE_DIR = re.compile(r"^sentence[\s_-]*0*(\d+)$", re.IGNORECASE)
SENTENCE_IN_NAME = re.compile(r"_0*(\d+)\.?avi$", re.IGNORECASE)


def video_path(subject: int | str, emotion: str, sentence: int | str) -> PurePosixPath:
    """Where the archive keeps a video, relative to its root: ``subject N/<emotion>/sentence K/sN_<ab>_K.avi``."""
    return PurePosixPath(f"subject {subject}", emotion, f"sentence {sentence}", f"s{subject}_{CODES[emotion]}_{sentence}.avi")


def is_video(name: str) -> bool:
    return file_kind(name) == "video" or name.lower().endswith("avi")


def scan(root: Path, options: dict) -> tuple[list[dict], list[dict], Counter]:
    rows, rejected, unknown, skipped = [], [], [], Counter()
    for path, parts in walk_files(root):
        *dirs, name = parts
        if not is_video(name):
            skipped[file_kind(name)] += 1
            continue
        at = next((i for i, d in enumerate(dirs) if SUBJECT_DIR.match(d)), None)
        if at is None:
            rejected.append(reject(path, "not inside a 'subject N' folder"))
            continue
        if at + 1 >= len(dirs):
            rejected.append(reject(path, "directly in the subject folder, not in an emotion folder"))
            continue
        label = canonical_label(dirs[at + 1])
        if label not in LABELS:
            unknown.append("/".join(dirs[: at + 2]))
            continue
        subject = SUBJECT_DIR.match(dirs[at]).group(1)
        sentences = [int(m.group(1)) for d in dirs[at + 2:] if (m := SENTENCE_DIR.match(d))]
        in_name = SENTENCE_IN_NAME.search(name)
        sentence = sentences[-1] if sentences else int(in_name.group(1)) if in_name else None
        tail = str(sentence) if sentence is not None else safe_name(Path(name).stem)
        rows.append({"video_id": f"s{subject}_{CODES[label]}_{tail}", "path": path, "subject": subject,
                     "label": label, "sentence": sentence})
    if unknown:
        folders = sorted(set(unknown))
        raise DatasetError(
            f"unknown emotion folder(s) under {root}: {folders[:10]}{' ...' if len(folders) > 10 else ''}; "
            f"eNTERFACE'05 emotion folders are named {', '.join(LABELS)} (or {', '.join(CODES.values())}): "
            "rename or move these folders"
        )
    return rows, rejected, skipped

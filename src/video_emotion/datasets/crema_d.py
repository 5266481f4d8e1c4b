"""CREMA-D: the Crowd-sourced Emotional Multimodal Actors Dataset (Cao et al., 2014).

Layout: ``VideoFlash/AAAA_SSS_EEE_LL.flv`` (any folder, any video container: converted ``.mp4`` copies work too).
AAAA is the actor (1001-1091), SSS the sentence code (IEO, TIE, ...), EEE the emotion (ANG, DIS, FEA, HAP, NEU,
SAD) and LL the level (LO, MD, HI, or XX unspecified). Audio files (``AudioWAV/``, ``AudioMP3/``) are counted as
skipped, not listed.

``subject`` is the actor number (``"1001"`` .. ``"1091"``), ``video_id`` the file name without extension, and
the extras are ``sentence`` and ``level`` as coded in the name.

:data:`DEFECTS`: the videos the dataset's README names as not showing what their names say (its "Video Files"
section); they are left out unless ``dataset_options: {keep_documented_defects: true}``. The README's other
list, videos that lacked audio until 16 Dec 2020 and were re-muxed, is not a defect of the pictures and is kept.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from video_emotion.datasets.common import KEEP_DEFECTS, Defect, named_videos, reject
from video_emotion.labels import EMOTIONS

LABELS = EMOTIONS[:5] + ("neutral",)  # no surprise in CREMA-D
OPTIONS: dict = {KEEP_DEFECTS: False}

README = "https://github.com/CheyneyComputerScience/CREMA-D/blob/master/README.md#video-files"
DEFECTS = (
    Defect({"video_id": "1076_MTI_NEU_XX"}, "very short, no audio", README),
    Defect({"video_id": "1076_MTI_SAD_XX"}, "error picture, no audio, very short", README),
    Defect({"video_id": "1064_TIE_SAD_XX"}, "file has no duration", README),
    Defect({"video_id": "1064_IEO_DIS_MD"},
           "actually 1 minute long, with every emotional display of It's Eleven O'clock (its label is wrong)", README),
)

EMOTION_CODES = {"ANG": "anger", "DIS": "disgust", "FEA": "fear", "HAP": "happiness", "NEU": "neutral",
                 "SAD": "sadness"}
LEVELS = ("LO", "MD", "HI", "XX")
NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")


def scan(root: Path, options: dict) -> tuple[list[dict], list[dict], Counter]:
    rows, rejected, skipped = [], [], Counter()
    for path, parts, m in named_videos(root, NAME, "AAAA_SSS_EEE_LL (CREMA-D naming)", rejected, skipped):
        name = parts[-1]
        actor, sentence, emotion, level = m.groups()
        if emotion not in EMOTION_CODES or level not in LEVELS:
            bad = f"emotion {emotion}" if emotion not in EMOTION_CODES else f"level {level}"
            rejected.append(reject(path, f"unknown {bad}"))
            continue
        rows.append({"video_id": Path(name).stem, "path": path, "subject": actor, "label": EMOTION_CODES[emotion],
                     "sentence": sentence, "level": level})
    return rows, rejected, skipped

"""CREMA-D: the Crowd-sourced Emotional Multimodal Actors Dataset (Cao et al., 2014).

Layout: ``VideoFlash/AAAA_SSS_EEE_LL.flv`` (any folder, any video container: converted ``.mp4`` copies work too).
AAAA is the actor (1001-1091), SSS the sentence code (IEO, TIE, ...), EEE the emotion (ANG, DIS, FEA, HAP, NEU,
SAD) and LL the level (LO, MD, HI, or XX unspecified). Audio files (``AudioWAV/``, ``AudioMP3/``) are skipped.

``subject`` is the actor number (``"1001"`` .. ``"1091"``), ``video_id`` the file name without extension, and
the extras are ``sentence`` and ``level`` as coded in the name.
"""

from __future__ import annotations

import re
from pathlib import Path

from video_emotion.datasets.common import named_videos, reject
from video_emotion.labels import EMOTIONS

LABELS = EMOTIONS[:5] + ("neutral",)  # no surprise in CREMA-D
OPTIONS: dict = {}

EMOTION_CODES = {"ANG": "anger", "DIS": "disgust", "FEA": "fear", "HAP": "happiness", "NEU": "neutral",
                 "SAD": "sadness"}
LEVELS = ("LO", "MD", "HI", "XX")
NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")


def scan(root: Path, options: dict) -> tuple[list[dict], list[dict]]:
    rows, rejected = [], []
    for path, parts, m in named_videos(root, NAME, "AAAA_SSS_EEE_LL (CREMA-D naming)", rejected):
        name = parts[-1]
        actor, sentence, emotion, level = m.groups()
        if emotion not in EMOTION_CODES or level not in LEVELS:
            bad = f"emotion {emotion}" if emotion not in EMOTION_CODES else f"level {level}"
            rejected.append(reject(path, f"unknown {bad}"))
            continue
        rows.append({"video_id": Path(name).stem, "path": path, "subject": actor, "label": EMOTION_CODES[emotion],
                     "sentence": sentence, "level": level})
    return rows, rejected

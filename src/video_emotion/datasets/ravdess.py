"""RAVDESS: the Ryerson Audio-Visual Database of Emotional Speech and Song (Livingstone & Russo, 2018).

Layout: ``Actor_XX/MM-VV-EE-II-SS-RR-AA.mp4`` (any folders above ``Actor_XX`` are fine). The seven fields are
modality (01 audio-video, 02 video-only, 03 audio-only), vocal channel (01 speech, 02 song), emotion (01 neutral,
02 calm, 03 happy, 04 sad, 05 angry, 06 fearful, 07 disgust, 08 surprised), intensity (01 normal, 02 strong),
statement (01, 02), repetition (01, 02) and actor (01-24).

- Files that are not videos (audio, text ...) are counted as skipped; a video file of modality 03 (audio-only) is
  rejected.
- The audio-video and the video-only file of one recording hold the same pictures: the video-only file is kept
  and its audio-video twin is skipped; a recording with only the audio-video file is kept as is.
- ``subject`` is the ``Actor_XX`` folder's number without leading zeros (``"1"`` .. ``"24"``), or the file
  name's actor field when there is no such folder. ``video_id`` is the file name without extension.

Option ``vocal_channels`` (default both): ``[speech]``, ``[song]`` or ``[speech, song]``.

:data:`DEFECTS` is empty: the dataset's own description (https://zenodo.org/records/1188976) documents no
defective file, only an absence (there are no song files for Actor_18), and we found no paper or toolkit that
names one. Option ``keep_documented_defects`` is there for the day the table holds one.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from video_emotion.datasets.common import KEEP_DEFECTS, DatasetError, Defect, named_videos, reject
from video_emotion.labels import EMOTIONS

LABELS = EMOTIONS + ("neutral", "calm")
OPTIONS = {"vocal_channels": ["speech", "song"], KEEP_DEFECTS: False}
DEFECTS: tuple[Defect, ...] = ()

EMOTION_CODES = {"01": "neutral", "02": "calm", "03": "happiness", "04": "sadness", "05": "anger", "06": "fear",
                 "07": "disgust", "08": "surprise"}
MODALITIES = {"01": "audio_video", "02": "video_only", "03": "audio_only"}
CHANNELS = {"01": "speech", "02": "song"}
INTENSITIES = {"01": "normal", "02": "strong"}

NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")
ACTOR_DIR = re.compile(r"^actor[\s_-]*0*(\d+)$", re.IGNORECASE)


def scan(root: Path, options: dict) -> tuple[list[dict], list[dict], Counter]:
    channels = options["vocal_channels"]
    if isinstance(channels, str) or not set(channels) <= set(CHANNELS.values()) or not channels:
        raise DatasetError(
            f"dataset_options.vocal_channels = {channels!r}; use a list drawn from [speech, song], e.g. [speech]"
        )
    rows, rejected, skipped = [], [], Counter()
    for path, parts, m in named_videos(root, NAME, "MM-VV-EE-II-SS-RR-AA (RAVDESS naming)", rejected, skipped):
        *dirs, name = parts
        modality, channel, emotion, intensity, statement, repetition, actor = m.groups()
        problem = (
            "audio-only (modality 03)" if modality == "03"
            else f"unknown modality {modality}" if modality not in MODALITIES
            else f"unknown vocal channel {channel}" if channel not in CHANNELS
            else f"unknown emotion code {emotion}" if emotion not in EMOTION_CODES
            else f"unknown intensity {intensity}" if intensity not in INTENSITIES
            else f"vocal channel {CHANNELS[channel]} not selected (dataset_options.vocal_channels)"
            if CHANNELS[channel] not in channels
            else None
        )
        if problem:
            rejected.append(reject(path, problem))
            continue
        actors = [a.group(1) for d in dirs if (a := ACTOR_DIR.match(d))]
        rows.append({
            "video_id": Path(name).stem,
            "path": path,
            "subject": actors[-1] if actors else str(int(actor)),
            "label": EMOTION_CODES[emotion],
            "modality": MODALITIES[modality],
            "vocal_channel": CHANNELS[channel],
            "intensity": INTENSITIES[intensity],
            "statement": int(statement),
            "repetition": int(repetition),
        })
    return (*drop_audio_video_twins(rows, rejected), skipped)


def drop_audio_video_twins(rows: list[dict], rejected: list[dict]) -> tuple[list[dict], list[dict]]:
    """Skip an audio-video file when the video-only file of the same recording is there too."""
    video_only = {(r["subject"], r["video_id"][3:]): r["path"] for r in rows if r["modality"] == "video_only"}
    kept = []
    for r in rows:
        twin = video_only.get((r["subject"], r["video_id"][3:]))
        if r["modality"] == "audio_video" and twin is not None:
            rejected.append(reject(r["path"], f"same recording as the video-only {twin}, which is kept"))
        else:
            kept.append(r)
    return kept, rejected

"""Empty stand-ins for eNTERFACE'05 and CREMA-D: the real archives' folder layout and file names, every file 0 bytes.

Enough for the manifest (it reads paths only), and so for a dry run of the whole DAG with the eNTERFACE'05 preset,
for the tests and the benchmarks:

    python -m video_emotion.datasets.placeholder /tmp/enterface05
    snakemake --cores 1 --configfile workflow/presets/enterface05.yaml --config dataset_root=/tmp/enterface05 \\
        results/manifest.parquet
    snakemake --profile workflow/profiles/slurm -n --configfile workflow/presets/enterface05.yaml \\
        --config dataset_root=/tmp/enterface05
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

from video_emotion.datasets.crema_d import EMOTION_CODES as CREMA_D_EMOTIONS
from video_emotion.datasets.enterface05 import video_path
from video_emotion.labels import EMOTIONS

CREMA_D_SENTENCES = ("IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI")


def make_enterface_tree(root: str | Path, subjects: int | Iterable[int] = 44, sentences: int = 5,
                        emotions: Iterable[str] = EMOTIONS, gaps: bool = False) -> int:
    """Write the tree under ``root``; returns the number of videos (1320 for the defaults: 44 x 6 x 5).

    ``subjects``: a count (subjects 1..n) or the subject numbers. ``gaps``: the archive's own shape instead of a
    full grid (1293 videos for the defaults): subject 6 has one video per emotion and no sentence folders, subject
    23 two happiness videos.
    """
    numbers = range(1, subjects + 1) if isinstance(subjects, int) else subjects
    n = 0
    for subject in numbers:
        for emotion in emotions:
            count = 1 if gaps and subject == 6 else 2 if gaps and (subject, emotion) == (23, "happiness") else sentences
            for sentence in range(1, count + 1):
                path = Path(root, video_path(subject, emotion, sentence))
                if gaps and subject == 6:
                    path = path.parent.parent / path.name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
                n += 1
    return n


def make_crema_d_tree(root: str | Path, actors: int | Iterable[int] = range(1001, 1092), audio: bool = True) -> int:
    """CREMA-D's full grid under ``root``: ``VideoFlash/AAAA_SSS_EEE_LL.flv`` and, with ``audio``, its twins in
    ``AudioWAV/`` (.wav) and ``AudioMP3/`` (.mp3). Per actor, 82 videos: 11 sentences in the six emotions at level
    XX, and "It's eleven o'clock" (IEO) at levels LO, MD and HI (neutral at XX). 91 actors (1001-1091, the default)
    give 7462 videos; the real archive lacks a few (7442). Returns the number of videos."""
    numbers = range(1001, 1001 + actors) if isinstance(actors, int) else actors
    names = [f"{sentence}_{emotion}_{level}" for sentence in CREMA_D_SENTENCES for emotion in CREMA_D_EMOTIONS
             for level in (("XX",) if sentence != "IEO" or emotion == "NEU" else ("LO", "MD", "HI"))]
    folders = {"VideoFlash": ".flv", **({"AudioWAV": ".wav", "AudioMP3": ".mp3"} if audio else {})}
    for folder, ext in folders.items():
        Path(root, folder).mkdir(parents=True, exist_ok=True)
        for actor in numbers:
            for name in names:
                Path(root, folder, f"{actor}_{name}{ext}").touch()
    return len(list(numbers)) * len(names)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(make_enterface_tree(sys.argv[1]), "placeholder videos under", sys.argv[1])

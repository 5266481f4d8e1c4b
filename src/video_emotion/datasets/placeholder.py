"""Empty stand-ins for eNTERFACE'05 and CREMA-D: the real archives' folder layout and file names, every file 0 bytes.

Enough for the manifest (it reads paths only), and so for a dry run of the whole DAG with the eNTERFACE'05 preset,
for the tests and the benchmarks:

    python -m video_emotion.datasets.placeholder /tmp/enterface05
    snakemake --cores 1 --configfile workflow/presets/enterface05.yaml --config dataset_root=/tmp/enterface05 \\
        results/manifest.parquet
    snakemake --profile workflow/profiles/slurm -n --configfile workflow/presets/enterface05.yaml \\
        --config dataset_root=/tmp/enterface05

The in-the-wild sets (:func:`make_dfew_tree`, :func:`make_ferv39k_tree`, :func:`make_mafw_tree`) come as frame
folders and split files: their trees hold the split files in the maintainers' formats and, per clip, real images
(label-dependent, tiny by default, 224x224 for decoding measurements), zero-byte files, or bare folders; tiny, or at
the official fold sizes; with the defects the adapters must handle. The real split files are licensed with the data
and never committed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np

from video_emotion.datasets.crema_d import EMOTION_CODES as CREMA_D_EMOTIONS
from video_emotion.datasets.enterface05 import video_path
from video_emotion.io import atomic_path
from video_emotion.labels import CANONICAL, EMOTIONS

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



# ---- the in-the-wild sets: DFEW, FERV39k, MAFW ----------------------------------------------------------------
# Their trees hold frame folders and split files in the maintainers' layouts (verified against their READMEs and the
# lists research code derives from them). The tables below are this module's own reading of the formats, kept apart
# from the adapters on purpose: a test of an adapter on these trees checks the adapter against the format.

WILD_SETS = 5
# DFEW: labels 1..7 of its split files; the official test folds (fd1..fd5) of the 11,697 single-labelled clips with
# face frames; 16,372 clips in all, 15,906 with face frames (the others are in no split file: README).
DFEW_LABELS = ("happiness", "sadness", "neutral", "anger", "surprise", "disgust", "fear")
DFEW_FOLDS = (2341, 2341, 2340, 2339, 2336)
DFEW_UNLISTED = 15906 - sum(DFEW_FOLDS)  # multi-labelled clips: face frames, in no split file
# MAFW: the single-label set's words and official test folds (9,172 clips).
MAFW_LABELS = ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise", "contempt", "anxiety",
               "helplessness", "disappointment")
MAFW_FOLDS = (1839, 1837, 1833, 1832, 1831)
MAFW_COMPOUND = ("anger_disgust", "fear_sadness", "sadness_anxiety", "anger_disgust_contempt", "happiness_surprise")
MAFW_SPLITS = "Train & Test set"
# FERV39k: emotion folders (and split-file labels) with their canonical names; per scene, (clips, of them in
# test_All): 31,088 train + 7,847 test = 38,935 clips.
FERV39K_EMOTIONS = {"Happy": "happiness", "Sad": "sadness", "Neutral": "neutral", "Angry": "anger",
                    "Surprise": "surprise", "Disgust": "disgust", "Fear": "fear"}
FERV39K_EMOTION_CLIPS = {"Happy": 7327, "Sad": 6916, "Neutral": 9748, "Angry": 7393, "Surprise": 3140,
                         "Disgust": 2300, "Fear": 2111}
FERV39K_SCENES = {
    "Action": (804, 164), "Argue": (2655, 533), "Business": (1776, 358), "Conflict": (2491, 501),
    "Contest": (2400, 483), "Crime": (1871, 377), "Crisis": (1494, 301), "DailyLife": (2339, 471),
    "ElegantArt": (1242, 252), "Experiment": (556, 113), "History": (2690, 539), "Interview": (2099, 424),
    "Liveshow": (1131, 228), "Medicine": (692, 143), "OfficialEvent": (1423, 287), "ScholarReport": (2014, 405),
    "School": (2012, 405), "Social": (1121, 229), "Speech": (1834, 369), "Talkshow": (1736, 350),
    "Terror": (2099, 422), "War": (2456, 493),
}
SHORT_FRAMES = 8  # the shortest clips of FERV39k

Frames = int | Sequence[int] | Callable[[int], int]
Drawer = Callable[[int, int, "str | None"], np.ndarray]


def wild_frame(clip: int, index: int, label: str | None, size: int = 8, seed: int = 0) -> np.ndarray:
    """The default frame: stripes whose angle and colours code ``label`` (a canonical name; None: a label out of
    range), drifting with ``index``, plus noise seeded by (seed, clip, index). uint8, size x size x 3: cheap, and
    enough for a model to tell the labels apart."""
    k = CANONICAL.index(label) + 1 if label in CANONICAL else 0
    theta = np.pi * k / (len(CANONICAL) + 1)
    yy, xx = np.ogrid[0:size, 0:size]
    wave = np.sin(((xx * np.cos(theta) + yy * np.sin(theta)) * (4 * np.pi / size) + 0.5 * index).astype(np.float32))
    colour = np.array([(53 * k) % 180 + 40, (97 * k) % 180 + 40, (151 * k) % 180 + 40], np.float32) * 0.6
    noise = np.random.default_rng([seed, clip, index]).integers(116, 141, (size, size), dtype=np.int16)
    channels = np.clip(colour[:, None, None] * wave + noise, 0, 255).astype(np.uint8)  # channels first: fast
    return np.ascontiguousarray(channels.transpose(1, 2, 0))


def _count(frames: Frames, clip: int) -> int:
    if callable(frames):
        return int(frames(clip))
    return frames if isinstance(frames, int) else int(frames[clip % len(frames)])


def _folds(folds: int | Sequence[int] | None, full: bool, real: Sequence[int], tiny: int) -> list[int]:
    """Clips per test fold: the real sizes with ``full``, one count for every fold, or one per fold."""
    if folds is None:
        folds = real if full else tiny
    sizes = [folds] * WILD_SETS if isinstance(folds, int) else list(folds)
    if len(sizes) != WILD_SETS or min(sizes) < 1:
        raise ValueError(f"folds: give {WILD_SETS} clip counts of at least 1, or one count; got {folds!r}")
    return sizes


def _pick(rng: np.random.Generator, pool: list, counts: dict[str, int]) -> dict[str, list]:
    """Disjoint random draws from ``pool``, each sorted: ``counts[name]`` items per defect name."""
    if sum(counts.values()) > len(pool):
        raise ValueError(f"more defect clips ({sum(counts.values())}) than clips ({len(pool)})")
    order = [pool[i] for i in rng.permutation(len(pool))]
    out, at = {}, 0
    for name, n in counts.items():
        out[name] = sorted(order[at:at + n])
        at += n
    return out


def _write_frames(folder: Path, names: Sequence[str], clip: int, label: str | None, draw: Drawer,
                  write_frames: bool) -> None:
    """One clip's frame folder: images drawn by ``draw`` (JPEG or PNG by the name), or zero-byte files."""
    folder.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(names):
        path = folder / name
        if write_frames:
            image = draw(clip, k, label)
            if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
                raise OSError(f"could not write {path}")
        else:
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o666))


def _write_video(path: Path, n: int, clip: int, label: str | None, draw: Drawer) -> None:
    """A short real video (MPEG-4 in MP4, 25 fps) of the clip's ``n`` frames, enlarged to 16 pixels or more."""
    from video_emotion.demo import _encode

    frames = np.stack([draw(clip, k, label) for k in range(max(n, 1))])
    scale = -(-16 // min(frames.shape[1:3]))
    _encode(frames.repeat(scale, axis=1).repeat(scale, axis=2), path, 25, container="mp4")


def _frame_names(n: int, ext: str, unpadded: bool, pattern: str) -> list[str]:
    return [f"{k}.{ext}" if unpadded else pattern.format(k=k) + f".{ext}" for k in range(1, n + 1)]


def _assign(rng: np.random.Generator, listed: list[int], sizes: Sequence[int],
            n_labels: int) -> tuple[dict[int, int], dict[int, int]]:
    """Each listed clip's test fold (fold k: a random draw of ``sizes[k]`` clips) and label index (cycling over
    ``n_labels`` within each fold, in clip order)."""
    order = rng.permutation(listed)
    fold_of, label_of, at = {}, {}, 0
    for fold, n in enumerate(sizes):
        for j, number in enumerate(sorted(order[at:at + n].tolist())):
            fold_of[number], label_of[number] = fold, j % n_labels
        at += n
    return fold_of, label_of


def _write_sets(clips: list[int], fold_of: dict[int, int], path: Callable[[str, int], Path],
                line: Callable[[int], str], header: str | None = None, newline: str = "\n") -> None:
    """The split files of the official sets: set k's test file lists the clips of test fold k, its train file the
    others."""
    for k in range(WILD_SETS):
        for kind, chosen in (("test", [n for n in clips if fold_of[n] == k]),
                             ("train", [n for n in clips if fold_of[n] != k])):
            _write_lines(path(kind, k), [*([header] if header else []), *map(line, chosen)], newline)


def _write_lines(path: Path, lines: Iterable[str], newline: str = "\n") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_bytes("".join(line + newline for line in lines).encode())


def _drawer(frame: Drawer | None, size: int, seed: int) -> Drawer:
    return frame or (lambda clip, index, label: wild_frame(clip, index, label, size, seed))


def make_dfew_tree(
    root: str | Path,
    folds: int | Sequence[int] | None = None,
    *,
    full: bool = False,
    frames: Frames = 16,
    size: int = 8,
    ext: str = "jpg",
    frame: Drawer | None = None,
    write_frames: bool = True,
    tim: bool = True,
    videos: bool = False,
    unlisted: int | None = None,
    missing: int = 1,
    unpadded: int = 1,
    bad_label: int = 1,
    short: int = 1,
    split_folder: str = "single-labeled",
    seed: int = 0,
) -> dict:
    """DFEW as distributed, under ``root``::

        Clip/clip_224x224/<05d>/<05d>_<05d>.jpg    face frames (``frames`` per clip)
        Clip/clip_224x224_16f/<05d>/...            16 per clip (``tim``)
        Clip/original/<05d>.mp4                    (``videos``: tiny real videos, also of clips without frames)
        EmoLabel_DataSplit/{train,test}(single-labeled)/set_{1..5}.csv    video_name,label (unpadded clip number)

    ``folds``: clips per test fold (one count, or five); default 14 (two per class); ``full``: the official 2,341 /
    2,341 / 2,340 / 2,339 / 2,336. Every listed clip is in the test file of one set and the train files of the four
    others; labels cycle over the 7 classes within each fold. ``unlisted``: clips with face frames that no split
    file lists (the multi-labelled ones; default 0, 4,209 with ``full``). ``frames``: frames per clip (an int, a
    list cycled over the clips, or a callable of the clip index). ``frame(clip index, frame index, label)`` draws
    an image (uint8 HxWx3; label canonical, None for a label out of range); default :func:`wild_frame` at ``size``.
    ``write_frames=False`` writes zero-byte files under the frames' names instead (listing only). ``split_folder``:
    ``single-labeled`` (as extracted) or ``single_labeled`` (the README's zip names).

    Defects (clip counts, drawn from the listed clips, disjoint): ``missing`` (listed, no frame folder in either
    version), ``unpadded`` (frames ``1.jpg ... N.jpg``), ``bad_label`` (label 8 in its files; frames present),
    ``short`` (8 frames in clip_224x224).

    Returns {"test_folds": clips per test fold, "train_sets": clips per train file, "labels": {clip: canonical label
    or None}, "folds": {clip: test fold, 0-based}, "unlisted": [...], "missing"/"unpadded"/"bad_label"/"short":
    [clip names], "frames": frame files written under clip_224x224}; clips are named ``00001`` ...
    """
    root = Path(root)
    sizes = _folds(folds, full, DFEW_FOLDS, 2 * len(DFEW_LABELS))
    unlisted = (DFEW_UNLISTED if full else 0) if unlisted is None else unlisted
    rng = np.random.default_rng([seed, 1])
    n_listed = sum(sizes)
    numbers = rng.permutation(np.arange(1, n_listed + unlisted + 1))
    listed, extra = sorted(numbers[:n_listed].tolist()), sorted(numbers[n_listed:].tolist())
    fold_of, label_of = _assign(rng, listed, sizes, len(DFEW_LABELS))
    label_of = {n: i + 1 for n, i in label_of.items()}
    defects = _pick(rng, listed, {"missing": missing, "unpadded": unpadded, "bad_label": bad_label,
                                  "short": short})
    for number in defects["bad_label"]:
        label_of[number] = len(DFEW_LABELS) + 1

    draw = _drawer(frame, size, seed)
    canonical = {n: DFEW_LABELS[label_of[n] - 1] if label_of[n] <= len(DFEW_LABELS) else None for n in listed}
    n_frames = 0
    for i, number in enumerate(sorted(listed + extra)):
        name, label = f"{number:05d}", canonical.get(number, DFEW_LABELS[number % len(DFEW_LABELS)])
        count = SHORT_FRAMES if number in defects["short"] else _count(frames, i)
        loose = number in defects["unpadded"]
        if videos:
            _write_video(root / "Clip" / "original" / f"{name}.mp4", count, i, label, draw)
        if number in defects["missing"]:
            continue
        _write_frames(root / "Clip" / "clip_224x224" / name, _frame_names(count, ext, loose, name + "_{k:05d}"),
                      i, label, draw, write_frames)
        n_frames += count
        if tim:
            _write_frames(root / "Clip" / "clip_224x224_16f" / name,
                          _frame_names(16, ext, loose, name + "_{k:05d}"), i, label, draw, write_frames)
    _write_sets(listed, fold_of, lambda kind, k: root / "EmoLabel_DataSplit" / f"{kind}({split_folder})" /
                f"set_{k + 1}.csv", lambda n: f"{n},{label_of[n]}", header="video_name,label")
    name = "{:05d}".format
    return {"test_folds": sizes, "train_sets": [n_listed - s for s in sizes],
            "labels": {name(n): canonical[n] for n in listed}, "folds": {name(n): fold_of[n] for n in listed},
            "unlisted": [name(n) for n in extra], **{k: [name(n) for n in v] for k, v in defects.items()},
            "frames": n_frames}



def _ferv39k_grid(full: bool, scenes: int | Sequence[str] | None, test: int,
                  train: int) -> dict[tuple[str, str], tuple[int, int]]:
    """(scene, emotion) -> (clips, of them in test_All). ``full``: each scene's real count, shared out over the
    emotions by their real shares (largest remainders), and the scene's real test count shared out the same way."""
    scenes = (len(FERV39K_SCENES) if full else 2) if scenes is None else scenes
    names = list(FERV39K_SCENES)[:scenes] if isinstance(scenes, int) else list(scenes)
    if not full:
        return {(s, e): (test + train, test) for s in names for e in FERV39K_EMOTIONS}
    total = sum(FERV39K_EMOTION_CLIPS.values())
    grid = {}
    for s in names:
        clips, tested = FERV39K_SCENES[s]
        per = _share(clips, [FERV39K_EMOTION_CLIPS[e] / total for e in FERV39K_EMOTIONS])
        tests = _share(tested, [n / clips for n in per])
        grid.update({(s, e): (per[i], tests[i]) for i, e in enumerate(FERV39K_EMOTIONS)})
    return grid


def _share(n: int, weights: Sequence[float]) -> list[int]:
    """``n`` shared out in proportion to ``weights`` (largest remainders): whole numbers summing to ``n``."""
    raw = [n * w / sum(weights) for w in weights]
    out = [int(r) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: out[i] - raw[i])[:n - sum(out)]:
        out[i] += 1
    return out


def make_ferv39k_tree(
    root: str | Path,
    test: int = 1,
    train: int = 2,
    *,
    full: bool = False,
    scenes: int | Sequence[str] | None = None,
    frames: Frames = 16,
    size: int = 8,
    ext: str = "jpg",
    frame: Drawer | None = None,
    write_frames: bool = True,
    scene_frames: bool = False,
    per_scene: bool = True,
    missing: int = 1,
    unpadded: int = 1,
    bad_label: int = 1,
    short: int = 1,
    seed: int = 0,
) -> dict:
    """FERV39k as distributed, under ``root``::

        2_ClipsforFaceCrop/<Scene>/<Emotion>/<NNNN>/<NNNNN>.jpg   face frames (``frames`` per clip)
        3_ClipsforScenImages/<Scene>/<Emotion>/<NNNN>/...          scene frames (``scene_frames``)
        4_setups/All_scenes/{train_All,test_All}.csv               no header: ``Action/Happy/0267 Happy``
        4_setups/22_scenes/<Scene>/{train,test}_<Scene>.csv        the same lines, one scene (``per_scene``)

    ``test`` / ``train``: clips per scene and emotion in test_All / train_All, over the first ``scenes`` scenes (a
    count or names; default 2, 7 emotions each); ``full``: the scenes (default all 22) at their real sizes, 31,088
    train + 7,847 test clips for all 22. NNNN numbers the clips of one Scene/Emotion folder from 0000, train and test interleaved (as in
    the dataset). ``frames``, ``size``, ``ext``, ``frame``, ``write_frames``: as for :func:`make_dfew_tree`.

    Defects (clip counts, disjoint): ``missing`` (listed, no frame folder), ``unpadded`` (frames ``1.jpg ...``),
    ``bad_label`` (extra clips under a ``Contempt`` folder, labelled ``Contempt``, in train_All), ``short`` (8 frames).

    Returns {"train": clips in train_All, "test": clips in test_All, "labels": {clip: canonical label or None},
    "test_clips": [...], "missing"/"unpadded"/"bad_label"/"short": [clip paths], "frames": face frame files};
    a clip is named by its split-file path, ``Action/Happy/0000``.
    """
    root = Path(root)
    rng = np.random.default_rng([seed, 2])
    grid = _ferv39k_grid(full, scenes, test, train)
    clips, tested = [], set()
    for (scene, emotion), (n, n_test) in grid.items():
        names = [f"{scene}/{emotion}/{k:04d}" for k in range(n)]
        clips += names
        tested.update(names[i] for i in rng.choice(n, n_test, replace=False))
    defects = _pick(rng, clips, {"missing": missing, "unpadded": unpadded, "short": short})
    odd = f"{next(iter(grid))[0]}/Contempt"
    defects["bad_label"] = [f"{odd}/{k:04d}" for k in range(bad_label)]
    labels = {c: FERV39K_EMOTIONS[c.split("/")[1]] for c in clips} | {c: None for c in defects["bad_label"]}

    draw = _drawer(frame, size, seed)
    n_frames = 0
    for i, clip in enumerate(clips + defects["bad_label"]):
        if clip in defects["missing"]:
            continue
        count = SHORT_FRAMES if clip in defects["short"] else _count(frames, i)
        names = _frame_names(count, ext, clip in defects["unpadded"], "{k:05d}")
        for folder in ("2_ClipsforFaceCrop", "3_ClipsforScenImages")[:1 + scene_frames]:
            _write_frames(root / folder / clip, names, i, labels[clip], draw, write_frames)
        n_frames += count
    line = "{0} {1}".format
    train_lines = [line(c, c.split("/")[1]) for c in clips if c not in tested]
    train_lines += [line(c, "Contempt") for c in defects["bad_label"]]
    test_lines = [line(c, c.split("/")[1]) for c in clips if c in tested]
    setups = root / "4_setups"
    _write_lines(setups / "All_scenes" / "train_All.csv", train_lines)
    _write_lines(setups / "All_scenes" / "test_All.csv", test_lines)
    if per_scene:
        for scene in dict.fromkeys(s for s, _ in grid):
            for kind, lines in (("train", train_lines), ("test", test_lines)):
                _write_lines(setups / "22_scenes" / scene / f"{kind}_{scene}.csv",
                             [x for x in lines if x.startswith(scene + "/")])
    return {"train": len(train_lines), "test": len(test_lines), "labels": labels,
            "test_clips": [c for c in clips if c in tested], **defects, "frames": n_frames}


def make_mafw_tree(
    root: str | Path,
    folds: int | Sequence[int] | None = None,
    *,
    full: bool = False,
    frames: Frames = 16,
    size: int = 8,
    ext: str = "jpg",
    frame: Drawer | None = None,
    write_frames: bool = True,
    videos: bool = False,
    compound: int = 2,
    missing: int = 1,
    unpadded: int = 1,
    bad_label: int = 1,
    short: int = 1,
    splits: str = MAFW_SPLITS,
    seed: int = 0,
) -> dict:
    """MAFW as distributed, under ``root``::

        data/frames/<05d>/<05d>.jpg                                 frames (``frames`` per clip)
        data/clips/<05d>.mp4                                        (``videos``: tiny real videos)
        Train & Test set/single/no_caption/set_{1..5}/{train,test}.txt      ``00025.mp4 anger``, CRLF line ends
        Train & Test set/compound/no_caption/set_{1..5}/{train,test}.txt    ``00031.mp4 anger_disgust``

    ``folds``: single-label clips per test fold (one count, or five); default 22 (two per class); ``full``: the
    official 1,839 / 1,837 / 1,833 / 1,832 / 1,831 (9,172 clips). Each clip is in the test file of one set and the
    train files of the four others; labels cycle over the 11 classes within each fold. ``compound``: further clips
    per fold in the compound (multi-label) set, frames included. ``splits``: the split folder's name. ``frames``,
    ``size``, ``ext``, ``frame``, ``write_frames``: as for :func:`make_dfew_tree`.

    Defects (single-label clip counts, disjoint): ``missing`` (listed, no frame folder), ``unpadded`` (frames
    ``1.jpg ...``), ``bad_label`` (the unknown word ``boredom``), ``short`` (8 frames).

    Returns {"test_folds", "train_sets", "labels": {clip: canonical label or None}, "folds": {clip: test fold},
    "compound": {clip: label}, "missing"/"unpadded"/"bad_label"/"short": [clip names], "frames"}; clips are named
    as the split files write them, ``00025.mp4``.
    """
    root = Path(root)
    sizes = _folds(folds, full, MAFW_FOLDS, 2 * len(MAFW_LABELS))
    rng = np.random.default_rng([seed, 3])
    n_single, n_compound = sum(sizes), compound * WILD_SETS
    numbers = rng.permutation(np.arange(1, n_single + n_compound + 1)).tolist()
    single, multi = sorted(numbers[:n_single]), sorted(numbers[n_single:])
    fold_of, word_of = _assign(rng, single, sizes, len(MAFW_LABELS))
    word_of = {n: MAFW_LABELS[i] for n, i in word_of.items()}
    for j, number in enumerate(multi):
        fold_of[number], word_of[number] = j % WILD_SETS, MAFW_COMPOUND[j % len(MAFW_COMPOUND)]
    defects = _pick(rng, single, {"missing": missing, "unpadded": unpadded, "bad_label": bad_label, "short": short})
    for number in defects["bad_label"]:
        word_of[number] = "boredom"

    draw = _drawer(frame, size, seed)
    canonical = {n: word_of[n] if word_of[n] in MAFW_LABELS else None for n in single}
    n_frames = 0
    for i, number in enumerate(sorted(single + multi)):
        name = f"{number:05d}"
        label = word_of[number].split("_")[0] if number in multi else canonical[number]
        count = SHORT_FRAMES if number in defects["short"] else _count(frames, i)
        if videos:
            _write_video(root / "data" / "clips" / f"{name}.mp4", count, i, label, draw)
        if number in defects["missing"]:
            continue
        _write_frames(root / "data" / "frames" / name,
                      _frame_names(count, ext, number in defects["unpadded"], "{k:05d}"), i, label, draw,
                      write_frames)
        n_frames += count
    for subset, clips in (("single", single), ("compound", multi)):
        _write_sets(clips, fold_of, lambda kind, k, subset=subset: root / splits / subset / "no_caption" /
                    f"set_{k + 1}" / f"{kind}.txt", lambda n: f"{n:05d}.mp4 {word_of[n]}", newline="\r\n")
    name = "{:05d}.mp4".format
    return {"test_folds": sizes, "train_sets": [n_single - s for s in sizes],
            "labels": {name(n): canonical[n] for n in single}, "folds": {name(n): fold_of[n] for n in single},
            "compound": {name(n): word_of[n] for n in multi},
            **{k: [name(n) for n in v] for k, v in defects.items()}, "frames": n_frames}


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(make_enterface_tree(sys.argv[1]), "placeholder videos under", sys.argv[1])

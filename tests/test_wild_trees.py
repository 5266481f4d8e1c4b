"""The generated DFEW, FERV39k and MAFW trees: the maintainers' layouts and split-file formats, the official fold
sizes at full size, and each defect where the returned summary says it is. The split files are read back here with
plain parsing, independent of the adapters."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from video_emotion.datasets.placeholder import (
    DFEW_FOLDS,
    DFEW_LABELS,
    FERV39K_EMOTION_CLIPS,
    FERV39K_EMOTIONS,
    FERV39K_SCENES,
    MAFW_FOLDS,
    MAFW_LABELS,
    make_dfew_tree,
    make_ferv39k_tree,
    make_mafw_tree,
    wild_frame,
)
from video_emotion.frames import probe


def sets(root: Path, path: str, header: str | None = None, sep: str = ",") -> dict[str, list[list[tuple[str, str]]]]:
    """{"test": [lines of set 1..5], "train": [...]} of split files at ``path.format(kind=..., k=...)``; each line
    (clip, label). Checks the header and, for MAFW's ``.txt``, CRLF line ends."""
    out = {}
    for kind in ("test", "train"):
        out[kind] = []
        for k in range(1, 6):
            raw = (root / path.format(kind=kind, k=k)).read_bytes()
            if sep == " ":
                assert raw.endswith(b"\r\n") and raw.count(b"\r\n") == raw.count(b"\n"), "MAFW lines end in CRLF"
            lines = raw.decode().splitlines()
            if header is not None:
                assert lines[0] == header
                lines = lines[1:]
            out[kind].append([tuple(line.split(sep)) for line in lines])
    return out


def frame_numbers(folder: Path) -> list[int]:
    return sorted(int(p.stem.rsplit("_", 1)[-1]) for p in folder.iterdir())


def assert_official_sets(split: dict, sizes: list[int]) -> dict[str, int]:
    """Each clip in the test file of exactly one set and in the train files of the four others; returns its fold."""
    assert [len(t) for t in split["test"]] == sizes
    fold = {}
    for k, lines in enumerate(split["test"]):
        for clip, _ in lines:
            assert clip not in fold
            fold[clip] = k
    for k, lines in enumerate(split["train"]):
        train = [clip for clip, _ in lines]
        assert len(train) == len(set(train)) == sum(sizes) - sizes[k]
        assert {fold[c] for c in train} == set(range(5)) - {k}
    return fold


# ---- DFEW -------------------------------------------------------------------------------------------------------


def test_dfew_tree_layout_split_files_and_defects(tmp_path):
    made = make_dfew_tree(tmp_path)
    split = sets(tmp_path, "EmoLabel_DataSplit/{kind}(single-labeled)/set_{k}.csv", header="video_name,label")
    fold = assert_official_sets(split, [14] * 5)
    label = {clip: int(lab) for lines in split["test"] for clip, lab in lines}
    assert all(not c.startswith("0") for c in label), "clip numbers are written unpadded"
    padded = {f"{int(c):05d}": v for c, v in label.items()}
    assert made["folds"] == {f"{int(c):05d}": k for c, k in fold.items()}
    assert made["labels"] == {c: DFEW_LABELS[v - 1] if v <= 7 else None for c, v in padded.items()}
    assert [padded[c] for c in made["bad_label"]] == [8]
    for k in range(5):  # two clips per class and fold (the bad label replaced one)
        counts = Counter(padded[f"{int(c):05d}"] for c, _ in split["test"][k])
        assert set(counts) <= set(range(1, 9)) and sum(counts.values()) == 14

    clips = tmp_path / "Clip" / "clip_224x224"
    assert sorted(p.name for p in clips.iterdir()) == sorted(set(padded) - set(made["missing"]))
    assert not (tmp_path / "Clip" / "clip_224x224_16f" / made["missing"][0]).exists()
    (short,), (loose,) = made["short"], made["unpadded"]
    assert frame_numbers(clips / short) == list(range(1, 9))
    assert sorted(p.name for p in (clips / loose).iterdir()) == sorted(f"{k}.jpg" for k in range(1, 17))
    some = next(c for c in padded if c not in made["missing"] + made["short"] + made["unpadded"])
    assert sorted(p.name for p in (clips / some).iterdir()) == [f"{some}_{k:05d}.jpg" for k in range(1, 17)]
    assert len(list((tmp_path / "Clip" / "clip_224x224_16f" / short).iterdir())) == 16
    assert made["frames"] == sum(len(list(p.iterdir())) for p in clips.iterdir()) == 68 * 16 + 8
    image = cv2.imread(str(clips / some / f"{some}_00001.jpg"))
    assert image.shape == (8, 8, 3)


def test_dfew_full_size_gives_the_official_folds(tmp_path):
    made = make_dfew_tree(tmp_path, full=True, frames=0, tim=False, missing=0, short=0, unpadded=0)
    split = sets(tmp_path, "EmoLabel_DataSplit/{kind}(single-labeled)/set_{k}.csv", header="video_name,label")
    assert_official_sets(split, list(DFEW_FOLDS))
    assert made["train_sets"] == [9356, 9356, 9357, 9358, 9361]
    assert len(made["unlisted"]) == 4209
    folders = list((tmp_path / "Clip" / "clip_224x224").iterdir())
    assert len(folders) == 15906


def test_write_frames_false_writes_zero_byte_files(tmp_path):
    made = make_ferv39k_tree(tmp_path, write_frames=False, frames=5, short=0, unpadded=0)
    files = list((tmp_path / "2_ClipsforFaceCrop").rglob("*.jpg"))
    assert len(files) == made["frames"] == 5 * (42 - 1 + 1)
    assert {p.stat().st_size for p in files} == {0}


def test_dfew_variants_videos_and_drawn_frames(tmp_path):
    def flat(clip, index, label):  # one grey level per label, drawn by the caller
        return np.full((16, 16, 3), 10 * (DFEW_LABELS.index(label) + 1) if label else 250, np.uint8)

    made = make_dfew_tree(tmp_path, folds=[3, 2, 2, 2, 2], frames=[9, 12], ext="png", frame=flat, videos=True,
                          split_folder="single_labeled", tim=False, short=0, unpadded=0)
    assert sets(tmp_path, "EmoLabel_DataSplit/{kind}(single_labeled)/set_{k}.csv", header="video_name,label")
    clips = sorted((tmp_path / "Clip" / "clip_224x224").iterdir())
    assert [len(list(p.iterdir())) for p in clips[:2]] == [9, 12], "a list of lengths is cycled over the clips"
    for folder in clips:
        image = cv2.imread(str(sorted(folder.iterdir())[0]), cv2.IMREAD_UNCHANGED)
        label = made["labels"][folder.name]
        assert image.shape == (16, 16, 3)
        assert image[0, 0, 0] == (10 * (DFEW_LABELS.index(label) + 1) if label else 250), "PNG is lossless"
    videos = sorted((tmp_path / "Clip" / "original").iterdir())
    assert [p.stem for p in videos] == sorted(made["labels"]), "every clip has its video, missing frames or not"
    info = probe(videos[0])
    assert (info["width"], info["height"]) == (16, 16)
    assert not (tmp_path / "Clip" / "clip_224x224_16f").exists()


def test_same_seed_same_tree(tmp_path):
    a = make_dfew_tree(tmp_path / "a", seed=3, frames=2, tim=False)
    b = make_dfew_tree(tmp_path / "b", seed=3, frames=2, tim=False)
    c = make_dfew_tree(tmp_path / "c", seed=4, frames=2, tim=False)
    assert a == b and a["folds"] != c["folds"]
    one = sorted((tmp_path / "a" / "Clip" / "clip_224x224").rglob("*.jpg"))[5]
    assert one.read_bytes() == (tmp_path / "b" / one.relative_to(tmp_path / "a")).read_bytes()


def test_default_frames_code_the_label():
    """The default drawing differs between labels far more than between two frames of one label."""
    def mean(label, clip):
        return np.mean([wild_frame(clip, k, label, size=32).astype(float) for k in range(4)], axis=0)

    same = np.abs(mean("anger", 1) - mean("anger", 2)).mean()
    other = np.abs(mean("anger", 1) - mean("happiness", 1)).mean()
    assert other > 4 * same


# ---- FERV39k ----------------------------------------------------------------------------------------------------


def ferv_lines(path: Path) -> list[tuple[str, str]]:
    text = path.read_text()
    assert "\r" not in text and "," not in text
    return [tuple(line.split(" ")) for line in text.splitlines()]


def test_ferv39k_tree_layout_split_files_and_defects(tmp_path):
    made = make_ferv39k_tree(tmp_path)
    setups = tmp_path / "4_setups"
    train, test = ferv_lines(setups / "All_scenes/train_All.csv"), ferv_lines(setups / "All_scenes/test_All.csv")
    assert (len(train), len(test)) == (made["train"], made["test"]) == (2 * 14 + 1, 14)
    assert {c for c, _ in train}.isdisjoint(c for c, _ in test)
    for clip, label in train + test:
        scene, emotion, number = clip.split("/")
        assert emotion == label and len(number) == 4 and number.isdigit()
        assert scene in ("Action", "Argue")
        assert (tmp_path / "2_ClipsforFaceCrop" / clip).is_dir() == (clip not in made["missing"])
    assert Counter(label for _, label in test) == dict.fromkeys(FERV39K_EMOTIONS, 2)
    assert made["bad_label"] == ["Action/Contempt/0000"] and ("Action/Contempt/0000", "Contempt") in train
    assert made["labels"]["Action/Contempt/0000"] is None
    assert made["labels"]["Argue/Happy/0001"] == "happiness"
    for scene in ("Action", "Argue"):  # the per-scene setups hold that scene's lines of All_scenes
        assert ferv_lines(setups / f"22_scenes/{scene}/test_{scene}.csv") == [x for x in test if x[0].startswith(scene)]
    faces = tmp_path / "2_ClipsforFaceCrop"
    assert frame_numbers(faces / made["short"][0]) == list(range(1, 9))
    assert sorted(p.name for p in (faces / made["unpadded"][0]).iterdir()) == sorted(f"{k}.jpg" for k in range(1, 17))
    assert not (tmp_path / "3_ClipsforScenImages").exists()


def test_ferv39k_full_size_and_scene_frames(tmp_path):
    make_ferv39k_tree(tmp_path / "full", full=True, frames=0, per_scene=False, missing=0, bad_label=0, short=0,
                      unpadded=0)
    train = ferv_lines(tmp_path / "full/4_setups/All_scenes/train_All.csv")
    test = ferv_lines(tmp_path / "full/4_setups/All_scenes/test_All.csv")
    assert (len(train), len(test)) == (31088, 7847)
    scenes = Counter(c.split("/")[0] for c, _ in train + test)
    assert scenes == {s: n for s, (n, _) in FERV39K_SCENES.items()}
    assert Counter(c.split("/")[0] for c, _ in test) == {s: t for s, (_, t) in FERV39K_SCENES.items()}
    emotions = Counter(label for _, label in train + test)
    assert all(abs(emotions[e] - n) <= 22 for e, n in FERV39K_EMOTION_CLIPS.items())
    assert len(list((tmp_path / "full/2_ClipsforFaceCrop/War/Neutral").iterdir())) == sum(
        1 for c, _ in train + test if c.startswith("War/Neutral/"))

    made = make_ferv39k_tree(tmp_path / "scenes", scenes=["War"], scene_frames=True, frames=lambda i: 8 + i % 3)
    assert made["test"] == 7
    for clip in made["labels"]:
        if clip not in made["missing"]:
            face = sorted(p.name for p in (tmp_path / "scenes/2_ClipsforFaceCrop" / clip).iterdir())
            assert face == sorted(p.name for p in (tmp_path / "scenes/3_ClipsforScenImages" / clip).iterdir())
            assert len(face) in (8, 9, 10)


# ---- MAFW -------------------------------------------------------------------------------------------------------

MAFW_SINGLE = "Train & Test set/single/no_caption/set_{k}/{kind}.txt"


def test_mafw_tree_layout_split_files_and_defects(tmp_path):
    made = make_mafw_tree(tmp_path, frames=4, short=0)
    split = sets(tmp_path, MAFW_SINGLE, sep=" ")
    fold = assert_official_sets(split, [22] * 5)
    assert made["folds"] == fold
    words = {clip: word for lines in split["test"] for clip, word in lines}
    assert all(len(c) == 9 and c.endswith(".mp4") for c in words)
    assert set(words.values()) == set(MAFW_LABELS) | {"boredom"}
    assert [words[c] for c in made["bad_label"]] == ["boredom"]
    compound = sets(tmp_path, MAFW_SINGLE.replace("single", "compound"), sep=" ")
    multi = assert_official_sets(compound, [2] * 5)
    assert set(multi).isdisjoint(words) and all("_" in w for lines in compound["test"] for _, w in lines)
    assert set(made["compound"]) == set(multi)

    frames = tmp_path / "data" / "frames"
    assert sorted(p.name for p in frames.iterdir()) == sorted(c[:5] for c in set(words) | set(multi)
                                                             if c not in made["missing"])
    assert sorted(p.name for p in (frames / made["unpadded"][0][:5]).iterdir()) == ["1.jpg", "2.jpg", "3.jpg",
                                                                                    "4.jpg"]


def test_mafw_videos(tmp_path):
    made = make_mafw_tree(tmp_path, folds=1, compound=1, videos=True, missing=1, unpadded=0, bad_label=0, short=0)
    videos = sorted(p.name for p in (tmp_path / "data" / "clips").iterdir())
    assert videos == sorted([*made["labels"], *made["compound"]]), "every clip has its video, missing frames or not"
    info = probe(tmp_path / "data" / "clips" / videos[0])
    assert (info["width"], info["height"]) == (16, 16), "8-pixel frames, enlarged to 16"


def test_mafw_full_size_gives_the_official_folds(tmp_path):
    made = make_mafw_tree(tmp_path, full=True, frames=0, compound=0, short=0, unpadded=0)
    assert_official_sets(sets(tmp_path, MAFW_SINGLE, sep=" "), list(MAFW_FOLDS))
    assert made["train_sets"] == [7333, 7335, 7339, 7340, 7341]
    assert len(list((tmp_path / "data" / "frames").iterdir())) == 9172 - 1 == len(made["labels"]) - 1


@pytest.mark.parametrize("maker", [make_dfew_tree, make_mafw_tree])
def test_fold_sizes_must_be_five_positive_counts(tmp_path, maker):
    with pytest.raises(ValueError, match="folds"):
        maker(tmp_path, folds=[3, 3])

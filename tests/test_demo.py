"""The demo generator: eNTERFACE'05 layout, decodable and deterministic videos, detectable faces and expressions
that move the landmarks the designed way, distinct enough to tell apart across subjects."""

from __future__ import annotations

import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest

from video_emotion import demo
from video_emotion.datasets.enterface05 import video_path
from video_emotion.faces import load_dlib_models
from video_emotion.labels import EMOTIONS

SETTINGS = dict(subjects=2, sentences=2, seconds=1.0, fps=25, width=320, height=240, seed=0)
N_FRAMES = 25


def decode(path) -> np.ndarray:
    """All frames of a video as (T, H, W, 3) uint8, decoded by ffmpeg."""
    done = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True,
        check=True,
    )
    return np.frombuffer(done.stdout, np.uint8).reshape(-1, SETTINGS["height"], SETTINGS["width"], 3)


def eye_frame(points: np.ndarray) -> np.ndarray:
    """Landmarks in a head-centred frame: eye-corner centres at (-0.5, 0) and (0.5, 0), y down."""
    left, right = points[[36, 39]].mean(0), points[[42, 45]].mean(0)
    z = complex(*(right - left))
    q = (points[:, 0] + 1j * points[:, 1] - complex(*(left + right) / 2)) / z
    return np.c_[q.real, q.imag]


def measures(p: np.ndarray) -> dict[str, float]:
    return {
        "mouth_open": p[66, 1] - p[62, 1],
        "mouth_width": float(np.hypot(*(p[54] - p[48]))),
        "brow_height": -p[17:27, 1].mean(),
        "brow_gap": p[22, 0] - p[21, 0],
        "corners_below_lips": p[[48, 54], 1].mean() - p[[51, 57], 1].mean(),
        "lip_below_nose": p[51, 1] - p[33, 1],
    }


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    return root, demo.make_demo(root, **SETTINGS)


@pytest.fixture(scope="module")
def onset_and_apex(videos):
    """Per clip: (subject, emotion, first-frame landmarks, last-frame landmarks), both in the eye frame."""
    rows = []
    for path in videos[1]:
        frames = decode(path)
        first, last = demo._landmarks(frames[0], 0), demo._landmarks(frames[-1], 0)
        assert first is not None and last is not None, f"no face in the first or last frame of {path}"
        rows.append((path.parts[-4], path.parts[-3], eye_frame(first), eye_frame(last)))
    return rows


def test_layout_is_enterface(videos):
    root, paths = videos
    expected = sorted(root / video_path(n, emotion, k) for n in (1, 2) for emotion in EMOTIONS for k in (1, 2))
    assert paths == expected
    assert sorted(root.rglob("*")) == sorted({*paths, *(p for path in paths for p in path.parents if root in p.parents)})


def test_every_video_decodes_to_the_expected_frames(videos):
    for path in videos[1]:
        frames = decode(path)
        assert frames.shape == (N_FRAMES, 240, 320, 3), path
        assert frames.std() > 20, f"{path} looks blank"


def test_same_seed_same_frames_and_more_subjects_keep_the_first(videos, tmp_path):
    root, _ = videos
    again = demo.make_demo(tmp_path / "again", **{**SETTINGS, "subjects": 1, "sentences": 1})
    assert len(again) == 6
    for path in again:
        original = root / path.relative_to(tmp_path / "again")
        assert np.array_equal(decode(path), decode(original)), path
        assert path.read_bytes() == original.read_bytes(), path

    other = demo.make_demo(tmp_path / "other", **{**SETTINGS, "subjects": 1, "sentences": 1, "seed": 1})
    assert not np.array_equal(decode(other[0]), decode(again[0]))


def test_dlib_finds_the_face_in_nearly_every_frame(videos):
    detector, _ = load_dlib_models()
    found = [len(detector(frame, 0)) > 0 for path in videos[1] for frame in decode(path)[::2]]
    assert np.mean(found) >= 0.95, f"face found in {np.mean(found):.1%} of frames"


def test_expressions_move_landmarks_the_designed_way(onset_and_apex):
    change = {emotion: {} for emotion in EMOTIONS}
    for _, emotion, first, last in onset_and_apex:
        before, after = measures(first), measures(last)
        for name in before:
            change[emotion].setdefault(name, []).append(after[name] - before[name])
    mean = {emotion: {name: float(np.mean(v)) for name, v in m.items()} for emotion, m in change.items()}

    assert mean["surprise"]["mouth_open"] > 0.12  # jaw dropped
    assert mean["surprise"]["brow_height"] > 0.05
    assert mean["happiness"]["mouth_width"] > 0.1
    assert mean["happiness"]["corners_below_lips"] < -0.05  # corners up
    assert mean["anger"]["brow_height"] < -0.03
    assert mean["anger"]["brow_gap"] < -0.03  # brows drawn together
    assert mean["sadness"]["corners_below_lips"] > 0.04  # corners down
    assert mean["fear"]["mouth_width"] > 0.1
    assert mean["fear"]["brow_height"] > 0.04
    assert mean["disgust"]["lip_below_nose"] < -0.03  # upper lip raised


def test_expressions_tell_apart_across_subjects(onset_and_apex):
    """Nearest centroid on apex-minus-onset landmark displacements, trained on one subject, tested on the other."""
    subjects = np.array([row[0] for row in onset_and_apex])
    labels = np.array([row[1] for row in onset_and_apex])
    x = np.array([(last - first).ravel() for _, _, first, last in onset_and_apex])
    accuracies = []
    for train in np.unique(subjects):
        centroids = np.array([x[(subjects == train) & (labels == e)].mean(0) for e in EMOTIONS])
        test = subjects != train
        nearest = ((x[test][:, None] - centroids[None]) ** 2).sum(-1).argmin(1)
        accuracies.append(np.mean(np.array(EMOTIONS)[nearest] == labels[test]))
    assert np.mean(accuracies) >= 0.5, f"cross-subject accuracy {accuracies}, chance is 1/6"


def test_bad_arguments_name_the_problem(tmp_path):
    occupied = tmp_path / "file"
    occupied.write_text("")
    with pytest.raises(NotADirectoryError, match="file"):
        demo.make_demo(occupied, subjects=1, sentences=1)
    with pytest.raises(ValueError, match="subjects"):
        demo.make_demo(tmp_path / "out", subjects=0)
    with pytest.raises(ValueError, match="frame"):
        demo.make_demo(tmp_path / "out", seconds=0.01)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("subjects", [None, 2, 16])
def test_demo_folds_never_put_a_photo_on_both_sides(subjects):
    """The demo preset's folds split its subjects by source photograph: no test subject shares a photo (or a
    person) with a subject that trains or validates in that fold, whatever the number of subjects allowed."""
    from video_emotion.config import load_yaml, resolve
    from video_emotion.splits import assign_folds

    root = Path(__file__).parents[1]
    user = {} if subjects is None else {"demo": {"subjects": subjects}}
    config = resolve(user, load_yaml(root / "workflow/schemas/config.schema.yaml"),
                     load_yaml(root / "workflow/presets/demo.yaml"))
    names = [str(n) for n in range(1, config["demo"]["subjects"] + 1)]
    folds = assign_folds(names, config["folds"]["scheme"], config["folds"]["k"], config["folds"]["seed"],
                         config["folds"]["fixed"])
    assert len(set(folds.values())) >= 2 and -1 not in folds.values()
    for fold in set(folds.values()):
        test = {p for s in names if folds[s] == fold for p in demo.subject_sources(int(s))}
        rest = {p for s in names if folds[s] != fold for p in demo.subject_sources(int(s))}
        assert test and rest and not test & rest, (fold, test & rest)
    assert len({p for s in names for p in demo.subject_sources(int(s))}) == (4 if len(names) > 1 else 2)

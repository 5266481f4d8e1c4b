"""Faces stage on eNTERFACE-size footage (720x576, 25 fps) made from the demo's real photos: a small face, two
people, a covered lower face, a face cut by the frame edge; through the real frames stage (ffmpeg, 240-line JPEGs)
and the real dlib models; and the stage's QC strip, storage and start-up."""

import subprocess
import sys

import h5py
import numpy as np
import pytest

from video_emotion.faces import process_shard
from video_emotion.faces.align import template_points
from video_emotion.faces.pipeline import DEFAULTS, FacePipeline, detect_scale
from video_emotion.faces.scenes import encode, pan, photos
from video_emotion.faces.strip import draw_strip, lowest_detection
from video_emotion.faces.track import FaceTracker, pick_target
from video_emotion.frames import extract_frames

H, W = 576, 720


def by_name(name):
    return next(p for p in photos() if p.name == name)


@pytest.fixture(scope="module")
def enterface(tmp_path_factory):
    """Videos at 720x576, 25 fps, 2 s; frames stage at the defaults (10 fps, 240 lines); faces at the defaults."""
    root = tmp_path_factory.mktemp("enterface")
    hopper, astronaut = by_name("grace_hopper"), by_name("astronaut")
    scenes = {
        "small": [(hopper, 48, (300, 250), 0, False)],
        "two": [(hopper, 130, (230, 280), 0, False), (astronaut, 90, (500, 260), 0, False)],
        "masked": [(hopper, 110, (330, 270), 0, True)],
        "cut": [(hopper, 120, (35, 280), 0, False)],
    }
    refs, items = {}, []
    for name, faces in scenes.items():
        frames, refs[name] = pan(H, W, faces, n=50, step=0.5)
        extract_frames(encode(root / f"{name}.avi", frames), root / "frames" / name, fps=10, height=240)
        items.append((name, root / "frames" / name))
    qc = process_shard(items, root / "s.h5", root / "s_qc.parquet", {"backend": "dlib"}, progress=False)
    return root, qc.set_index("video_id"), refs


def test_a_48px_face_in_a_720x576_video_is_found_with_the_default_settings(enterface):
    root, qc, refs = enterface
    row = qc.loc["small"]
    assert row["status"] == "ok" and row["detection_rate"] >= 0.9, row.to_dict()
    with h5py.File(root / "s.h5") as h5:
        lm = h5["small"]["landmarks"][:]
    # landmarks on the 240-line frames against the reference landmarks (source pixels) of the same frames
    ratio = 240 / H
    truth = np.stack([refs["small"][min(round(2.5 * t), 49)][0].landmarks for t in range(len(lm))]) * ratio
    error = np.linalg.norm(lm - truth, axis=-1).mean() / (48 * ratio)
    assert error < 0.15  # of the face width


def test_two_people_are_counted_and_the_followed_one_never_switches(enterface):
    root, qc, _ = enterface
    row = qc.loc["two"]
    assert row["status"] == "ok" and row["max_faces"] == 2 and row["identity_switches"] == 0
    with h5py.File(root / "s.h5") as h5:
        boxes, n_faces = h5["two"]["boxes"][:], h5["two"]["n_faces"][:]
    assert (n_faces == 2).mean() > 0.9
    assert ((boxes[:, 0] + boxes[:, 2]) / 2 < 150).all()  # the larger face (left, 240-line frame); never the right


def test_a_covered_lower_face_is_found_by_the_cnn_fallback(enterface):
    _, qc, _ = enterface
    row = qc.loc["masked"]
    assert row["fallback_calls"] >= 1 and row["fallback_found"] >= 1
    assert row["status"] == "ok" and row["detection_rate"] >= 0.5, row.to_dict()
    assert row["fallback_seconds"] > 0


def test_a_face_cut_by_the_frame_edge_is_flagged_and_padded_not_shifted(enterface):
    root, qc, _ = enterface
    row = qc.loc["cut"]
    assert row["status"] == "ok" and row["outside_rate"] > 0.5, row.to_dict()
    with h5py.File(root / "s.h5") as h5:
        g, size = h5["cut"], int(h5.attrs["crop_size"])
        crops, crop_lm, outside = g["crops"][:], g["landmarks_crop"][:], g["outside"][:]
    assert (outside > 0).any()
    # the eyes sit where the template puts them; the part beyond the frame edge is padding (black), on the left
    eyes = np.stack([crop_lm[:, 36:42].mean(1), crop_lm[:, 42:48].mean(1)], 1)
    np.testing.assert_allclose(eyes.mean(0), template_points(size, 0.2)[:2], atol=size / 16)
    assert (crops[:, :, :size // 16] == 0).all(axis=-1).mean() > 0.5


def test_detector_image_follows_the_smallest_source_face_not_the_stored_height(enterface):
    params = dict(DEFAULTS)
    # a 40 px face reaches HOG's 80 px window (after its 2x upsampling) whatever the frames' height
    for ratio in (1.0, 240 / 576, 480 / 1080):
        assert detect_scale(params, _Dlib(), ratio) * 2 * 40 * ratio == pytest.approx(80)
    assert detect_scale({**params, "detect_scale": 0.5}, _Dlib(), 0.3) == 0.5


class _Dlib:
    """What the pipeline asks a dlib backend before it detects anything."""

    name, versions, min_face, upsample = "dlib", {}, 80, 1


class Boxes:
    """Detections of fixed boxes; landmarks spread over the box given."""

    batched = False
    min_face = 80

    def __init__(self, widths):
        self.widths, self.calls = list(widths), 0

    def detect(self, image):
        w = self.widths[min(self.calls, len(self.widths) - 1)]
        self.calls += 1
        return np.array([[100, 100, 100 + w, 100 + w]], np.float32), np.ones(1, np.float32)

    def landmarks(self, images, boxes):
        grid = np.stack(np.meshgrid(np.linspace(0, 1, 17), np.linspace(0, 1, 4)), -1).reshape(-1, 2)[:68]
        return np.stack([b[:2] + grid * (b[2:] - b[:2]) for b in boxes]).astype(np.float32)


def test_box_size_is_smoothed_over_redetections_and_big_jumps_count_as_switches():
    frames = np.random.default_rng(0).integers(0, 256, (20, 300, 300, 3), np.uint8)
    widths = [76, 90] * 10
    raw = FaceTracker(Boxes(widths), detect_every=1, detect_scale=1.0, box_smooth=0.0)
    smooth = FaceTracker(Boxes(widths), detect_every=1, detect_scale=1.0, box_smooth=0.5)
    raw_w = [raw.update(f)[0] for f in frames]
    smooth_w = [smooth.update(f)[0] for f in frames]
    assert np.ptp([b[2] - b[0] for b in raw_w[5:]]) == pytest.approx(14)
    assert np.ptp([b[2] - b[0] for b in smooth_w[5:]]) < 6
    assert raw.switches == smooth.switches == 0
    jump = FaceTracker(Boxes([80] * 5 + [200] * 5), detect_every=1, detect_scale=1.0)
    for f in frames[:10]:
        jump.update(f)
    assert jump.switches == 1


def test_selection_rule_largest_or_central():
    boxes = np.array([[0, 0, 100, 100], [180, 130, 220, 170]], np.float32)  # large in the corner, small central
    assert pick_target(boxes, 400, 300, "largest") == 0
    assert pick_target(boxes, 400, 300, "central") == 1
    with pytest.raises(ValueError, match="largest or central"):
        FacePipeline({"select": "nearest"}, backend=_Dlib())


def test_faces_file_is_within_1_2x_of_the_bytes_it_holds(enterface):
    root, _, _ = enterface
    with h5py.File(root / "s.h5") as h5:
        data = sum(h5[v][name].nbytes for v in h5 for name in h5[v])
    assert (root / "s.h5").stat().st_size <= 1.2 * data


def test_qc_strip_shows_a_video_and_names_what_is_missing(enterface, tmp_path):
    root, qc, _ = enterface
    worst = lowest_detection(qc.reset_index(), k=2)
    assert len(worst) == 2 and worst[0] in qc.index
    out = draw_strip(root / "s.h5", "cut", tmp_path / "strip.png", n=8)
    assert out.stat().st_size > 10_000
    with pytest.raises(KeyError, match="holds no video 'nope'"):
        draw_strip(root / "s.h5", "nope", tmp_path / "x.png")
    run = subprocess.run([sys.executable, "-m", "video_emotion.cli", "faces-strip", str(root / "s.h5"), "two",
                          "--out", str(tmp_path / "cli.png")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "cli.png").stat().st_size > 10_000


def test_a_dlib_faces_job_never_imports_torch(tmp_path):
    code = ("import sys; from video_emotion.faces import make_backend; b = make_backend('auto'); "
            "print(b.name, 'torch' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**__import__("os").environ, "TORCH_HOME": str(tmp_path)})
    assert run.stdout.split() == ["dlib", "False"], run.stderr

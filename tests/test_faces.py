"""Faces stage with the real dlib models (and face-alignment's real loading path) on videos made from real photos."""

import subprocess

import h5py
import numpy as np
import pytest
import skimage.data
from matplotlib import cbook
from matplotlib.image import imread

from video_emotion.faces import FacePipeline, make_backend, process_shard
from video_emotion.faces.backends import DlibBackend, FaceAlignmentBackend
from video_emotion.faces.track import ChunkTracker, FaceTracker, LandmarkFilter
from video_emotion.frames import extract_frames, ffmpeg_exe
from video_emotion.io import read_parquet_metadata

H, W = 240, 320


def astronaut():
    return skimage.data.astronaut()[:300, 60:460]  # 300x400, one face upper middle


def hopper():
    with cbook.get_sample_data("grace_hopper.jpg") as f:
        return np.asarray(imread(f, format="jpg"))


def resize(image, height):
    import cv2

    return cv2.resize(image, (round(image.shape[1] * height / image.shape[0]), height), interpolation=cv2.INTER_AREA)


def moving(image, n=30, amp=6):
    """``n`` frames of ``image`` (fit into HxW) drifting sideways by up to ``amp`` pixels."""
    image = resize(image, H)[:, :W]
    canvas = np.full((n, H, W + 2 * amp, 3), 90, np.uint8)
    x = (W + 2 * amp - image.shape[1]) // 2
    canvas[:, :, x:x + image.shape[1]] = image
    shifts = (amp * np.sin(np.arange(n) / 4)).astype(int) + amp
    return np.stack([canvas[t, :, s:s + W] for t, s in enumerate(shifts)])


def encode(path, frames, fps=10):
    t, h, w, _ = frames.shape
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
                    "-r", str(fps), "-i", "-", "-c:v", "mjpeg", "-q:v", "2", str(path)],
                   input=np.ascontiguousarray(frames).tobytes(), check=True)
    return path


def two_faces(n=30):
    """Grace Hopper large on the left (centre-ish), the astronaut small on the right."""
    frames = np.full((n, H, W, 3), 120, np.uint8)
    big = resize(hopper()[:300, 100:420], 200)[:, :190]
    small = resize(astronaut()[:200, 100:300], 110)
    frames[:, 20:220, 60:60 + big.shape[1]] = big
    frames[:, 10:120, 320 - small.shape[1]:] = small
    return frames


@pytest.fixture(scope="module")
def dlib_backend():
    return DlibBackend()


@pytest.fixture(scope="module")
def shard(tmp_path_factory):
    root = tmp_path_factory.mktemp("faces")
    videos = {"face": moving(astronaut()), "two": two_faces(),
              "noise": np.random.default_rng(0).integers(0, 256, (20, H, W, 3), np.uint8)}
    gappy = moving(hopper())
    gappy[10:14] = 90  # four blank frames: a gap to interpolate
    videos["gap"] = gappy
    items = []
    for name, frames in videos.items():
        extract_frames(encode(root / f"{name}.avi", frames), root / "frames" / name, fps=10, height=H)
        items.append((name, root / "frames" / name))
    (root / "broken.avi").write_bytes(b"")
    extract_frames(root / "broken.avi", root / "frames" / "broken", fps=10, height=H)
    items.append(("broken", root / "frames" / "broken"))
    qc = process_shard(items, root / "s1.h5", root / "s1_qc.parquet", {"backend": "dlib", "crop_size": 64}, progress=False)
    return root, qc.set_index("video_id")


def test_dlib_landmarks_are_anatomically_ordered_and_mirror(dlib_backend):
    for image in (astronaut(), hopper()):
        image = np.ascontiguousarray(image)
        boxes, scores = dlib_backend.detect(image)
        assert len(boxes) >= 1 and scores[0] > 0
        box = boxes[np.argmax(boxes[:, 2] - boxes[:, 0])]
        lm = dlib_backend.landmarks([image], box[None])[0]
        eyes, nose, mouth = lm[36:48, 1].mean(), lm[30, 1], lm[48:68, 1].mean()
        assert eyes < nose < mouth
        pad = 0.25 * (box[2] - box[0])
        assert (lm[:, 0] > box[0] - pad).all() and (lm[:, 0] < box[2] + pad).all()
        assert (lm[:, 1] > box[1] - pad).all() and (lm[:, 1] < box[3] + pad).all()
        mirrored = np.ascontiguousarray(image[:, ::-1])
        w = image.shape[1]
        mbox = np.array([w - 1 - box[2], box[1], w - 1 - box[0], box[3]], np.float32)
        mlm = dlib_backend.landmarks([mirrored], mbox[None])[0]
        # the mirror of the left eye corner is the right eye corner (iBUG indices 36 <-> 45, 48 <-> 54, 30 = 30)
        tol = 0.06 * (box[2] - box[0])  # dlib's predictor is close to, not exactly, mirror-symmetric
        for a, b in [(36, 45), (39, 42), (48, 54), (30, 30), (8, 8)]:
            assert abs((w - 1 - mlm[b, 0]) - lm[a, 0]) < tol and abs(mlm[b, 1] - lm[a, 1]) < tol


def test_shard_layout_and_qc(shard):
    root, qc = shard
    assert set(qc.index) == {"face", "two", "noise", "gap", "broken"}
    assert qc.loc["face", "status"] == "ok" and qc.loc["face", "detection_rate"] == 1.0
    assert qc.loc["broken", "status"] == "rejected" and "0 bytes" in qc.loc["broken", "reason"]
    assert (qc["backend"] == "dlib").all()
    assert read_parquet_metadata(root / "s1_qc.parquet")["backend"] == "dlib"
    assert not (root / "s1_montage.png").exists()  # nothing reads a montage: none is written
    assert (qc["select"].loc[["face", "two"]] == "largest").all()
    with h5py.File(root / "s1.h5") as h5:
        assert h5.attrs["backend"] == "dlib" and h5.attrs["crop_size"] == 64
        assert set(h5) == {"face", "two", "gap"}
        g = h5["face"]
        t = g["crops"].shape[0]
        assert t == qc.loc["face", "n_frames"] == 30
        assert g["crops"].shape == (t, 64, 64, 3) and g["crops"].dtype == np.uint8
        for name, shape in {"landmarks": (t, 68, 2), "landmarks_crop": (t, 68, 2), "boxes": (t, 4),
                            "scores": (t,)}.items():
            assert g[name].shape == shape and g[name].dtype == np.float32
        assert g["detected"].dtype == bool
        assert g["n_faces"].dtype == g["outside"].dtype == np.uint8 and g["n_faces"].shape == (t,)
        assert (g["n_faces"][:] == 1).all() and (g["outside"][:] == 0).all()
        # in the crop, the face sits where the template puts it: eyes in the upper half, mouth in the lower
        crop_lm = g["landmarks_crop"][:]
        assert (crop_lm[:, 36:48, 1].mean(1) < 32).all() and (crop_lm[:, 48:68, 1].mean(1) > 32).all()
        assert (crop_lm > -2).all() and (crop_lm < 66).all()


def test_no_face_video_is_rejected_with_its_detection_rate(shard):
    _, qc = shard
    row = qc.loc["noise"]
    assert row["status"] == "rejected" and row["detection_rate"] == 0.0 and "0%" in row["reason"]


def test_two_faces_follows_the_large_central_one_throughout(shard):
    root, qc = shard
    assert qc.loc["two", "detection_rate"] == 1.0
    with h5py.File(root / "s1.h5") as h5:
        boxes = h5["two"]["boxes"][:]
    centres = (boxes[:, 0] + boxes[:, 2]) / 2
    assert (centres < 220).all() and np.ptp(centres) < 15  # Grace Hopper; never the small face on the right
    assert ((boxes[:, 2] - boxes[:, 0]) > 90).all()


def test_gap_is_interpolated_and_marked(shard):
    root, qc = shard
    with h5py.File(root / "s1.h5") as h5:
        g = h5["gap"]
        detected, lm = g["detected"][:], g["landmarks"][:]
    assert not detected[10:14].any() and detected[:10].all() and detected[14:].all()
    assert qc.loc["gap", "max_gap"] == 4
    assert np.isfinite(lm).all()
    # each gap frame lies between the faces just before and after it
    lo, hi = np.minimum(lm[9], lm[14]), np.maximum(lm[9], lm[14])
    assert ((lm[10:14] >= lo - 1.5) & (lm[10:14] <= hi + 1.5)).all()


def test_tracker_follows_landmarks_between_detections_and_redetects_when_the_face_goes(dlib_backend):
    frames = moving(hopper(), n=20)
    tracker = FaceTracker(dlib_backend, detect_every=5)
    steps = [tracker.update(f) for f in frames]
    assert tracker.n_detections == 4 and [s[3] for s in steps] == [t % 5 == 0 for t in range(20)]
    naive = []
    for frame in frames:  # the detector's box on every frame
        boxes, _ = dlib_backend.detect(frame)
        naive.append(dlib_backend.landmarks([frame], boxes[:1])[0])
    assert np.abs(np.stack([s[2] for s in steps]) - np.stack(naive)).mean() < 2
    frames[6:9] = 90  # the face goes just after a detection: no landmarks on a blank frame
    tracker = FaceTracker(dlib_backend, detect_every=5)
    steps = [tracker.update(f) for f in frames]
    assert [t for t, s in enumerate(steps) if s[2] is None] == [6, 7, 8]
    assert all(steps[t][3] for t in (6, 7, 8, 9))  # detected again at once, and again until the face is back


def test_landmark_filter_interpolates_short_gaps_and_holds_long_ones():
    points = [np.full((68, 2), float(t), np.float32) for t in range(12)]
    raw = [points[t] if t not in (3, 4, 8, 9, 10) else None for t in range(12)]
    filt = LandmarkFilter(max_gap=2, smooth=0)
    out = [lm for t in raw for _, lm in filt.push(t)] + [lm for _, lm in filt.flush()]
    values = [float(lm[0, 0]) for lm in out]
    assert values == [0, 1, 2, 3, 4, 5, 6, 7, 7, 7, 7, 11]  # 3-4 interpolated; 8-10 longer than max_gap: held


def test_landmark_filter_smooths_with_bounded_lookahead():
    filt = LandmarkFilter(max_gap=1, smooth=1)
    emitted = []
    for t in range(10):
        lm = np.full((68, 2), 10.0 if t == 5 else 0.0, np.float32)
        got = filt.push(lm)
        assert all(i >= t - 2 - 1 and i <= t - 2 for i, _ in got)  # each waits max_gap + smooth frames
        emitted += got
    emitted += filt.flush()
    values = [float(lm[0, 0]) for _, lm in emitted]
    assert [i for i, _ in emitted] == list(range(10))
    assert values[4:7] == pytest.approx([10 / 3] * 3) and values[3] == 0


def test_pipeline_is_deterministic_and_streams(dlib_backend):
    frames = moving(astronaut(), n=12)
    pipe = FacePipeline({"backend": "dlib", "batch_size": 4, "crop_size": 64}, backend=dlib_backend)
    a = pipe.process(iter(frames))
    b = pipe.process(list(frames))
    assert a.backend == "dlib" and a.crops.shape == (12, 64, 64, 3)
    np.testing.assert_array_equal(a.landmarks, b.landmarks)
    np.testing.assert_array_equal(a.crops, b.crops)


def test_unknown_setting_is_a_clear_error(dlib_backend):
    with pytest.raises(ValueError, match="crop_sise"):
        FacePipeline({"crop_sise": 64}, backend=dlib_backend)


@pytest.fixture
def fa_weights(tmp_path, monkeypatch):
    """Randomly initialised FAN and S3FD state dicts under their real file names in a temporary TORCH_HOME."""
    import torch
    from face_alignment.detection.sfd.net_s3fd import s3fd
    from face_alignment.models import FAN

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(FAN(4).state_dict(), folder / "2DFAN4-11f355bf06.pth.tar")
    torch.save(s3fd().state_dict(), folder / "s3fd-619a316812.pth")
    return folder


def test_auto_takes_dlib_without_face_alignment_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert make_backend("auto").name == "dlib"
    with pytest.raises(FileNotFoundError, match="2DFAN4-11f355bf06.pth.tar"):
        make_backend("face_alignment")


def test_face_alignment_loads_offline_and_batches(fa_weights):
    backend = make_backend("auto", device="cpu", fa_detector="sfd", batch_size=3)
    assert isinstance(backend, FaceAlignmentBackend) and backend.name == "face_alignment"
    frames = moving(astronaut(), n=5)
    boxes, scores = backend.detect(frames[0])
    assert boxes.dtype == np.float32 and boxes.shape[1] == 4 and scores.shape == (len(boxes),)
    box = np.array([[110, 20, 210, 130]] * 5, np.float32)
    lm = backend.landmarks(list(frames), box)
    assert lm.shape == (5, 68, 2) and lm.dtype == np.float32 and np.isfinite(lm).all()
    backend.batch_size = 5  # one batch instead of two: same numbers
    np.testing.assert_allclose(backend.landmarks(list(frames), box), lm, atol=1e-3)
    result = FacePipeline({"backend": "face_alignment", "batch_size": 3, "min_detection_rate": 0.0,
                           "crop_size": 64},
                          backend=backend).process(frames)
    assert result.backend == "face_alignment" and result.crops.shape == (5, 64, 64, 3)


def record_calls(monkeypatch, obj, method):
    """Wrap ``obj.method`` so that the batch length of each call (its first argument) is recorded."""
    calls, inner = [], getattr(obj, method)

    def wrapped(batch, *args, **kwargs):
        calls.append(len(batch))
        return inner(batch, *args, **kwargs)

    monkeypatch.setattr(obj, method, wrapped)
    return calls


def test_face_alignment_pipeline_runs_fan_once_per_chunk(fa_weights, dlib_backend, monkeypatch):
    # face-alignment's dlib detector finds the real face; FAN (random weights) is the unit under test
    backend = make_backend("face_alignment", device="cpu", fa_detector="dlib", batch_size=6)
    assert backend.batched and not dlib_backend.batched and not backend.batch_detect
    fan = record_calls(monkeypatch, backend, "landmarks")
    detector = record_calls(monkeypatch, backend, "detect_batch")
    frames = moving(hopper(), n=14)
    params = {"batch_size": 6, "detect_every": 3, "detect_scale": 1.0, "min_detection_rate": 0.0}
    result = FacePipeline({"backend": "face_alignment", **params}, backend=backend).process(iter(frames))
    assert fan == [6, 6, 2]  # one FAN call per chunk, the whole chunk in it
    keys = [0, 3, 5, 6, 9, 11, 12, 13]  # every 3rd frame and each chunk's last
    assert detector == [3, 3, 2] and result.detected.all()
    np.testing.assert_allclose(result.boxes[keys], [backend.detect(frames[i])[0][0] for i in keys])
    for i, (a, b) in {1: (0, 3), 2: (0, 3), 4: (3, 5), 7: (6, 9), 10: (9, 11)}.items():
        w = (i - a) / (b - a)
        np.testing.assert_allclose(result.boxes[i], (1 - w) * result.boxes[a] + w * result.boxes[b], atol=1e-3)
    reference = FacePipeline({"backend": "dlib", **params}, backend=dlib_backend).process(iter(frames))
    assert result.backend == "face_alignment" and reference.backend == "dlib"
    for name in ("crops", "landmarks", "landmarks_crop", "boxes", "scores", "detected"):
        got, want = getattr(result, name), getattr(reference, name)
        assert got.shape == want.shape and got.dtype == want.dtype, name


def test_face_alignment_detects_a_batch_in_one_pass(fa_weights, monkeypatch):
    backend = make_backend("face_alignment", device="cpu", fa_detector="sfd", batch_size=4)
    assert backend.batch_detect
    passes = record_calls(monkeypatch, backend.fa.face_detector, "detect_from_batch")
    images = [np.ascontiguousarray(f[::2, ::2]) for f in moving(astronaut(), n=3)]
    batched = backend.detect_batch(images)
    assert passes == [3] and len(batched) == 3
    for (boxes, scores), image in zip(batched, images, strict=True):
        one_boxes, one_scores = backend.detect(image)
        assert boxes.dtype == scores.dtype == np.float32 and boxes.shape == (len(scores), 4)
        order, one_order = np.lexsort(boxes.T), np.lexsort(one_boxes.T)
        np.testing.assert_allclose(boxes[order], one_boxes[one_order], atol=1e-2)
        np.testing.assert_allclose(scores[order], one_scores[one_order], atol=1e-4)


class StubBackend:
    """A face (box 100..200) on frames that are not blank; landmarks spread over the box."""

    batched = True

    def __init__(self):
        self.detected, self.landmarked = [], []

    def detect_batch(self, images):
        self.detected.append(len(images))
        face = np.array([[100, 100, 200, 200]], np.float32), np.ones(1, np.float32)
        return [face if image.std() > 0 else (np.zeros((0, 4), np.float32), np.zeros(0, np.float32))
                for image in images]

    def landmarks(self, images, boxes):
        self.landmarked.append(len(images))
        grid = np.stack(np.meshgrid(np.linspace(0, 1, 17), np.linspace(0, 1, 4)), -1).reshape(-1, 2)[:68]
        return np.stack([b[:2] + grid * (b[2:] - b[:2]) for b in boxes]).astype(np.float32)


def test_chunk_tracker_detects_between_keys_where_a_key_has_no_face():
    frames = np.random.default_rng(0).integers(0, 256, (10, 300, 300, 3), np.uint8)
    frames[2:4] = 0  # key frame 3 has no face: frames 1, 2, 4, 5 are detected too
    backend = StubBackend()
    steps = list(ChunkTracker(backend, batch_size=10, detect_every=3, detect_scale=1.0).run(iter(frames)))
    assert backend.detected == [4, 4] and backend.landmarked == [8]
    assert [t for t, s in enumerate(steps) if s[3] is None] == [2, 3]
    assert all(s[1] is None and s[2] == 0.0 for s in steps[2:4])
    np.testing.assert_allclose(steps[7][1], [100, 100, 200, 200], atol=1e-3)  # interpolated between 6 and 9

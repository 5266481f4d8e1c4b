"""The in-the-wild benchmarks (DFEW, FERV39k, MAFW) as their maintainers distribute them: generated trees in the
official layouts (the split files are licensed: never shipped), read by the adapters, and run through the real DAG
to a report with the field's protocol (official folds, segment sampling, aligned face frames)."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import h5py
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from test_workflow import ROOT, snakemake

from video_emotion.datasets import DatasetError, add_folds, build_manifest, clip_source, summarize
from video_emotion.datasets.placeholder import make_dfew_tree, make_ferv39k_tree, make_mafw_tree
from video_emotion.faces import process_shard
from video_emotion.frames import frame_files, read_images

PRESETS = ROOT / "workflow" / "presets"
MAKERS = {"dfew": make_dfew_tree, "ferv39k": make_ferv39k_tree, "mafw": make_mafw_tree}
# The official test fold sizes (DFEW, MAFW: 5 folds; FERV39k: its one test set).
OFFICIAL = {"dfew": [2341, 2341, 2340, 2339, 2336], "mafw": [1839, 1837, 1833, 1832, 1831], "ferv39k": [7847]}


# ---------------------------------------------------------------------------------------------------------------
# Adapters
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dataset", list(MAKERS))
def test_a_full_size_listing_gives_the_official_folds(tmp_path, dataset):
    # Real counts, one zero-byte frame per clip: the adapters read split files and folder names, never frames.
    made = MAKERS[dataset](tmp_path, full=True, frames=1, write_frames=False, missing=0, bad_label=0, unpadded=0,
                           short=0)
    manifest, rejected, _ = build_manifest(dataset, tmp_path)
    folds = add_folds(manifest, {"scheme": "official"})["fold"]
    sizes = folds[folds >= 0].value_counts().sort_index().tolist()
    assert sizes == OFFICIAL[dataset] and rejected.empty
    if dataset == "ferv39k":
        assert (folds == -1).sum() == 31088 and manifest["scene"].nunique() == 22
    assert manifest["subject"].equals(manifest["video_id"])  # no subject ids: every clip its own subject
    assert len(made["labels"]) == len(manifest)


@pytest.mark.parametrize("dataset", list(MAKERS))
def test_listed_clips_without_frames_or_with_a_foreign_label_are_rejected_with_a_reason(tmp_path, dataset):
    made = MAKERS[dataset](tmp_path)
    manifest, rejected, _ = build_manifest(dataset, tmp_path)
    reasons = dict(zip(rejected["path"], rejected["reason"], strict=True))
    assert len(rejected) == 2 and len(manifest) == len(made["labels"]) - 2
    missing = next(p for p in reasons if "missing" in reasons[p] or "no face frames" in reasons[p])
    bad = next(p for p in reasons if p != missing)
    assert "is not one of the dataset's" in reasons[bad] and ":" in reasons[bad]  # the split file and line
    if dataset == "dfew":  # the README documents why DFEW clips lack face frames: the source is named
        assert "466" in reasons[missing] and rejected.set_index("path").at[missing, "source"].startswith("DFEW README")
    stem = lambda name: Path(name).stem if name.endswith(".mp4") else name.replace("/", "_")  # noqa: E731
    assert stem(made["short"][0]) in set(manifest["video_id"]) and stem(made["unpadded"][0]) in set(manifest["video_id"])
    assert set(manifest["label"].cat.categories) == set(clip_source_labels(dataset))
    text = summarize(manifest, rejected)  # one row per official fold, not one per clip
    assert "no subject ids" in text and "fold 0" in text and len(text.splitlines()) < 30


def clip_source_labels(dataset):
    from video_emotion.datasets import ADAPTERS

    return ADAPTERS[dataset].LABELS


def test_split_file_variants_users_meet(tmp_path):
    # DFEW's underscore folder name; MAFW's CRLF lines (the generator writes them) and a renamed split folder.
    make_dfew_tree(tmp_path / "dfew", split_folder="single_labeled", missing=0, bad_label=0)
    assert len(build_manifest("dfew", tmp_path / "dfew")[0]) == 5 * 14
    make_mafw_tree(tmp_path / "mafw", missing=0, bad_label=0)
    assert b"\r\n" in next((tmp_path / "mafw").rglob("set_1/test.txt")).read_bytes()
    shutil.move(tmp_path / "mafw" / "Train & Test set", tmp_path / "mafw" / "split")
    with pytest.raises(DatasetError, match=r"split file .*set_1/test.txt is missing.*dataset_options.splits"):
        build_manifest("mafw", tmp_path / "mafw")
    manifest, _, _ = build_manifest("mafw", tmp_path / "mafw", options={"splits": "split/single/no_caption"})
    assert len(manifest) == 5 * 22 and manifest["label"].nunique() == 11


def test_unreadable_split_files_and_compound_labels_stop_with_one_line(tmp_path):
    make_dfew_tree(tmp_path / "dfew")
    split = tmp_path / "dfew" / "EmoLabel_DataSplit" / "test(single-labeled)" / "set_3.csv"
    split.write_text("video_name;label\n1;2\n")
    with pytest.raises(DatasetError, match=r"set_3.csv starts with 'video_name;label'.*expected a CSV file"):
        build_manifest("dfew", tmp_path / "dfew")
    split.write_bytes(b"video_name,label\n\xff\xfe1,2\n")
    with pytest.raises(DatasetError, match=r"cannot read split file .*set_3.csv"):
        build_manifest("dfew", tmp_path / "dfew")
    make_mafw_tree(tmp_path / "mafw")
    with pytest.raises(DatasetError, match=r"compound \(multi-label\) emotion: multi-label training is not supported"):
        build_manifest("mafw", tmp_path / "mafw", options={"splits": "Train & Test set/compound/no_caption"})
    with pytest.raises(DatasetError, match=r"dataset_options.frames = 'jpg_256' is not a DFEW version"):
        build_manifest("dfew", tmp_path / "dfew", options={"frames": "jpg_256"})


def test_a_clip_tested_in_two_folds_or_trained_where_tested_is_refused(tmp_path):
    make_mafw_tree(tmp_path, missing=0, bad_label=0)
    sets = tmp_path / "Train & Test set" / "single" / "no_caption"
    first = (sets / "set_1" / "test.txt").read_text().splitlines()[0]
    with open(sets / "set_2" / "test.txt", "a", newline="") as f:
        f.write(first + "\r\n")
    with pytest.raises(DatasetError, match=r"test clip \S+ in two sets"):
        build_manifest("mafw", tmp_path)
    make_mafw_tree(tmp_path / "b", missing=0, bad_label=0)
    sets = tmp_path / "b" / "Train & Test set" / "single" / "no_caption"
    with open(sets / "set_1" / "train.txt", "a", newline="") as f:
        f.write(first + "\r\n")
    with pytest.raises(DatasetError, match=r"in both the training list .* and the test list .* of set 1"):
        build_manifest("mafw", tmp_path / "b")


def test_versions_say_what_the_faces_stage_gets():
    assert clip_source("dfew", {}).aligned and clip_source("dfew", {}).kind == "frames"
    assert clip_source("dfew", {"frames": "original"}).kind == "video"
    assert not clip_source("ferv39k", {"frames": "3_ClipsforScenImages"}).aligned
    assert clip_source("mafw", {"frames": "clips"}).kind == "video"
    assert clip_source("enterface05", {}).kind == "video"


def test_official_folds_need_a_dataset_with_split_files():
    manifest = pd.DataFrame({"video_id": ["a", "b"], "subject": ["1", "2"]})
    with pytest.raises(DatasetError, match="folds.scheme official .* this manifest has none"):
        add_folds(manifest, {"scheme": "official"})


# ---------------------------------------------------------------------------------------------------------------
# Frame folders and already-aligned faces
# ---------------------------------------------------------------------------------------------------------------

def test_frames_are_read_in_the_order_of_their_numbers(tmp_path):
    for i in range(1, 17):  # unpadded names: lexical order would put 10..16 before 2
        cv2.imwrite(str(tmp_path / f"{i}.jpg"), np.full((8, 8, 3), 10 * i, np.uint8))
    (tmp_path / ".hidden.jpg").write_bytes(b"")
    assert [p.name for p in frame_files(tmp_path)] == [f"{i}.jpg" for i in range(1, 17)]
    means = [int(round(f.mean())) for f in read_images(tmp_path)]
    assert means == [10 * i for i in range(1, 17)]
    assert [p.name for p in frame_files(make_named(tmp_path / "b", ["00001_2.png", "00001_10.png", "00001_1.png"]))] \
        == ["00001_1.png", "00001_2.png", "00001_10.png"]


def make_named(folder: Path, names) -> Path:
    folder.mkdir()
    for name in names:
        cv2.imwrite(str(folder / name), np.zeros((4, 4, 3), np.uint8))
    return folder


def test_aligned_frames_are_resized_not_detected_and_bad_clips_are_recorded(tmp_path):
    rng = np.random.default_rng(0)
    good = tmp_path / "good"
    good.mkdir()
    frames = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(5)]
    for i, frame in enumerate(frames, 1):
        cv2.imwrite(str(good / f"{i}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    corrupt = make_named(tmp_path / "corrupt", ["1.jpg", "2.jpg"])
    (corrupt / "2.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    (tmp_path / "empty").mkdir()
    items = [("good", good), ("corrupt", corrupt), ("empty", tmp_path / "empty"), ("gone", tmp_path / "gone")]
    qc = process_shard(items, tmp_path / "f.h5", tmp_path / "f_qc.parquet", {"aligned": True, "crop_size": 32},
                       progress=False, images=True).set_index("video_id")
    assert qc.at["good", "status"] == "ok" and qc.at["good", "backend"] == "aligned"
    assert "2.jpg: unreadable or empty image" in qc.at["corrupt", "reason"]
    assert "no frames" in qc.at["empty", "reason"] and "missing" in qc.at["gone", "reason"]
    with h5py.File(tmp_path / "f.h5") as f:
        assert set(f) == {"good"}
        crops = f["good/crops"][:]
        assert np.isnan(f["good/landmarks"][:]).all() and f["good/detected"][:].all()
    expected = np.stack([cv2.resize(f, (32, 32), interpolation=cv2.INTER_AREA) for f in frames])
    np.testing.assert_array_equal(crops, expected)  # PNG: lossless, decoded at 1/2 then area-resized


# ---------------------------------------------------------------------------------------------------------------
# The real DAG on each official layout
# ---------------------------------------------------------------------------------------------------------------

TINY = {
    "faces": {"crop_size": 32},
    "cache": {"clip_len": 4},
    "models": ["res_att"],
    "model_kwargs": {"res_att": {"width": 4, "layers": [1, 1, 1, 1]}},
    "train": {"epochs": 1, "batch_size": 8},
    "folds": {"val_subjects": 0.2},
    "shard_videos": 40,
    "metrics": {"bootstrap": 50, "permutations": 200},
}


@pytest.fixture(scope="module", params=list(MAKERS))
def wild_run(request, tmp_path_factory):
    dataset = request.param
    work = tmp_path_factory.mktemp(dataset)
    made = MAKERS[dataset](work / "data", size=64)
    clips = sorted(p for p in (work / "data").rglob("*") if p.is_dir() and frame_files(p))
    (clips[0] / next(iter(sorted(p.name for p in clips[0].iterdir())))).write_bytes(b"")  # an empty frame
    (work / "config.yaml").write_text(yaml.safe_dump({**TINY, "dataset_root": str(work / "data")}))
    snakemake(work, "--configfile", str(PRESETS / f"{dataset}.yaml"), str(work / "config.yaml"))
    return dataset, work, made, clips[0]


def test_each_layout_runs_through_the_dag_with_the_official_protocol(wild_run):
    dataset, work, made, broken = wild_run
    results = work / "results"
    assert (results / "report" / "index.html").is_file()
    assert not (results / "frames").exists() or not any((results / "frames").iterdir())  # no ffmpeg for frames
    preds = pd.read_parquet(results / "predictions")
    assert sorted(preds["fold"].astype(int).unique()) == list(range(len(OFFICIAL[dataset])))
    assert (preds["n_clips"] == 1).all()  # the segments' centres: one clip per test video
    folds = pd.read_parquet(results / "folds.parquet").set_index("video_id")["fold"]
    tested = folds[folds >= 0]
    assert len(preds) == len(tested[tested.index.isin(preds["video_id"])])
    qc = pd.concat([pd.read_parquet(p) for p in (results / "faces").glob("*_qc.parquet")]).set_index("video_id")
    rejected_qc = qc[qc["status"] != "ok"]
    assert len(rejected_qc) == 1 and "unreadable or empty image" in rejected_qc["reason"].iloc[0]
    assert (qc.loc[qc["status"] == "ok", "backend"] == "aligned").all()
    with h5py.File(results / "cache" / "clips.h5") as f:
        lengths = dict(zip(f["index/video_id"].asstr()[:], f["index/length"][:], strict=True))
    assert min(lengths.values()) == 8  # the 8-frame clip is kept and stretched to a clip, never dropped
    ckpt = torch.load(next((results / "models").rglob("best.pt")), weights_only=True)
    assert ckpt["config"]["train"]["sampling"] == "segments"
    val, test = set(ckpt["subjects"]["val"]), set(ckpt["subjects"]["test"])
    assert val and not val & test  # inner validation from the training clips only
    rejected = pd.read_parquet(results / "manifest_rejected.parquet")
    assert len(rejected) == 2
    html = (results / "report" / "index.html").read_text()
    folds = "the official test split" if dataset == "ferv39k" else "mean ± std over the 5 official folds"
    assert folds in html and "by video" in html and "by subject" not in html
    assert "This run beside published figures" in html and "MAE-DFER" in html  # the preset's published rows


def test_config_file_text_with_a_colon_stays_text():
    # Snakemake hands config-file values to the --config reader too: a published row's note "a: b" is text.
    from video_emotion.config import typed

    assert typed({"note": "quoted by X; Y: 30.48 / 40.81", "train": "{epochs: 3}", "seeds": "[0, 1]"}) == \
        {"note": "quoted by X; Y: 30.48 / 40.81", "train": {"epochs": 3}, "seeds": [0, 1]}


def test_the_dfew_baseline_rows_without_their_weight_files_stop_with_the_fix(tmp_path):
    # The DFEW preset lists the paper's baseline rows from published weights: absent files are named before any job.
    make_dfew_tree(tmp_path / "data", missing=0, bad_label=0)
    proc = snakemake(tmp_path, "-n", "--configfile", str(PRESETS / "dfew.yaml"), "--config",
                     f"dataset_root={tmp_path / 'data'}", check=False)
    assert proc.returncode != 0
    assert "the init files of res_att_p3d199 (resources/weights/p3d_rgb_199.checkpoint.pth.tar)" in proc.stderr
    assert "r2plus1d_18_k400 (resources/weights/r2plus1d_18-91a641e6.pth) are missing" in proc.stderr

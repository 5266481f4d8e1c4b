"""Dataset adapters on placeholder trees that reproduce each archive's quirks (zero-byte files: nothing is decoded)."""

from pathlib import Path

import jsonschema
import pandas as pd
import pytest
import yaml

from video_emotion.datasets import DatasetError, add_folds, add_shards, build_manifest, source_path, summarize
from video_emotion.datasets.placeholder import make_crema_d_tree
from video_emotion.labels import EMOTIONS
from video_emotion.splits import TRAIN_ONLY, fold_subjects

REPO = Path(__file__).resolve().parents[1]
SAFE_ID = r"^[A-Za-z0-9_.-]+$"


def reasons(rejected: pd.DataFrame) -> dict:
    return dict(zip(rejected["path"], rejected["reason"], strict=True))


def touch(root: Path, *paths: str) -> None:
    for p in paths:
        (root / p).parent.mkdir(parents=True, exist_ok=True)
        (root / p).touch()


# path -> (video_id, subject, label, sentence): every quirk of the real eNTERFACE'05 archive.
ENTERFACE = {
    "subject 1/anger/sentence 1/s1_an_1.avi": ("s1_an_1", "1", "anger", 1),
    "subject 1/disgust/sentence 2/s1_di_2.avi": ("s1_di_2", "1", "disgust", 2),
    # a file's sentence number disagrees with its folder: the folder wins
    "subject 2/anger/sentence 1/s2_an_2.avi": ("s2_an_1", "2", "anger", 1),
    "subject 2/anger/sentence 2/s2_an_2.avi": ("s2_an_2", "2", "anger", 2),
    # s_3_ names under subject 3
    "subject 3/fear/sentence 1/s_3_fe_1.avi": ("s3_fe_1", "3", "fear", 1),
    # an extra subfolder level
    "subject 5/sadness/sentence 4/take/s5_sa_4.avi": ("s5_sa_4", "5", "sadness", 4),
    # subject 6: no sentence folders
    "subject 6/fear/s6_fe_1.avi": ("s6_fe_1", "6", "fear", 1),
    "subject 6/happiness/s6_ha.avi": ("s6_ha_s6_ha", "6", "happiness", None),
    # subject 11's files are named s12_
    "subject 11/happiness/sentence 1/s12_ha_1.avi": ("s11_ha_1", "11", "happiness", 1),
    # missing dot
    "subject 16/surprise/sentence 3/s16_su_3avi": ("s16_su_3", "16", "surprise", 3),
    # subject 23 has only two happiness clips
    "subject 23/happiness/sentence 1/s23_ha_1.avi": ("s23_ha_1", "23", "happiness", 1),
    "subject 23/happiness/sentence 2/s23_ha_2.avi": ("s23_ha_2", "23", "happiness", 2),
    # two files that would get the same id: the first in path order keeps it
    "subject 4/anger/sentence 1/copy/s4_an_1.avi": ("s4_an_1", "4", "anger", 1),
    "subject 4/anger/sentence 1/s4_an_1.avi": ("s4_an_1_2", "4", "anger", 1),
}
ENTERFACE_SKIPPED = {
    "subject 1/s1_an_9.avi": "directly in the subject folder, not in an emotion folder",
    "stray.avi": "not inside a 'subject N' folder",
}
# files that are not videos: counted by kind, never listed
ENTERFACE_NOT_VIDEOS = ["subject 1/Thumbs.db", "readme.txt", "subject 1/anger/sentence 1/s1_an_1.wav",
                        "subject 2/fear/frame.PNG"]


@pytest.fixture
def enterface(tmp_path):
    root = tmp_path / "enterface database"
    touch(root, *ENTERFACE, *ENTERFACE_SKIPPED, *ENTERFACE_NOT_VIDEOS, "subject 1/.DS_Store")
    return root


def test_enterface_finds_every_video_once_from_the_folder_path(enterface):
    manifest, rejected, skipped = build_manifest("enterface05", enterface)
    assert list(manifest.columns[:4]) == ["video_id", "path", "subject", "label"]
    got = {r.path: (r.video_id, r.subject, r.label, None if pd.isna(r.sentence) else r.sentence)
           for r in manifest.itertuples()}
    assert got == ENTERFACE
    assert manifest["video_id"].is_unique
    assert manifest["video_id"].str.match(SAFE_ID).all()
    assert list(manifest["label"].cat.categories) == list(EMOTIONS)
    assert reasons(rejected) == ENTERFACE_SKIPPED
    assert skipped == {"audio": 1, "image": 1, "other": 1, "text": 1}
    assert (manifest["defect"] == "").all()  # eNTERFACE'05 has no documented defect (see DEFECTS)


def test_enterface_ids_are_stable(enterface):
    first, _, _ = build_manifest("enterface05", enterface)
    touch(enterface, "subject 1/anger/sentence 3/s1_an_3.avi")
    second, _, _ = build_manifest("enterface05", enterface)
    ids = second.set_index("path")["video_id"]
    assert (ids[first["path"]].to_numpy() == first["video_id"].to_numpy()).all()
    # rows come in natural subject order, the same every time
    assert list(dict.fromkeys(second["subject"])) == ["1", "2", "3", "4", "5", "6", "11", "16", "23"]


def test_demo_uses_the_enterface_adapter(enterface):
    demo, demo_rejected, demo_skipped = build_manifest("demo", enterface)
    real, real_rejected, real_skipped = build_manifest("enterface05", enterface)
    pd.testing.assert_frame_equal(demo, real)
    pd.testing.assert_frame_equal(demo_rejected, real_rejected)
    assert demo_skipped == real_skipped


def test_classes_filter_records_the_videos_left_out(enterface):
    manifest, rejected, _ = build_manifest("enterface05", enterface, classes=["happiness", "anger"])
    assert list(manifest["label"].cat.categories) == ["anger", "happiness"]
    assert set(manifest["label"]) == {"anger", "happiness"}
    left_out = rejected[rejected["reason"].str.startswith("label")]
    assert set(left_out["reason"]) == {"label disgust is not in classes", "label fear is not in classes",
                                       "label sadness is not in classes", "label surprise is not in classes"}
    assert len(manifest) + len(left_out) == len(ENTERFACE)


@pytest.mark.parametrize("classes, message", [
    (["anger", "boredom"], r"\['boredom'\] are not canonical"),
    (["anger", "calm"], r"\['calm'\] do not occur in enterface05"),
])
def test_bad_classes(enterface, classes, message):
    with pytest.raises(DatasetError, match=message):
        build_manifest("enterface05", enterface, classes=classes)


def test_unknown_emotion_folder_is_named(enterface):
    touch(enterface, "subject 7/boredom/sentence 1/s7_bo_1.avi")
    with pytest.raises(DatasetError, match=r"subject 7/boredom.*rename"):
        build_manifest("enterface05", enterface)


def test_empty_missing_and_wrong_roots(tmp_path):
    with pytest.raises(DatasetError, match=r"does not exist.*dataset_root="):
        build_manifest("enterface05", tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    touch(tmp_path / "empty", ".DS_Store")
    with pytest.raises(DatasetError, match="holds no files"):
        build_manifest("enterface05", tmp_path / "empty")
    touch(tmp_path / "docs", "readme.txt")
    with pytest.raises(DatasetError, match=r"no usable enterface05 videos.*0 videos rejected.*skipped: 1 text"):
        build_manifest("enterface05", tmp_path / "docs")
    with pytest.raises(DatasetError, match="must be the CSV file"):
        build_manifest("csv", tmp_path / "docs")
    with pytest.raises(DatasetError, match="unknown dataset 'affectnet'"):
        build_manifest("affectnet", tmp_path / "docs")
    with pytest.raises(DatasetError, match=r"unknown dataset_options \['vocal_channels'\]"):
        build_manifest("enterface05", tmp_path / "docs", options={"vocal_channels": ["speech"]})


RAVDESS_KEPT = {
    "Actor_01/02-01-03-01-01-01-01.mp4": ("1", "happiness", "video_only", "speech"),
    "Actor_01/01-02-05-02-02-01-01.mp4": ("1", "anger", "audio_video", "song"),   # no video-only twin
    "Actor_02/02-01-01-01-01-02-02.mp4": ("2", "neutral", "video_only", "speech"),
    "Actor_02/02-01-02-02-01-01-02.mp4": ("2", "calm", "video_only", "speech"),
    "Actor_02/02-01-08-02-02-02-02.mp4": ("2", "surprise", "video_only", "speech"),
}
RAVDESS_SKIPPED = {
    "Actor_01/01-01-03-01-01-01-01.mp4": "same recording as the video-only Actor_01/02-01-03-01-01-01-01.mp4, "
                                         "which is kept",
    "Actor_01/03-01-04-01-01-01-01.mp4": "audio-only (modality 03)",
    "Actor_02/clip.mp4": "name is not MM-VV-EE-II-SS-RR-AA (RAVDESS naming)",
    "Actor_02/02-01-09-01-01-01-02.mp4": "unknown emotion code 09",
}


@pytest.fixture
def ravdess(tmp_path):
    root = tmp_path / "ravdess"
    touch(root, *RAVDESS_KEPT, *RAVDESS_SKIPPED, "Actor_01/03-01-03-01-01-01-01.wav", "Actor_02/03-02-03-01-01-01-02.wav")
    return root


def test_ravdess_all_emotions_and_skips(ravdess):
    manifest, rejected, skipped = build_manifest("ravdess", ravdess)
    got = {r.path: (r.subject, r.label, r.modality, r.vocal_channel) for r in manifest.itertuples()}
    assert got == RAVDESS_KEPT
    assert manifest["video_id"].is_unique and manifest["video_id"].str.match(SAFE_ID).all()
    row = manifest.set_index("path").loc["Actor_02/02-01-08-02-02-02-02.mp4"]
    assert (row["intensity"], row["statement"], row["repetition"]) == ("strong", 2, 2)
    assert reasons(rejected) == RAVDESS_SKIPPED
    assert skipped == {"audio": 2}
    assert len(manifest["label"].cat.categories) == 8
    assert (manifest["defect"] == "").all()  # RAVDESS has no documented defect (see DEFECTS)


def test_ravdess_channels_and_classes(ravdess):
    manifest, rejected, _ = build_manifest("ravdess", ravdess, classes=list(EMOTIONS),
                                           options={"vocal_channels": ["speech"]})
    assert set(manifest["label"]) == {"happiness", "surprise"}
    skipped = reasons(rejected)
    assert skipped["Actor_01/01-02-05-02-02-01-01.mp4"] == "vocal channel song not selected (dataset_options.vocal_channels)"
    assert skipped["Actor_02/02-01-01-01-01-02-02.mp4"] == "label neutral is not in classes"
    with pytest.raises(DatasetError, match="vocal_channels"):
        build_manifest("ravdess", ravdess, options={"vocal_channels": "speech"})


def test_crema_d_counts_audio_and_rejects_bad_names(tmp_path):
    root = tmp_path / "CREMA-D"
    touch(root, "VideoFlash/1001_DFA_ANG_XX.flv", "VideoFlash/1001_IEO_HAP_HI.flv", "VideoFlash/1091_TIE_NEU_LO.flv",
          "VideoFlash/1002_TIE_SUR_LO.flv", "AudioWAV/1001_DFA_ANG_XX.wav", "AudioMP3/1001_DFA_ANG_XX.mp3",
          "VideoFlash/notes.flv", "SentenceFilenames.csv")
    classes = ["anger", "happiness", "neutral"]
    manifest, rejected, skipped = build_manifest("crema_d", root, classes=classes)
    assert manifest[["video_id", "subject", "label", "sentence", "level"]].astype(str).values.tolist() == [
        ["1001_DFA_ANG_XX", "1001", "anger", "DFA", "XX"],
        ["1001_IEO_HAP_HI", "1001", "happiness", "IEO", "HI"],
        ["1091_TIE_NEU_LO", "1091", "neutral", "TIE", "LO"],
    ]
    assert reasons(rejected) == {
        "VideoFlash/1002_TIE_SUR_LO.flv": "unknown emotion SUR",
        "VideoFlash/notes.flv": "name is not AAAA_SSS_EEE_LL (CREMA-D naming)",
    }
    assert skipped == {"audio": 2, "text": 1}
    with pytest.raises(DatasetError, match=r"\['surprise'\] do not occur in crema_d"):
        build_manifest("crema_d", root, classes=list(EMOTIONS))


# The CREMA-D README's "Video Files" section: videos that do not show what their names say.
CREMA_D_DEFECTS = {
    "VideoFlash/1076_MTI_NEU_XX.flv": "documented defect: very short, no audio",
    "VideoFlash/1076_MTI_SAD_XX.flv": "documented defect: error picture, no audio, very short",
    "VideoFlash/1064_TIE_SAD_XX.flv": "documented defect: file has no duration",
    "VideoFlash/1064_IEO_DIS_MD.flv": "documented defect: actually 1 minute long, with every emotional display of "
                                      "It's Eleven O'clock (its label is wrong)",
}
CREMA_D_README = "https://github.com/CheyneyComputerScience/CREMA-D/blob/master/README.md#video-files"


def test_crema_d_documented_defects_are_excluded_with_their_source(tmp_path):
    root = tmp_path / "CREMA-D"
    n = make_crema_d_tree(root, actors=[1001, 1064, 1076])
    assert n == 3 * 82
    manifest, rejected, skipped = build_manifest("crema_d", root)
    assert reasons(rejected) == CREMA_D_DEFECTS
    assert set(rejected["source"]) == {CREMA_D_README}
    assert len(manifest) == n - 4 and (manifest["defect"] == "").all()
    assert skipped == {"audio": 2 * n}
    text = summarize(manifest, rejected, skipped)
    assert text.splitlines()[:2] == [f"{n - 4} videos, 3 subjects, 6 classes; 0 rejected; "
                                     "4 documented defects excluded, 0 kept", f"not videos, skipped: {2 * n} audio"]
    assert "documented defects, excluded (dataset_options: {keep_documented_defects: true} keeps them):" in text
    for path, reason in CREMA_D_DEFECTS.items():
        assert f"  {path}: {reason.removeprefix('documented defect: ')} [{CREMA_D_README}]" in text
    assert "AudioWAV" not in text  # audio is counted, never listed


def test_crema_d_documented_defects_are_kept_with_the_option(tmp_path):
    root = tmp_path / "CREMA-D"
    n = make_crema_d_tree(root, actors=[1064, 1076], audio=False)
    manifest, rejected, _ = build_manifest("crema_d", root, options={"keep_documented_defects": True})
    assert len(manifest) == n and rejected.empty
    defects = manifest[manifest["defect"] != ""].set_index("path")["defect"]
    assert defects.to_dict() == {p: r.removeprefix("documented defect: ") for p, r in CREMA_D_DEFECTS.items()}
    text = summarize(manifest, rejected)
    assert "0 documented defects excluded, 4 kept" in text.splitlines()[0]
    assert "documented defects, kept (dataset_options.keep_documented_defects):" in text
    with pytest.raises(DatasetError, match="keep_documented_defects = 'yes'; use true or false"):
        build_manifest("crema_d", root, options={"keep_documented_defects": "yes"})
    (tmp_path / "list.csv").write_text("path,label,subject\n")
    with pytest.raises(DatasetError, match=r"unknown dataset_options \['keep_documented_defects'\] for dataset csv"):
        build_manifest("csv", tmp_path / "list.csv", options={"keep_documented_defects": True})


def test_csv_list(tmp_path):
    touch(tmp_path, "videos/a clip.mp4", "videos/b.mp4", "other/b.mp4", "abs/c.avi")
    absolute = (tmp_path / "abs/c.avi").as_posix()
    csv = tmp_path / "list.csv"
    csv.write_text(
        "path,label,subject,take\n"
        "videos/a clip.mp4,happy,p1,1\n"
        f"{absolute},ANGER,p2,2\n"
        "videos/b.mp4,sad,p1,3\n"
        "other/b.mp4,su,p2,4\n"
        "videos/missing.mp4,fear,p3,5\n"
        "videos/b.mp4,fear,,6\n"
    )
    manifest, rejected, _ = build_manifest("csv", csv)
    assert manifest[["video_id", "path", "subject", "label", "take"]].astype(str).values.tolist() == [
        ["a_clip", "videos/a clip.mp4", "p1", "happiness", "1"],
        ["b", "videos/b.mp4", "p1", "sadness", "3"],
        ["c", absolute, "p2", "anger", "2"],
        ["b_2", "other/b.mp4", "p2", "surprise", "4"],
    ]
    assert reasons(rejected) == {
        "videos/missing.mp4": "file not found (line 6)", "videos/b.mp4": "empty subject (line 7)"}
    assert source_path(csv, "videos/b.mp4").is_file() and source_path(csv, absolute).is_file()


def test_csv_errors_name_the_problem(tmp_path):
    touch(tmp_path, "v.mp4")
    csv = tmp_path / "list.csv"
    csv.write_text("file,emotion\nv.mp4,happy\n")
    with pytest.raises(DatasetError, match=r"lacks column\(s\) \['path', 'label', 'subject'\]"):
        build_manifest("csv", csv)
    with pytest.raises(DatasetError, match=r"lacks column\(s\) \['subject'\].*dataset_options.columns"):
        build_manifest("csv", csv, options={"columns": {"path": "file", "label": "emotion"}})
    csv.write_text("path,label,subject\nv.mp4,boredom,1\n")
    with pytest.raises(DatasetError, match=r"\[.boredom.\] are not emotions"):
        build_manifest("csv", csv)
    csv.write_text("file,emotion,speaker\nv.mp4,happy,1\nv.mp4,sad,2\n")
    manifest, _, _ = build_manifest("csv", csv, classes=["happiness", "sadness"],
                                 options={"columns": {"path": "file", "label": "emotion", "subject": "speaker"}})
    assert manifest["subject"].tolist() == ["1", "2"]


def test_summary_counts_and_skips(enterface):
    manifest, rejected, skipped = build_manifest("enterface05", enterface)
    text = summarize(add_folds(manifest, {"scheme": "loso"}), rejected, skipped)
    lines = text.splitlines()
    assert lines[0] == (f"{len(ENTERFACE)} videos, 9 subjects, 6 classes; {len(ENTERFACE_SKIPPED)} rejected; "
                        "0 documented defects excluded, 0 kept")
    assert lines[1] == "not videos, skipped: 1 audio, 1 image, 1 other, 1 text"
    row23 = next(line.split() for line in lines if line.startswith("23 "))
    assert row23 == ["23", "0", "0", "0", "2", "0", "0", "2"]
    total = next(line.split() for line in lines if line.startswith("total"))
    assert total[-1] == str(len(ENTERFACE))
    for path, reason in ENTERFACE_SKIPPED.items():
        n = list(ENTERFACE_SKIPPED.values()).count(reason)
        assert f"  {reason} ({n}):" in text and f"    {path}" in text
    assert not any(path in text for path in ENTERFACE_NOT_VIDEOS)  # counted, never listed


def load_preset(name):
    return yaml.safe_load((REPO / "workflow/presets" / f"{name}.yaml").read_text())


@pytest.mark.parametrize("name", ["enterface05", "ravdess", "crema_d"])
def test_presets_are_valid(name):
    preset = load_preset(name)
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    jsonschema.validate(preset, schema)
    assert preset["dataset"] == name


def test_enterface_preset_folds_on_a_full_size_tree(tmp_path):
    root = tmp_path / "enterface"
    touch(root, *(f"subject {s}/{e}/sentence 1/s{s}_{e[:2]}_1.avi" for s in range(1, 45) for e in EMOTIONS))
    preset = load_preset("enterface05")
    manifest, _, _ = build_manifest(preset["dataset"], root, preset["classes"])
    manifest = add_folds(manifest, preset["folds"])
    folds = manifest.groupby("subject")["fold"].first()
    assert folds["6"] == TRAIN_ONLY
    assert sorted(folds[folds >= 0].index.astype(int)) == [s for s in range(1, 45) if s != 6]
    assert folds[["1", "10", "11", "28", "29", "44"]].tolist() == [0, 0, 1, 2, 3, 4]
    for fold in range(5):
        split = fold_subjects(manifest, fold, preset["folds"]["val_subjects"], seed=0)
        assert "6" in split["train"] + split["val"] and len(split["val"]) == 4


def test_shards_pack_whole_subjects_in_order():
    counts = {"2": 40, "10": 30, "1": 20, "anne marie": 5, "zoë": 50}
    manifest = pd.DataFrame({"subject": [s for s, n in counts.items() for _ in range(n)]})
    shard = add_shards(manifest, 60).groupby("subject")["shard"].first()
    # in subject order (1, 2, 10, anne marie, zoë), a shard closes once it holds 60 videos or more
    assert shard.to_dict() == {"1": "1-2", "2": "1-2", "10": "10-zoe", "anne marie": "10-zoe", "zoë": "10-zoe"}
    one = add_shards(manifest, 1).groupby("subject")["shard"].first()
    assert one.to_dict() == {"1": "1", "10": "10", "2": "2", "anne marie": "anne_marie", "zoë": "zoe"}
    assert add_shards(manifest, 10_000)["shard"].nunique() == 1

"""Evaluation: video predictions from clip scores, hive-partitioned Parquet that pandas reads back whole."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from test_cache import make_cache

from video_emotion.cache import read_index
from video_emotion.evaluate import evaluate
from video_emotion.io import file_sha256 as sha256
from video_emotion.io import read_parquet_metadata
from video_emotion.labels import EMOTIONS
from video_emotion.train import train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("eval")
    cache = make_cache(root, clip_len=4, subjects=4, n_frames=8, folds=2)
    params = {"train": {"epochs": 1, "batch_size": 8, "seed": 0},
              "model_kwargs": {"width": 4, "layers": [1, 1, 1, 1], "heads": 2}, "folds": {"val_subjects": 1}}
    ckpts = {}
    for fold in (0, 1):
        train(cache, "res_att", fold, root / f"models/fold{fold}", params)
        ckpts[fold] = root / f"models/fold{fold}/best.pt"
    yield root, cache, ckpts
    torch.set_num_threads(threads)


def test_predictions_table_and_clip_table(trained):
    root, cache, ckpts = trained
    out = root / "predictions/model=res_att/fold=0/predictions.parquet"
    table = evaluate(cache, ckpts[0], 0, out, {"clips_per_video": 3, "batch_size": 4})
    index, _ = read_index(cache)
    assert sorted(table["video_id"]) == sorted(index.loc[index["fold"] == 0, "video_id"])
    assert list(table.columns) == ["video_id", "subject", "label", "pred", *[f"p_{c}" for c in EMOTIONS], "n_clips"]
    probs = table[[f"p_{c}" for c in EMOTIONS]].to_numpy()
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-5)
    assert (table["pred"].astype(str) == np.array(EMOTIONS)[probs.argmax(1)]).all()
    assert (table["n_clips"] == 3).all()

    clips = pd.read_parquet(out.with_name("_clips.parquet"))
    assert len(clips) == 3 * len(table)
    # The video score is the mean of its clip scores.
    mean = clips.groupby("video_id")[[f"p_{c}" for c in EMOTIONS]].mean()
    np.testing.assert_allclose(mean.loc[table["video_id"]].to_numpy(), probs, rtol=1e-5)
    assert clips.groupby("video_id")["start"].apply(list).map(lambda s: s == sorted(s) and s[0] == 0).all()

    # Re-evaluating gives the same numbers.
    again = evaluate(cache, ckpts[0], 0, root / "again.parquet", {"clips_per_video": 3, "batch_size": 7})
    np.testing.assert_allclose(again[[f"p_{c}" for c in EMOTIONS]].to_numpy(), probs, rtol=1e-5, atol=1e-6)


def test_parquet_round_trip_categoricals_metadata_and_hive_columns(trained):
    root, cache, ckpts = trained
    base = root / "hive"
    for fold in (0, 1):
        evaluate(cache, ckpts[fold], fold, base / f"model=res_att/fold={fold}/predictions.parquet", {})

    one = base / "model=res_att/fold=1/predictions.parquet"
    df = pd.read_parquet(one)
    for col in ("label", "pred"):
        assert isinstance(df[col].dtype, pd.CategoricalDtype)
        assert list(df[col].cat.categories) == list(EMOTIONS)  # the full class list, used or not
    meta = read_parquet_metadata(one)
    assert meta["model"] == "res_att" and meta["fold"] == 1
    assert meta["checkpoint_sha256"] == sha256(ckpts[1])
    assert meta["config"]["evaluate"]["clips_per_video"] == 3 and meta["config"]["train"]["epochs"] == 1

    everything = pd.read_parquet(base)  # every model and fold; the clip tables are left out
    assert {"model", "fold"} <= set(everything.columns)
    assert len(everything) == len(read_index(cache)[0])
    assert set(everything["fold"].astype(int)) == {0, 1} and set(everything["model"].astype(str)) == {"res_att"}
    assert isinstance(everything["label"].dtype, pd.CategoricalDtype)
    assert set(everything["label"].cat.categories) == set(EMOTIONS)


def test_checkpoint_of_another_fold_is_refused(trained):
    root, cache, ckpts = trained
    with pytest.raises(ValueError, match="fold 1, not fold 0"):
        evaluate(cache, ckpts[1], 0, root / "x.parquet", {})
    assert not (root / "x.parquet").exists()

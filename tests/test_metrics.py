"""Metrics: numpy implementations against scikit-learn, bootstrap intervals, and the written tables."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from video_emotion.io import write_parquet
from video_emotion.labels import EMOTIONS
from video_emotion.metrics import bootstrap_ci, compute_metrics, confusion_matrix, per_class, scores


@pytest.mark.parametrize("seed", range(20))
def test_scores_match_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    k = 6
    n = int(rng.integers(5, 60))
    # Some draws leave classes out of the labels or the predictions: the edge cases of UAR and macro-F1.
    present = rng.choice(k, size=int(rng.integers(2, k + 1)), replace=False)
    y_true = rng.choice(present, n)
    y_pred = np.where(rng.random(n) < 0.4, y_true, rng.integers(0, k, n))
    s = scores(y_true, y_pred, k)
    assert s["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true"
        uar = skm.balanced_accuracy_score(y_true, y_pred)
    assert s["uar"] == pytest.approx(uar)
    assert s["macro_f1"] == pytest.approx(skm.f1_score(y_true, y_pred, average="macro", zero_division=0))
    cm = confusion_matrix(y_true, y_pred, k)
    np.testing.assert_array_equal(cm, skm.confusion_matrix(y_true, y_pred, labels=range(k)))
    pc = per_class(cm)
    prec = skm.precision_score(y_true, y_pred, labels=range(k), average=None, zero_division=0)
    rec = skm.recall_score(y_true, y_pred, labels=range(k), average=None, zero_division=0)
    np.testing.assert_allclose(np.nan_to_num(pc["precision"]), prec)
    np.testing.assert_allclose(np.nan_to_num(pc["recall"]), rec)
    assert np.isnan(pc["recall"][cm.sum(1) == 0]).all() and np.isnan(pc["precision"][cm.sum(0) == 0]).all()


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 6, 200)
    p = np.where(rng.random(200) < 0.6, y, rng.integers(0, 6, 200))
    a = bootstrap_ci(y, p, 6, n_boot=300, seed=1)
    assert a == bootstrap_ci(y, p, 6, n_boot=300, seed=1)
    assert a != bootstrap_ci(y, p, 6, n_boot=300, seed=2)
    acc = scores(y, p, 6)["accuracy"]
    lo, hi = a["accuracy"]
    assert lo < acc < hi and 0.05 < hi - lo < 0.2  # about 2 x 1.96 x sqrt(0.6 x 0.4 / 200) = 0.14
    # Resampling whole subjects gives a wider interval when subjects differ.
    groups = np.repeat(np.arange(4), 50)
    p2 = np.where(groups < 2, y, p)
    by_video = bootstrap_ci(y, p2, 6, n_boot=300)["accuracy"]
    by_subject = bootstrap_ci(y, p2, 6, groups=groups, n_boot=300)["accuracy"]
    assert by_subject[1] - by_subject[0] > by_video[1] - by_video[0]


def write_predictions(root, model: str, fold: int, labels, preds, subjects) -> None:
    df = pd.DataFrame({"video_id": [f"{model}{fold}_{i}" for i in range(len(labels))],
                       "subject": [str(s) for s in subjects],
                       "label": pd.Categorical([EMOTIONS[i] for i in labels], categories=list(EMOTIONS)),
                       "pred": pd.Categorical([EMOTIONS[i] for i in preds], categories=list(EMOTIONS))})
    for c in EMOTIONS:
        df[f"p_{c}"] = np.float32(1 / 6)
    df["n_clips"] = 3
    write_parquet(df, root / f"model={model}/fold={fold}/predictions.parquet", {"model": model})


def test_compute_metrics_tables(tmp_path):
    rng = np.random.default_rng(0)
    truth = {}
    for model in ("res_att", "c3d"):
        for fold in range(3):
            y = rng.integers(0, 6, 30)
            p = np.where(rng.random(30) < 0.5, y, rng.integers(0, 6, 30))
            subjects = np.repeat([fold * 2, fold * 2 + 1], 15)
            write_predictions(tmp_path / "pred", model, fold, y, p, subjects)
            truth[model, fold] = (y, p, subjects)
    out = tmp_path / "metrics"
    report = compute_metrics(tmp_path / "pred", out, {"bootstrap": 100})
    assert {f.name for f in out.iterdir()} == {"per_fold.parquet", "summary.parquet", "confusion.parquet",
                                              "per_class.parquet", "per_subject.parquet", "metrics.json"}
    per_fold = pd.read_parquet(out / "per_fold.parquet").set_index(["model", "fold"])
    for (model, fold), (y, p, _) in truth.items():
        row = per_fold.loc[(model, fold)]
        assert row["accuracy"] == pytest.approx(skm.accuracy_score(y, p))
        assert row["uar"] == pytest.approx(skm.balanced_accuracy_score(y, p))
        assert row["accuracy_ci_low"] <= row["accuracy"] <= row["accuracy_ci_high"]

    summary = pd.read_parquet(out / "summary.parquet").set_index("model")
    accs = [skm.accuracy_score(*truth["c3d", f][:2]) for f in range(3)]
    assert summary.loc["c3d", "accuracy_mean"] == pytest.approx(np.mean(accs))
    assert summary.loc["c3d", "accuracy_std"] == pytest.approx(np.std(accs, ddof=1))
    y_all = np.concatenate([truth["c3d", f][0] for f in range(3)])
    p_all = np.concatenate([truth["c3d", f][1] for f in range(3)])
    assert summary.loc["c3d", "macro_f1_pooled"] == pytest.approx(skm.f1_score(y_all, p_all, average="macro"))

    confusion = pd.read_parquet(out / "confusion.parquet")
    assert list(confusion["true"].cat.categories) == list(EMOTIONS)
    cm = confusion.query("model == 'res_att' and fold == 1").pivot(index="true", columns="pred", values="count")
    np.testing.assert_array_equal(cm.to_numpy(), skm.confusion_matrix(*truth["res_att", 1][:2], labels=range(6)))

    per_subject = pd.read_parquet(out / "per_subject.parquet")
    y, p, subjects = truth["res_att", 2]
    got = per_subject.query("model == 'res_att' and subject == '5'")["accuracy"].item()
    assert got == pytest.approx((y == p)[subjects == 5].mean())
    assert len(pd.read_parquet(out / "per_class.parquet")) == 2 * 3 * 6

    saved = json.loads((out / "metrics.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert saved["classes"] == list(EMOTIONS) and saved["chance"] == pytest.approx(1 / 6)
    assert saved["models"]["res_att"]["summary"]["accuracy_mean"] == pytest.approx(
        report["models"]["res_att"]["summary"]["accuracy_mean"])


def test_no_predictions_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="run evaluate first"):
        compute_metrics(tmp_path, tmp_path / "m", {})

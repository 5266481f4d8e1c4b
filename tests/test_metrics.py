"""Metrics: scores against scikit-learn, the pooled headline, subject bootstrap, paired comparisons, the tables."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn import metrics as skm

from video_emotion.io import write_parquet
from video_emotion.labels import EMOTIONS
from video_emotion.metrics import (
    TABLES,
    bootstrap_ci,
    bootstrap_draws,
    compare,
    compute_metrics,
    confusion_matrix,
    interval_unit,
    paired_permutation_test,
    per_class,
    read_predictions,
    run_keys,
    scores,
    summary_lines,
)


def balanced_accuracy(y_true, y_pred) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true"
        return skm.balanced_accuracy_score(y_true, y_pred)


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
    assert s["uar"] == pytest.approx(balanced_accuracy(y_true, y_pred))
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


def test_subject_bootstrap_against_a_hand_computed_case():
    # Subject A: two anger videos, both right; subject B: one disgust video, called anger.
    # Two subjects drawn with replacement: AA (1/4), AB (1/2), BB (1/4).
    #   WAR: AA 4/4 = 1, AB 2/3, BB 0/2 = 0;  UAR: AA 1 (anger only), AB (1 + 0)/2 = 0.5, BB 0.
    y_true, y_pred, groups = np.array([0, 0, 1]), np.array([0, 0, 0]), np.array(["A", "A", "B"])
    draws = bootstrap_draws(y_true, y_pred, 6, groups=groups, n_boot=20000, seed=0)
    for metric, outcomes in (("accuracy", {1.0: 0.25, 2 / 3: 0.5, 0.0: 0.25}),
                             ("uar", {1.0: 0.25, 0.5: 0.5, 0.0: 0.25})):
        values = draws[metric]
        assert np.isin(np.round(values, 9), np.round(list(outcomes), 9)).all()
        for value, prob in outcomes.items():
            assert np.isclose(values, value).mean() == pytest.approx(prob, abs=0.015)
        assert bootstrap_ci(y_true, y_pred, 6, groups=groups, n_boot=20000)[metric] == (0.0, 1.0)
    assert draws["accuracy"].mean() == pytest.approx(0.25 + 0.5 * 2 / 3, abs=0.01)


@pytest.mark.parametrize("metric", ["accuracy", "uar"])
@pytest.mark.parametrize("seed", range(3))
def test_paired_permutation_test_against_scipy(metric, seed):
    """Swapping two models' predictions of whole subjects: exact p-value against scipy's paired permutation test,
    whose statistic is recomputed from the swapped predictions with scikit-learn."""
    rng = np.random.default_rng(seed)
    k, n_subjects = 4, 7
    subjects = rng.integers(0, n_subjects, 40)
    subjects[:n_subjects] = np.arange(n_subjects)  # every subject has videos
    y = rng.integers(0, k, 40)
    y[y == 3] = 2  # a class without videos
    pa = np.where(rng.random(40) < 0.7, y, rng.integers(0, k, 40))
    pb = np.where(rng.random(40) < 0.4, y, rng.integers(0, k, 40))
    score = skm.accuracy_score if metric == "accuracy" else balanced_accuracy

    def statistic(x, _):  # x[i] >= n_subjects: subject i's predictions swapped
        swapped = np.isin(subjects, np.flatnonzero(np.asarray(x) >= n_subjects))
        return score(y, np.where(swapped, pb, pa)) - score(y, np.where(swapped, pa, pb))

    expected = stats.permutation_test((np.arange(n_subjects), np.arange(n_subjects) + n_subjects), statistic,
                                      permutation_type="samples", n_resamples=np.inf, vectorized=False)
    df = pd.DataFrame({"video_id": [f"v{i}" for i in range(40)], "subject": subjects.astype(str), "seed": 0,
                       "label": pd.Categorical.from_codes(y, EMOTIONS[:k])})
    rows = compare(df.assign(model="a", pred=pd.Categorical.from_codes(pa, EMOTIONS[:k])),
                   df.assign(model="b", pred=pd.Categorical.from_codes(pb, EMOTIONS[:k])), k, "subject", n_boot=200)
    row = next(r for r in rows if r["metric"] == metric)
    assert row["exact"] and row["permutations"] == 2**n_subjects
    assert row["diff"] == pytest.approx(expected.statistic)
    assert row["p_value"] == pytest.approx(expected.pvalue)
    assert row["ci_low"] <= row["diff"] <= row["ci_high"]


def test_monte_carlo_permutation_p_value_is_close_to_exact():
    rng = np.random.default_rng(1)
    units = np.repeat(np.arange(12), 3)
    a, b = rng.random(36) < 0.7, rng.random(36) < 0.5
    w = np.full(36, 1 / 36)
    exact, n, is_exact = paired_permutation_test(a, b, w, units, n_perm=5000)
    assert is_exact and n == 4096
    mc, n, is_exact = paired_permutation_test(a, b, w, units, n_perm=4000, seed=3)
    assert not is_exact and n == 4000 and mc == pytest.approx(exact, abs=0.03)


def write_predictions(path, labels, preds, subjects, video_ids=None) -> None:
    n = len(labels)
    df = pd.DataFrame({"video_id": video_ids if video_ids is not None else [f"v{i}" for i in range(n)],
                       "subject": [str(s) for s in subjects],
                       "label": pd.Categorical([EMOTIONS[i] for i in labels], categories=list(EMOTIONS)),
                       "pred": pd.Categorical([EMOTIONS[i] for i in preds], categories=list(EMOTIONS))})
    for c in EMOTIONS:
        df[f"p_{c}"] = np.float32(1 / 6)
    df["n_clips"] = 3
    write_parquet(df, path, {"epoch": 7})


def pred_path(root, model, seed, fold):
    return root / f"model={model}" / f"seed={seed}" / f"fold={fold}" / "predictions.parquet"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two models x two seeds x three folds of 2 subjects each; folds 1 and 2 miss classes."""
    root = tmp_path_factory.mktemp("pred")
    rng = np.random.default_rng(0)
    truth, paths = {}, []
    for fold in range(3):
        y = rng.integers(0, 6 if fold == 0 else 3, 12)  # folds 1 and 2 have only three of the six classes
        subjects = np.repeat([2 * fold, 2 * fold + 1], 6)
        ids = [f"s{s}_{i}" for i, s in enumerate(subjects)]
        for model, right in (("res_att", 0.7), ("c3d", 0.4)):
            for seed in (0, 1):
                p = np.where(rng.random(12) < right, y, rng.integers(0, 6, 12))
                paths.append(pred_path(root, model, seed, fold))
                write_predictions(paths[-1], y, p, subjects, ids)
                truth[model, seed, fold] = (y, p, subjects)
    return root, paths, truth


def test_pooled_headline_against_scikit_learn(runs, tmp_path):
    root, paths, truth = runs
    out = tmp_path / "metrics"
    compute_metrics(paths, out, {"bootstrap": 200})
    assert {f.name for f in out.iterdir()} == {f"{t}.parquet" for t in TABLES} | {"metrics.json"}
    per_seed = pd.read_parquet(out / "per_seed.parquet").set_index(["model", "seed"])
    summary = pd.read_parquet(out / "summary.parquet").set_index("model")
    for model in ("res_att", "c3d"):
        pooled = {}
        for seed in (0, 1):
            y = np.concatenate([truth[model, seed, f][0] for f in range(3)])
            p = np.concatenate([truth[model, seed, f][1] for f in range(3)])
            pooled[seed] = (skm.accuracy_score(y, p), balanced_accuracy(y, p))
            row = per_seed.loc[(model, seed)]
            assert (row["accuracy"], row["uar"]) == pytest.approx(pooled[seed])
            per_fold_uar = [balanced_accuracy(*truth[model, seed, f][:2]) for f in range(3)]
            assert row["uar_fold_mean"] == pytest.approx(np.mean(per_fold_uar))
            assert row["uar_fold_std"] == pytest.approx(np.std(per_fold_uar, ddof=1))
            assert row["accuracy_ci_low"] <= row["accuracy"] <= row["accuracy_ci_high"]
        row = summary.loc[model]
        war, uar = np.array(list(pooled.values())).T
        assert row["accuracy"] == pytest.approx(war.mean()) and row["uar"] == pytest.approx(uar.mean())
        assert row["accuracy_seed_std"] == pytest.approx(np.std(war, ddof=1))
        # The stacked predictions of both seeds give the same figure (the same videos in each seed).
        y = np.concatenate([truth[model, s, f][0] for s in (0, 1) for f in range(3)])
        p = np.concatenate([truth[model, s, f][1] for s in (0, 1) for f in range(3)])
        assert row["uar"] == pytest.approx(balanced_accuracy(y, p))
        assert (row["n_seeds"], row["n_folds"], row["n_videos"], row["n_subjects"]) == (2, 3, 36, 6)
        assert row["unit"] == "subject" and row["uar_ci_low"] <= row["uar"] <= row["uar_ci_high"]
    labels = pd.Series(np.concatenate([truth["c3d", 0, f][0] for f in range(3)]))
    assert summary.loc["c3d", "chance"] == pytest.approx(1 / 6)
    assert summary.loc["c3d", "majority_accuracy"] == pytest.approx(labels.value_counts(normalize=True).max())
    assert summary.loc["c3d", "majority_class"] == EMOTIONS[labels.value_counts().idxmax()]
    assert summary.loc["c3d", "majority_uar"] == pytest.approx(1 / labels.nunique())

    comparisons = pd.read_parquet(out / "comparisons.parquet").set_index("metric")
    assert set(comparisons["model_a"]) == {"res_att"} and set(comparisons["model_b"]) == {"c3d"}
    for metric in ("accuracy", "uar"):
        row = comparisons.loc[metric]
        diff = summary.loc["res_att", metric] - summary.loc["c3d", metric]
        assert row["diff"] == pytest.approx(diff)
        assert row["ci_low"] <= row["diff"] <= row["ci_high"] and 0 < row["p_value"] <= 1
        assert (row["n_videos"], row["n_predictions"], row["n_seeds"], row["n_subjects"]) == (36, 72, 2, 6)
        assert row["exact"] and row["permutations"] == 2**6

    per_fold = pd.read_parquet(out / "per_fold.parquet").set_index(["model", "seed", "fold"])
    y, p, _ = truth["c3d", 1, 2]
    assert per_fold.loc[("c3d", 1, 2), "uar"] == pytest.approx(balanced_accuracy(y, p))
    assert per_fold.loc[("c3d", 1, 2), "epoch"] == 7
    confusion = pd.read_parquet(out / "confusion.parquet")
    cm = confusion.query("model == 'res_att' and seed == 1 and fold == 1").pivot(
        index="true", columns="pred", values="count")
    np.testing.assert_array_equal(cm.to_numpy(), skm.confusion_matrix(*truth["res_att", 1, 1][:2], labels=range(6)))
    per_subject = pd.read_parquet(out / "per_subject.parquet")
    y, p, subjects = truth["res_att", 0, 2]
    got = per_subject.query("model == 'res_att' and seed == 0 and subject == '5'")["accuracy"].item()
    assert got == pytest.approx((y == p)[subjects == 5].mean())
    saved = json.loads((out / "metrics.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert saved["classes"] == list(EMOTIONS) and saved["unit"] == "subject"
    lines = summary_lines(pd.read_parquet(out / "summary.parquet"), pd.read_parquet(out / "comparisons.parquet"))
    assert lines[0].startswith("res_att: WAR ") and "per-fold mean ± std" in lines[0] and "2 seeds" in lines[0]
    assert any(line.startswith("res_att vs c3d: UAR ") and "p = " in line for line in lines)


def test_one_model_has_no_comparisons(runs, tmp_path):
    _, paths, _ = runs
    compute_metrics([p for p in paths if "model=c3d" in str(p)], tmp_path, {"bootstrap": 0})
    assert pd.read_parquet(tmp_path / "comparisons.parquet").empty
    summary = pd.read_parquet(tmp_path / "summary.parquet")
    assert summary["accuracy_ci_low"].isna().all()  # bootstrap: 0 = no intervals
    assert summary_lines(summary, pd.read_parquet(tmp_path / "comparisons.parquet"))[-1] == \
        "one model: no paired comparison"


def test_run_keys_and_metadata_fallback(tmp_path):
    assert run_keys("results/predictions/model=res_att/seed=2/fold=1/predictions.parquet") == \
        {"model": "res_att", "seed": 2, "fold": 1}
    assert run_keys("results/models/p3d_sa/seed3/fold0/history.parquet") == {"model": "p3d_sa", "seed": 3, "fold": 0}
    assert run_keys("results/models/c3d/fold4/history.parquet") == {"model": "c3d", "fold": 4}
    path = tmp_path / "elsewhere.parquet"
    write_predictions(path, [0, 1], [0, 0], [1, 1])
    with pytest.raises(ValueError, match="elsewhere.parquet: model or fold unknown"):
        read_predictions([path])
    write_parquet(pd.read_parquet(path), path, {"model": "c3d", "fold": 2, "config": {"train": {"seed": 5}}})
    df, classes = read_predictions([path])
    assert (df["model"].iloc[0], df["seed"].iloc[0], df["fold"].iloc[0]) == ("c3d", 5, 2)
    with pytest.raises(ValueError, match="both model c3d, seed 5, fold 2"):
        read_predictions([path, path])
    with pytest.raises(FileNotFoundError, match="run evaluate first"):
        read_predictions([tmp_path / "missing.parquet"])


def test_interval_unit_follows_the_folds():
    df = pd.DataFrame({"model": "m", "seed": 0, "subject": ["1", "1", "2", "2"], "video_id": ["a", "b", "c", "d"],
                       "fold": [0, 0, 1, 1]})
    assert interval_unit(df) == "subject"
    assert interval_unit(df.assign(fold=[0, 1, 0, 1])) == "video"  # a subject in two test folds
    assert interval_unit(df.assign(subject="1")) == "video"  # one subject: nothing to resample
    assert interval_unit(df, "video") == "video"
    # Without subject ids every video is its own subject: the unit is named video, even where subject is forced.
    wild = df.assign(subject=df["video_id"])
    assert interval_unit(wild) == "video" and interval_unit(wild, "subject") == "video"
    assert interval_unit(pd.concat([wild, wild.assign(seed=1)])) == "video"  # one video per subject, two seeds


def wild_runs(root, folds: int, seeds=(0,)) -> tuple[list, dict]:
    """A dataset without subject ids (subject = video_id) in official folds: two models, 30 test videos a fold."""
    rng = np.random.default_rng(1)
    paths, truth = [], {}
    for fold in range(folds):
        y = rng.integers(0, 6, 30)
        ids = [f"{fold:02d}{i:03d}" for i in range(30)]
        for model, right in (("res_att", 0.6), ("c3d", 0.3)):
            for seed in seeds:
                p = np.where(rng.random(30) < right, y, rng.integers(0, 6, 30))
                paths.append(pred_path(root, model, seed, fold))
                write_predictions(paths[-1], y, p, ids, ids)
                truth[model, seed, fold] = (y, p)
    return paths, truth


def test_without_subject_ids_intervals_and_tests_resample_videos_and_every_line_says_so(tmp_path):
    paths, truth = wild_runs(tmp_path / "pred", folds=2)
    out = tmp_path / "m"
    saved = compute_metrics(paths, out, {"bootstrap": 300, "permutations": 500, "official_folds": True})
    summary = pd.read_parquet(out / "summary.parquet").set_index("model")
    comparisons = pd.read_parquet(out / "comparisons.parquet")
    assert saved["unit"] == "video" and saved["subjects_are_videos"]
    assert (summary["unit"] == "video").all() and summary["subjects_are_videos"].all()
    assert (comparisons["unit"] == "video").all()
    assert (comparisons["permutations"] == 500).all() and not comparisons["exact"].any()  # 2^60 videos: sampled
    # The interval is the bootstrap over videos (60 units), not over anything coarser.
    y = np.concatenate([truth["res_att", 0, f][0] for f in range(2)])
    p = np.concatenate([truth["res_att", 0, f][1] for f in range(2)])
    ids = [f"{f:02d}{i:03d}" for f in range(2) for i in range(30)]
    expected = bootstrap_ci(y, p, 6, groups=ids, n_boot=300, seed=0)
    assert (summary.loc["res_att", "uar_ci_low"], summary.loc["res_att", "uar_ci_high"]) == \
        pytest.approx(expected["uar"])
    lines = summary_lines(summary.reset_index(), comparisons)
    text = "\n".join(lines)
    assert "CI by video" in lines[0] and "no subject ids" in lines[0]
    assert "by subject" not in text and " subjects" not in text


@pytest.mark.parametrize("folds", [5, 1])
def test_official_folds_are_labelled_and_scored_as_the_field_reports_them(tmp_path, folds):
    """On official folds the per-fold figures are 'mean ± std over the 5 official folds' (one fold: 'the official
    test split'), printed beside the pooled figure, equal to each fold scored alone and averaged."""
    paths, truth = wild_runs(tmp_path / "pred", folds=folds)
    compute_metrics(paths, tmp_path / "m", {"bootstrap": 0, "permutations": 10, "official_folds": True})
    summary = pd.read_parquet(tmp_path / "m" / "summary.parquet")
    line = summary_lines(summary, pd.read_parquet(tmp_path / "m" / "comparisons.parquet"))[0]
    uar = [100 * balanced_accuracy(*truth["res_att", 0, f]) for f in range(folds)]
    war = [100 * skm.accuracy_score(*truth["res_att", 0, f]) for f in range(folds)]
    if folds == 5:
        assert (f"; mean ± std over the 5 official folds: WAR {np.mean(war):.1f} ± {np.std(war, ddof=1):.1f}, "
                f"UAR {np.mean(uar):.1f} ± {np.std(uar, ddof=1):.1f}") in line
    else:
        assert line.endswith(f"; the official test split: WAR {war[0]:.1f}, UAR {uar[0]:.1f}")
    assert line.startswith("res_att: WAR ") and "pooled over" in line  # the pooled figure stays first
    # Folds that are not official keep the plain label.
    compute_metrics(paths, tmp_path / "k", {"bootstrap": 0, "permutations": 10})
    plain = summary_lines(pd.read_parquet(tmp_path / "k" / "summary.parquet"), pd.DataFrame())[0]
    assert "official" not in plain and f"per-fold mean ± std ({folds} folds)" in plain


def test_no_predictions_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="run evaluate first"):
        compute_metrics([], tmp_path / "m", {})


def test_cli_takes_explicit_prediction_files(runs, tmp_path):
    from video_emotion.cli import main

    _, paths, _ = runs
    main(["metrics", *map(str, paths[:4]), "--out", str(tmp_path), "--params", '{"bootstrap": 10}'])
    summary = pd.read_parquet(tmp_path / "summary.parquet")
    assert list(summary["model"]) == ["res_att", "c3d"] and (summary["n_folds"] == 1).all()


def test_a_fold_missing_classes_cannot_inflate_the_headline(tmp_path):
    """Every test video called happiness: per fold UAR 100%, 100%, 50% (mean 83.3%); pooled UAR 50%."""
    ha, sa = EMOTIONS.index("happiness"), EMOTIONS.index("sadness")
    folds = [([ha], ["1"]), ([ha], ["2"]), ([ha, sa], ["3", "3"])]
    paths = []
    for fold, (labels, subjects) in enumerate(folds):
        paths.append(pred_path(tmp_path, "c3d", 0, fold))
        write_predictions(paths[-1], labels, [ha] * len(labels), subjects, [f"v{fold}_{i}" for i in range(len(labels))])
    compute_metrics(paths, tmp_path / "m", {"bootstrap": 20})
    row = pd.read_parquet(tmp_path / "m" / "summary.parquet").iloc[0]
    assert row["uar_fold_mean"] == pytest.approx(5 / 6) and row["uar"] == pytest.approx(0.5)
    assert row["accuracy"] == pytest.approx(0.75) and row["majority_accuracy"] == pytest.approx(0.75)
    assert row["majority_class"] == "happiness" and row["majority_uar"] == pytest.approx(0.5)


def test_the_printed_comparisons_are_the_papers_claims():
    """The end of a run prints the first model against each other one (the paper's claims), with the paper's own
    difference beside the WAR line where it reports both models; other pairs stay in the table only."""
    from video_emotion.metrics import summary_lines

    rows = [{"model_a": a, "model_b": b, "metric": m, "diff": 0.1, "ci_low": 0.0, "ci_high": 0.2, "p_value": 0.04}
            for a, b in (("res_att", "c3d"), ("res_att", "p3d"), ("c3d", "p3d")) for m in ("accuracy", "uar")]
    summary = pd.DataFrame([{"model": m, "n_seeds": 1, "ci": 0.95, "unit": "subject", "n_videos": 10,
                             "n_subjects": 2, "n_folds": 2, "chance": 1 / 6, "majority_class": "anger",
                             "majority_accuracy": 0.2, "majority_uar": 1 / 6,
                             **{f"{s}{x}": 0.5 for s in ("accuracy", "uar")
                                for x in ("", "_ci_low", "_ci_high", "_fold_mean", "_fold_std")}}
                            for m in ("res_att", "c3d", "p3d")])
    lines = summary_lines(summary, pd.DataFrame(rows))
    compared = [line for line in lines if " vs " in line]
    assert [line.split(":")[0] for line in compared] == ["res_att vs c3d", "res_att vs c3d", "res_att vs p3d",
                                                         "res_att vs p3d"]
    assert compared[0].endswith("(the paper, on eNTERFACE'05: +18.2)")
    assert "paper" not in compared[1] and "paper" not in compared[2]

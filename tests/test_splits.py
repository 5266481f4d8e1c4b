"""Subject-independent folds: no subject on both sides of any split, for every scheme."""

import pandas as pd
import pytest

from video_emotion.splits import (
    TRAIN_ONLY,
    LeakageError,
    assign_folds,
    check_no_leak,
    fold_subjects,
    inner_validation,
)

# eNTERFACE'05's widely used 5-fold split; subject 6 is in no test fold.
ENTERFACE_FIXED = [[1, 2, 3, 4, 5, 7, 8, 9, 10], list(range(11, 20)), list(range(20, 29)),
                   list(range(29, 38)), list(range(38, 45))]


def videos(n_subjects=10):
    """One entry per video: subject i has 3 + (i * 7) % 11 videos."""
    return [str(s) for s in range(1, n_subjects + 1) for _ in range(3 + (s * 7) % 11)]


def manifest(subjects, folds):
    return pd.DataFrame({"subject": subjects, "fold": [folds[s] for s in subjects]})


SCHEMES = [
    dict(scheme="kfold", k=5, seed=0),
    dict(scheme="kfold", k=3, seed=7),
    dict(scheme="loso"),
    dict(scheme="fixed", fixed=[[1, 2, 3], [4, 5], [6, 7, 8]]),
]


@pytest.mark.parametrize("cfg", SCHEMES, ids=lambda c: f"{c['scheme']}-{c.get('k', '')}")
def test_no_fold_has_a_subject_on_both_sides(cfg):
    subjects = videos(10)
    df = manifest(subjects, assign_folds(subjects, **cfg))
    folds = sorted(f for f in df["fold"].unique() if f != TRAIN_ONLY)
    tested = []
    for fold in folds:
        split = fold_subjects(df, fold, n_val=1, seed=0)
        assert not set(split["train"]) & set(split["test"])
        assert not set(split["val"]) & set(split["test"])
        assert not set(split["train"]) & set(split["val"])
        assert set(split["train"]) | set(split["val"]) | set(split["test"]) == set(subjects)
        assert len(split["val"]) == 1
        tested += split["test"]
    # Every subject is tested at most once, and in k-fold and LOSO exactly once.
    assert len(tested) == len(set(tested))
    if cfg["scheme"] != "fixed":
        assert set(tested) == set(subjects)


def test_kfold_balances_videos_and_is_deterministic():
    subjects = videos(20)
    folds = assign_folds(subjects, "kfold", k=5, seed=3)
    assert folds == assign_folds(list(reversed(subjects)), "kfold", k=5, seed=3)
    per_fold = pd.Series(subjects).map(folds).value_counts()
    assert sorted(per_fold.index) == [0, 1, 2, 3, 4]
    largest = max(pd.Series(subjects).value_counts())
    assert per_fold.max() - per_fold.min() <= largest


def test_kfold_rejects_more_folds_than_subjects():
    with pytest.raises(ValueError, match="folds.k = 5"):
        assign_folds(["1", "2", "3"], "kfold", k=5)


def test_loso_gives_each_subject_its_own_fold_in_natural_order():
    assert assign_folds(["10", "2", "2", "1"], "loso") == {"1": 0, "2": 1, "10": 2}


def test_fixed_enterface_split_keeps_subject_6_training_only():
    subjects = [str(s) for s in range(1, 45)]
    folds = assign_folds(subjects, "fixed", fixed=ENTERFACE_FIXED)
    assert folds["6"] == TRAIN_ONLY
    assert folds["1"] == 0 and folds["11"] == 1 and folds["44"] == 4
    df = manifest(subjects, folds)
    for fold in range(5):
        split = fold_subjects(df, fold, n_val=2, seed=0)
        assert "6" in split["train"] + split["val"]


def test_a_leaking_fixed_list_is_refused_with_the_subjects_named():
    with pytest.raises(LeakageError, match=r"\['3', '12'\]"):
        assign_folds(["1", "2", "3", "12"], "fixed", fixed=[[1, 2, 3, 12], [3, 12]])


def test_fixed_fold_with_no_known_subject_is_refused():
    with pytest.raises(ValueError, match="fold 1"):
        assign_folds(["1", "2"], "fixed", fixed=[[1], ["s2"]])


def test_unknown_scheme():
    with pytest.raises(ValueError, match="kfold, loso, fixed"):
        assign_folds(["1", "2"], "random")


def test_check_no_leak_names_subjects():
    check_no_leak(["1", "2"], ["3"], ["4"])
    with pytest.raises(LeakageError, match=r"train and test share subject\(s\) \['2'\]"):
        check_no_leak(["1", "2"], ["2", "3"])
    with pytest.raises(LeakageError, match=r"val and test share subject\(s\) \['3'\]"):
        check_no_leak(["1"], ["3"], ["3"])


def test_inner_validation_comes_from_training_subjects():
    train = [str(s) for s in range(1, 11)]
    t, v = inner_validation(train, 3, seed=1)
    assert len(v) == 3 and set(v) <= set(train) and not set(t) & set(v)
    assert set(t) | set(v) == set(train)
    assert (t, v) == inner_validation(list(reversed(train)), 3, seed=1)
    assert len(inner_validation(train, 0.25, seed=1)[1]) == 2
    assert inner_validation(train, 0, seed=1) == (train, [])
    with pytest.raises(ValueError, match="leaves no training subject"):
        inner_validation(["1", "2"], 2)


def test_fold_subjects_refuses_a_subject_split_across_folds():
    df = pd.DataFrame({"subject": ["1", "1", "2", "3"], "fold": [0, 1, 1, 0]})
    with pytest.raises(LeakageError, match=r"\['1'\]"):
        fold_subjects(df, 0)


def test_fold_subjects_unknown_fold():
    df = pd.DataFrame({"subject": ["1", "2", "3"], "fold": [0, 1, 1]})
    with pytest.raises(ValueError, match="fold 4 is not a test fold"):
        fold_subjects(df, 4)

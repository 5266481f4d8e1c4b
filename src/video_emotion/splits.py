"""Subject-independent folds: balanced k-fold, leave-one-subject-out, and fixed lists of test subjects.

Emotion results are only worth reading when no subject is on both sides of a split, so every split made here is
checked by :func:`check_no_leak`, and a violation stops the run with the subjects named.

Subjects are strings everywhere (``"1"`` .. ``"44"`` for eNTERFACE'05); integers in a config are converted.
A fold number is the *test* fold of a subject. Under the ``fixed`` scheme a subject listed in no test fold gets
fold ``-1`` (:data:`TRAIN_ONLY`): it is never tested and trains in every fold (eNTERFACE'05 subject 6 in the
widely used 5-fold split).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

SCHEMES = ("kfold", "loso", "fixed")
TRAIN_ONLY = -1  # the fold of a subject that is in no test fold of a fixed list


class LeakageError(ValueError):
    """A subject is on both sides of a split (or in two test folds)."""


def subject_key(subject: str) -> tuple:
    """Sort key that puts "2" before "10": numeric subjects by value, then the others by name."""
    s = str(subject)
    return (0, int(s), "") if s.isdigit() else (1, 0, s)


def sorted_subjects(subjects: Iterable) -> list[str]:
    return sorted({str(s) for s in subjects}, key=subject_key)


def assign_folds(
    subjects: Iterable,
    scheme: str = "kfold",
    k: int = 5,
    seed: int = 0,
    fixed: Sequence[Sequence] | None = None,
) -> dict[str, int]:
    """Map each subject to its test fold.

    ``subjects`` holds one entry per video (e.g. ``manifest["subject"]``); with ``kfold`` the subjects are spread
    so that every fold tests about the same number of *videos* (largest subjects first, each to the fold with the
    fewest videos so far; ``seed`` breaks ties between equally sized subjects). ``loso`` gives every subject its
    own fold, in natural subject order. ``fixed`` takes one list of test subjects per fold; subjects listed in no
    fold get :data:`TRAIN_ONLY`, subjects listed but absent from ``subjects`` are ignored.
    """
    counts = Counter(str(s) for s in subjects)
    if not counts:
        raise ValueError("cannot assign folds: there are no subjects (is the manifest empty?)")
    names = sorted(counts, key=subject_key)

    if scheme == "kfold":
        k = int(k)
        if not 2 <= k <= len(names):
            raise ValueError(
                f"folds.k = {k} needs 2 <= k <= the number of subjects ({len(names)}); lower folds.k "
                "or use folds.scheme: loso"
            )
        order = list(np.random.default_rng(seed).permutation(len(names)))
        # Stable sort by size: shuffled order decides between subjects with the same number of videos.
        ranked = sorted((names[i] for i in order), key=lambda s: -counts[s])
        videos, members = [0] * k, [0] * k
        folds = {}
        for s in ranked:
            f = min(range(k), key=lambda j: (videos[j], members[j], j))
            folds[s] = f
            videos[f] += counts[s]
            members[f] += 1
        return {s: folds[s] for s in names}

    if scheme == "loso":
        return {s: i for i, s in enumerate(names)}

    if scheme == "fixed":
        if not fixed:
            raise ValueError("folds.scheme is 'fixed' but folds.fixed is empty; give one list of test subjects per fold")
        seen: dict[str, int] = {}
        repeated = set()
        for f, fold in enumerate(fixed):
            for s in map(str, fold):
                if s in seen:
                    repeated.add(s)
                seen.setdefault(s, f)
        if repeated:
            raise LeakageError(
                f"folds.fixed lists subject(s) {sorted_subjects(repeated)} in more than one test fold; "
                "each subject may be tested in one fold only"
            )
        for f, fold in enumerate(fixed):
            if not any(str(s) in counts for s in fold):
                raise ValueError(
                    f"folds.fixed fold {f} ({list(fold)}) names no subject of this dataset "
                    f"(subjects: {names}); check the subject names in folds.fixed"
                )
        return {s: seen.get(s, TRAIN_ONLY) for s in names}

    raise ValueError(f"unknown folds.scheme {scheme!r}; use one of {', '.join(SCHEMES)}")


def check_no_leak(
    train_subjects: Iterable, test_subjects: Iterable, val_subjects: Iterable = ()
) -> None:
    """Raise :class:`LeakageError` naming every subject found in more than one of train, val and test."""
    sides = {"train": {str(s) for s in train_subjects}, "val": {str(s) for s in val_subjects},
             "test": {str(s) for s in test_subjects}}
    problems = []
    for a, b in (("train", "test"), ("train", "val"), ("val", "test")):
        both = sides[a] & sides[b]
        if both:
            problems.append(f"{a} and {b} share subject(s) {sorted_subjects(both)}")
    if problems:
        raise LeakageError("subject leakage: " + "; ".join(problems))


def inner_validation(
    train_subjects: Iterable, n_val: int | float, seed: int = 0, strata: dict[str, object] | None = None
) -> tuple[list[str], list[str]]:
    """Split training subjects into (train, val) for model selection; validation never sees a test subject.

    ``n_val`` is a count (int) or a fraction of the training subjects (float in (0, 1), at least one subject).
    At least one subject always stays in training. The result does not depend on the input order. With ``strata``
    (subject -> class, for datasets whose subjects are single clips) the validation subjects are drawn per class,
    in proportion to its size (largest remainders first): validation has the training clips' class mix.
    """
    subjects = sorted_subjects(train_subjects)
    if isinstance(n_val, bool) or not isinstance(n_val, (int, float, np.integer, np.floating)):
        raise ValueError(f"folds.val_subjects must be an int count or a float fraction, not {n_val!r}")
    if isinstance(n_val, (float, np.floating)):
        if not 0 <= n_val < 1:
            raise ValueError(f"folds.val_subjects = {n_val} as a fraction must be in [0, 1)")
        n = max(1, round(n_val * len(subjects))) if n_val > 0 else 0
    else:
        n = int(n_val)
    if n < 0 or (n > 0 and n >= len(subjects)):
        raise ValueError(
            f"folds.val_subjects = {n_val} leaves no training subject ({len(subjects)} available); lower it "
            "(folds.val_subjects: 0 trains without validation and keeps the last epoch)"
        )
    rng = np.random.default_rng(seed)
    if strata is None:
        picked = {subjects[i] for i in rng.choice(len(subjects), size=n, replace=False).tolist()}
    else:
        groups: dict = {}
        for s in subjects:
            groups.setdefault(strata[s], []).append(s)
        keys = sorted(groups, key=str)
        share = np.array([n * len(groups[k]) / len(subjects) for k in keys])
        take = np.floor(share).astype(int)
        for i in np.argsort(-(share - take), kind="stable")[: n - int(take.sum())]:
            take[i] += 1
        picked = {groups[k][i] for k, t in zip(keys, take, strict=True) for i in rng.choice(len(groups[k]), size=t, replace=False)}
    val = [s for s in subjects if s in picked]
    train = [s for s in subjects if s not in picked]
    return train, val


def fold_subjects(df: pd.DataFrame, fold: int, n_val: int | float = 1, seed: int = 0) -> dict[str, list[str]]:
    """Train, val and test subjects of ``fold`` from a table with ``subject`` and ``fold`` columns.

    Test subjects are those whose fold is ``fold``; everyone else trains (``TRAIN_ONLY`` subjects included) and
    the validation subjects are drawn from them; where every subject is one video (datasets without subject ids)
    and the table has a ``label`` column, stratified by class (:func:`inner_validation`). Raises :class:`LeakageError` if a subject's videos sit in
    different folds, or if the resulting split shares a subject.
    """
    for col in ("subject", "fold"):
        if col not in df.columns:
            raise ValueError(f"fold_subjects needs a '{col}' column (the manifest with folds); got {list(df.columns)}")
    pairs = df[["subject", "fold"]].astype({"subject": str}).drop_duplicates()
    split = pairs["subject"][pairs["subject"].duplicated()]
    if len(split):
        raise LeakageError(f"subject(s) {sorted_subjects(split)} have videos in more than one test fold")
    folds = sorted(int(f) for f in pairs["fold"].unique() if int(f) != TRAIN_ONLY)
    if int(fold) not in folds:
        raise ValueError(f"fold {fold} is not a test fold of this manifest (folds: {folds})")
    test = sorted_subjects(pairs.loc[pairs["fold"] == int(fold), "subject"])
    rest = sorted_subjects(pairs.loc[pairs["fold"] != int(fold), "subject"])
    strata = None
    if "label" in df.columns and not df["subject"].astype(str).duplicated().any():
        strata = dict(zip(df["subject"].astype(str), df["label"], strict=True))
    train, val = inner_validation(rest, n_val, seed, strata)
    check_no_leak(train, test, val)
    return {"train": train, "val": val, "test": test}

"""Video-level metrics from prediction tables: the pooled headline, intervals by subject, paired model comparisons.

Definitions follow scikit-learn's (the tests check them against it):

- WAR (weighted average recall, accuracy): correct / videos;
- UAR (unweighted average recall, sklearn's balanced accuracy): mean recall over the classes that have test videos;
- macro-F1: mean F1 over the classes present in the labels or the predictions, an undefined F1 counting as 0.

**Headline.** A model's figure is computed on all its test videos pooled over the folds (a fold that misses classes
cannot inflate UAR). With several training seeds it is the mean over seeds of the pooled figure, which is also the
figure of every seed's predictions stacked (each seed predicts the same videos); the standard deviation over seeds
and the per-fold mean and standard deviation sit beside it. Chance (1/K) and the majority-class baseline of the
pooled test labels are recorded too.

**The field's figures.** Beside the pooled figure, each fold is scored alone and the folds' mean ± std is recorded,
as papers on datasets with official splits report them (DFEW and MAFW: the mean over their 5 official folds;
FERV39k: its one official test split). ``official_folds`` (set by the workflow when the folds are a dataset's
official ones) labels them so (:func:`fold_figures`).

**Intervals** are percentile bootstraps that resample whole subjects (a cluster bootstrap) when the folds are
subject-independent (every subject tested in one fold), else videos (``bootstrap_by: auto``; ``subject`` or
``video`` force one). A resampled subject brings all its videos, of every seed. A dataset without subject ids gives
every video its own subject: its units are videos, and every text says so (:func:`subjects_are_videos`).

**Paired comparisons.** For every pair of models, on the test videos both predicted (matched on ``video_id`` and on
``seed`` when the two share seeds): the difference in WAR and UAR, a paired bootstrap interval (both models scored on
the same resampled units) and the two-sided p-value of a paired permutation test that swaps the two models'
predictions of a whole unit (subject, or video) at once: exact over all 2^units swaps when that is no more than
``permutations``, else Monte Carlo with ``(hits + 1) / (permutations + 1)``. Swapping a unit flips the sign of its
share of the difference (WAR and UAR are sums of per-video terms over a fixed label set), so each permutation costs
one dot product.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from video_emotion.io import read_parquet_metadata, write_json, write_parquet

log = logging.getLogger(__name__)

METRICS_DEFAULTS = {"bootstrap": 1000, "ci": 0.95, "seed": 0, "bootstrap_by": "auto", "permutations": 10000}
SCORES = ("accuracy", "uar", "macro_f1")
COMPARED = ("accuracy", "uar")
SHORT = {"accuracy": "WAR", "uar": "UAR", "macro_f1": "macro-F1"}

# The seed paper's video-level accuracies (%) on eNTERFACE'05, by our registry names: their only home. Its claims
# are differences from its own model, the first of these (3Res-att: +18.2 points over C3D, +11.4 over 3Res att2).
PAPER = {"res_att": 67.5, "c3d": 49.3, "res_att2": 56.1}
PAPER_NAMES = {"res_att": "3Res-att", "c3d": "C3D", "res_att2": "3Res att2"}
PAPER_DATASET = "enterface05"
TABLES = ("summary", "per_seed", "per_fold", "comparisons", "confusion", "per_class", "per_subject")


# ---------------------------------------------------------------------------------------------------------------
# Scores
# ---------------------------------------------------------------------------------------------------------------

def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts (num_classes, num_classes): rows are true classes, columns predicted ones."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return cm


def per_class(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Support, predicted count, precision, recall and F1 of each class (NaN where undefined)."""
    tp = np.diag(cm).astype(float)
    support, predicted = cm.sum(1), cm.sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, np.nan)
        recall = np.where(support > 0, tp / support, np.nan)
        f1 = np.where(support + predicted > 0, 2 * tp / (support + predicted), np.nan)
    return {"support": support, "predicted": predicted, "precision": precision, "recall": recall, "f1": f1}


def _scores_of(support: np.ndarray, tp: np.ndarray, predicted: np.ndarray) -> dict[str, np.ndarray]:
    """WAR, UAR and macro-F1 from per-class counts (..., K); leading axes are batches (bootstrap draws)."""
    present, seen = support > 0, (support > 0) | (predicted > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(present, tp / np.where(present, support, 1), 0.0)
        f1 = np.where(seen, 2 * tp / np.maximum(support + predicted, 1), 0.0)
        return {"accuracy": tp.sum(-1) / support.sum(-1),
                "uar": recall.sum(-1) / present.sum(-1),
                "macro_f1": f1.sum(-1) / seen.sum(-1)}


def scores_from_confusion(cm: np.ndarray) -> dict[str, float]:
    """Accuracy (WAR), UAR and macro-F1 of a confusion matrix (NaN when it is empty)."""
    out = _scores_of(cm.sum(1).astype(float), np.diag(cm).astype(float), cm.sum(0).astype(float))
    return {s: float(v) for s, v in out.items()}


def scores(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> dict[str, float]:
    """Accuracy (WAR), UAR and macro-F1 of integer labels and predictions."""
    return scores_from_confusion(confusion_matrix(y_true, y_pred, num_classes))


# ---------------------------------------------------------------------------------------------------------------
# Bootstrap and permutation test
# ---------------------------------------------------------------------------------------------------------------

def _tallies(y_true: np.ndarray, y_pred: np.ndarray, units: np.ndarray, n_units: int, k: int) -> np.ndarray:
    """Per unit and class: support, true positives, predicted count, shape (3, n_units, k)."""
    t = np.zeros((3, n_units, k))
    np.add.at(t[0], (units, y_true), 1)
    np.add.at(t[1], (units[y_true == y_pred], y_true[y_true == y_pred]), 1)
    np.add.at(t[2], (units, y_pred), 1)
    return t


def _draw_counts(n_units: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n_units): how often each unit is drawn in each bootstrap resample of n_units units."""
    picks = rng.integers(0, n_units, (n_boot, n_units)) + n_units * np.arange(n_boot)[:, None]
    return np.bincount(picks.ravel(), minlength=n_boot * n_units).reshape(n_boot, n_units).astype(float)


def _unit_codes(groups, n: int) -> tuple[np.ndarray, int]:
    if groups is None:
        return np.arange(n), n
    _, codes = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    return codes, int(codes.max()) + 1 if n else 0


def bootstrap_draws(y_true, y_pred, num_classes: int, *, groups=None, n_boot: int = 1000,
                    seed: int = 0) -> dict[str, np.ndarray]:
    """Each score on ``n_boot`` resamples of the videos (or of whole ``groups``, e.g. subjects), seeded."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    units, n_units = _unit_codes(groups, len(y_true))
    t = _tallies(y_true, y_pred, units, n_units, num_classes)
    counts = _draw_counts(n_units, n_boot, np.random.default_rng(seed))
    return _scores_of(*(counts @ t[i] for i in range(3)))


def _interval(draws: np.ndarray, ci: float) -> tuple[float, float]:
    if len(draws) == 0 or np.isnan(draws).all():
        return float("nan"), float("nan")
    lo, hi = np.nanpercentile(draws, [100 * (1 - ci) / 2, 100 * (1 + ci) / 2])
    return float(lo), float(hi)


def bootstrap_ci(y_true, y_pred, num_classes: int, *, groups=None, n_boot: int = 1000, ci: float = 0.95,
                 seed: int = 0) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval of each score, resampling videos (or whole ``groups``, e.g. subjects)."""
    draws = bootstrap_draws(y_true, y_pred, num_classes, groups=groups, n_boot=n_boot, seed=seed)
    return {s: _interval(d, ci) for s, d in draws.items()}


def _video_weights(y_true: np.ndarray, k: int, metric: str) -> np.ndarray:
    """w such that the metric of a prediction set is sum(w * correct): 1/N (WAR), 1/(K_present * support) (UAR)."""
    if metric == "accuracy":
        return np.full(len(y_true), 1 / len(y_true))
    support = np.bincount(y_true, minlength=k)
    return 1 / ((support > 0).sum() * support[y_true])


def paired_permutation_test(correct_a, correct_b, weights, units, *, n_perm: int = 10000,
                            seed: int = 0) -> tuple[float, int, bool]:
    """Two-sided p-value of sum(weights * (correct_a - correct_b)) under swaps of the two models within units.

    Returns (p, permutations used, exact). Exact enumeration of all 2^units swaps when that is at most ``n_perm``.
    """
    d = np.asarray(weights, float) * (np.asarray(correct_a, float) - np.asarray(correct_b, float))
    codes, n_units = _unit_codes(units, len(d))
    per_unit = np.bincount(codes, weights=d, minlength=n_units)
    observed = per_unit.sum()
    tol = 1e-12 * max(1.0, abs(observed))
    if n_units <= 20 and 2**n_units <= n_perm:
        signs = 1 - 2 * np.array(list(itertools.product((0, 1), repeat=n_units)), dtype=float)
        return float(np.mean(np.abs(signs @ per_unit) >= abs(observed) - tol)), len(signs), True
    rng, hits = np.random.default_rng(seed), 0
    for start in range(0, n_perm, 1000):  # in blocks: at most 1000 x units signs in memory
        signs = 1 - 2 * rng.integers(0, 2, (min(1000, n_perm - start), n_units), dtype=np.uint8).astype(float)
        hits += int(np.sum(np.abs(signs @ per_unit) >= abs(observed) - tol))
    return (hits + 1) / (n_perm + 1), n_perm, False


# ---------------------------------------------------------------------------------------------------------------
# Reading prediction files
# ---------------------------------------------------------------------------------------------------------------

_KEY_VALUE = re.compile(r"(model|seed|fold)=(.+)")
_NUMBERED = re.compile(r"(seed|fold)(\d+)")


def run_keys(path: str | os.PathLike) -> dict:
    """``model``, ``seed``, ``fold`` of a results file from its folders: ``key=value`` segments (predictions) or
    ``{model}/seed{s}/fold{k}`` (training runs); only the keys found."""
    keys: dict = {}
    parts = Path(path).parts[:-1]
    for i, part in enumerate(parts):
        if m := _KEY_VALUE.fullmatch(part):
            keys[m[1]] = m[2]
        elif m := _NUMBERED.fullmatch(part):
            keys[m[1]] = m[2]
            if "model" not in keys and i > 0 and not _NUMBERED.fullmatch(parts[i - 1]):
                keys["model"] = parts[i - 1]
    return {k: (v if k == "model" else int(v)) for k, v in keys.items()}


def read_predictions(paths) -> tuple[pd.DataFrame, list[str]]:
    """The given ``predictions.parquet`` files stacked, with ``model``, ``seed``, ``fold`` (and the evaluated
    ``epoch``) columns taken from each file's ``key=value`` folders, else from its metadata; and the classes."""
    paths = [Path(p) for p in ([paths] if isinstance(paths, (str, os.PathLike)) else paths)]
    if not paths:
        raise FileNotFoundError("no prediction files given; run evaluate first")
    frames, classes, seen = [], None, {}
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist; run evaluate first")
        meta = read_parquet_metadata(path)
        keys = {"model": meta.get("model"), "fold": meta.get("fold"),
                "seed": meta.get("seed", ((meta.get("config") or {}).get("train") or {}).get("seed", 0)),
                **run_keys(path)}
        if keys["model"] is None or keys["fold"] is None:
            raise ValueError(f"{path}: model or fold unknown; keep it under model=<name>/seed=<s>/fold=<k>/")
        run = (str(keys["model"]), int(keys["seed"]), int(keys["fold"]))
        if run in seen:
            raise ValueError(f"{path} and {seen[run]} are both model {run[0]}, seed {run[1]}, fold {run[2]}")
        seen[run] = path
        df = pd.read_parquet(path)
        cats = [str(c) for c in df["label"].cat.categories]
        if classes is not None and cats != classes:
            raise ValueError(f"{path} has classes {cats}, other predictions have {classes}; rerun evaluate")
        classes = cats
        frames.append(df.assign(model=run[0], seed=run[1], fold=run[2], epoch=meta.get("epoch", -1)))
    df = pd.concat(frames, ignore_index=True)
    for col in ("label", "pred"):
        df[col] = pd.Categorical(df[col].astype(str), categories=classes)
    df["subject"] = df["subject"].astype(str)
    return df, classes


def subjects_are_videos(df: pd.DataFrame) -> bool:
    """Whether every subject has exactly one video: a dataset without subject ids (each video its own subject)."""
    return bool(len(df)) and bool((df.groupby("subject", observed=True)["video_id"].nunique() == 1).all())


def interval_unit(df: pd.DataFrame, bootstrap_by: str = "auto") -> str:
    """``video`` when subjects are videos (:func:`subjects_are_videos`: resampling either is the same, and it is
    named for what it is); else ``subject`` when every subject is tested in one fold (per model and seed) and there
    are several, else ``video``; or what ``bootstrap_by`` forces."""
    if subjects_are_videos(df):
        return "video"
    if bootstrap_by != "auto":
        return bootstrap_by
    folds_per_subject = df.groupby(["model", "seed", "subject"], observed=True)["fold"].nunique()
    return "subject" if (folds_per_subject == 1).all() and df["subject"].nunique() > 1 else "video"


# ---------------------------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------------------------

def _codes(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    return df["label"].cat.codes.to_numpy(np.int64), df["pred"].cat.codes.to_numpy(np.int64)


def _pooled(df: pd.DataFrame, k: int, unit: str, boot: dict) -> dict:
    """Pooled scores of ``df`` with their bootstrap intervals (units: subjects or videos)."""
    yt, yp = _codes(df)
    row = scores(yt, yp, k)
    groups = df["subject" if unit == "subject" else "video_id"].to_numpy()
    ci = bootstrap_ci(yt, yp, k, groups=groups, n_boot=boot["n_boot"], ci=boot["ci"], seed=boot["seed"]) \
        if boot["n_boot"] else {s: (float("nan"), float("nan")) for s in SCORES}
    for s in SCORES:
        row[f"{s}_ci_low"], row[f"{s}_ci_high"] = ci[s]
    return row


def _spread(values: pd.Series) -> tuple[float, float]:
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else float("nan")


def compare(a: pd.DataFrame, b: pd.DataFrame, k: int, unit: str, *, n_boot: int = 1000, ci: float = 0.95,
            n_perm: int = 10000, seed: int = 0) -> list[dict]:
    """Model a minus model b on the videos both predicted: per metric in :data:`COMPARED`, the difference, its
    paired bootstrap interval and the paired permutation test's p-value."""
    keys = ["video_id", "seed"] if set(a["seed"]) & set(b["seed"]) else ["video_id"]
    m = a[[*keys, "subject", "label", "pred"]].merge(b[[*keys, "pred"]], on=keys, suffixes=("_a", "_b"))
    if m.empty:
        return []
    yt = m["label"].cat.codes.to_numpy(np.int64)
    pa, pb = m["pred_a"].cat.codes.to_numpy(np.int64), m["pred_b"].cat.codes.to_numpy(np.int64)
    groups = m["subject" if unit == "subject" else "video_id"].to_numpy()
    units, n_units = _unit_codes(groups, len(m))
    ta, tb = _tallies(yt, pa, units, n_units, k), _tallies(yt, pb, units, n_units, k)
    counts = _draw_counts(n_units, n_boot, np.random.default_rng(seed)) if n_boot else np.zeros((0, n_units))
    draws_a = _scores_of(*(counts @ ta[i] for i in range(3)))
    draws_b = _scores_of(*(counts @ tb[i] for i in range(3)))
    score_a, score_b = scores(yt, pa, k), scores(yt, pb, k)
    rows = []
    for metric in COMPARED:
        p, n_used, exact = paired_permutation_test(pa == yt, pb == yt, _video_weights(yt, k, metric), units,
                                                   n_perm=n_perm, seed=seed)
        lo, hi = _interval(draws_a[metric] - draws_b[metric], ci)
        rows.append({"model_a": str(a["model"].iloc[0]), "model_b": str(b["model"].iloc[0]), "metric": metric,
                     "a": score_a[metric], "b": score_b[metric], "diff": score_a[metric] - score_b[metric],
                     "ci_low": lo, "ci_high": hi, "p_value": p, "n_videos": int(m["video_id"].nunique()),
                     "n_predictions": len(m), "n_subjects": int(m["subject"].nunique()),
                     "n_seeds": int(m["seed"].nunique()) if "seed" in keys else 0,
                     "unit": unit, "ci": ci, "permutations": n_used, "exact": exact})
    return rows


def compute_metrics(predictions, out_dir: str | os.PathLike, params: dict) -> dict:
    """Write the :data:`TABLES` (Parquet) and metrics.json under ``out_dir`` from the given prediction files.

    ``params`` is the config's ``metrics`` section (``bootstrap``, ``ci``, ``seed``, ``bootstrap_by``,
    ``permutations``). Returns the JSON's content.
    """
    p = {**METRICS_DEFAULTS, **(params or {})}
    out_dir = Path(out_dir)
    df, classes = read_predictions(predictions)
    k = len(classes)
    unit = interval_unit(df, p["bootstrap_by"])
    no_subject_ids, official = subjects_are_videos(df), bool(p.get("official_folds", False))
    boot = {"n_boot": int(p["bootstrap"]), "ci": float(p["ci"]), "seed": int(p["seed"])}
    models = list(dict.fromkeys(df["model"]))  # in the order the files were given

    per_fold, per_seed, summary, confusion, per_cls, per_subj = [], [], [], [], [], []
    for (model, seed, fold), fdf in df.groupby(["model", "seed", "fold"], sort=True):
        yt, yp = _codes(fdf)
        cm = confusion_matrix(yt, yp, k)
        run = {"model": model, "seed": int(seed), "fold": int(fold)}
        per_fold.append({**run, "epoch": int(fdf["epoch"].iloc[0]), "n_videos": len(fdf),
                         "n_subjects": fdf["subject"].nunique(), **scores_from_confusion(cm)})
        confusion += [{**run, "true": t, "pred": q, "count": int(cm[i, j])}
                      for i, t in enumerate(classes) for j, q in enumerate(classes)]
        pc = per_class(cm)
        per_cls += [{**run, "class": c, **{name: pc[name][i] for name in pc}} for i, c in enumerate(classes)]
        correct = fdf["label"] == fdf["pred"]
        per_subj += [{**run, "subject": subject, "n_videos": len(s), "accuracy": float(s.mean())}
                     for subject, s in correct.groupby(fdf["subject"], sort=True)]
    fold_table = pd.DataFrame(per_fold)

    for (model, seed), sdf in df.groupby(["model", "seed"], sort=True):
        folds = fold_table[(fold_table["model"] == model) & (fold_table["seed"] == seed)]
        row = {"model": model, "seed": int(seed), "n_folds": len(folds), "n_videos": len(sdf),
               "n_subjects": sdf["subject"].nunique(), **_pooled(sdf, k, unit, boot)}
        for s in SCORES:
            row[f"{s}_fold_mean"], row[f"{s}_fold_std"] = _spread(folds[s])
        per_seed.append(row)
    seed_table = pd.DataFrame(per_seed)

    for model in models:
        mdf = df[df["model"] == model]
        seeds, folds = seed_table[seed_table["model"] == model], fold_table[fold_table["model"] == model]
        videos = mdf.drop_duplicates("video_id")
        label_share = videos["label"].value_counts(normalize=True, sort=False)
        row = {"model": model, "n_seeds": len(seeds), "seeds": ", ".join(str(s) for s in seeds["seed"]),
               "n_folds": folds["fold"].nunique(), "n_videos": len(videos), "n_subjects": mdf["subject"].nunique(),
               "unit": unit, "subjects_are_videos": no_subject_ids, "official_folds": official, "ci": boot["ci"],
               "bootstrap": boot["n_boot"], **_pooled(mdf, k, unit, boot)}
        for s in SCORES:
            row[s] = float(seeds[s].mean())  # equals the stacked figure; exact mean for the record
            row[f"{s}_seed_std"] = _spread(seeds[s])[1]
            row[f"{s}_fold_mean"], row[f"{s}_fold_std"] = _spread(folds[s])
        row.update({"chance": 1 / k, "majority_class": str(label_share.idxmax()),
                    "majority_accuracy": float(label_share.max()), "majority_uar": 1 / int((label_share > 0).sum())})
        summary.append(row)

    comparisons = []
    for a, b in itertools.combinations(models, 2):
        rows = compare(df[df["model"] == a], df[df["model"] == b], k, unit, n_boot=boot["n_boot"], ci=boot["ci"],
                       n_perm=int(p["permutations"]), seed=boot["seed"])
        if not rows:
            log.warning("%s and %s share no test videos: not compared", a, b)
        comparisons += rows

    def cat(table: list[dict], *cols: str) -> pd.DataFrame:
        t = pd.DataFrame(table)
        for c in cols:
            t[c] = pd.Categorical(t[c], categories=classes)
        return t

    comparison_columns = ["model_a", "model_b", "metric", "a", "b", "diff", "ci_low", "ci_high", "p_value",
                          "n_videos", "n_predictions", "n_subjects", "n_seeds", "unit", "ci", "permutations", "exact"]
    tables = {"summary": pd.DataFrame(summary), "per_seed": seed_table, "per_fold": fold_table,
              "comparisons": pd.DataFrame(comparisons, columns=comparison_columns),
              "confusion": cat(confusion, "true", "pred"), "per_class": cat(per_cls, "class"),
              "per_subject": pd.DataFrame(per_subj)}
    meta = {"classes": classes, "params": p, "unit": unit, "subjects_are_videos": no_subject_ids}
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        write_parquet(table, out_dir / f"{name}.parquet", meta)
    report = {"classes": classes, "chance": 1 / k, "unit": unit, "subjects_are_videos": no_subject_ids, "params": p,
              "summary": tables["summary"].to_dict("records"), "comparisons": comparisons}
    write_json(_finite(report), out_dir / "metrics.json")
    for line in summary_lines(tables["summary"], tables["comparisons"]):
        log.info("%s", line)
    return report


def _finite(obj):
    """A copy with NaN and infinities as None: metrics.json stays strict JSON."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, (np.integer, np.bool_)):
        return obj.item()
    return obj


# ---------------------------------------------------------------------------------------------------------------
# Text: the end-of-run summary and the report's claims
# ---------------------------------------------------------------------------------------------------------------

def pct(value: float) -> str:
    """A fraction as a percentage with one decimal, or a dash when it is missing."""
    return "–" if pd.isna(value) else f"{100 * value:.1f}"


def format_p(p: float) -> str:
    return "–" if pd.isna(p) else "< 0.001" if p < 0.001 else f"{p:.3f}" if p < 0.01 else f"{p:.2f}"


def paper_difference(model_a: str, model_b: str) -> float | None:
    """The seed paper's accuracy difference (points) between two of its models, or None where it gives none."""
    if model_a in PAPER and model_b in PAPER:
        return round(PAPER[model_a] - PAPER[model_b], 1)
    return None


def comparison_line(row, paper_note: bool = True) -> str:
    """'res_att vs c3d: WAR +18.2 points [9.1, 27.0], p = 0.002' (paired; interval and test by subject or video),
    with the paper's own difference beside a WAR line where it reports both models (unless ``paper_note`` is off)."""
    interval = "" if pd.isna(row["ci_low"]) else f" [{100 * row['ci_low']:+.1f}, {100 * row['ci_high']:+.1f}]"
    paper = paper_difference(row["model_a"], row["model_b"]) if row["metric"] == "accuracy" and paper_note else None
    return (f"{row['model_a']} vs {row['model_b']}: {SHORT[row['metric']]} {100 * row['diff']:+.1f} points"
            f"{interval}, p = {format_p(row['p_value'])}"
            + ("" if paper is None else f" (the paper, on eNTERFACE'05: {paper:+.1f})"))


def claims(comparisons: pd.DataFrame, reference: str) -> pd.DataFrame:
    """The comparisons the paper makes: its model (``reference``, the first configured) against each other model.
    Every other pair stays in comparisons.parquet."""
    if comparisons.empty:
        return comparisons
    return comparisons[comparisons["model_a"] == reference]


def subjects_text(row) -> str:
    """'6 subjects', or what a dataset without subject ids has instead."""
    return "no subject ids" if row.get("subjects_are_videos", False) else f"{row['n_subjects']} subjects"


def fold_figures(row) -> tuple[str, str, str]:
    """A summary row's folds scored one by one: (label, WAR, UAR) as 'mean ± std' in %. On a dataset's official
    folds the label is the field's ('mean ± std over the 5 official folds'; one fold: 'the official test split'),
    else 'per-fold mean ± std (3 folds)'; with several seeds the spread is over every fold and seed."""
    folds, seeds = int(row["n_folds"]), int(row["n_seeds"])
    over_seeds = f" x {seeds} seeds" if seeds > 1 else ""
    if not row.get("official_folds", False):
        label = f"per-fold mean ± std ({folds} folds{over_seeds})"
    elif folds == 1:
        label = "the official test split" + (f", mean ± std over {seeds} seeds" if seeds > 1 else "")
    else:
        label = f"mean ± std over the {folds} official folds{over_seeds}"

    def spread(metric: str) -> str:
        std = row[f"{metric}_fold_std"]
        return pct(row[f"{metric}_fold_mean"]) + ("" if pd.isna(std) else f" ± {pct(std)}")

    return label, spread("accuracy"), spread("uar")


def headline(row) -> str:
    """A model's pooled WAR and UAR with intervals, then its folds scored one by one (and the spread over seeds),
    labelled."""
    seeds = row["n_seeds"] > 1
    pooled = (f"{100 * row['ci']:.0f}% CI by {row['unit']}; pooled over {row['n_videos']} test videos, "
              f"{subjects_text(row)}" + (f", mean of {row['n_seeds']} seeds" if seeds else ""))
    label, war, uar = fold_figures(row)
    text = (f"{row['model']}: WAR {pct(row['accuracy'])}% [{pct(row['accuracy_ci_low'])}, "
            f"{pct(row['accuracy_ci_high'])}], UAR {pct(row['uar'])}% [{pct(row['uar_ci_low'])}, "
            f"{pct(row['uar_ci_high'])}] ({pooled}); {label}: WAR {war}, UAR {uar}")
    if seeds:
        text += f"; std over seeds: WAR {pct(row['accuracy_seed_std'])}, UAR {pct(row['uar_seed_std'])}"
    return text


def baseline_line(row) -> str:
    return (f"chance (1/K) {pct(row['chance'])}%; majority class ({row['majority_class']}) WAR "
            f"{pct(row['majority_accuracy'])}%, UAR {pct(row['majority_uar'])}%")


def summary_lines(summary: pd.DataFrame, comparisons: pd.DataFrame) -> list[str]:
    """The headline of each model, the baselines, and the first model's paired comparison with each other model
    (the paper's claims), as printed at the end of a run and at the top of the report."""
    lines = [headline(row) for _, row in summary.iterrows()]
    if len(summary):
        lines.append(baseline_line(summary.iloc[0]))
        lines += [comparison_line(row) for _, row in claims(comparisons, summary.iloc[0]["model"]).iterrows()]
    if len(summary) == 1:
        lines.append("one model: no paired comparison")
    return lines

"""Video-level metrics from the predictions tables: per fold, per class, per subject, and across folds.

Definitions follow scikit-learn's (and the tests check them against it):

- accuracy (WAR, weighted average recall): correct / videos;
- UAR (unweighted average recall, sklearn's balanced accuracy): mean recall over the classes present in the labels;
- macro-F1: mean F1 over the classes present in the labels or the predictions, an undefined F1 counting as 0.

Per-class precision (recall) is NaN when a class is never predicted (never present). Confidence intervals are
percentile bootstraps over videos (or over subjects with ``bootstrap_by: subject``), seeded. Across folds:
mean and sample std (ddof=1) of the per-fold figures, and the figures of all test videos pooled.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from video_emotion.io import write_json, write_parquet

log = logging.getLogger(__name__)

METRICS_DEFAULTS = {"bootstrap": 1000, "ci": 0.95, "seed": 0, "bootstrap_by": "video"}
SCORES = ("accuracy", "uar", "macro_f1")


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


def scores_from_confusion(cm: np.ndarray) -> dict[str, float]:
    """Accuracy (WAR), UAR and macro-F1 of a confusion matrix."""
    n = cm.sum()
    pc = per_class(cm)
    present = pc["support"] > 0
    seen = present | (pc["predicted"] > 0)
    return {
        "accuracy": float(np.trace(cm) / n) if n else float("nan"),
        "uar": float(pc["recall"][present].mean()) if present.any() else float("nan"),
        "macro_f1": float(np.nan_to_num(pc["f1"][seen]).mean()) if seen.any() else float("nan"),
    }


def scores(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> dict[str, float]:
    """Accuracy (WAR), UAR and macro-F1 of integer labels and predictions."""
    return scores_from_confusion(confusion_matrix(y_true, y_pred, num_classes))


def bootstrap_ci(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    num_classes: int,
    *,
    groups: np.ndarray | None = None,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval of each score, resampling videos (or whole ``groups``, e.g. subjects)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if groups is None:
        groups = np.arange(len(y_true))
    keys, members = np.unique(np.asarray(groups), return_inverse=True)
    by_group = [np.flatnonzero(members == g) for g in range(len(keys))]
    rng = np.random.default_rng(seed)
    draws = {s: np.empty(n_boot) for s in SCORES}
    for b in range(n_boot):
        take = np.concatenate([by_group[g] for g in rng.integers(0, len(keys), len(keys))])
        result = scores(y_true[take], y_pred[take], num_classes)
        for s in SCORES:
            draws[s][b] = result[s]
    lo, hi = 100 * (1 - ci) / 2, 100 * (1 + ci) / 2
    return {s: (float(np.nanpercentile(d, lo)), float(np.nanpercentile(d, hi))) for s, d in draws.items()}


def read_predictions(predictions_root: str | os.PathLike) -> tuple[pd.DataFrame, list[str]]:
    """Every ``model=<m>/fold=<k>/predictions.parquet`` under the root, with model and fold columns; the classes."""
    root = Path(predictions_root)
    frames, classes = [], None
    for path in sorted(root.glob("model=*/fold=*/predictions.parquet")):
        m = re.fullmatch(r"model=(.+)", path.parent.parent.name)
        k = re.fullmatch(r"fold=(-?\d+)", path.parent.name)
        if not (m and k):
            continue
        df = pd.read_parquet(path)
        cats = [str(c) for c in df["label"].cat.categories]
        if classes is not None and cats != classes:
            raise ValueError(f"{path} has classes {cats}, other predictions have {classes}; rerun evaluate")
        classes = cats
        frames.append(df.assign(model=m.group(1), fold=int(k.group(1))))
    if not frames:
        raise FileNotFoundError(f"no model=*/fold=*/predictions.parquet under {root}; run evaluate first")
    df = pd.concat(frames, ignore_index=True)
    for col in ("label", "pred"):
        df[col] = pd.Categorical(df[col].astype(str), categories=classes)
    return df, classes


def _finite(obj):
    """A copy with NaN and infinities as None: metrics.json stays strict JSON."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _with_ci(row: dict, ci: dict) -> dict:
    for s in SCORES:
        row[f"{s}_ci_low"], row[f"{s}_ci_high"] = ci[s]
    return row


def compute_metrics(predictions_root: str | os.PathLike, out_dir: str | os.PathLike, params: dict) -> dict:
    """Write per_fold, summary, confusion, per_class, per_subject Parquet tables and metrics.json; return the JSON.

    ``params`` is the config's ``metrics`` section (``bootstrap``, ``ci``, ``seed``, ``bootstrap_by``).
    """
    p = {**METRICS_DEFAULTS, **(params or {})}
    out_dir = Path(out_dir)
    df, classes = read_predictions(predictions_root)
    k = len(classes)
    boot = {"n_boot": int(p["bootstrap"]), "ci": float(p["ci"]), "seed": int(p["seed"])}
    by_subject = p["bootstrap_by"] == "subject"

    per_fold, confusion, per_cls, per_subj, summary = [], [], [], [], []
    report: dict = {"classes": classes, "chance": 1 / k, "ci": p["ci"], "bootstrap": p, "models": {}}
    for model, mdf in df.groupby("model", sort=True):
        folds = {}
        for fold, fdf in mdf.groupby("fold", sort=True):
            yt, yp = fdf["label"].cat.codes.to_numpy(), fdf["pred"].cat.codes.to_numpy()
            cm = confusion_matrix(yt, yp, k)
            row = {"model": model, "fold": int(fold), "n_videos": len(fdf), **scores_from_confusion(cm)}
            groups = fdf["subject"].astype(str).to_numpy() if by_subject else None
            per_fold.append(_with_ci(row, bootstrap_ci(yt, yp, k, groups=groups, **boot)))
            folds[int(fold)] = row
            for i, t in enumerate(classes):
                for j, q in enumerate(classes):
                    confusion.append({"model": model, "fold": int(fold), "true": t, "pred": q, "count": int(cm[i, j])})
            pc = per_class(cm)
            for i, c in enumerate(classes):
                per_cls.append({"model": model, "fold": int(fold), "class": c,
                                **{name: pc[name][i] for name in ("support", "predicted", "precision", "recall", "f1")}})
            correct = fdf["label"] == fdf["pred"]
            for subject, sdf in correct.groupby(fdf["subject"].astype(str), sort=True):
                per_subj.append({"model": model, "fold": int(fold), "subject": subject,
                                 "n_videos": len(sdf), "accuracy": float(sdf.mean())})

        yt, yp = mdf["label"].cat.codes.to_numpy(), mdf["pred"].cat.codes.to_numpy()
        fold_table = pd.DataFrame(list(folds.values()))
        row = {"model": model, "n_folds": len(folds), "n_videos": len(mdf)}
        for s in SCORES:
            row[f"{s}_mean"] = float(fold_table[s].mean())
            row[f"{s}_std"] = float(fold_table[s].std(ddof=1)) if len(folds) > 1 else float("nan")
        pooled = scores(yt, yp, k)
        groups = mdf["subject"].astype(str).to_numpy() if by_subject else None
        ci = bootstrap_ci(yt, yp, k, groups=groups, **boot)
        for s in SCORES:
            row[f"{s}_pooled"] = pooled[s]
            row[f"{s}_pooled_ci_low"], row[f"{s}_pooled_ci_high"] = ci[s]
        summary.append(row)
        report["models"][model] = {"summary": row, "folds": folds}
        log.info("%s: accuracy %.3f +- %.3f over %d folds (chance %.3f), UAR %.3f, macro-F1 %.3f",
                 model, row["accuracy_mean"], np.nan_to_num(row["accuracy_std"]), len(folds), 1 / k,
                 row["uar_mean"], row["macro_f1_mean"])

    def cat(table: list[dict], *cols: str) -> pd.DataFrame:
        t = pd.DataFrame(table)
        for c in cols:
            t[c] = pd.Categorical(t[c], categories=classes)
        return t

    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {"classes": classes, "params": p}
    write_parquet(pd.DataFrame(per_fold), out_dir / "per_fold.parquet", meta)
    write_parquet(pd.DataFrame(summary), out_dir / "summary.parquet", meta)
    write_parquet(cat(confusion, "true", "pred"), out_dir / "confusion.parquet", meta)
    write_parquet(cat(per_cls, "class"), out_dir / "per_class.parquet", meta)
    write_parquet(pd.DataFrame(per_subj), out_dir / "per_subject.parquet", meta)
    write_json(_finite(report), out_dir / "metrics.json")
    return report

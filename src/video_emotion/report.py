"""The report: figures (PNG and SVG), two HTML tables and a self-contained ``index.html``, drawn from files only.

It reads the files it is given (see :func:`build_report` and docs/ARCHITECTURE.md), never a folder, and runs no
model: the attention maps come computed in a file (:mod:`video_emotion.attention`). Every figure has a fixed file
name (:data:`FIGURES`, with its caption file) whatever the models, seeds and folds, so the workflow declares the
outputs up front and registers each with Snakemake's ``report()``. A figure whose inputs are missing is still
written, saying what is missing, so one absent stage never loses the rest of the report.

The headline is the metrics stage's: WAR and UAR pooled over all test videos with intervals by subject (by video
where the dataset has no subject ids), the per-fold mean ± std beside it (labelled as the field reports it on official
folds), chance and the majority-class baseline; then the published figures the config lists beside this run's, and
the paired model comparisons, laid out like the seed paper's claims.
"""

from __future__ import annotations

import base64
import html
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from video_emotion.attention import ATTENTION_DEFAULTS, read_attention
from video_emotion.datasets import REJECTED_COLUMNS, not_videos_line
from video_emotion.io import atomic_path, read_parquet_metadata
from video_emotion.metrics import (
    PAPER,
    PAPER_DATASET,
    PAPER_NAMES,
    TABLES,
    claims,
    comparison_line,
    fold_figures,
    format_p,
    paper_difference,
    pct,
    run_keys,
    subjects_text,
    summary_lines,
)
from video_emotion.plotting import OKABE_ITO, SEQUENTIAL, STYLE, save_figure
from video_emotion.report_files import FIGURES

log = logging.getLogger(__name__)


# The config's report section (defaults as in the schema); the attention keys are read by the attention stage.
REPORT_DEFAULTS = {"faces_per_class": 6, "faces_strips": 4, **ATTENTION_DEFAULTS}
METRIC_NAMES = {"accuracy": "WAR (accuracy)", "uar": "UAR", "macro_f1": "macro-F1"}
FAILED_DECODE = "frames:"  # faces QC reasons of videos the frames stage could not decode


# ---------------------------------------------------------------------------------------------------------------
# Reading the given files
# ---------------------------------------------------------------------------------------------------------------

def _read(path: Path | None) -> pd.DataFrame:
    """A Parquet table, or an empty frame (logged) when the file is absent."""
    if path is None or not Path(path).exists():
        if path is not None:
            log.warning("report: %s not found; the figures that need it say so", path)
        return pd.DataFrame()
    return pd.read_parquet(path)


def load_metrics(paths) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """The metric tables by name (the file stem, one of ``metrics.TABLES``) and the class list they record."""
    given = {Path(p).stem: Path(p) for p in paths or []}
    tables = {name: _read(given.get(name)) for name in TABLES}
    for df in tables.values():
        for col in ("model", "subject", "model_a", "model_b"):
            if col in df.columns:
                df[col] = df[col].astype(str)
    classes = []
    for path in given.values():
        if path.exists():
            classes = list(read_parquet_metadata(path).get("classes", []))
            break
    return tables, classes


def load_runs(paths) -> pd.DataFrame:
    """Per-run Parquet files (histories, QC tables) stacked, with ``model``, ``seed``, ``fold`` from their paths."""
    frames = []
    for path in map(Path, paths or []):
        if path.exists():
            keys = run_keys(path)
            frames.append(pd.read_parquet(path).assign(**{k: keys.get(k, 0) for k in ("model", "seed", "fold")}))
        else:
            log.warning("report: %s not found", path)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _model_order(summary: pd.DataFrame, configured: list[str] | None) -> list[str]:
    """Models with metrics, in the configured order, then any others in the metrics' order."""
    found = list(summary["model"]) if "model" in summary else []
    return [m for m in configured or [] if m in found] + [m for m in found if m not in (configured or [])]


def _natural(text: str):
    digits = "".join(c for c in str(text) if c.isdigit())
    return (int(digits) if digits else -1, str(text))


# ---------------------------------------------------------------------------------------------------------------
# Figures: one small function each, returning a matplotlib Figure
# ---------------------------------------------------------------------------------------------------------------

def _legend_outside(ax, **kw) -> None:
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False, **kw)


def _missing(message: str) -> Figure:
    fig = Figure(figsize=(7, 1.6))
    fig.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    return fig


def _percent_axis(ax, label: str) -> None:
    """0-100 % with room for markers at the ends (nothing drawn past 100)."""
    ax.set_ylim(-4, 104)
    ax.set_yticks(range(0, 101, 20))
    ax.set_ylabel(label)


def _jitter(n: int, width: float = 0.1) -> np.ndarray:
    return np.linspace(-width, width, n) if n > 1 else np.zeros(n)


def fig_headline(summary: pd.DataFrame, per_fold: pd.DataFrame, models: list[str], paper: dict[str, float],
                 dataset: str) -> Figure:
    """WAR and UAR of each model pooled over all test videos (dot) with its interval, every fold's figure (small
    circles), chance, the majority-class baseline and the paper's figure (WAR panel)."""
    if summary.empty:
        return _missing("No metrics yet: run the metrics stage (results/metrics/summary.parquet).")
    s = summary.set_index("model")
    first = s.iloc[0]
    fig = Figure(figsize=(max(8.0, 2.2 * len(models) + 5), 4.4), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    x = np.arange(len(models))
    for ax, metric in zip(axes, ("accuracy", "uar"), strict=True):
        for i, model in enumerate(models):
            row = s.loc[model]
            folds = per_fold[per_fold["model"] == model][metric].to_numpy() * 100 if len(per_fold) else []
            ax.scatter(i - 0.22 + _jitter(len(folds), 0.06), folds, s=16, facecolors="none",
                       edgecolors="grey", linewidths=0.8, zorder=2)
            value, lo, hi = 100 * row[metric], 100 * row[f"{metric}_ci_low"], 100 * row[f"{metric}_ci_high"]
            if np.isfinite(lo):
                ax.errorbar(i, value, yerr=[[value - lo], [hi - value]], fmt="none", ecolor=OKABE_ITO[3], capsize=5,
                            lw=1.5, zorder=3)
            ax.plot(i, value, "o", color=OKABE_ITO[3], ms=8, zorder=4)
            ax.annotate(f"{value:.1f}", (i, value), xytext=(11, 0), textcoords="offset points", va="center",
                        fontsize=9, color=OKABE_ITO[3])
            if metric == "accuracy" and model in paper:
                ax.plot(i + 0.3, paper[model], "D", mfc="white", mec=OKABE_ITO[4], ms=7, zorder=4)
                ax.annotate(f"{paper[model]:.1f}", (i + 0.3, paper[model]), xytext=(7, 0), textcoords="offset points",
                            va="center", fontsize=9, color=OKABE_ITO[4])
        majority = first["majority_accuracy"] if metric == "accuracy" else first["majority_uar"]
        ax.axhline(100 * first["chance"], color="grey", lw=1, ls=":")
        if not np.isclose(majority, first["chance"]):
            ax.axhline(100 * majority, color=OKABE_ITO[0], lw=1, ls="--")
        ax.set_xticks(x, [f"{m}\n({PAPER_NAMES[m]})" if m in PAPER_NAMES else m for m in models])
        ax.set_xlim(-0.6, len(models) - 0.1)
        _percent_axis(ax, "Video-level figure (%)")
        ax.set_title(METRIC_NAMES[metric], loc="left")
    unit, level = first["unit"], 100 * first["ci"]
    chance = f"chance, 1/K = {100 * first['chance']:.1f}%"
    handles = [Line2D([], [], color=OKABE_ITO[3], marker="o", label=f"pooled, {level:.0f}% CI by {unit}"),
               Line2D([], [], ls="none", marker="o", mfc="none", mec="grey", label="one fold (each seed)")]
    if np.isclose([first["majority_accuracy"], first["majority_uar"]], first["chance"]).all():
        handles.append(Line2D([], [], color="grey", ls=":", label=f"{chance} = majority class"))
    else:
        handles += [Line2D([], [], color="grey", ls=":", label=chance),
                    Line2D([], [], color=OKABE_ITO[0], ls="--", label=f"majority class ({first['majority_class']}): "
                           f"WAR {100 * first['majority_accuracy']:.1f}%, UAR {100 * first['majority_uar']:.1f}%")]
    if any(m in paper for m in models):
        handles.append(Line2D([], [], ls="none", marker="D", mfc="white", mec=OKABE_ITO[4],
                              label="paper's accuracy (eNTERFACE'05)"))
    axes[1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    title = f"Pooled over all test videos ({int(first['n_videos'])} videos, {subjects_text(first)})"
    if dataset.lower() != PAPER_DATASET and any(m in paper for m in models):
        title += f"\nNot comparable with the paper: this run is on '{dataset}', the paper's figures on eNTERFACE'05"
    fig.suptitle(title, x=0.01, ha="left", fontsize=11)
    return fig


def fig_paired_differences(comparisons: pd.DataFrame, paper: dict[str, float]) -> Figure:
    """The given paired comparisons (model a minus model b, in points) with their intervals; the label is the claim."""
    if comparisons.empty:
        return _missing("One model evaluated: no paired comparison. Configure two or more models to compare them.")
    rows = comparisons.reset_index(drop=True)
    fig = Figure(figsize=(11, 0.55 * len(rows) + 1.6), layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(len(rows))[::-1]
    for yi, (_, row) in zip(y, rows.iterrows(), strict=True):
        colour = OKABE_ITO[3] if row["metric"] == "accuracy" else OKABE_ITO[2]
        ax.plot([100 * row["ci_low"], 100 * row["ci_high"]], [yi, yi], color=colour, lw=2)
        ax.plot(100 * row["diff"], yi, "o", color=colour, ms=7)
        a, b = row["model_a"], row["model_b"]
        if row["metric"] == "accuracy" and a in paper and b in paper:
            ax.plot(paper[a] - paper[b], yi, "D", mfc="white", mec=OKABE_ITO[4], ms=7)
    ax.axvline(0, color="grey", lw=1)
    ax.set_yticks(y, [comparison_line(r, paper_note=False) for _, r in rows.iterrows()])  # diamonds: the paper
    ax.set_xlabel("Difference, model a minus model b (percentage points)")
    claimed = [paper[a] - paper[b] for a, b in zip(rows["model_a"], rows["model_b"], strict=True)
               if a in paper and b in paper]
    span = np.array([0.0, *(100 * rows[["diff", "ci_low", "ci_high"]].to_numpy().ravel()), *claimed])
    lo, hi = np.nanmin(span), np.nanmax(span)
    pad = 0.08 * (hi - lo or 1)
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    unit = rows["unit"].iloc[0]
    fig.suptitle(f"Paired comparisons on the same test videos: difference [{100 * rows['ci'].iloc[0]:.0f}% interval by "
                 f"{unit}],\np-value of a permutation test swapping the two models within each {unit}", x=0.01,
                 ha="left", fontsize=11)
    handles = [Line2D([], [], color=OKABE_ITO[3], marker="o", label="WAR"),
               Line2D([], [], color=OKABE_ITO[2], marker="o", label="UAR")]
    if ax.lines and any(line.get_marker() == "D" for line in ax.lines):
        handles.append(Line2D([], [], ls="none", marker="D", mfc="white", mec=OKABE_ITO[4],
                              label="paper's difference (eNTERFACE'05)"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    return fig


def fig_confusion(confusion: pd.DataFrame, models: list[str], classes: list[str]) -> Figure:
    """Per model (rows), the confusion matrix summed over folds and seeds: counts (left) and row-normalised (right)."""
    if confusion.empty or not models:
        return _missing("No confusion matrices yet: run the metrics stage (results/metrics/confusion.parquet).")
    n = len(classes)
    size = 1.6 + 0.55 * n
    fig = Figure(figsize=(2 * size + 1, size * len(models)), layout="constrained")
    axes = fig.subplots(len(models), 2, squeeze=False)
    for row, model in zip(axes, models, strict=True):
        counts = _pooled_confusion(confusion, model, classes)
        totals = counts.sum(axis=1, keepdims=True)
        normalised = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
        for ax, matrix, kind in ((row[0], counts, "counts"), (row[1], normalised, "row-normalised")):
            top = max(1, matrix.max()) if kind == "counts" else 1
            image = ax.imshow(matrix, cmap=SEQUENTIAL, vmin=0, vmax=top)
            for i in range(n):
                for j in range(n):
                    value = matrix[i, j]
                    text = f"{int(value)}" if kind == "counts" else f"{value:.2f}"
                    ax.text(j, i, text, ha="center", va="center", fontsize=9,
                            color="white" if value < 0.5 * top else "black")
            ax.set_xticks(range(n), classes, rotation=45, ha="right")
            ax.set_yticks(range(n), classes)
            ax.set_xlabel("Predicted")
            ax.set_ylabel("True")
            ax.set_title(f"{model}: {kind}")
            ax.spines[:].set_visible(False)
            bar = fig.colorbar(image, ax=ax, shrink=0.8)
            if kind == "counts":
                bar.locator = MaxNLocator(integer=True)
                bar.update_ticks()
    return fig


def _pooled_confusion(confusion: pd.DataFrame, model: str, classes: list[str]) -> np.ndarray:
    sub = confusion[confusion["model"] == model]
    return (sub.groupby(["true", "pred"], observed=False)["count"].sum().unstack(fill_value=0)
            .reindex(index=classes, columns=classes, fill_value=0).to_numpy())


def fig_per_class_recall(confusion: pd.DataFrame, per_class: pd.DataFrame, models: list[str],
                         classes: list[str]) -> Figure:
    """Recall per class and model pooled over all test videos (dot), and each fold's recall (small circles)."""
    if confusion.empty or not models:
        return _missing("No per-class metrics yet: run the metrics stage (results/metrics/confusion.parquet).")
    x = np.arange(len(classes))
    step = 0.8 / len(models)
    fig = Figure(figsize=(max(7.0, 1.2 * len(classes) * max(1, len(models) / 2) + 2.5), 4), layout="constrained")
    ax = fig.add_subplot()
    for i, model in enumerate(models):
        colour = OKABE_ITO[i % len(OKABE_ITO)]
        offset = -0.4 + step * (i + 0.5)
        counts = _pooled_confusion(confusion, model, classes)
        support = counts.sum(1)
        recall = np.where(support > 0, np.diag(counts) / np.maximum(support, 1), np.nan) * 100
        folds = per_class[per_class["model"] == model] if len(per_class) else per_class
        for j, c in enumerate(classes):
            values = folds.loc[folds["class"] == c, "recall"].dropna().to_numpy() * 100 if len(folds) else []
            ax.scatter(j + offset + _jitter(len(values), 0.25 * step), values, s=12, facecolors="none",
                       edgecolors=colour, linewidths=0.7, alpha=0.8, zorder=2)
        ax.plot(x + offset, recall, "o", color=colour, ms=7, label=model, zorder=3)
    ax.set_xticks(x, classes, rotation=20)
    _percent_axis(ax, "Recall (%)")
    ax.set_title("Per-class recall pooled over all test videos (dots); each fold (circles)", loc="left")
    handles = ax.get_legend_handles_labels()[0] + [Line2D([], [], ls="none", marker="o", mfc="none", mec="grey",
                                                          label="one fold (each seed)")]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    return fig


def fig_training_curves(history: pd.DataFrame, per_fold: pd.DataFrame, models: list[str]) -> Figure:
    """Per model (rows): loss and accuracy against epoch, training (solid) and validation (dashed), one colour per
    fold; a dotted vertical line at the epoch kept as best.pt (the one evaluated)."""
    if history.empty:
        return _missing("No training history yet: run the train stage (results/models/*/history.parquet).")
    found = list(dict.fromkeys(history["model"]))
    models = [m for m in models if m in found] + [m for m in found if m not in models]
    kept = {} if per_fold.empty or "epoch" not in per_fold else \
        per_fold.set_index(["model", "seed", "fold"])["epoch"].to_dict()
    panels = [("loss", "Loss"), ("acc", "Accuracy")]
    fig = Figure(figsize=(11, 3.2 * len(models)), layout="constrained")
    axes = fig.subplots(len(models), 2, squeeze=False)
    for row, model in zip(axes, models, strict=True):
        sub = history[history["model"] == model]
        for ax, (key, name) in zip(row, panels, strict=True):
            for (seed, fold), runs in sub.groupby(["seed", "fold"]):
                color = OKABE_ITO[int(fold) % len(OKABE_ITO)]
                for split, style in (("train", "-"), ("val", "--")):
                    column = f"{split}_{key}"  # train.py's history: train_loss, train_acc, val_loss, val_acc
                    if column in runs:
                        ax.plot(runs["epoch"], runs[column], style, color=color, lw=1.2)
                best = kept.get((model, int(seed), int(fold)), -1)
                if best > 0:
                    ax.axvline(best, color=color, ls=":", lw=1.2)
            ax.set_xlabel("Epoch")
            ax.set_ylabel(name)
            ax.set_title(f"{model}: {name.lower()}", loc="left")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    folds = sorted(history["fold"].unique())
    handles = [Line2D([], [], color=OKABE_ITO[int(f) % len(OKABE_ITO)], label=f"fold {f}") for f in folds]
    handles += [Line2D([], [], color="black", ls="-", label="training"),
                Line2D([], [], color="black", ls="--", label="validation"),
                Line2D([], [], color="black", ls=":", label="epoch kept (best.pt)")]
    if history["seed"].nunique() > 1:
        handles.append(Line2D([], [], color="none", label=f"{history['seed'].nunique()} seeds: one line each"))
    axes[0, 1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    return fig


def fig_per_subject(per_subject: pd.DataFrame, models: list[str], chance: float | None,
                    no_subject_ids: bool = False) -> Figure:
    """Accuracy per test subject and model (mean over seeds), subjects grouped by their test fold, with chance; a
    note instead where the dataset has no subject ids (each video its own subject)."""
    if no_subject_ids:
        return _missing(NO_SUBJECTS_FIGURE)
    if per_subject.empty or not models:
        return _missing("No per-subject metrics yet: run the metrics stage (results/metrics/per_subject.parquet).")
    table = per_subject.groupby(["fold", "subject", "model"])["accuracy"].mean().unstack("model") * 100
    order = sorted(table.index, key=lambda fs: (fs[0], _natural(fs[1])))
    table = table.reindex(index=order, columns=[m for m in models if m in table.columns])
    x = np.arange(len(order))
    step = 0.6 / max(1, table.shape[1])
    fig = Figure(figsize=(max(7.0, 0.5 * len(order) + 3.5), 4.2), layout="constrained")
    ax = fig.add_subplot()
    folds = [f for f, _ in order]
    for k, fold in enumerate(dict.fromkeys(folds)):
        where = np.flatnonzero(np.array(folds) == fold)
        if k % 2 == 0:
            ax.axvspan(where[0] - 0.5, where[-1] + 0.5, color="#f0f0f0", zorder=0)
        ax.text((where[0] + where[-1]) / 2, 103, f"fold {fold}", ha="center", va="bottom", fontsize=9)
    for i, model in enumerate(table.columns):
        ax.plot(x - 0.3 + step * (i + 0.5), table[model], "o", color=OKABE_ITO[i % len(OKABE_ITO)], ms=7,
                label=model, zorder=3)
    if chance:
        ax.axhline(100 * chance, color="grey", lw=1, ls=":", label=f"chance, 1/K = {100 * chance:.1f}%")
    ax.set_xticks(x, [s for _, s in order], rotation=45 if len(order) > 10 else 0)
    ax.set_xlim(-0.6, len(order) - 0.4)
    ax.set_xlabel("Test subject (grouped by the fold that tests it)")
    _percent_axis(ax, "Video-level accuracy (%)")
    ax.set_ylim(-4, 110)
    ax.set_title("Per-subject accuracy, each subject scored by the model trained without it", loc="left")
    _legend_outside(ax)
    return fig


def fig_faces_montage(examples: dict[str, list[tuple[str, np.ndarray]]]) -> Figure:
    """Aligned face crops per emotion (rows), one video per column, at three quarters of the clip (near the apex)."""
    if not any(examples.values()):
        return _missing("No aligned faces yet: run the faces stage (results/faces/*.h5).")
    cols = max(len(v) for v in examples.values())
    fig = Figure(figsize=(1.5 * cols + 1.2, 1.55 * len(examples)), layout="constrained")
    axes = fig.subplots(len(examples), cols, squeeze=False)
    for row, (emotion, items) in zip(axes, examples.items(), strict=True):
        for j, ax in enumerate(row):
            ax.set_xticks([])
            ax.set_yticks([])
            ax.spines[:].set_visible(False)
            if j < len(items):
                video_id, crop = items[j]
                ax.imshow(crop)
                ax.set_title(video_id, fontsize=7)
        row[0].set_ylabel(emotion, fontsize=11)
    fig.suptitle("Aligned face crops per emotion")
    return fig


def fig_attention(attention: dict | None) -> Figure:
    """Test clips (rows = true class): the middle frame and, beside it, the model's map at that frame, raw values
    on one colour scale with a colour bar."""
    if not attention or len(attention["maps"]) == 0:
        return _missing("No attention maps: the attention stage found no trained model, checkpoint or clip cache.")
    labels = attention["label"]
    classes = list(dict.fromkeys(labels))
    cols = max(labels.count(c) for c in classes)
    spatial = attention["kind"] == "spatial attention"
    vmax = 1.0 if spatial else float(np.max(attention["maps"])) or 1.0
    fig = Figure(figsize=(2.0 * cols * 2 + 1.6, 2.0 * len(classes) + 0.6), layout="constrained")
    axes = fig.subplots(len(classes), 2 * cols, squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.spines[:].set_visible(False)
    image = None
    for r, label in enumerate(classes):
        for c, i in enumerate(i for i, lab in enumerate(labels) if lab == label):
            axes[r, 2 * c].imshow(attention["frames"][i])
            axes[r, 2 * c].set_title(f"{attention['video_id'][i]} (fold {attention['fold'][i]})", fontsize=7)
            image = axes[r, 2 * c + 1].imshow(attention["maps"][i], cmap=SEQUENTIAL, vmin=0, vmax=vmax)
            axes[r, 2 * c + 1].set_title(f"{label} → {attention['pred'][i]}", fontsize=9)
        axes[r, 0].set_ylabel(label)
    what = (f"mean sigmoid gate of {attention['modules']} spatial-attention module(s)" if spatial
            else "grad-CAM of the last stage for the predicted class (arbitrary units)")
    fig.colorbar(image, ax=axes, shrink=0.6, label="gate weight (0-1)" if spatial else "grad-CAM")
    fig.suptitle(f"{attention['model']} (seed {attention['seed']}) at the middle frame of one test clip per panel:\n"
                 f"{what}, raw values on one colour scale", x=0.01, ha="left", fontsize=11)
    return fig


def fig_image(png, title: str) -> Figure:
    """A PNG that another stage drew, shown as it is (a note when it is missing)."""
    if png is None or not Path(png).exists():
        return _missing(f"{title}: not computed")
    import matplotlib.image as mpimg

    image = mpimg.imread(png)
    height, width = image.shape[:2]
    fig = Figure(figsize=(min(14.0, width / 100), min(14.0, width / 100) * height / width + 0.4))
    ax = fig.add_axes((0, 0, 1, 0.97))
    ax.imshow(image)
    ax.set_axis_off()
    fig.suptitle(title, x=0.01, ha="left", fontsize=11)
    return fig


def fig_face_qc(qc: pd.DataFrame) -> Figure:
    """Face-stage quality: per-video detection rate of the decoded videos (histogram) and every video's outcome:
    aligned, rejected by the face stage, or not decodable (frames stage)."""
    if qc.empty:
        return _missing("No face QC yet: run the faces stage (results/faces/*_qc.parquet).")
    fig = Figure(figsize=(11, 3.6), layout="constrained")
    left, right = fig.subplots(1, 2)
    outcome = _qc_outcome(qc)
    decoded = outcome != "could not decode (frames stage)"
    rates = qc.loc[decoded, "detection_rate"].fillna(0) * 100
    left.hist(rates, bins=np.linspace(0, 100, 21), color=OKABE_ITO[1], edgecolor="black", linewidth=0.5)
    left.set_xlabel("Frames with a detected face (%)")
    left.set_ylabel("Videos")
    left.yaxis.set_major_locator(MaxNLocator(integer=True))
    median = f"median {rates.median():.0f}%" if len(rates) else "no decoded video"
    left.set_title(f"Detection rate per decoded video ({median})", loc="left")
    names = ["aligned", "rejected by the face stage", "could not decode (frames stage)"]
    counts = outcome.value_counts().reindex(names, fill_value=0)
    colours = [OKABE_ITO[2], OKABE_ITO[4], OKABE_ITO[7]]
    right.barh(names[::-1], counts.to_numpy()[::-1], color=colours[::-1])
    for i, value in enumerate(counts.to_numpy()[::-1]):
        right.annotate(str(value), (value, i), xytext=(3, 0), textcoords="offset points", va="center")
    right.xaxis.set_major_locator(MaxNLocator(integer=True))
    right.set_xlim(0, max(1, counts.max()) * 1.15)
    backends = ", ".join(sorted(qc["backend"].astype(str).unique())) if "backend" in qc else "?"
    right.set_xlabel("Videos")
    right.set_title(f"Outcome per video (face backend: {backends})", loc="left")
    return fig


def _qc_outcome(qc: pd.DataFrame) -> pd.Series:
    reason = qc["reason"].fillna("").astype(str) if "reason" in qc else pd.Series("", index=qc.index)
    ok = qc["status"].astype(str) == "ok"
    return pd.Series(np.where(ok, "aligned", np.where(reason.str.startswith(FAILED_DECODE),
                                                      "could not decode (frames stage)",
                                                      "rejected by the face stage")), index=qc.index)


# ---------------------------------------------------------------------------------------------------------------
# Gathering what the image figures show
# ---------------------------------------------------------------------------------------------------------------

def face_examples(manifest_path, faces, per_class: int) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Up to ``per_class`` (video_id, crop) per emotion from the given faces files, from different subjects."""
    import h5py

    if manifest_path is None or not Path(manifest_path).exists():
        return {}
    manifest = pd.read_parquet(manifest_path, columns=["video_id", "subject", "label"])
    by_id = manifest.set_index("video_id")
    classes = [str(c) for c in manifest["label"].cat.categories] if hasattr(manifest["label"], "cat") \
        else sorted(manifest["label"].astype(str).unique())
    examples: dict[str, list[tuple[str, np.ndarray]]] = {c: [] for c in classes}
    seen: dict[str, set] = {c: set() for c in classes}
    for path in sorted(map(Path, faces or []), key=lambda p: _natural(p.stem)):
        if not path.exists():
            continue
        with h5py.File(path, "r") as f:
            for video_id in f:
                if video_id not in by_id.index:
                    continue
                label, subject = str(by_id.at[video_id, "label"]), str(by_id.at[video_id, "subject"])
                if len(examples[label]) >= per_class or subject in seen[label]:
                    continue
                group = f[video_id]
                detected = np.flatnonzero(group["detected"][:]) if "detected" in group else np.arange(0)
                if len(detected) == 0:
                    continue
                frame = int(detected[(3 * len(detected)) // 4])
                examples[label].append((video_id, group["crops"][frame]))
                seen[label].add(subject)
    return {c: v for c, v in examples.items() if v}


def load_attention(path) -> dict | None:
    return read_attention(path) if path is not None and Path(path).exists() else None


# ---------------------------------------------------------------------------------------------------------------
# Tables and writing
# ---------------------------------------------------------------------------------------------------------------

DEMO_NOTE = ("The demo's subjects are synthetic (video_emotion.demo): each is a morph of two real face photographs, "
             "deformed from neutral to each emotion. Odd subjects are made from the astronaut (scikit-image) and "
             "Biden, even ones from Grace Hopper (matplotlib) and Obama; the two test folds split the subjects by "
             "parity, so no test subject shares a photograph, or a person, with a training subject.")


NO_SUBJECTS_NOTE = ("This dataset has no subject ids: every video is its own subject, so the intervals and the paired "
                    "permutation tests resample videos, not people. Nothing keeps one person's videos on one side of "
                    "a split, so the figures are not subject-independent.")
NO_SUBJECTS_FIGURE = ("No subject ids in this dataset: each video is its own subject, so there is no per-subject "
                      "accuracy. Intervals and paired tests resample videos; the per-class recall and the confusion "
                      "matrices show where the models fail.")
PUBLISHED_TITLE = "This run beside published figures (%)"


def _no_subject_ids(summary: pd.DataFrame) -> bool:
    return "subjects_are_videos" in summary and bool(len(summary)) and bool(summary["subjects_are_videos"].all())


def _settings(override: dict) -> str:
    return ", ".join(f"{key} {value}" for key, value in override.items())


def _with_ci(value, lo, hi) -> str:
    return f"{pct(value)} [{pct(lo)}, {pct(hi)}]"


def headline_table(summary: pd.DataFrame, models: list[str], paper: dict[str, float]) -> pd.DataFrame:
    """One row per model: pooled WAR and UAR with intervals, then the per-fold and per-seed spread (in %)."""
    if summary.empty:
        return pd.DataFrame()
    s = summary.set_index("model")
    folds = fold_figures(s.loc[models[0]])[0] if models else ""
    rows = []
    for model in models:
        r = s.loc[model]
        _, war, uar = fold_figures(r)
        rows.append({
            "model": model, "seeds": int(r["n_seeds"]), "folds": int(r["n_folds"]), "videos": int(r["n_videos"]),
            "subjects": int(r["n_subjects"]),
            "WAR pooled [CI]": _with_ci(r["accuracy"], r["accuracy_ci_low"], r["accuracy_ci_high"]),
            "UAR pooled [CI]": _with_ci(r["uar"], r["uar_ci_low"], r["uar_ci_high"]),
            "macro-F1 pooled": pct(r["macro_f1"]),
            f"WAR, {folds}": war, f"UAR, {folds}": uar,
            "WAR / UAR std over seeds": f"{pct(r['accuracy_seed_std'])} / {pct(r['uar_seed_std'])}",
            "paper's accuracy (eNTERFACE'05)": f"{paper[model]:.1f}" if model in paper else "–",
        })
    table = pd.DataFrame(rows)
    return table.drop(columns="subjects") if _no_subject_ids(summary) else table


def published_table(summary: pd.DataFrame, models: list[str], published: list[dict]) -> tuple[pd.DataFrame, str]:
    """This run's models (UAR and WAR over the folds as the field reports them, and pooled) above the published
    figures the config lists (``published``: model, uar, war, source, note), each row marked by where it comes
    from, never mixed into this run's; and the line that says what the columns hold."""
    rows, label, pooled = [], "each fold scored alone, averaged", "all test videos at once"
    s = summary.set_index("model") if len(summary) else summary
    for model in models:
        r = s.loc[model]
        label, war, uar = fold_figures(r)
        pooled = f"all test videos at once, with its {100 * r['ci']:.0f}% interval by {r['unit']}"
        rows.append({"figures": "this run", "model": model, "UAR": uar, "WAR": war,
                     "UAR pooled [CI]": _with_ci(r["uar"], r["uar_ci_low"], r["uar_ci_high"]),
                     "WAR pooled [CI]": _with_ci(r["accuracy"], r["accuracy_ci_low"], r["accuracy_ci_high"]),
                     "source": "measured here", "note": ""})
    rows += [{"figures": "published", "model": p["model"], "UAR": f"{p['uar']:.2f}", "WAR": f"{p['war']:.2f}",
              "UAR pooled [CI]": "–", "WAR pooled [CI]": "–", "source": p["source"], "note": p.get("note") or ""}
             for p in published]
    text = (f"UAR and WAR: {label} (this run); as their papers report them (published: the mean over the official "
            f"folds, or the official test split), copied from the papers, not measured here. Pooled: {pooled}.")
    return pd.DataFrame(rows), text


def comparisons_table(comparisons: pd.DataFrame, no_subject_ids: bool = False) -> pd.DataFrame:
    """The paired comparisons as claims: 'a vs b', metric, difference in points [interval], p; without a subjects
    column where the dataset has no subject ids."""
    if comparisons.empty:
        return pd.DataFrame()
    table = pd.DataFrame({
        "comparison": comparisons["model_a"] + " vs " + comparisons["model_b"],
        "metric": comparisons["metric"].map(METRIC_NAMES),
        "a (%)": comparisons["a"].map(pct), "b (%)": comparisons["b"].map(pct),
        "difference (points) [CI]": [f"{100 * d:+.1f}" + ("" if pd.isna(lo) else f" [{100 * lo:+.1f}, {100 * hi:+.1f}]")
                                     for d, lo, hi in
                                     zip(comparisons["diff"], comparisons["ci_low"], comparisons["ci_high"],
                                         strict=True)],
        "p (paired permutation)": comparisons["p_value"].map(format_p),
        "videos": comparisons["n_videos"], "subjects": comparisons["n_subjects"], "seeds": comparisons["n_seeds"],
        "resampled unit": comparisons["unit"],
        "the paper's difference (eNTERFACE'05)": [
            "–" if m != "accuracy" or paper_difference(a, b) is None else f"{paper_difference(a, b):+.1f}"
            for a, b, m in zip(comparisons["model_a"], comparisons["model_b"], comparisons["metric"], strict=True)],
    })
    return table.drop(columns="subjects") if no_subject_ids else table


def runs_table(per_fold: pd.DataFrame, models: list[str]) -> pd.DataFrame:
    """Every model, seed and fold with its figures (in %) and the epoch evaluated."""
    if per_fold.empty:
        return pd.DataFrame()
    rows = per_fold[per_fold["model"].isin(models)].copy()
    rows["order"] = rows["model"].map(models.index)
    rows = rows.sort_values(["order", "seed", "fold"])
    return pd.DataFrame({"model": rows["model"], "seed": rows["seed"].astype(int), "fold": rows["fold"].astype(int),
                         "epoch kept": rows["epoch"].astype(int), "videos": rows["n_videos"].astype(int),
                         **{METRIC_NAMES[m]: rows[m].map(pct) for m in METRIC_NAMES}})


def init_table(histories, models: list[str], model_train: dict | None = None) -> pd.DataFrame:
    """Each model's architecture, size, input normalisation, initialisation and own train settings, from its runs'
    history metadata (train.py writes the init's load report and the input convention there) and the config's
    ``model_train``: every unequal footing shown."""
    rows = {}
    for path in map(Path, histories or []):
        if not path.exists():
            continue
        model = run_keys(path).get("model")
        if model in rows:
            continue
        meta = read_parquet_metadata(path)
        init = meta.get("init")
        own = (model_train or {}).get(model)
        rows[model] = {"model": model, "architecture": meta.get("arch", model),
                       "parameters": f"{meta['parameters']:,}" if meta.get("parameters") else "–",
                       "input normalisation": meta.get("input_norm") or "–",
                       "own train settings": _settings(own) if own else "–"}
        rows[model].update({"init": "random (from scratch)"} if not init else {
            "init": f"{init['kind']}: {init['path']}", "sha256": str(init["sha256"])[:12],
            "weights set": f"{init['matched_share']:.0%} ({init['matched']} loaded, {init['derived']} derived, "
                           f"{init['missing']} missing)", "classifier": init["head"]})
    order = [m for m in models if m in rows] + [m for m in rows if m not in models]
    return pd.DataFrame([rows[m] for m in order])


def _html_table(df: pd.DataFrame, empty: str = "No rows.", classes: str = "table") -> str:
    if df.empty:
        return f"<p>{html.escape(empty)}</p>"
    return df.to_html(index=False, border=0, classes=classes, escape=True, na_rep="–")


STYLE_CSS = ("body{font-family:sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;color:#222}"
             "img{max-width:100%;height:auto;border:1px solid #ddd}table{border-collapse:collapse;margin:1em 0}"
             "th,td{padding:4px 10px;border-bottom:1px solid #ddd;text-align:right}td{white-space:nowrap}th{background:#f4f4f4}"
             ".wrap td:nth-last-child(-n+2){white-space:normal}td:first-child,th:first-child{text-align:left}.note{background:#fff4e0;padding:.6em 1em}"
             ".claims li{font-family:monospace;margin:.2em 0}figcaption{color:#444;margin:.4em 0 2em}")


def _page(title: str, body: list[str]) -> str:
    return "\n".join(["<!doctype html>", "<html lang='en'><head><meta charset='utf-8'>",
                      f"<title>{html.escape(title)}</title><style>{STYLE_CSS}</style></head><body>", *body,
                      "</body></html>"]) + "\n"


def _write_text(path: Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def write_index(out_dir: Path, claims: list[str], sections: list[tuple[str, str]], tables: dict[str, str],
                notes: list[str], summary_after: int = 1) -> Path:
    """``index.html``: the notes, the first tables (the models, the paper's claims: up to ``summary_after``), the
    text summary, the other tables, then each figure embedded as a PNG data URI with links to its PNG and SVG
    files."""
    parts = ["<h1>video-emotion report</h1>"]
    parts += [f"<p class='note'>{html.escape(note)}</p>" for note in notes]
    summary = ["<h2>Summary</h2>", "<ul class='claims'>", *(f"<li>{html.escape(c)}</li>" for c in claims), "</ul>"]
    for i, (title, table_html) in enumerate(tables.items()):
        parts += [f"<h2>{html.escape(title)}</h2>", table_html] + (summary if i == summary_after else [])
    for png_name, caption in sections:
        data = base64.b64encode((out_dir / png_name).read_bytes()).decode()
        stem = Path(png_name).stem
        parts += [
            f"<h2 id='{stem}'>{html.escape(stem.replace('_', ' ').capitalize())}</h2>",
            f"<figure><img src='data:image/png;base64,{data}' alt='{html.escape(stem)}'>",
            f"<figcaption>{html.escape(caption)} Files: <a href='{png_name}'>PNG</a>, "
            f"<a href='{stem}.svg'>SVG</a>.</figcaption></figure>",
        ]
    return _write_text(out_dir / "index.html", _page("video-emotion report", parts))


def caption_text(path: Path) -> str:
    """A caption file's text without reStructuredText markup, for index.html."""
    text = " ".join(line.strip() for line in Path(path).read_text().splitlines() if line.strip())
    return re.sub(r"\*\*|``|\*", "", text)


def build_report(out_dir: str | Path = "results/report", *, metrics=(), histories=(), qc=(), faces=(),
                 manifest=None, rejected=None, attention=None, strips=None, captions=(),
                 params: dict | None = None) -> list[Path]:
    """Write every figure in :data:`FIGURES` (PNG + SVG), the :data:`TABLE_FILES` and ``index.html``; return the paths.

    Inputs are files: ``metrics`` (the metric tables, named by stem), ``histories`` (``history.parquet`` per run),
    ``qc`` and ``faces`` (per shard), ``manifest`` and ``rejected`` (the manifest stage's two tables), ``attention``
    (the attention stage's file), ``strips`` (the face_strips stage's PNG) and ``captions`` (caption files named as in :data:`FIGURES`). ``params``: the
    config's ``report`` section plus ``dataset`` (the paper comparison is flagged when it is not eNTERFACE'05),
    ``models`` (the configured order), ``model_train`` and ``published`` (the config's published figures).
    """
    params = {**REPORT_DEFAULTS, **(params or {})}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dataset = str(params.get("dataset", "demo"))
    tables, classes = load_metrics(metrics)
    models = _model_order(tables["summary"], params.get("models"))
    no_subject_ids = _no_subject_ids(tables["summary"])
    qc_table = load_runs(qc)
    chance = 1 / len(classes) if classes else None
    reference = models[0] if models else ""  # the paper's model: its claims compare it with each other model

    figures = {
        "headline.png": lambda: fig_headline(tables["summary"], tables["per_fold"], models, PAPER, dataset),
        "paired_differences.png": lambda: fig_paired_differences(claims(tables["comparisons"], reference), PAPER),
        "confusion.png": lambda: fig_confusion(tables["confusion"], models, classes),
        "per_class_recall.png": lambda: fig_per_class_recall(tables["confusion"], tables["per_class"], models,
                                                             classes),
        "training_curves.png": lambda: fig_training_curves(load_runs(histories), tables["per_fold"], models),
        "per_subject.png": lambda: fig_per_subject(tables["per_subject"], models, chance, no_subject_ids),
        "faces_montage.png": lambda: fig_faces_montage(face_examples(manifest, faces,
                                                                     int(params["faces_per_class"]))),
        "attention.png": lambda: fig_attention(load_attention(attention)),
        "face_qc.png": lambda: fig_face_qc(qc_table),
        "face_strips.png": lambda: fig_image(strips, "QC strips of the videos whose face was found least often"),
    }
    written = []
    with rc_context(STYLE):
        for name, make in figures.items():
            written += save_figure(make(), out_dir / name)

    notes = []
    if dataset.lower() != PAPER_DATASET:
        figures_text = ", ".join(f"{PAPER_NAMES.get(k, k)} {v:.1f}%" for k, v in PAPER.items())
        notes.append(f"This run is on the '{dataset}' dataset. The paper's figures ({figures_text}) are on "
                     "eNTERFACE'05 and are shown for reference only, not as a comparison.")
    if dataset == "demo":
        notes.append(DEMO_NOTE)
    if no_subject_ids:
        notes.append(NO_SUBJECTS_NOTE)
    notes += [f"Unequal footing: {model} trains with {_settings(override)}; every other train setting is shared "
              "(sizes and initialisations: the table 'Each model')."
              for model, override in (params.get("model_train") or {}).items() if override and model in models]
    summary = tables["summary"].set_index("model").loc[models].reset_index() if models else tables["summary"]
    claims_text = summary_lines(summary, tables["comparisons"]) if len(summary) else [
        "No metrics yet: run the metrics stage."]

    headline_html = _html_table(headline_table(tables["summary"], models, PAPER), "No metrics yet.")
    comparisons_html = _html_table(comparisons_table(tables["comparisons"], no_subject_ids),
                                   "One model evaluated: no paired comparison.")
    claims_html = _html_table(comparisons_table(claims(tables["comparisons"], reference), no_subject_ids),
                              "One model evaluated: no paired comparison.")
    published = params.get("published") or []
    table, text = published_table(tables["summary"], models, published)
    published_html = f"<p>{html.escape(text)}</p>" + _html_table(table, "No metrics yet.", classes="table wrap")
    html_tables = {"Models: pooled over all test videos (%)": headline_html}
    if published:
        html_tables[PUBLISHED_TITLE] = published_html
    claims_title = f"The paper's claims: {reference} against each model (same test videos)"
    html_tables |= {claims_title: claims_html,
                   "Each model: architecture, size, initialisation and own settings": _html_table(
                       init_table(histories, models, params.get("model_train")), "No training run yet."),
                   "Every paired comparison (same test videos)": comparisons_html}
    if "seed" in tables["per_seed"] and tables["per_seed"]["seed"].nunique() > 1:
        per_seed = tables["per_seed"]
        html_tables["Each seed, pooled over its folds (%)"] = _html_table(pd.DataFrame({
            "model": per_seed["model"], "seed": per_seed["seed"],
            "WAR [CI]": [_with_ci(*v) for v in per_seed[["accuracy", "accuracy_ci_low", "accuracy_ci_high"]].values],
            "UAR [CI]": [_with_ci(*v) for v in per_seed[["uar", "uar_ci_low", "uar_ci_high"]].values]}))
    html_tables["Every model, seed and fold (%)"] = _html_table(runs_table(tables["per_fold"], models))
    if not qc_table.empty:
        dropped = qc_table[qc_table["status"].astype(str) != "ok"]
        html_tables["Videos left out after the manifest (frames and face stages)"] = _html_table(
            pd.DataFrame({"video_id": dropped["video_id"], "outcome": _qc_outcome(qc_table)[dropped.index],
                          "reason": dropped["reason"]}), "None: every decoded video was aligned.")
    rejected_table = _read(rejected)
    columns = [c for c in REJECTED_COLUMNS if c in rejected_table.columns]
    given = rejected is not None and Path(rejected).exists()
    skipped = f"<p>{html.escape(not_videos_line(read_parquet_metadata(rejected).get('not_videos')))}</p>" if given else ""
    html_tables["Videos the manifest rejected (documented defects with their source)"] = skipped + _html_table(
        rejected_table[columns] if {"path", "reason"} <= set(columns) else pd.DataFrame(),
        "None." if given else "Not given (results/manifest_rejected.parquet).")

    for name, title, body in (("headline.html", "Models", headline_html),
                              ("comparisons.html", "Paired comparisons", comparisons_html),
                              ("published.html", PUBLISHED_TITLE, published_html)):
        written.append(_write_text(out_dir / name, _page(title, [body])))
    given = {Path(c).name: Path(c) for c in captions or []}
    sections = [(name, caption_text(given[rst]) if rst in given else "") for name, rst in FIGURES.items()]
    written.append(write_index(out_dir, claims_text, sections, html_tables, notes, list(html_tables).index(claims_title)))
    log.info("report: %d files under %s", len(written), out_dir)
    return written

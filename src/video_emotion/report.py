"""The report: figures (PNG and SVG) and a self-contained ``index.html`` from the pipeline's results.

Every figure has a fixed file name (listed in :data:`FIGURES` with its caption) whatever the models and folds, so the
workflow can declare the outputs up front and register each with Snakemake's ``report()``. A figure whose inputs are
missing is still written, saying what is missing, so one absent stage never loses the rest of the report.

Inputs, all under ``results_dir`` (see docs/ARCHITECTURE.md)::

    metrics/{per_fold,summary,confusion,per_class,per_subject}.parquet   -> tables, comparison, confusion, recall
    models/{model}/fold{k}/history.parquet, best.pt                      -> training curves, attention overlays
    manifest.parquet, faces/{shard}.h5, faces/{shard}_qc.parquet         -> face montage, face-stage QC
    cache/clips.h5                                                       -> the test clips shown with attention

Figures use the Okabe-Ito palette (colour-blind safe) and a perceptually uniform colour map.
"""

from __future__ import annotations

import base64
import html
import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from video_emotion.io import atomic_path, read_parquet_metadata  # noqa: E402
from video_emotion.plotting import OKABE_ITO, OVERLAY, SEQUENTIAL, STYLE, save_figure  # noqa: E402

log = logging.getLogger(__name__)

# Figure file (PNG; an SVG with the same stem sits beside it) -> its caption in workflow/report/.
FIGURES = {
    "comparison.png": "comparison.rst",
    "confusion.png": "confusion.rst",
    "per_class_recall.png": "per_class_recall.rst",
    "training_curves.png": "training_curves.rst",
    "per_subject.png": "per_subject.rst",
    "faces_montage.png": "faces_montage.rst",
    "attention.png": "attention.rst",
    "face_qc.png": "face_qc.rst",
}

# The seed paper's video-level accuracies (%) on eNTERFACE'05, by our registry names.
PAPER = {"res_att": 67.5, "c3d": 49.3, "res_att2": 56.1}
PAPER_NAMES = {"res_att": "3Res-att", "c3d": "C3D", "res_att2": "3Res att2"}
PAPER_DATASET = "enterface05"

METRICS = ("accuracy", "uar", "macro_f1")
METRIC_NAMES = {"accuracy": "Accuracy (WAR)", "uar": "UAR", "macro_f1": "Macro-F1"}


# ---------------------------------------------------------------------------------------------------------------
# Reading the results
# ---------------------------------------------------------------------------------------------------------------

def _read(path: Path) -> pd.DataFrame:
    """A Parquet table, or an empty frame (logged) when the file is absent."""
    if not path.exists():
        log.warning("report: %s not found; the figures that need it say so", path)
        return pd.DataFrame()
    return pd.read_parquet(path)


def load_metrics(results_dir: Path) -> dict[str, pd.DataFrame]:
    """The metrics stage's tables by name (``per_fold``, ``summary``, ``confusion``, ``per_class``, ``per_subject``)."""
    names = ("per_fold", "summary", "confusion", "per_class", "per_subject")
    tables = {name: _read(results_dir / "metrics" / f"{name}.parquet") for name in names}
    for df in tables.values():
        for col in ("model", "subject"):
            if col in df.columns:
                df[col] = df[col].astype(str)
    return tables


def metric_classes(results_dir: Path) -> list[str]:
    """The class list, in class-index order, that the metrics stage recorded."""
    path = results_dir / "metrics" / "confusion.parquet"
    return list(read_parquet_metadata(path).get("classes", [])) if path.exists() else []


def load_histories(results_dir: Path) -> pd.DataFrame:
    """Every ``models/{model}/fold{k}/history.parquet`` stacked, with ``model`` and ``fold`` columns."""
    frames = []
    for path in sorted(results_dir.glob("models/*/fold*/history.parquet")):
        df = pd.read_parquet(path)
        df.insert(0, "fold", int(path.parent.name.removeprefix("fold")))
        df.insert(0, "model", path.parent.parent.name)
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _model_order(tables: dict[str, pd.DataFrame], configured: list[str] | None) -> list[str]:
    """Models with metrics, in the configured order, then any others alphabetically."""
    found = set(tables["per_fold"]["model"]) if "model" in tables["per_fold"] else set()
    order = [m for m in configured or [] if m in found]
    return order + sorted(found - set(order))


# ---------------------------------------------------------------------------------------------------------------
# Figures: one small function each, returning a matplotlib Figure
# ---------------------------------------------------------------------------------------------------------------

def _legend_outside(ax, **kw) -> None:
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False, **kw)


def _missing(message: str) -> Figure:
    fig = Figure(figsize=(6, 2))
    fig.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    return fig


def fig_comparison(summary: pd.DataFrame, models: list[str], paper: dict[str, float], dataset: str,
                   n_classes: int) -> Figure:
    """Accuracy per model, mean and std over folds, beside the paper's figures (hatched, labelled as the paper's)."""
    if summary.empty:
        return _missing("No metrics yet: run the metrics stage (results/metrics/summary.parquet).")
    stats = (summary.set_index("model")[["accuracy_mean", "accuracy_std"]] * 100).set_axis(["mean", "std"], axis=1)
    names = models + [k for k in paper if k not in models]
    x = np.arange(len(names))
    width = 0.38
    fig = Figure(figsize=(1.4 * len(names) + 5, 4.4), layout="constrained")
    ax = fig.add_subplot()
    ours = stats.reindex(names)
    bars = ax.bar(x - width / 2, ours["mean"].fillna(0), width, yerr=ours["std"].fillna(0), capsize=4,
                  color=OKABE_ITO[3], label=f"this run ({dataset}), mean ± std over folds")
    for rect, (_, row) in zip(bars, ours.iterrows(), strict=True):
        if pd.notna(row["mean"]):
            ax.annotate(f"{row['mean']:.1f}", (rect.get_x() + rect.get_width() / 2, row["mean"] + row["std"]
                                                if pd.notna(row["std"]) else row["mean"]),
                        xytext=(0, 3), textcoords="offset points", ha="center", fontsize=9)
        else:
            ax.annotate("not run", (rect.get_x() + rect.get_width() / 2, 0), xytext=(0, 3),
                        textcoords="offset points", ha="center", fontsize=9, color="grey")
    paper_vals = [paper.get(n, np.nan) for n in names]
    pbars = ax.bar(x + width / 2, np.nan_to_num(paper_vals), width, color="white", edgecolor=OKABE_ITO[4],
                   hatch="//", label="paper's figure (eNTERFACE'05)")
    for rect, value in zip(pbars, paper_vals, strict=True):
        if not np.isnan(value):
            ax.annotate(f"{value:.1f}", (rect.get_x() + rect.get_width() / 2, value), xytext=(0, 3),
                        textcoords="offset points", ha="center", fontsize=9, color=OKABE_ITO[4])
    if n_classes:
        ax.axhline(100 / n_classes, color="grey", lw=1, ls=":", label=f"chance ({100 / n_classes:.1f}%)")
    ax.set_xticks(x, [n if n not in PAPER_NAMES else PAPER_NAMES[n] if n not in stats.index
                      else f"{n}\n({PAPER_NAMES[n]})" for n in names])
    ax.set_ylabel("Video-level accuracy (%)")
    ax.set_ylim(0, 110)
    title = "Video-level accuracy: this run beside the paper's reported figures"
    if dataset.lower() != PAPER_DATASET:
        title += f"\nNot comparable: this run is on '{dataset}'; the paper's figures are on eNTERFACE'05"
    ax.set_title(title, loc="left")
    _legend_outside(ax)
    return fig


def fig_confusion(confusion: pd.DataFrame, models: list[str], classes: list[str]) -> Figure:
    """Per model (rows), the confusion matrix summed over folds: counts (left) and row-normalised (right)."""
    if confusion.empty or not models:
        return _missing("No confusion matrices yet: run the metrics stage (results/metrics/confusion.parquet).")
    n = len(classes)
    size = 1.6 + 0.55 * n
    fig = Figure(figsize=(2 * size + 1, size * len(models)), layout="constrained")
    axes = fig.subplots(len(models), 2, squeeze=False)
    for row, model in zip(axes, models, strict=True):
        sub = confusion[confusion["model"] == model]
        counts = (sub.groupby(["true", "pred"], observed=False)["count"].sum().unstack(fill_value=0)
                  .reindex(index=classes, columns=classes, fill_value=0).to_numpy())
        totals = counts.sum(axis=1, keepdims=True)
        normalised = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
        for ax, matrix, kind in ((row[0], counts, "counts"), (row[1], normalised, "row-normalised")):
            image = ax.imshow(matrix, cmap=SEQUENTIAL, vmin=0, vmax=1 if kind != "counts" else max(1, matrix.max()))
            for i in range(n):
                for j in range(n):
                    value = matrix[i, j]
                    text = f"{value:.2f}" if kind != "counts" else f"{int(value)}"
                    dark = value < 0.5 * (1 if kind != "counts" else max(1, matrix.max()))
                    ax.text(j, i, text, ha="center", va="center", fontsize=9, color="white" if dark else "black")
            ax.set_xticks(range(n), classes, rotation=45, ha="right")
            ax.set_yticks(range(n), classes)
            ax.set_xlabel("Predicted")
            ax.set_ylabel("True")
            ax.set_title(f"{model}: {kind}")
            ax.spines[:].set_visible(False)
            fig.colorbar(image, ax=ax, shrink=0.8)
    return fig


def fig_per_class_recall(per_class: pd.DataFrame, models: list[str], classes: list[str]) -> Figure:
    """Recall per class and model, mean and std over folds."""
    if per_class.empty or not models:
        return _missing("No per-class metrics yet: run the metrics stage (results/metrics/per_class.parquet).")
    stats = per_class.groupby(["model", "class"], observed=False)["recall"].agg(["mean", "std"]) * 100
    x = np.arange(len(classes))
    width = 0.8 / len(models)
    fig = Figure(figsize=(max(6, 1.1 * len(classes) * max(1, len(models) / 2) + 2), 4), layout="constrained")
    ax = fig.add_subplot()
    for i, model in enumerate(models):
        s = stats.loc[model].reindex(classes) if model in stats.index.get_level_values(0) else None
        if s is None:
            continue
        ax.bar(x - 0.4 + width * (i + 0.5), s["mean"].fillna(0), width, yerr=s["std"].fillna(0), capsize=3,
               color=OKABE_ITO[i % len(OKABE_ITO)], label=model, error_kw={"elinewidth": 1})
    ax.set_xticks(x, classes, rotation=20)
    ax.set_ylabel("Recall (%)")
    ax.set_ylim(0, 120)
    ax.set_yticks(range(0, 101, 20))
    ax.set_title("Per-class recall, mean ± std over folds", loc="left")
    _legend_outside(ax)
    return fig


def fig_training_curves(history: pd.DataFrame, models: list[str]) -> Figure:
    """Per model (rows): loss and accuracy against epoch, training (solid) and validation (dashed), one colour per fold."""
    if history.empty:
        return _missing("No training history yet: run the train stage (results/models/*/fold*/history.parquet).")
    found = set(history["model"])
    models = [m for m in models if m in found] + sorted(found - set(models))
    panels = [("loss", "Loss"), ("acc", "Accuracy")]
    fig = Figure(figsize=(10, 3.2 * len(models)), layout="constrained")
    axes = fig.subplots(len(models), 2, squeeze=False)
    for row, model in zip(axes, models, strict=True):
        sub = history[history["model"] == model]
        for ax, (key, name) in zip(row, panels, strict=True):
            for fold, runs in sub.groupby("fold"):
                color = OKABE_ITO[int(fold) % len(OKABE_ITO)]
                for split, style in (("train", "-"), ("val", "--")):
                    column = f"{split}_{key}"  # train.py's history: train_loss, train_acc, val_loss, val_acc
                    if column in runs:
                        ax.plot(runs["epoch"], runs[column], style, color=color)
            ax.set_xlabel("Epoch")
            ax.set_ylabel(name)
            ax.set_title(f"{model}: {name.lower()}", loc="left")
            ax.xaxis.get_major_locator().set_params(integer=True)
    folds = sorted(history["fold"].unique())
    handles = [Line2D([], [], color=OKABE_ITO[int(f) % len(OKABE_ITO)], label=f"fold {f}") for f in folds]
    handles += [Line2D([], [], color="black", ls="-", label="training"),
                Line2D([], [], color="black", ls="--", label="validation")]
    axes[0, 1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    return fig


def fig_per_subject(per_subject: pd.DataFrame, models: list[str]) -> Figure:
    """Accuracy per test subject and model (each subject is tested in exactly one fold)."""
    if per_subject.empty or not models:
        return _missing("No per-subject metrics yet: run the metrics stage (results/metrics/per_subject.parquet).")
    table = per_subject.pivot_table(index="subject", columns="model", values="accuracy", aggfunc="mean") * 100
    subjects = sorted(table.index, key=_natural)
    table = table.reindex(index=subjects, columns=[m for m in models if m in table.columns])
    x = np.arange(len(subjects))
    width = 0.8 / max(1, table.shape[1])
    fig = Figure(figsize=(max(6, 0.55 * len(subjects) * max(1, table.shape[1]) + 2), 4), layout="constrained")
    ax = fig.add_subplot()
    for i, model in enumerate(table.columns):
        ax.bar(x - 0.4 + width * (i + 0.5), table[model].fillna(0), width, color=OKABE_ITO[i % len(OKABE_ITO)],
               label=model)
    ax.set_xticks(x, subjects, rotation=45 if len(subjects) > 8 else 0)
    ax.set_xlabel("Test subject")
    ax.set_ylabel("Video-level accuracy (%)")
    ax.set_ylim(0, 105)
    ax.set_title("Per-subject accuracy (each subject in its test fold)", loc="left")
    _legend_outside(ax)
    return fig


def _natural(text: str):
    digits = "".join(c for c in str(text) if c.isdigit())
    return (int(digits) if digits else -1, str(text))


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


def fig_attention(panels: list[dict]) -> Figure:
    """Test clips (rows = true class) with the model's spatial attention over the middle frame, with true -> predicted."""
    if not panels:
        return _missing("No attention maps: needs a trained model, its checkpoint and the clip cache.")
    classes = list(dict.fromkeys(p["label"] for p in panels))
    cols = max(sum(p["label"] == c for p in panels) for c in classes)
    fig = Figure(figsize=(2.0 * cols * 2 + 1, 2.1 * len(classes)), layout="constrained")
    axes = fig.subplots(len(classes), 2 * cols, squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.spines[:].set_visible(False)
    for r, label in enumerate(classes):
        for c, panel in enumerate(p for p in panels if p["label"] == label):
            frame, heat = panel["frame"], panel["map"]
            axes[r, 2 * c].imshow(frame)
            axes[r, 2 * c].set_title(panel["video_id"], fontsize=7)
            axes[r, 2 * c + 1].imshow(frame)
            axes[r, 2 * c + 1].imshow(heat, cmap=OVERLAY, alpha=0.55, vmin=0, vmax=1)
            axes[r, 2 * c + 1].set_title(f"{panel['label']} → {panel['pred']}", fontsize=9)
        axes[r, 0].set_ylabel(label)
    model = panels[0]["model"]
    fig.suptitle(f"Where {model} looks: attention over the middle frame of test clips (bright = more weight)")
    return fig


def fig_face_qc(qc: pd.DataFrame) -> Figure:
    """Face-stage quality: per-video detection rate (histogram) and the videos kept or rejected."""
    if qc.empty:
        return _missing("No face QC yet: run the faces stage (results/faces/*_qc.parquet).")
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    left, right = fig.subplots(1, 2)
    rates = qc["detection_rate"].fillna(0) * 100
    left.hist(rates, bins=np.linspace(0, 100, 21), color=OKABE_ITO[1], edgecolor="black", linewidth=0.5)
    left.set_xlabel("Frames with a detected face (%)")
    left.set_ylabel("Videos")
    left.set_title(f"Detection rate per video (median {rates.median():.0f}%)")
    status = qc["status"].astype(str).value_counts()
    colours = [OKABE_ITO[2] if s == "ok" else OKABE_ITO[4] for s in status.index]
    right.barh(status.index, status.to_numpy(), color=colours)
    for i, value in enumerate(status.to_numpy()):
        right.annotate(str(value), (value, i), xytext=(3, 0), textcoords="offset points", va="center")
    backends = ", ".join(sorted(qc["backend"].astype(str).unique())) if "backend" in qc else "?"
    right.set_xlabel("Videos")
    right.set_title(f"Face stage outcome (backend: {backends})")
    return fig


# ---------------------------------------------------------------------------------------------------------------
# Gathering what the image figures show
# ---------------------------------------------------------------------------------------------------------------

def face_examples(results_dir: Path, per_class: int) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Up to ``per_class`` (video_id, crop) per emotion, from different subjects where possible."""
    import h5py

    manifest_path = results_dir / "manifest.parquet"
    if not manifest_path.exists():
        return {}
    manifest = pd.read_parquet(manifest_path, columns=["video_id", "subject", "label"])
    by_id = manifest.set_index("video_id")
    classes = [str(c) for c in manifest["label"].cat.categories] if hasattr(manifest["label"], "cat") \
        else sorted(manifest["label"].astype(str).unique())
    examples: dict[str, list[tuple[str, np.ndarray]]] = {c: [] for c in classes}
    seen: dict[str, set] = {c: set() for c in classes}
    for path in sorted(results_dir.glob("faces/*.h5"), key=lambda p: _natural(p.stem)):
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


def attention_panels(results_dir: Path, model_name: str | None, per_class: int, device: str = "cpu") -> list[dict]:
    """Attention maps of ``model_name`` (default: res_att, else the first trained model) on test clips per class.

    Each clip is the evaluation's own (the middle clip of a test video, read and normalised by ``ClipDataset``) and
    is scored by the checkpoint of the fold that tests it; the videos come from different folds where possible.
    """
    import torch

    from video_emotion.cache import ClipDataset, normalize_clip, read_index
    from video_emotion.models.explain import attention_map
    from video_emotion.inference import load_checkpoint

    models = sorted(p.name for p in (results_dir / "models").glob("*") if any(p.glob("fold*/best.pt")))
    cache = results_dir / "cache" / "clips.h5"
    if not models or not cache.exists():
        return []
    if model_name not in models:
        model_name = "res_att" if "res_att" in models else models[0]
    index, attrs = read_index(cache)
    classes = attrs["classes"]
    chosen = (index.sort_values(["label", "fold", "video_id"]).groupby(["label", "fold"]).head(1)
              .groupby("label").head(per_class))
    panels = []
    for fold, rows in chosen.groupby("fold"):
        ckpt_path = results_dir / "models" / model_name / f"fold{fold}" / "best.pt"
        if not ckpt_path.exists():
            continue
        model, ckpt = load_checkpoint(ckpt_path, device)
        model.eval()
        data = ClipDataset(cache, rows["video_id"].tolist(), clip_len=int(ckpt["clip_len"]))
        for i, video_id in enumerate(data.index["video_id"]):
            frames = data.read(i, data.clip_start(i))
            clip = normalize_clip(frames).unsqueeze(0).to(device)
            with torch.no_grad():
                pred = int(model(clip).argmax(1))
            panels.append({"model": model_name, "video_id": video_id, "label": classes[int(data.index.at[i, "label"])],
                           "pred": classes[pred], "frame": frames[len(frames) // 2],
                           "map": _middle_map(attention_map(model, clip), frames.shape[1:3])})
    return sorted(panels, key=lambda p: (classes.index(p["label"]), p["video_id"]))


def _middle_map(heat, size: tuple[int, int]) -> np.ndarray:
    """The attention map's middle time step, resized to the crop and scaled to 0..1."""
    from skimage.transform import resize

    heat = np.asarray(heat.detach().cpu() if hasattr(heat, "detach") else heat, dtype=np.float32).squeeze()
    if heat.ndim == 3:  # (T, H, W)
        heat = heat[heat.shape[0] // 2]
    heat = resize(heat, size, order=1)
    span = heat.max() - heat.min()
    return (heat - heat.min()) / span if span > 0 else np.zeros_like(heat)


def load_qc(results_dir: Path) -> pd.DataFrame:
    frames = [pd.read_parquet(p) for p in sorted(results_dir.glob("faces/*_qc.parquet"))]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


# ---------------------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------------------

def _pct(value: float) -> str:
    return "–" if pd.isna(value) else f"{100 * value:.1f}"


def models_table(summary: pd.DataFrame, models: list[str], paper: dict[str, float]) -> pd.DataFrame:
    """One row per model: mean ± std over folds of each metric and the pooled accuracy's interval (in %)."""
    rows = []
    for model in models:
        s = summary.set_index("model").loc[model]
        row = {"model": model, "folds": int(s["n_folds"]), "videos": int(s["n_videos"])}
        for metric in METRICS:
            row[METRIC_NAMES[metric]] = f"{_pct(s[f'{metric}_mean'])} ± {_pct(s[f'{metric}_std'])}"
        row["pooled accuracy [CI]"] = (f"{_pct(s['accuracy_pooled'])} [{_pct(s['accuracy_pooled_ci_low'])}, "
                                       f"{_pct(s['accuracy_pooled_ci_high'])}]")
        row["paper's accuracy (eNTERFACE'05)"] = f"{paper[model]:.1f}" if model in paper else "–"
        rows.append(row)
    return pd.DataFrame(rows)


def folds_table(per_fold: pd.DataFrame, models: list[str]) -> pd.DataFrame:
    """Every model x fold with its metrics and the accuracy's bootstrap interval (in %)."""
    rows = []
    for _, r in per_fold.set_index("model").loc[models].reset_index().sort_values(["model", "fold"]).iterrows():
        rows.append({"model": r["model"], "fold": int(r["fold"]), "videos": int(r["n_videos"]),
                     **{METRIC_NAMES[m]: _pct(r[m]) for m in METRICS},
                     "accuracy CI": f"[{_pct(r['accuracy_ci_low'])}, {_pct(r['accuracy_ci_high'])}]"})
    return pd.DataFrame(rows)


def _html_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "<p>No rows.</p>"
    return df.to_html(index=False, border=0, classes="table", escape=True, na_rep="–")


def write_index(out_dir: Path, sections: list[tuple[str, str]], tables: dict[str, pd.DataFrame],
                notes: list[str]) -> Path:
    """``index.html``: the tables, then each figure embedded as a PNG data URI with links to its PNG and SVG files."""
    parts = [
        "<!doctype html>", "<html lang='en'><head><meta charset='utf-8'>",
        "<title>video-emotion report</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
        "img{max-width:100%;height:auto;border:1px solid #ddd}table{border-collapse:collapse;margin:1em 0}"
        "th,td{padding:4px 10px;border-bottom:1px solid #ddd;text-align:right}th{background:#f4f4f4}"
        "td:first-child,th:first-child{text-align:left}.note{background:#fff4e0;padding:.6em 1em}"
        "figcaption{color:#444;margin:.4em 0 2em}</style></head><body>",
        "<h1>video-emotion report</h1>",
    ]
    parts += [f"<p class='note'>{html.escape(note)}</p>" for note in notes]
    for title, df in tables.items():
        parts += [f"<h2>{html.escape(title)}</h2>", _html_table(df)]
    for png_name, caption in sections:
        png = out_dir / png_name
        data = base64.b64encode(png.read_bytes()).decode()
        stem = Path(png_name).stem
        parts += [
            f"<h2 id='{stem}'>{html.escape(stem.replace('_', ' ').capitalize())}</h2>",
            f"<figure><img src='data:image/png;base64,{data}' alt='{html.escape(stem)}'>",
            f"<figcaption>{html.escape(caption)} Files: <a href='{png_name}'>PNG</a>, "
            f"<a href='{stem}.svg'>SVG</a>.</figcaption></figure>",
        ]
    parts.append("</body></html>")
    index = out_dir / "index.html"
    with atomic_path(index) as tmp:
        tmp.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return index


def _caption(name: str) -> str:
    """The caption text of a figure (its .rst file without markup), for index.html."""
    path = Path(__file__).resolve().parents[2] / "workflow" / "report" / FIGURES[name]
    if not path.exists():
        return ""
    return " ".join(line.strip() for line in path.read_text().splitlines() if line.strip()).replace("``", "")


def build_report(results_dir: str | Path = "results", out_dir: str | Path = "results/report",
                 params: dict | None = None) -> list[Path]:
    """Write every figure in :data:`FIGURES` (PNG + SVG) and ``index.html`` under ``out_dir``; return the paths.

    ``params`` is the config's ``report`` section: ``dataset`` (the configured dataset; the paper comparison is
    flagged when it is not eNTERFACE'05), ``paper`` (model -> the paper's accuracy in %), ``faces_per_class``,
    ``attention_per_class``, ``attention_model`` and ``device``.
    """
    params = params or {}
    results_dir, out_dir = Path(results_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dataset = str(params.get("dataset", "demo"))
    paper = {**PAPER, **(params.get("paper") or {})}

    tables = load_metrics(results_dir)
    models = _model_order(tables, params.get("models"))
    classes = metric_classes(results_dir)
    try:
        panels = attention_panels(results_dir, params.get("attention_model"),
                                  int(params.get("attention_per_class", 2)), str(params.get("device", "cpu")))
    except Exception as err:  # one missing piece must not cost the rest of the report
        log.warning("report: attention maps skipped (%s: %s)", type(err).__name__, err)
        panels = []

    figures = {
        "comparison.png": lambda: fig_comparison(tables["summary"], models, paper, dataset, len(classes)),
        "confusion.png": lambda: fig_confusion(tables["confusion"], models, classes),
        "per_class_recall.png": lambda: fig_per_class_recall(tables["per_class"], models, classes),
        "training_curves.png": lambda: fig_training_curves(load_histories(results_dir), models),
        "per_subject.png": lambda: fig_per_subject(tables["per_subject"], models),
        "faces_montage.png": lambda: fig_faces_montage(face_examples(results_dir,
                                                                     int(params.get("faces_per_class", 6)))),
        "attention.png": lambda: fig_attention(panels),
        "face_qc.png": lambda: fig_face_qc(load_qc(results_dir)),
    }
    written = []
    with matplotlib.rc_context(STYLE):
        for name, make in figures.items():
            written += save_figure(make(), out_dir / name)

    notes = []
    if dataset.lower() != PAPER_DATASET:
        figures_text = ", ".join(f"{PAPER_NAMES.get(k, k)} {v:.1f}%" for k, v in paper.items())
        notes.append(f"This run is on the '{dataset}' dataset. The paper's figures ({figures_text}) are on "
                     "eNTERFACE'05 and are shown for reference only, not as a comparison.")
    html_tables = {
        "Models: mean ± std over folds (%)": models_table(tables["summary"], models, paper)
        if models else pd.DataFrame(),
        "Every model and fold (%)": folds_table(tables["per_fold"], models) if models else pd.DataFrame(),
    }
    qc = load_qc(results_dir)
    if not qc.empty and "status" in qc:
        rejected = qc[qc["status"].astype(str) != "ok"]
        html_tables["Videos the face stage rejected"] = rejected[["video_id", "reason"]] if len(rejected) else \
            pd.DataFrame()
    sections = [(name, _caption(name)) for name in FIGURES]
    written.append(write_index(out_dir, sections, html_tables, notes))
    log.info("report: %d files under %s", len(written), out_dir)
    return written

"""The report: every figure written (PNG + SVG), index.html lists every model and fold and links only files that exist."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from video_emotion.cache import build_cache
from video_emotion.io import write_parquet
from video_emotion.labels import EMOTIONS
from video_emotion.metrics import compute_metrics
from video_emotion.models import create_model
from video_emotion.report import (
    FIGURES,
    attention_panels,
    build_report,
    face_examples,
    fig_comparison,
    fig_confusion,
    load_metrics,
)

MODELS = ("res_att", "c3d")
FOLDS = (0, 1, 2)
SUBJECTS = ("1", "2", "3", "4", "5", "6")
CROP = 16


def _manifest() -> pd.DataFrame:
    rows = [{"video_id": f"s{s}_{e[:2]}", "path": f"subject {s}/{e}/s{s}_{e[:2]}.avi", "subject": s, "label": e,
             "fold": (int(s) - 1) % len(FOLDS), "shard": f"subject_{s}"} for s in SUBJECTS for e in EMOTIONS]
    df = pd.DataFrame(rows)
    df["label"] = pd.Categorical(df["label"], categories=EMOTIONS)
    return df


def _write_predictions(results: Path, manifest: pd.DataFrame, rng: np.random.Generator) -> None:
    for model in MODELS:
        for fold in FOLDS:
            test = manifest[manifest["fold"] == fold]
            probs = rng.dirichlet(np.ones(len(EMOTIONS)), size=len(test)).astype(np.float32)
            right = rng.random(len(test)) < (0.7 if model == "res_att" else 0.4)
            codes = np.where(right, test["label"].cat.codes, probs.argmax(1))
            df = pd.DataFrame({"video_id": test["video_id"].to_numpy(), "subject": test["subject"].to_numpy(),
                               "label": pd.Categorical(test["label"].astype(str), categories=EMOTIONS),
                               "pred": pd.Categorical.from_codes(codes, categories=EMOTIONS)})
            for i, c in enumerate(EMOTIONS):
                df[f"p_{c}"] = probs[:, i]
            df["n_clips"] = 3
            write_parquet(df, results / "predictions" / f"model={model}" / f"fold={fold}" / "predictions.parquet")


def _write_histories(results: Path) -> None:
    for model in MODELS:
        for fold in FOLDS:
            epochs = np.arange(1, 6)
            df = pd.DataFrame({"epoch": epochs, "train_loss": 2 / epochs, "train_acc": 1 - 1 / (epochs + 1),
                               "val_loss": 2.2 / epochs, "val_acc": 0.9 - 1 / (epochs + 1)})
            write_parquet(df, results / "models" / model / f"fold{fold}" / "history.parquet")


def _write_faces(results: Path, manifest: pd.DataFrame) -> None:
    """One faces h5 + QC table per subject; each crop is filled with its emotion's index (to check the montage)."""
    for shard, videos in manifest.groupby("shard"):
        qc = []
        with h5py.File(results / "faces" / f"{shard}.h5", "w") as f:
            for row in videos.itertuples():
                t = 6
                crops = np.full((t, CROP, CROP, 3), 40 * EMOTIONS.index(row.label), np.uint8)
                detected = np.ones(t, bool)
                detected[:2] = row.subject == "1"  # subject 1 misses its first frames
                g = f.create_group(row.video_id)
                g["crops"], g["detected"] = crops, detected
                qc.append({"video_id": row.video_id, "n_frames": t, "detection_rate": detected.mean(),
                           "mean_score": 1.0, "max_gap": int((~detected).sum()), "backend": "dlib",
                           "status": "ok", "reason": ""})
        qc.append({"video_id": f"{shard}_broken", "n_frames": 0, "detection_rate": 0.0, "mean_score": 0.0,
                   "max_gap": 0, "backend": "dlib", "status": "rejected", "reason": "no face found"})
        write_parquet(pd.DataFrame(qc), results / "faces" / f"{shard}_qc.parquet")


def _write_cache_and_checkpoints(results: Path) -> None:
    """The clip cache of the faces files, and an untrained tiny res_att checkpoint per fold (for attention maps)."""
    build_cache(results / "manifest.parquet", sorted((results / "faces").glob("*.h5")),
                results / "cache" / "clips.h5", {"clip_len": 4})
    kwargs = {"width": 4, "layers": [1, 1, 1, 1], "heads": 2}
    torch.manual_seed(0)
    for fold in FOLDS:
        model = create_model("res_att", len(EMOTIONS), **kwargs)
        torch.save({"model": model.state_dict(), "model_name": "res_att", "model_kwargs": kwargs,
                    "classes": list(EMOTIONS), "clip_len": 4, "crop_size": CROP, "epoch": 1, "fold": fold,
                    "config": {}}, results / "models" / "res_att" / f"fold{fold}" / "best.pt")


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    results = tmp_path_factory.mktemp("results")
    (results / "faces").mkdir()
    manifest = _manifest()
    write_parquet(manifest, results / "manifest.parquet")
    _write_predictions(results, manifest, np.random.default_rng(0))
    compute_metrics(results / "predictions", results / "metrics", {"bootstrap": 20})
    _write_histories(results)
    _write_faces(results, manifest)
    _write_cache_and_checkpoints(results)
    return results


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.images, self.cells = [], [], []
        self._in_cell = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a":
            self.links.append(attrs["href"])
        elif tag == "img":
            self.images.append(attrs["src"])
        self._in_cell = tag == "td"

    def handle_data(self, data):
        if self._in_cell:
            self.cells.append(data.strip())

    def handle_endtag(self, tag):
        self._in_cell = False


@pytest.fixture(scope="module")
def report(results) -> tuple[Path, list[Path]]:
    out = results / "report"
    written = build_report(results, out, {"dataset": "demo", "models": list(MODELS)})
    return out, written


def test_every_figure_is_written_as_png_and_svg(report):
    out, written = report
    for name in FIGURES:
        png, svg = out / name, (out / name).with_suffix(".svg")
        assert png in written and svg in written
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert svg.read_text().lstrip().startswith("<?xml")
    assert not list(out.glob(".*tmp*")), "temporary files left behind"


def test_index_lists_every_model_and_fold_and_links_exist(report):
    out, _ = report
    parser = _Links()
    parser.feed((out / "index.html").read_text())
    assert len(parser.images) == len(FIGURES)
    for src in parser.images:  # embedded: the page stands alone
        assert src.startswith("data:image/png;base64,")
    embedded = {base64.b64decode(src.split(",", 1)[1]) for src in parser.images}
    assert embedded == {(out / name).read_bytes() for name in FIGURES}
    relative = [h for h in parser.links if not re.match(r"[a-z]+:", h)]
    assert len(relative) == 2 * len(FIGURES)
    for href in relative:
        assert (out / href).is_file(), href
    # The every-model-and-fold table: one row per (model, fold), in that order of cells.
    cells = parser.cells
    pairs = {(cells[i], cells[i + 1]) for i in range(len(cells) - 1)}
    for model in MODELS:
        for fold in FOLDS:
            assert (model, str(fold)) in pairs, (model, fold)


def test_paper_figures_are_flagged_off_enterface(report, results):
    out, _ = report
    page = (out / "index.html").read_text()
    assert "for reference only" in page
    summary = load_metrics(results)["summary"]
    title = fig_comparison(summary, list(MODELS), {"res_att": 67.5}, "demo", 6).axes[0].get_title(loc="left")
    assert "Not comparable" in title
    title = fig_comparison(summary, list(MODELS), {"res_att": 67.5}, "enterface05", 6).axes[0].get_title(loc="left")
    assert "Not comparable" not in title


def test_confusion_panels_sum_the_folds(results):
    tables = load_metrics(results)
    fig = fig_confusion(tables["confusion"], list(MODELS), list(EMOTIONS))
    predictions = pd.read_parquet(results / "predictions")
    for model in MODELS:
        p = predictions[predictions["model"] == model]
        expected = pd.crosstab(p["label"], p["pred"], dropna=False).reindex(
            index=EMOTIONS, columns=EMOTIONS, fill_value=0).to_numpy()
        panels = {ax.get_title(): ax for ax in fig.axes}
        counts = panels[f"{model}: counts"].images[0].get_array()
        normalised = panels[f"{model}: row-normalised"].images[0].get_array()
        np.testing.assert_array_equal(counts, expected)
        np.testing.assert_allclose(normalised.sum(axis=1), 1.0)


def test_face_montage_shows_each_emotion_from_distinct_subjects(results):
    examples = face_examples(results, per_class=3)
    assert list(examples) == list(EMOTIONS)
    for emotion, items in examples.items():
        assert len(items) == 3
        assert len({vid.split("_")[0] for vid, _ in items}) == 3
        for _, crop in items:
            assert crop.shape == (CROP, CROP, 3) and crop.max() == 40 * EMOTIONS.index(emotion)


def test_attention_overlays_per_class_from_the_testing_fold(results):
    panels = attention_panels(results, "res_att", per_class=2)
    assert [p["label"] for p in panels] == [e for e in EMOTIONS for _ in range(2)]
    manifest = pd.read_parquet(results / "manifest.parquet").set_index("video_id")
    for emotion in EMOTIONS:  # two test videos per class, from two different folds
        folds = {manifest.at[p["video_id"], "fold"] for p in panels if p["label"] == emotion}
        assert len(folds) == 2
    for p in panels:
        assert p["map"].shape == (CROP, CROP) and 0 <= p["map"].min() and p["map"].max() <= 1
        assert p["frame"].shape == (CROP, CROP, 3) and p["pred"] in EMOTIONS


def test_missing_inputs_still_give_every_figure(tmp_path):
    out = tmp_path / "report"
    written = build_report(tmp_path / "nothing", out, {})
    assert {p.name for p in written} == {*FIGURES, *(Path(n).with_suffix(".svg").name for n in FIGURES),
                                         "index.html"}

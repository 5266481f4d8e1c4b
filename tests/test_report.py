"""The report: every figure and table written and linked, drawn from files only; the attention stage's file."""

from __future__ import annotations

import base64
import html
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from video_emotion.attention import compute_attention, read_attention
from video_emotion.cache import build_cache
from video_emotion.io import write_parquet
from video_emotion.labels import EMOTIONS
from video_emotion.metrics import TABLES, compute_metrics
from video_emotion.models import create_model
from video_emotion.report import (
    NO_SUBJECTS_NOTE,
    PAPER,
    PUBLISHED_TITLE,
    REPORT_DEFAULTS,
    build_report,
    face_examples,
    fig_attention,
    fig_confusion,
    fig_headline,
    fig_paired_differences,
    fig_per_subject,
    load_metrics,
)
from video_emotion.report_files import FIGURES, TABLE_FILES

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("res_att", "c3d")
SEEDS = (0, 1)
FOLDS = (0, 1, 2)
SUBJECTS = ("1", "2", "3", "4", "5", "6")
CROP = 16


def _manifest() -> pd.DataFrame:
    rows = [{"video_id": f"s{s}_{e[:2]}", "path": f"subject {s}/{e}/s{s}_{e[:2]}.avi", "subject": s, "label": e,
             "fold": (int(s) - 1) % len(FOLDS), "shard": f"subject_{s}"} for s in SUBJECTS for e in EMOTIONS]
    df = pd.DataFrame(rows)
    df["label"] = pd.Categorical(df["label"], categories=EMOTIONS)
    return df


def _write_predictions(results: Path, manifest: pd.DataFrame, rng: np.random.Generator) -> list[Path]:
    paths = []
    for model in MODELS:
        for seed in SEEDS:
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
                paths.append(results / "predictions" / f"model={model}" / f"seed={seed}" / f"fold={fold}"
                             / "predictions.parquet")
                write_parquet(df, paths[-1], {"epoch": 3})
    return paths


def _write_histories(results: Path) -> list[Path]:
    paths = []
    for model in MODELS:
        for seed in SEEDS:
            for fold in FOLDS:
                epochs = np.arange(1, 6)
                df = pd.DataFrame({"epoch": epochs, "train_loss": 2 / epochs, "train_acc": 1 - 1 / (epochs + 1),
                                   "val_loss": 2.2 / epochs, "val_acc": 0.9 - 1 / (epochs + 1)})
                paths.append(results / "models" / model / f"seed{seed}" / f"fold{fold}" / "history.parquet")
                write_parquet(df, paths[-1])
    return paths


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
        qc.append({"video_id": f"{shard}_undecodable", "n_frames": 0, "detection_rate": 0.0, "mean_score": 0.0,
                   "max_gap": 0, "backend": "dlib", "status": "rejected", "reason": "frames: ffmpeg cannot read it"})
        write_parquet(pd.DataFrame(qc), results / "faces" / f"{shard}_qc.parquet")


def _write_cache_and_checkpoints(results: Path) -> list[Path]:
    """The clip cache of the faces files, and an untrained tiny res_att checkpoint per fold (for attention maps)."""
    build_cache(results / "manifest.parquet", sorted((results / "faces").glob("*.h5")),
                results / "cache" / "clips.h5", {"clip_len": 4})
    kwargs = {"width": 4, "layers": [1, 1, 1, 1], "heads": 2}
    torch.manual_seed(0)
    paths = []
    for fold in FOLDS:
        model = create_model("res_att", len(EMOTIONS), **kwargs)
        paths.append(results / "models" / "res_att" / "seed0" / f"fold{fold}" / "best.pt")
        torch.save({"model": model.state_dict(), "model_name": "res_att", "model_kwargs": kwargs,
                    "classes": list(EMOTIONS), "clip_len": 4, "crop_size": CROP, "epoch": 1, "fold": fold,
                    "config": {}}, paths[-1])
    return paths


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    """Every file the report rule passes, in the workflow's layout."""
    results = tmp_path_factory.mktemp("results")
    (results / "faces").mkdir()
    manifest = _manifest()
    write_parquet(manifest, results / "manifest.parquet")
    write_parquet(pd.DataFrame({"path": ["subject 9/x.avi", "VideoFlash/1064_TIE_SAD_XX.flv"],
                                "reason": ["not inside a 'subject N' folder", "documented defect: file has no duration"],
                                "source": ["", "https://example.org/README.md"]}),
                  results / "manifest_rejected.parquet", metadata={"not_videos": {"audio": 12, "text": 1}})
    predictions = _write_predictions(results, manifest, np.random.default_rng(0))
    compute_metrics(predictions, results / "metrics", {"bootstrap": 50, "permutations": 200})
    histories = _write_histories(results)
    _write_faces(results, manifest)
    checkpoints = _write_cache_and_checkpoints(results)
    compute_attention(results / "cache" / "clips.h5", checkpoints, results / "attention" / "attention.h5",
                      {"attention_per_class": 2})
    return {
        "root": results, "predictions": predictions, "checkpoints": checkpoints,
        "files": {"metrics": [results / "metrics" / f"{t}.parquet" for t in TABLES], "histories": histories,
                  "qc": sorted((results / "faces").glob("*_qc.parquet")),
                  "faces": sorted((results / "faces").glob("*.h5")), "manifest": results / "manifest.parquet",
                  "rejected": results / "manifest_rejected.parquet",
                  "attention": results / "attention" / "attention.h5",
                  "captions": [ROOT / "workflow" / "report" / c for c in FIGURES.values()]},
    }


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.images, self.cells, self.captions = [], [], [], []
        self._tag = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a":
            self.links.append(attrs["href"])
        elif tag == "img":
            self.images.append(attrs["src"])
        self._tag = tag

    def handle_data(self, data):
        if self._tag == "td":
            self.cells.append(data.strip())
        elif self._tag == "figcaption":
            self.captions.append(data.strip())

    def handle_endtag(self, tag):
        self._tag = None


@pytest.fixture(scope="module")
def report(results) -> tuple[Path, list[Path]]:
    out = results["root"] / "report"
    written = build_report(out, **results["files"], params={"dataset": "demo", "models": list(MODELS)})
    return out, written


def test_every_figure_and_table_is_written(report):
    out, written = report
    for name in FIGURES:
        png, svg = out / name, (out / name).with_suffix(".svg")
        assert png in written and svg in written
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert svg.read_text().lstrip().startswith("<?xml")
    for name in TABLE_FILES:
        assert out / name in written and "<table" in (out / name).read_text()
    assert not list(out.glob(".*tmp*")), "temporary files left behind"


def test_index_links_every_figure_and_table_and_each_exists(report):
    out, _ = report
    parser = _Links()
    page = (out / "index.html").read_text()
    parser.feed(page)
    assert len(parser.images) == len(FIGURES)
    for src in parser.images:  # embedded: the page stands alone
        assert src.startswith("data:image/png;base64,")
    embedded = {base64.b64decode(src.split(",", 1)[1]) for src in parser.images}
    assert embedded == {(out / name).read_bytes() for name in FIGURES}
    relative = [h for h in parser.links if not re.match(r"[a-z]+:", h)]
    assert sorted(relative) == sorted([*FIGURES, *(Path(n).with_suffix(".svg").name for n in FIGURES)])
    for href in relative:
        assert (out / href).is_file(), href
    assert all(parser.captions), "a figure without its caption"
    # The every-run table: one row per (model, seed, fold), in that order of cells.
    cells = parser.cells
    triples = {tuple(cells[i:i + 3]) for i in range(len(cells) - 2)}
    for model in MODELS:
        for seed in SEEDS:
            for fold in FOLDS:
                assert (model, str(seed), str(fold)) in triples, (model, seed, fold)


def test_headline_comes_first_and_comparisons_read_as_claims(report):
    out, _ = report
    page = (out / "index.html").read_text()
    # the first screen: the models table, the paper's claims (with the paper's own difference), then the text
    models, claims_table = page.index("<h2>Models: pooled"), page.index("<h2>The paper&#x27;s claims: res_att")
    assert page.index("<table") > models and models < claims_table < page.index("<h2>Summary</h2>")
    assert page.index("<h2>Summary</h2>") < page.index("<h2>Every paired comparison") < page.index("<figure")
    assert "+18.2" in page[claims_table:page.index("<h2>Summary</h2>")]  # the paper: 3Res-att vs C3D
    claims = re.findall(r"<li>(.*?)</li>", page)
    assert claims[0].startswith("res_att: WAR ") and "per-fold mean ± std" in claims[0]
    assert any(c.startswith("chance (1/K) 16.7%; majority class") for c in claims)
    assert any(re.fullmatch(r"res_att vs c3d: WAR [+-]\d+\.\d points \[[+-]\d+\.\d, [+-]\d+\.\d\], "
                            r"p = [<0-9. ]+ \(the paper, on eNTERFACE&#x27;05: \+18\.2\)", c) for c in claims)
    assert any(re.fullmatch(r"res_att vs c3d: UAR [+-]\d+\.\d points \[[+-]\d+\.\d, [+-]\d+\.\d\], "
                            r"p = [<0-9. ]+", c) for c in claims)
    assert "no test subject shares a photograph" in page  # what the demo's subjects are
    assert "res_att vs c3d" in (out / "comparisons.html").read_text()
    assert "subject 9/x.avi" in page and "not inside a " in page  # the manifest's rejections
    assert "documented defect: file has no duration" in page and "https://example.org/README.md" in page
    assert "not videos, skipped: 12 audio, 1 text" in page
    assert "subject_1_undecodable" in page and "could not decode (frames stage)" in page


def test_one_model_says_there_is_nothing_to_compare(results, tmp_path):
    metrics = tmp_path / "metrics"
    compute_metrics([p for p in results["predictions"] if "model=c3d" in str(p)], metrics, {"bootstrap": 10})
    out = tmp_path / "report"
    build_report(out, metrics=[metrics / f"{t}.parquet" for t in TABLES], params={"models": ["c3d"]})
    assert "One model evaluated: no paired comparison." in (out / "index.html").read_text()
    assert "no paired comparison" in (out / "comparisons.html").read_text()


def test_headline_figure_stays_within_0_100_and_flags_the_paper(results):
    tables, _ = load_metrics(results["files"]["metrics"])
    fig = fig_headline(tables["summary"], tables["per_fold"], list(MODELS), PAPER, "demo")
    assert "Not comparable" in fig._suptitle.get_text()
    for ax in fig.axes:
        assert ax.get_ylim() == (-4, 104)
        for line in ax.lines:
            assert np.all((np.asarray(line.get_ydata(), float) >= 0) & (np.asarray(line.get_ydata(), float) <= 100))
    fig = fig_headline(tables["summary"], tables["per_fold"], list(MODELS), PAPER, "enterface05")
    assert "Not comparable" not in fig._suptitle.get_text()


def test_paper_figures_live_in_one_place():
    """PAPER in metrics.py is the only home of the seed paper's figures among the workflow files."""
    for path in [ROOT / "workflow" / "schemas" / "config.schema.yaml", *(ROOT / "workflow").rglob("*.rst"),
                 *(ROOT / "workflow" / "rules").glob("*.smk")]:
        text = path.read_text()
        for value in PAPER.values():
            assert f"{value}" not in text, f"{path} repeats the paper's {value}"


def test_report_defaults_match_the_schema():
    import yaml

    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    section = schema["properties"]["report"]
    assert section["additionalProperties"] is False
    assert {k: v["default"] for k, v in section["properties"].items()} == REPORT_DEFAULTS


def test_confusion_panels_sum_folds_and_seeds(results):
    tables, _ = load_metrics(results["files"]["metrics"])
    fig = fig_confusion(tables["confusion"], list(MODELS), list(EMOTIONS))
    predictions = pd.read_parquet(results["root"] / "predictions")
    for model in MODELS:
        p = predictions[predictions["model"] == model]
        expected = pd.crosstab(p["label"], p["pred"], dropna=False).reindex(
            index=EMOTIONS, columns=EMOTIONS, fill_value=0).to_numpy()
        assert expected.sum() == len(SUBJECTS) * len(EMOTIONS) * len(SEEDS)
        panels = {ax.get_title(): ax for ax in fig.axes}
        counts = panels[f"{model}: counts"].images[0].get_array()
        normalised = panels[f"{model}: row-normalised"].images[0].get_array()
        np.testing.assert_array_equal(counts, expected)
        np.testing.assert_allclose(normalised.sum(axis=1), 1.0)


def test_face_montage_shows_each_emotion_from_distinct_subjects(results):
    files = results["files"]
    examples = face_examples(files["manifest"], files["faces"], per_class=3)
    assert list(examples) == list(EMOTIONS)
    for emotion, items in examples.items():
        assert len(items) == 3
        assert len({vid.split("_")[0] for vid, _ in items}) == 3
        for _, crop in items:
            assert crop.shape == (CROP, CROP, 3) and crop.max() == 40 * EMOTIONS.index(emotion)


def test_attention_file_per_class_from_the_testing_fold(results):
    attention = read_attention(results["files"]["attention"])
    assert attention["label"] == [e for e in EMOTIONS for _ in range(2)]
    assert (attention["model"], attention["seed"], attention["kind"]) == ("res_att", 0, "spatial attention")
    assert attention["modules"] >= 1
    manifest = pd.read_parquet(results["root"] / "manifest.parquet").set_index("video_id")
    for emotion in EMOTIONS:  # two test videos per class, from two different folds
        folds = {manifest.at[v, "fold"] for v, lab in zip(attention["video_id"], attention["label"], strict=True)
                 if lab == emotion}
        assert len(folds) == 2
    assert [manifest.at[v, "fold"] for v in attention["video_id"]] == list(attention["fold"])
    maps = attention["maps"]
    assert maps.shape == (12, CROP, CROP) and attention["frames"].shape == (12, CROP, CROP, 3)
    assert 0 <= maps.min() and maps.max() <= 1 and maps.max() - maps.min() < 1  # raw gate values, not stretched
    fig = fig_attention(attention)
    overlays = [im for ax in fig.axes for im in ax.images if im.get_array().ndim == 2]
    assert len(overlays) == 12 and all(im.get_clim() == (0, 1) for im in overlays)
    assert any(ax.get_label() == "<colorbar>" for ax in fig.axes)


def test_report_runs_no_model_code():
    code = ("import sys, video_emotion.report; "
            "bad = [m for m in sys.modules if m == 'torch' or m.startswith(('video_emotion.models', "
            "'video_emotion.inference'))]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
    source = (ROOT / "src" / "video_emotion" / "report.py").read_text()
    assert "parents[" not in source and "load_checkpoint" not in source and ".glob(" not in source


def test_missing_inputs_still_give_every_figure(tmp_path):
    out = tmp_path / "report"
    written = build_report(out, metrics=[tmp_path / "summary.parquet"])
    assert {p.name for p in written} == {*FIGURES, *(Path(n).with_suffix(".svg").name for n in FIGURES),
                                         *TABLE_FILES, "index.html"}


def test_cli_writes_the_attention_file_and_the_report_from_files(results, tmp_path):
    from video_emotion.cli import main

    files = results["files"]
    main(["attention", "--cache", str(results["root"] / "cache" / "clips.h5"), "--checkpoints",
          *map(str, results["checkpoints"][:1]), "--out", str(tmp_path / "a.h5"), "--params", '{"attention_per_class": 1}'])
    attention = read_attention(tmp_path / "a.h5")
    assert attention["label"] == list(EMOTIONS) and set(attention["fold"]) == {0}
    main(["report", "--out", str(tmp_path / "report"), "--metrics", *map(str, files["metrics"]),
          "--attention", str(tmp_path / "a.h5"), "--rejected", str(files["rejected"])])
    assert "documented defect: file has no duration" in (tmp_path / "report" / "index.html").read_text()


def test_without_bootstrap_the_report_shows_no_nan(results, tmp_path):
    metrics = tmp_path / "metrics"
    compute_metrics(results["predictions"], metrics, {"bootstrap": 0, "permutations": 100})
    out = tmp_path / "report"
    build_report(out, metrics=[metrics / f"{t}.parquet" for t in TABLES], params={"models": list(MODELS)})
    page = re.sub(r"data:image/png;base64,[^']*", "", (out / "index.html").read_text())
    assert "nan" not in page.lower() and "res_att vs c3d: WAR" in page


def test_an_unequal_setting_is_stated_on_the_first_screen(results, tmp_path):
    out = tmp_path / "report"
    build_report(out, **results["files"], params={"dataset": "demo", "models": list(MODELS),
                                                  "model_train": {"c3d": {"lr": 0.001}, "p3d": {"lr": 0.1}}})
    page = (out / "index.html").read_text()
    assert page.index("Unequal footing: c3d trains with lr 0.001") < page.index("<table")
    assert "p3d" not in page.split("<table")[0]  # a setting of a model not in this run is not mentioned


def test_the_init_of_every_model_is_shown(tmp_path):
    from video_emotion.report import init_table

    paths = []
    for model, init in (("res_att", None), ("res_att_ft", {"kind": "checkpoint", "path": "results/pretrain/a/best.pt",
                                                          "sha256": "ab" * 32, "matched_share": 1.0, "matched": 111,
                                                          "derived": 0, "missing": 0, "head": "carried over"})):
        for fold in (0, 1):
            paths.append(tmp_path / "models" / model / "seed0" / f"fold{fold}" / "history.parquet")
            write_parquet(pd.DataFrame({"epoch": [1]}), paths[-1], {"init": init, "input_norm": (
                "BGR [0, 255], mean (90.25, 97.66, 101.41)" if init else None)})
    table = init_table(paths, ["res_att_ft", "res_att"])
    assert table["input normalisation"].tolist() == ["BGR [0, 255], mean (90.25, 97.66, 101.41)", "–"]
    assert table["model"].tolist() == ["res_att_ft", "res_att"]
    assert table["init"].tolist() == ["checkpoint: results/pretrain/a/best.pt", "random (from scratch)"]
    assert table["weights set"].iloc[0].startswith("100% (111 loaded")


PUBLISHED = [{"model": "C3D", "uar": 42.74, "war": 53.54, "source": "Jiang et al., ACM MM 2020 (DFEW)"},
             {"model": "MAE-DFER", "uar": 63.41, "war": 74.43, "source": "Sun et al., ACM MM 2023",
              "note": "self-supervised pretraining"}]


def _section(page: str, title: str) -> str:
    start = page.index(f"<h2>{html.escape(title)}</h2>")
    return page[start:page.index("<h2", start + 4)]


def _rows(section: str) -> list[list[str]]:
    return [[html.unescape(c) for c in re.findall(r"<td>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", section, re.S) if "<td>" in row]


@pytest.fixture(scope="module")
def wild(tmp_path_factory) -> dict:
    """A dataset without subject ids (subject = video_id) in 5 official folds, its metrics and report, with two
    published rows in the config."""
    root = tmp_path_factory.mktemp("wild")
    rng = np.random.default_rng(3)
    paths = []
    for fold in range(5):
        ids = [f"{fold}{i:04d}" for i in range(24)]
        labels = rng.integers(0, len(EMOTIONS), len(ids))
        for model, right in (("res_att", 0.6), ("c3d", 0.35)):
            codes = np.where(rng.random(len(ids)) < right, labels, rng.integers(0, len(EMOTIONS), len(ids)))
            df = pd.DataFrame({"video_id": ids, "subject": ids,
                               "label": pd.Categorical.from_codes(labels, categories=EMOTIONS),
                               "pred": pd.Categorical.from_codes(codes, categories=EMOTIONS)})
            for c in EMOTIONS:
                df[f"p_{c}"] = np.float32(1 / len(EMOTIONS))
            df["n_clips"] = 3
            paths.append(root / "predictions" / f"model={model}" / "seed=0" / f"fold={fold}" / "predictions.parquet")
            write_parquet(df, paths[-1], {"epoch": 2})
    compute_metrics(paths, root / "metrics", {"bootstrap": 100, "permutations": 200, "official_folds": True})
    metrics = [root / "metrics" / f"{t}.parquet" for t in TABLES]
    out = root / "report"
    build_report(out, metrics=metrics, captions=[ROOT / "workflow" / "report" / c for c in FIGURES.values()],
                 params={"dataset": "dfew", "models": list(MODELS), "published": PUBLISHED})
    page = re.sub(r"data:image/png;base64,[^']*", "", (out / "index.html").read_text())
    return {"metrics": metrics, "out": out, "page": page}


def test_without_subject_ids_the_report_says_videos_are_resampled(wild):
    page = wild["page"]
    assert html.escape(NO_SUBJECTS_NOTE, quote=True) in page
    assert "by subject" not in page and "within each subject" not in page
    models = _section(page, "Models: pooled over all test videos (%)")
    assert "<th>subjects</th>" not in models and "<th>resampled unit</th>" in _section(
        page, "Every paired comparison (same test videos)")
    assert "<th>subjects</th>" not in (wild["out"] / "comparisons.html").read_text()
    assert "<td>video</td>" in (wild["out"] / "comparisons.html").read_text()
    assert any(line.startswith("res_att: WAR ") and "CI by video" in line and "no subject ids" in line
               for line in re.findall(r"<li>(.*?)</li>", page))
    tables, _ = load_metrics(wild["metrics"])
    fig = fig_headline(tables["summary"], tables["per_fold"], list(MODELS), PAPER, "dfew")
    assert "no subject ids" in fig._suptitle.get_text()
    assert "pooled, 95% CI by video" in [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert "by video" in fig_paired_differences(tables["comparisons"], PAPER)._suptitle.get_text()
    note = fig_per_subject(tables["per_subject"], list(MODELS), 1 / 6, no_subject_ids=True)
    assert "No subject ids" in note.texts[0].get_text()  # not a plot of 120 one-video 'subjects'


def test_published_figures_sit_beside_ours_marked_and_never_mixed(wild):
    page = wild["page"]
    models_at, published_at = page.index("<h2>Models: pooled"), page.index(f"<h2>{html.escape(PUBLISHED_TITLE)}</h2>")
    assert models_at < published_at < page.index("<h2>The paper&#x27;s claims") < page.index("<h2>Summary</h2>")
    section = _section(page, PUBLISHED_TITLE)
    header = [html.unescape(h) for h in re.findall(r"<th>(.*?)</th>", section)]
    assert header == ["figures", "model", "UAR", "WAR", "UAR pooled [CI]", "WAR pooled [CI]", "source", "note"]
    assert "UAR and WAR: mean ± std over the 5 official folds (this run); as their papers report them (published: " \
           "the mean over the official folds" in section and "95% interval by video" in section
    rows = _rows(section)
    assert [(r[0], r[1]) for r in rows] == [("this run", "res_att"), ("this run", "c3d"), ("published", "C3D"),
                                            ("published", "MAE-DFER")]
    assert rows[2][2:] == ["42.74", "53.54", "–", "–", "Jiang et al., ACM MM 2020 (DFEW)", ""]
    assert rows[3][6:] == ["Sun et al., ACM MM 2023", "self-supervised pretraining"]
    # This run's rows: the fold mean ± std of the metrics stage, then the pooled figure with its interval.
    summary = load_metrics(wild["metrics"])[0]["summary"].set_index("model")
    r = summary.loc["res_att"]
    assert rows[0][2] == f"{100 * r['uar_fold_mean']:.1f} ± {100 * r['uar_fold_std']:.1f}"
    assert rows[0][4].startswith(f"{100 * r['uar']:.1f} [")
    # Published figures never enter this run's tables, figures or printed lines.
    models = _section(page, "Models: pooled over all test videos (%)")
    assert "MAE-DFER" not in models and "42.74" not in models
    assert "MAE-DFER" not in page.replace(section, "")
    assert "UAR, mean ± std over the 5 official folds" in models
    # The same table as its own file, for Snakemake's report.
    assert _rows((wild["out"] / "published.html").read_text()) == rows


def test_without_published_figures_there_is_no_published_table(report):
    out, _ = report
    assert "published" not in (out / "index.html").read_text().lower()
    rows = _rows((out / "published.html").read_text())  # the declared file: this run's rows only
    assert [(r[0], r[1]) for r in rows] == [("this run", m) for m in MODELS]

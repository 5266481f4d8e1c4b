# Config validation and input functions. No rules here.
import functools
import json
import os
from pathlib import Path

import pandas as pd
import yaml
from snakemake.utils import validate

from video_emotion.io import safe_name
from video_emotion.report import FIGURES as REPORT_FIGURES


def _typed(value):
    """`--config section={key: 3}` reaches us with every nested scalar as a string (Snakemake reads it with YAML's
    BaseLoader); read such strings again with the full YAML loader so that 3 is a number and true a boolean."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    return yaml.safe_load(value) if isinstance(value, str) and value.strip() else value


# Only sections given with --config: strings in config files are meant as strings (subject "01" stays "01").
for _key, _value in workflow.config_settings.overwrite_config.items():
    if isinstance(_value, dict):
        config[_key] = {**config[_key], **_typed(_value)}

validate(config, schema="../schemas/config.schema.yaml")

DEMO = config["dataset"] == "demo"
DATASET_ROOT = "resources/demo" if DEMO else config["dataset_root"]
if DATASET_ROOT is None:
    raise ValueError(
        f"config: dataset '{config['dataset']}' needs dataset_root, e.g. "
        f"--config dataset_root=/data/{config['dataset']}"
    )
MODELS = config["models"]


wildcard_constraints:
    video_id=r"[A-Za-z0-9_.-]+",
    shard=r"[A-Za-z0-9_.-]+",
    model=r"[a-z0-9_]+",
    fold=r"\d+",


def as_json(section):
    """A config section as the --params argument of a CLI call (compared by value for params-based reruns)."""
    return json.dumps(section, sort_keys=True)


@functools.cache
def _read_manifest(path, mtime):
    return pd.read_parquet(path, columns=["video_id", "path", "shard", "fold"]).set_index("video_id")


def manifest():
    """The manifest table, once the manifest checkpoint has run (re-read only when the file changes)."""
    path = checkpoints.manifest.get().output.manifest
    return _read_manifest(path, os.stat(path).st_mtime_ns)


# For a CSV dataset the paths are relative to the CSV file's folder.
DATASET_ROOT_DIR = os.path.dirname(DATASET_ROOT) if config["dataset"] == "csv" else DATASET_ROOT


@functools.cache
def _shards(path, mtime):
    """shard -> (video files, video ids), in manifest order."""
    m = _read_manifest(path, mtime)
    full = [p if os.path.isabs(p) else os.path.join(DATASET_ROOT_DIR, p) for p in m["path"]]
    shards = {}
    for vid, video, shard in zip(m.index, full, m["shard"]):
        paths, ids = shards.setdefault(shard, ([], []))
        paths.append(video)
        ids.append(vid)
    return shards


def _shard(wildcards):
    path = checkpoints.manifest.get().output.manifest
    return _shards(path, os.stat(path).st_mtime_ns)[wildcards.shard]


def shard_videos(wildcards):
    """The video files of one shard: the inputs of its frames job."""
    return _shard(wildcards)[0]


def shard_ids(wildcards):
    """The video ids of one shard, in the order of shard_videos."""
    return _shard(wildcards)[1]


def all_faces(wildcards):
    return [f"results/faces/{shard}.h5" for shard in sorted(manifest()["shard"].unique())]


def all_faces_qc(wildcards):
    return [f"results/faces/{shard}_qc.parquet" for shard in sorted(manifest()["shard"].unique())]


def folds():
    """Test folds present in the manifest (a fold id < 0 marks videos that are never tested)."""
    return sorted(int(f) for f in manifest()["fold"].unique() if f >= 0)


def all_predictions(wildcards):
    return expand(
        "results/predictions/model={model}/fold={fold}/predictions.parquet", model=MODELS, fold=folds()
    )


def all_histories(wildcards):
    return expand("results/models/{model}/fold{fold}/history.parquet", model=MODELS, fold=folds())


def all_checkpoints(wildcards):
    return expand("results/models/{model}/fold{fold}/best.pt", model=MODELS, fold=folds())


def faces_gpus(wildcards):
    """1 when face-alignment runs on CUDA (config faces.device), else 0: what a cluster job must ask for."""
    return int(str(config["faces"]["device"]).startswith("cuda"))


def train_params(wildcards):
    """Everything training needs, plus the preprocessing settings that travel with the checkpoint to `predict`."""
    return as_json(
        {
            "train": config["train"],
            "model_kwargs": config["model_kwargs"].get(wildcards.model, {}),
            "folds": config["folds"],
            "classes": config["classes"],
            "frames": {k: config["frames"][k] for k in ("fps", "height")},
            "faces": config["faces"],
            "cache": config["cache"],
        }
    )


PREDICT = {safe_name(Path(v).stem): v for v in config["predict"]["videos"]}


def predict_video(wildcards):
    return PREDICT[wildcards.name]


def predict_checkpoint():
    return config["predict"]["checkpoint"] or f"results/models/{MODELS[0]}/fold0/best.pt"


def final_outputs(wildcards):
    outputs = ["results/report/index.html", "results/metrics/summary.parquet"]
    outputs += expand("results/predict/{name}.timeline.parquet", name=PREDICT)
    return outputs


def print_summary():
    """The video-level accuracy of each model, averaged over the test folds, at the end of a run."""
    path = Path("results/metrics/summary.parquet")
    if not path.exists():
        return
    summary = pd.read_parquet(path)
    print("\nvideo-level accuracy over subject-independent folds (results/metrics/summary.parquet):")
    for row in summary.itertuples():
        print(f"  {row.model:<10} {100 * row.accuracy_mean:5.1f}% +- {100 * row.accuracy_std:4.1f}"
              f"  (UAR {100 * row.uar_mean:5.1f}%, {row.n_folds} folds, {row.n_videos} videos)")
    print("report: results/report/index.html")

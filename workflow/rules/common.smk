# Config validation and input functions. No rules here.
import functools
import json
import os
from pathlib import Path

import pandas as pd
import yaml
from snakemake.utils import validate

from video_emotion.io import safe_name
from video_emotion.metrics import summary_lines


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


def video_path(wildcards):
    path = manifest().at[wildcards.video_id, "path"]
    return path if os.path.isabs(path) else os.path.join(DATASET_ROOT_DIR, path)


# For a CSV dataset the paths are relative to the CSV file's folder.
DATASET_ROOT_DIR = os.path.dirname(DATASET_ROOT) if config["dataset"] == "csv" else DATASET_ROOT


def shard_frames(wildcards):
    m = manifest()
    ids = m.index[m["shard"] == wildcards.shard]
    return [f"results/frames/{vid}" for vid in ids]


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
            "frames": config["frames"],
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
    """Each model's pooled WAR and UAR with intervals, the baselines and the paired comparisons, at the end of a run."""
    summary, comparisons = Path("results/metrics/summary.parquet"), Path("results/metrics/comparisons.parquet")
    if not summary.exists():
        return
    comparisons = pd.read_parquet(comparisons) if comparisons.exists() else pd.DataFrame()
    print("\nvideo-level results, pooled over all test videos (results/metrics/summary.parquet):")
    for line in summary_lines(pd.read_parquet(summary), comparisons):
        print(f"  {line}")
    print("report: results/report/index.html")

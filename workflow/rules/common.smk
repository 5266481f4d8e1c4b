# Config resolution and validation, input functions. No rules here.
import functools
import json
import os
import shlex
import sys
from pathlib import Path

import pandas as pd

# The workflow and its jobs run the library from this source tree, installed or not (with --sdm conda, the envs/
# hold only third-party packages): on sys.path here, on PYTHONPATH for the jobs (`python -m video_emotion`).
SRC = os.path.join(workflow.basedir, "src")
sys.path.insert(0, SRC)
shell.prefix("set -euo pipefail; export PYTHONPATH=" + shlex.quote(SRC) + "${{PYTHONPATH:+:$PYTHONPATH}}; ")

from video_emotion.config import FINETUNE_KEYS, ConfigError, deep_merge, load_yaml, model_specs, resolve, typed
from video_emotion.datasets import DatasetError, clip_source, source_path
from video_emotion.io import read_parquet, unique_names
from video_emotion.metrics import summary_lines

_HERE = Path(workflow.current_basedir)


def _resolve_config():
    """The run's config, resolved once by video_emotion.config.resolve (see the schema's description).

    Snakemake has deep-merged config.yaml, every --configfile and --config into `config`; --config values reach it
    as strings, so they are read again as YAML values and merged by the same rule."""
    user = deep_merge(config, typed(workflow.config_settings.overwrite_config))
    try:
        return resolve(
            user, load_yaml(_HERE / "../schemas/config.schema.yaml"), load_yaml(_HERE / "../presets/demo.yaml")
        )
    except ConfigError as err:
        raise SystemExit(f"video-emotion: {err}") from None


_resolved = _resolve_config()  # before the clear: it reads the config Snakemake loaded
config.clear()
config.update(_resolved)

# `--until STAGE` for a stage whose jobs are known only once the checkpoints (video list, folds) have run; Snakemake
# would find no such job before them and schedule nothing. Snakemake sets the DAG settings after this file is read;
# as they arrive, each such rule is replaced by the rule without wildcards that gathers its outputs, which is a target
# of its own: Snakemake then finds the jobs through the checkpoints and runs them, the gathering job, and no more.
# Snakemake 9 has no supported way to do this; the hook relies on its internals (Workflow.dag_settings, assigned after
# this file is read), so Snakemake is pinned by the lock (constraints.txt) and tests/test_install.py fails the day a
# release breaks it.
UNTIL_GATHERED = {"frames": "frames_index", "faces": "faces_qc", "train": "train_runs", "evaluate": "metrics"}


class _UntilThroughCheckpoints(type(workflow)):
    @property
    def dag_settings(self):
        return self.__dict__.get("_dag_settings")

    @dag_settings.setter
    def dag_settings(self, settings):
        if settings is not None and settings.until:
            settings.until = frozenset(UNTIL_GATHERED.get(r, r) for r in settings.until)
        self.__dict__["_dag_settings"] = settings


_settings = workflow.__dict__.pop("dag_settings", None)
workflow.__class__ = _UntilThroughCheckpoints
workflow.dag_settings = _settings


DEMO = config["dataset"] == "demo"
DATASET_ROOT = "resources/demo" if DEMO else config["dataset_root"]
# Videos go through ffmpeg (the frames rule); a dataset of frame folders (DFEW, FERV39k, MAFW) goes straight to the
# faces stage, which takes its face crops as they are unless faces.aligned is false (null: what the dataset says).
try:
    CLIP_SOURCE = clip_source(config["dataset"], config["dataset_options"])
except DatasetError as err:
    raise SystemExit(f"video-emotion: {err}") from None
IMAGES = CLIP_SOURCE.kind == "frames"
ALIGNED = config["faces"]["aligned"]
FACES = {**config["faces"], "aligned": CLIP_SOURCE.aligned if ALIGNED is None else ALIGNED}
MODELS = list(config["models"])
MODEL_SPECS = model_specs(config)
SEEDS = list(config["seeds"])
# An init file that is not there stops the run before any job, naming each with the fix (a pretrain run's
# checkpoint is built by this DAG).
_ABSENT = [
    f"{m} ({spec['init']['path']})"
    for m, spec in MODEL_SPECS.items()
    if m in MODELS and "init" in spec and "run" not in spec["init"] and not os.path.exists(spec["init"]["path"])
]
if _ABSENT:
    raise SystemExit(
        f"video-emotion: the init files of {', '.join(_ABSENT)} are missing; put them there (README: Pretrained "
        "initialisation says where each is published), or leave those models out of `models` (--config "
        '"models=[...]")'
    )


wildcard_constraints:
    video_id=r"[A-Za-z0-9_.-]+",
    shard=r"[A-Za-z0-9_.-]+",
    model=r"[a-z0-9_]+",
    seed=r"\d+",
    fold=r"\d+",


def as_json(section):
    """A config section as the --params argument of a CLI call (compared by value for params-based reruns)."""
    return json.dumps(section, sort_keys=True)


@functools.cache
def _read_table(path, mtime, columns):
    return read_parquet(path, columns=list(columns))


def manifest():
    """The video list (manifest checkpoint): one row per video, indexed by video_id. It holds no folds."""
    path = checkpoints.manifest.get().output.manifest
    return _read_table(path, os.stat(path).st_mtime_ns, ("video_id", "path", "shard")).set_index("video_id")


def folds():
    """Test folds of the fold assignment (folds checkpoint); a fold id < 0 marks videos that are never tested."""
    path = checkpoints.folds.get().output[0]
    table = _read_table(path, os.stat(path).st_mtime_ns, ("fold",))
    return sorted(int(f) for f in table["fold"].unique() if f >= 0)


@functools.cache
def _videos_by_shard(path, mtime):
    """shard -> (video files, video ids), in manifest order."""
    m = _read_table(path, mtime, ("video_id", "path", "shard"))
    base = str(source_path(DATASET_ROOT, ""))  # the folder manifest paths are relative to
    shards = {}
    for vid, video, shard in zip(m["video_id"], m["path"], m["shard"]):
        files, ids = shards.setdefault(shard, ([], []))
        files.append(os.path.join(base, video))
        ids.append(vid)
    return shards


def _shard(wildcards):
    path = checkpoints.manifest.get().output.manifest
    return _videos_by_shard(path, os.stat(path).st_mtime_ns)[wildcards.shard]


def shard_videos(wildcards):
    """The video files of one shard: the inputs of its frames job."""
    return _shard(wildcards)[0]


def shard_ids(wildcards):
    """The video ids of one shard, in the order of shard_videos."""
    return _shard(wildcards)[1]


def _shards():
    return sorted(manifest()["shard"].unique())


def all_frames(wildcards):
    return [] if IMAGES else [f"results/frames/{shard}" for shard in _shards()]


def shard_frames(wildcards):
    """The frames folder of a shard's faces job; none for a dataset of frame folders (its manifest names them)."""
    return [] if IMAGES else f"results/frames/{wildcards.shard}"


def faces_source(wildcards):
    """Where a shard's faces job reads its frames: the frames stage's folder, or the dataset's frame folders."""
    folder = DATASET_ROOT if IMAGES else f"results/frames/{wildcards.shard}"
    return f"{'--images ' if IMAGES else ''}--frames-root {shlex.quote(str(folder))}"


def all_faces(wildcards):
    return [f"results/faces/{shard}.h5" for shard in _shards()]


def all_faces_qc(wildcards):
    return [f"results/faces/{shard}_qc.parquet" for shard in _shards()]


def _runs(pattern):
    return expand(pattern, model=MODELS, seed=SEEDS, fold=folds())


def all_predictions(wildcards):
    return _runs("results/predictions/model={model}/seed={seed}/fold={fold}/predictions.parquet")


def all_histories(wildcards):
    return _runs("results/models/{model}/seed{seed}/fold{fold}/history.parquet")


def all_checkpoints(wildcards):
    return _runs("results/models/{model}/seed{seed}/fold{fold}/best.pt")


def attention_checkpoints(wildcards):
    """best.pt of the first model's first seed, one per fold: whose attention maps the report shows."""
    return expand("results/models/{model}/seed{seed}/fold{fold}/best.pt", model=MODELS[0], seed=SEEDS[0], fold=folds())


def faces_gpus(wildcards):
    """1 when face-alignment runs on CUDA (config faces.device), else 0: what a cluster job must ask for."""
    return int(str(config["faces"]["device"]).startswith("cuda"))


def train_params(wildcards):
    """Everything one training run depends on, plus the preprocessing settings that travel with the checkpoint to
    `predict`. A change in any of it reruns that training (and the run starts afresh: see train.py)."""
    spec = MODEL_SPECS[wildcards.model]
    train = {**config["train"], **spec["train"], "seed": int(wildcards.seed)}
    if "init" not in spec:  # the fine-tuning controls act on models with an init only: a change reruns only those
        train = {k: v for k, v in train.items() if k not in FINETUNE_KEYS}
    return as_json(
        {
            "train": train,
            **({"init": spec["init"]} if "init" in spec else {}),
            "arch": spec["arch"],
            "model_kwargs": spec["kwargs"],
            "folds": {k: config["folds"][k] for k in ("val_subjects", "seed")},
            "classes": config["classes"],
            "dataset": config["dataset"],
            "frames": {k: config["frames"][k] for k in ("fps", "height")},
            "faces": config["faces"],
            "cache": config["cache"],
        }
    )


def train_init(wildcards):
    """The init file of the model (model_variants.<name>.init), an input of its training jobs; none for the others."""
    spec = MODEL_SPECS[wildcards.model]
    return [spec["init"]["path"]] if "init" in spec else []


PREDICT = unique_names(config["predict"]["videos"])


def predict_video(wildcards):
    return PREDICT[wildcards.name]


def predict_checkpoint():
    return config["predict"]["checkpoint"] or f"results/models/{MODELS[0]}/seed{SEEDS[0]}/fold0/best.pt"


def final_outputs(wildcards):
    outputs = ["results/config.yaml", "results/report/index.html", "results/metrics/summary.parquet"]
    outputs += expand("results/predict/{name}.timeline.parquet", name=PREDICT)
    return outputs


def invalidate_final_outputs():
    """Remove the metrics summary and the report page (cheap to rebuild) after a failed run."""
    for path in ("results/metrics/summary.parquet", "results/report/index.html"):
        Path(path).unlink(missing_ok=True)


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

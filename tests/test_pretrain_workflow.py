"""Pretrain, then fine-tune, in one DAG: a config pretrains on one generated dataset and fine-tunes on another; the
fine-tuning jobs take the pretraining checkpoint as a declared input; an unchanged init file continues, a changed one
trains afresh."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from video_emotion.io import read_parquet_metadata

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--cores", "2"]
DATA = {"folds": {"scheme": "kfold", "k": 3, "val_subjects": 1}, "frames": {"fps": 10, "height": 180},
        "faces": {"crop_size": 32}, "cache": {"clip_len": 4}}
DEMO = {"subjects": 3, "sentences": 1, "seconds": 1.2, "fps": 25, "width": 240, "height": 180}
CONFIG = {
    "dataset": "demo", "demo": {**DEMO, "seed": 0}, **DATA,
    "models": ["res_att_ft"], "seeds": [0],
    "model_kwargs": {"res_att": {"width": 4, "layers": [1, 1, 1, 1]}},
    "model_variants": {"res_att_ft": {"arch": "res_att", "init": {"run": "other", "min_matched": 1.0}}},
    "pretrain": {"other": {"demo": {**DEMO, "seed": 1}, **DATA, "train": {"epochs": 1, "batch_size": 8}}},
    "train": {"epochs": 2, "batch_size": 8, "freeze_stages": 1, "freeze_epochs": 1, "pretrained_lr_mult": 0.5},
}
TARGET = "results/models/histories.parquet"  # every training run
INIT = "results/pretrain/other/results/models/res_att/seed0/fold0/best.pt"


def snakemake(work: Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run([*SNAKEMAKE, "--directory", str(work), *args], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc.stdout + proc.stderr


def train_logs(work: Path) -> str:
    return "".join(p.read_text() for p in sorted((work / "logs" / "train").glob("*.log")))


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("pretrain")
    (work / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    snakemake(work, TARGET)
    return work


@pytest.mark.slow
def test_pretrains_on_one_dataset_and_fine_tunes_on_another(work: Path) -> None:
    pre = torch.load(work / INIT, weights_only=True)
    for fold in (0, 1, 2):
        run = work / f"results/models/res_att_ft/seed0/fold{fold}"
        ckpt = torch.load(run / "best.pt", weights_only=True)
        assert ckpt["cache_hash"] != pre["cache_hash"]  # another dataset
        report = ckpt["init"]
        assert report["path"] == INIT and report["kind"] == "checkpoint" and report["matched_share"] == 1.0
        assert report["head"].startswith("carried over")
        assert read_parquet_metadata(run / "history.parquet")["init"]["sha256"] == report["sha256"]
    assert "init checkpoint " + INIT in train_logs(work)
    assert len(pd.read_parquet(work / TARGET)) == 6  # 3 folds x 2 epochs
    assert (work / "results/pretrain/other/config.yaml").exists()
    assert (work / "results/pretrain/other/logs/train/res_att_seed0_fold0.log").exists()
    assert "Nothing to be done" in snakemake(work, "-n", TARGET)


@pytest.mark.slow
def test_the_same_init_continues_and_another_trains_afresh(work: Path) -> None:
    before = torch.load(work / "results/models/res_att_ft/seed0/fold0/best.pt", weights_only=True)["model"]
    # The pretraining job again: its run writes the same weights into a new file; the fine-tuning jobs run again
    # (their input changed on disk) and continue from last.pt, where they had finished: nothing retrains.
    init_bytes = (work / INIT).read_bytes()
    out = snakemake(work, "--forcerun", "pretrain_other", "--", TARGET)
    assert "rule pretrain_other" in out and (work / INIT).read_bytes() != init_bytes
    logs = train_logs(work)
    assert logs.count("continuing") == 3 and "set aside" not in logs
    after = torch.load(work / "results/models/res_att_ft/seed0/fold0/best.pt", weights_only=True)["model"]
    assert all(torch.equal(before[k], after[k]) for k in before)

    ckpt = torch.load(work / INIT, weights_only=True)  # another pretrained file
    ckpt["model"]["stem.conv.weight"] += 0.01
    torch.save(ckpt, work / INIT)
    out = snakemake(work, TARGET)
    assert out.count("Updated input files: " + INIT) == 3
    logs = train_logs(work)
    assert logs.count("init.weights_sha256") == 3 and logs.count("training starts at epoch 1") == 3

"""The workflow on a SLURM cluster: workflow/profiles/slurm through snakemake-executor-plugin-slurm.

- a dry run of the eNTERFACE'05 preset (an empty placeholder tree) lists what every job asks SLURM for;
- the tiny demo DAG runs through a real single-node SLURM started on this machine (tests/slurm/cluster.py) and gives
  the same predictions as a local run with the same threads per job; its frame jobs reach SLURM as group jobs.

The second test needs Debian's slurm-wlm and munge (.ci/install-slurm.sh) and root; it is skipped, saying why,
without them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from video_emotion.datasets.placeholder import make_enterface_tree

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "workflow" / "profiles" / "slurm"
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile")]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from slurm.cluster import LocalSlurm, missing  # noqa: E402

pytest.importorskip("snakemake_executor_plugin_slurm", reason="snakemake-executor-plugin-slurm is not installed")

from test_workflow import TINY  # noqa: E402  (the tiny demo of the local end-to-end test)


def profile() -> dict:
    return yaml.safe_load((PROFILE / "profile.yaml").read_text())


def run(workdir: Path, *args: str, env: dict | None = None, timeout: int = 1200) -> subprocess.CompletedProcess:
    cmd = [*SNAKEMAKE, "--directory", str(workdir), *args]
    env = dict(env or os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # video-emotion, also in jobs
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-10000:]}")
    return proc


def job_resources(dry_run_output: str) -> dict[str, set[str]]:
    """rule -> the distinct `resources:` lines of its jobs in a dry run's listing."""
    out: dict[str, set[str]] = {}
    rule = None
    for line in dry_run_output.splitlines():
        line = line.strip()
        if line.startswith(("rule ", "localrule ", "checkpoint ")) and line.endswith(":"):
            rule = line.split()[1].rstrip(":")
        elif line.startswith("resources:") and rule:
            out.setdefault(rule, set()).add(line)
    return out


def test_dry_run_on_the_enterface05_preset_lists_each_jobs_requests(tmp_path: Path) -> None:
    data, work = tmp_path / "enterface05", tmp_path / "work"
    make_enterface_tree(data)
    preset = ["--configfile", str(ROOT / "workflow" / "presets" / "enterface05.yaml"), "--config",
              f"dataset_root={data}"]
    run(work, "results/manifest.parquet", "results/folds.parquet", "--cores", "1", *preset)  # the checkpoints
    first = run(work, "--profile", str(PROFILE), "-n", *preset).stdout
    stats = dict(line.split() for line in first.split("Job stats:")[1].splitlines()[3:] if len(line.split()) == 2)
    manifest = pd.read_parquet(work / "results" / "manifest.parquet", columns=["subject", "shard"])
    shards = manifest["shard"].nunique()  # the 44 subjects, packed into shards of 64 videos or more
    assert shards < manifest["subject"].nunique() == 44
    assert int(stats["frames"]) == shards and int(stats["faces"]) == shards and int(stats["train"]) == 30, stats
    # A dry run details the frame jobs (one per shard) and stops there; with (empty) frame folders in place the
    # next one details everything downstream.
    for shard in manifest["shard"].unique():
        (work / "results" / "frames" / shard).mkdir(parents=True)
    second = run(work, "--profile", str(PROFILE), "-n", *preset).stdout
    requests = job_resources(first) | job_resources(second)
    assert {"frames", "faces", "cache", "train", "evaluate", "metrics", "report"} <= set(requests), requests
    for rule, lines in requests.items():
        for line in lines:
            assert "mem_mb=" in line and "runtime=" in line and "gpu=" in line, (rule, line)
    assert all("gpu=1" in line for line in requests["train"] | requests["evaluate"])
    assert all("gpu=0" in line for line in requests["frames"] | requests["cache"] | requests["report"])
    assert requests["train"] == {r for r in requests["train"] if "mem_mb=32000" in r and "runtime=720" in r}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    from video_emotion.demo import make_demo

    data = tmp_path_factory.mktemp("data")
    make_demo(data, **TINY["demo"])
    return data


def workdir(base: Path, data: Path) -> Path:
    base.mkdir(parents=True)
    # One model; frames kept (a real dataset's are removed after faces) so that the shards can be counted.
    config = {**TINY, "models": ["res_att"], "frames": {**TINY["frames"], "keep": True}, "dataset_root": str(data)}
    (base / "config.yaml").write_text(yaml.safe_dump(config))
    return base


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    why = missing()
    if why:
        pytest.skip(f"no local SLURM cluster: {why}")
    slurm = LocalSlurm(tmp_path_factory.mktemp("slurm"))
    slurm.start()
    yield slurm
    slurm.stop()


@pytest.fixture(scope="module")
def slurm_run(cluster: LocalSlurm, dataset: Path, tmp_path_factory) -> Path:
    work = workdir(tmp_path_factory.mktemp("cluster") / "run", dataset)
    run(work, "--profile", str(PROFILE),
        # a test cluster has no accounting database (sacct); finished jobs stay in squeue (MinJobAge)
        "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2",
        env=cluster.env)
    return work


@pytest.fixture(scope="module")
def local_run(dataset: Path, tmp_path_factory) -> Path:
    work = workdir(tmp_path_factory.mktemp("local") / "run", dataset)
    # The same threads per job as the profile gives them (torch's CPU results depend on the thread count).
    threads = [f"{rule}={n}" for rule, n in profile()["set-threads"].items()]
    run(work, "--cores", str(profile()["cores"]), "--set-threads", *threads)
    return work


def predictions(work: Path) -> pd.DataFrame:
    df = pd.read_parquet(work / "results" / "predictions")
    return df.sort_values(["model", "fold", "video_id"]).reset_index(drop=True)


def slurm_jobs(cluster: LocalSlurm) -> pd.DataFrame:
    """Every job the cluster has seen (finished ones stay listed for MinJobAge): id, comment (rule), CPUs, memory."""
    out = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i|%k|%C|%m|%T"], capture_output=True, text=True,
                         env=cluster.env, check=True).stdout
    rows = [line.split("|") for line in out.splitlines() if line.strip()]
    return pd.DataFrame(rows, columns=["id", "comment", "cpus", "mem", "state"])


@pytest.mark.slow
def test_demo_dag_through_slurm_equals_a_local_run(slurm_run: Path, local_run: Path) -> None:
    assert (slurm_run / "results" / "report" / "index.html").exists()
    got, want = predictions(slurm_run), predictions(local_run)
    assert len(got) == len(want) == 18
    assert got["video_id"].tolist() == want["video_id"].tolist()
    assert got["pred"].astype(str).tolist() == want["pred"].astype(str).tolist()
    probs = [c for c in want.columns if c.startswith("p_")]
    np.testing.assert_allclose(got[probs].to_numpy(), want[probs].to_numpy(), atol=1e-6)


@pytest.mark.slow
def test_slurm_got_one_frames_job_per_shard_and_the_profiles_requests(slurm_run: Path, cluster: LocalSlurm) -> None:
    jobs = slurm_jobs(cluster)
    assert (jobs["state"] == "COMPLETED").all(), jobs
    shards = len(list((slurm_run / "results" / "frames").iterdir()))
    videos = len(list((slurm_run / "results" / "frames").glob("*/*/meta.json")))
    frame_jobs = jobs[jobs["comment"].str.startswith("rule_frames")]
    assert len(frame_jobs) == shards < videos, (shards, videos, jobs)
    train = jobs[jobs["comment"].str.startswith("rule_train")]
    assert len(train) == 3
    assert (train["cpus"].astype(int) == profile()["set-threads"]["train"]).all(), train

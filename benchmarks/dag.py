"""Manifest and dry-run DAG on an eNTERFACE'05-sized tree of placeholder videos (zero-byte files, nothing decoded).

    python benchmarks/dag.py [--keep DIR]

Builds ~1,290 placeholder files across 44 subjects in the real archive's layout, times ``build_manifest`` on it,
then (when the workflow is there) builds the manifest with Snakemake and times ``snakemake -n`` of the whole
per-video DAG with the eNTERFACE'05 preset. Prints one table with each limit beside the measured figure.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from video_emotion.datasets import build_manifest
from video_emotion.datasets.placeholder import make_enterface_tree

REPO = Path(__file__).resolve().parents[1]
MANIFEST_LIMIT_S = 2.0
DRY_RUN_LIMIT_S = 10.0


def time_manifest(root: Path, repeats: int = 5) -> tuple[float, int]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        manifest, _ = build_manifest("enterface05", root)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), len(manifest)


def snakemake(work: Path, root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(work),
           "--configfile", str(REPO / "workflow/presets/enterface05.yaml"),
           "--config", f"dataset_root={root}", "--cores", "1", *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)


def time_dry_run(work: Path, root: Path, repeats: int = 2) -> tuple[float | None, str]:
    built = snakemake(work, root, "results/manifest.parquet")
    if built.returncode != 0:
        return None, "manifest rule failed: " + built.stderr.strip().splitlines()[-1]
    times, jobs = [], ""
    for _ in range(repeats):
        t0 = time.perf_counter()
        dry = snakemake(work, root, "-n", "--quiet", "rules")
        times.append(time.perf_counter() - t0)
        if dry.returncode != 0:
            return None, "dry run failed: " + dry.stderr.strip().splitlines()[-1]
        jobs = next((line.split()[-1] for line in dry.stdout.splitlines() if line.startswith("total")), "?")
    return max(times), f"{jobs} jobs, slower of {repeats} runs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="build the tree here and keep it (default: a temporary folder)")
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="dag-bench-"))
    root, work = base / "enterface05", base / "work"
    try:
        n_files = make_enterface_tree(root, gaps=True)
        seconds, n_videos = time_manifest(root)
        rows = [("build_manifest", f"{seconds:.3f} s", f"{MANIFEST_LIMIT_S:.1f} s",
                 f"{n_videos} videos of {n_files} files, median of 5")]
        if (REPO / "Snakefile").exists():
            dry, note = time_dry_run(work, root)
            rows.append(("snakemake -n (enterface05 preset)", f"{dry:.2f} s" if dry is not None else "n/a",
                         f"{DRY_RUN_LIMIT_S:.1f} s", note))
        else:
            rows.append(("snakemake -n (enterface05 preset)", "n/a", f"{DRY_RUN_LIMIT_S:.1f} s",
                         "TODO: no Snakefile yet"))
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    print(f"{'step':<36} {'measured':>10} {'limit':>8}  note")
    for step, measured, limit, note in rows:
        print(f"{step:<36} {measured:>10} {limit:>8}  {note}")


if __name__ == "__main__":
    main()

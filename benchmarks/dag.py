"""Manifest and dry-run DAG at dataset scale, on trees of placeholder videos (zero-byte files, nothing decoded).

    python benchmarks/dag.py [--sizes 1287 7442 16000] [--repeats 3] [--keep DIR]

1,287 videos: eNTERFACE'05's own layout (44 subjects) with the enterface05 preset. Larger sizes (7,442 is CREMA-D's
count, 16,000 about DFEW's): a CSV dataset of ``--per-subject`` videos per subject with the same preset's models and
5 folds. For each, ``build_manifest`` is timed, the manifest is built with Snakemake, and ``snakemake -n`` of the
whole DAG is timed: the median of ``repeats`` runs (the machine is shared; the slowest run would measure its load),
in CPU time (the dry run is one single-threaded process: its CPU time is its wall time on an idle machine) and wall
time. A one-rule workflow's ``snakemake -n`` gives Snakemake's own start-up in the same run. Limits: build_manifest
<= 2 s at eNTERFACE size; ``snakemake -n`` <= 5 s CPU at 16,000 videos.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from bench import Clock, Table, median  # noqa: E402

from video_emotion.datasets import build_manifest  # noqa: E402
from video_emotion.datasets.placeholder import make_enterface_tree  # noqa: E402
from video_emotion.labels import EMOTIONS  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MANIFEST_LIMIT_S = 2.0
DRY_RUN_LIMIT_S = 5.0  # at 16,000 videos


def placeholder_csv(folder: Path, n_videos: int, per_subject: int = 30) -> Path:
    """``n_videos`` zero-byte videos in ``per_subject``-video subjects, listed in a CSV dataset file."""
    lines = ["path,label,subject"]
    for i in range(n_videos):
        subject = f"s{i // per_subject}"
        path = folder / subject / f"v{i}.avi"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        lines.append(f"{subject}/v{i}.avi,{EMOTIONS[i % 6]},{subject}")
    (folder / "videos.csv").write_text("\n".join(lines) + "\n")
    return folder / "videos.csv"


def snakemake(work: Path, config: list[str], *args: str, snakefile: Path = REPO / "Snakefile"):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    cmd = [sys.executable, "-m", "snakemake", "-s", str(snakefile), "-d", str(work), "--cores", "1", *args,
           *config]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)


def time_dry_run(work: Path, config: list[str], repeats: int, snakefile: Path = REPO / "Snakefile"):
    """(median wall seconds, median CPU seconds, jobs) of ``snakemake -n``."""
    clocks, jobs = [], "?"
    for _ in range(repeats):
        with Clock() as clock:
            dry = snakemake(work, config, "-n", "--quiet", "rules", snakefile=snakefile)
        clocks.append(clock)
        if dry.returncode != 0:
            raise RuntimeError("dry run failed: " + dry.stderr.strip()[-2000:])
        jobs = next((line.split()[-1] for line in dry.stdout.splitlines() if line.startswith("total")), "?")
    return median(c.wall for c in clocks), median(c.cpu for c in clocks), jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1287, 7442, 16000])
    parser.add_argument("--per-subject", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="build the trees here and keep them (default: a temporary folder)")
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="dag-bench-"))
    preset = ["--configfile", str(REPO / "workflow/presets/enterface05.yaml")]
    table = Table("dag", f"median of {args.repeats} runs; enterface05 preset (6 models x 5 folds)")
    try:
        one = base / "one-rule"
        one.mkdir(parents=True, exist_ok=True)
        (one / "Snakefile").write_text("rule all:\n    shell: 'true'\n")
        wall, cpu, _ = time_dry_run(one, [], args.repeats, snakefile=one / "Snakefile")
        table.row("snakemake -n, a one-rule workflow", cpu, unit="s CPU", note=f"{wall:.2f} s wall; Snakemake's "
                  "own start-up")
        for n in args.sizes:
            work = base / f"work{n}"
            if n == 1287:
                root = base / "enterface05"
                n_files = make_enterface_tree(root, gaps=True)
                t = []
                for _ in range(5):
                    t0 = time.perf_counter()
                    manifest, _, _ = build_manifest("enterface05", root)
                    t.append(time.perf_counter() - t0)
                table.row("build_manifest, eNTERFACE'05 tree", median(t), f"<= {MANIFEST_LIMIT_S}",
                          ok=median(t) <= MANIFEST_LIMIT_S, unit="s", note=f"{len(manifest)} of {n_files} files")
                config = [*preset, "--config", f"dataset_root={root}"]
            else:
                csv = placeholder_csv(base / f"csv{n}", n, args.per_subject)
                config = [*preset, "--config", f"dataset_root={csv}", "dataset=csv", "folds={scheme: kfold, k: 5}"]
            built = snakemake(work, config, "results/manifest.parquet", "results/folds.parquet")
            if built.returncode != 0:
                raise RuntimeError("manifest rule failed: " + built.stderr.strip()[-2000:])
            wall, cpu, jobs = time_dry_run(work, config, args.repeats)
            n_videos = len(pd.read_parquet(work / "results/manifest.parquet", columns=["video_id"]))
            judged = n >= 16000
            table.row(f"snakemake -n, {n_videos:,} videos", cpu, f"<= {DRY_RUN_LIMIT_S}" if judged else "-",
                      ok=cpu <= DRY_RUN_LIMIT_S if judged else None, unit="s CPU",
                      note=f"{wall:.2f} s wall; {jobs} jobs; {1000 * cpu / n_videos:.2f} ms CPU per video")
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    table.extra(sizes=args.sizes, per_subject=args.per_subject, repeats=args.repeats)
    sys.exit(table.finish())


if __name__ == "__main__":
    main()

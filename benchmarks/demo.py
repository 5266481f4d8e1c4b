"""Benchmark the whole demo, the first thing a user runs: set-up and the DAG from a fresh clone, wall and CPU per rule
(from Snakemake's benchmark files), and whether every model learned.

    python benchmarks/demo.py                  # clone this repository, `make setup`, then `make demo`, timed
    python benchmarks/demo.py --no-setup       # the DAG only, in a fresh folder, with this checkout's environment
    python benchmarks/demo.py --results DIR    # only read a finished run's results/ (its benchmark files, metrics)
    python benchmarks/demo.py --no-setup --tensorboard-cost   # the DAG twice, TensorBoard logging off, then on

The clone is of the committed HEAD (uncommitted changes are not in it). Wall time is judged on an otherwise idle
machine; the load average is recorded beside the figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from bench import Clock, Table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SETUP_LIMIT_S = 150.0  # `make setup` on a fresh clone
DAG_LIMIT_S = 360.0  # `make demo` once set up: the whole DAG on 2 cores
MODELS, SEEDS = 6, 2  # the paper's experiment in miniature
LEARNED = 2.0  # every model's pooled WAR at least this many times chance
FOLDS = 2
TENSORBOARD_COST = 1.03  # the DAG with TensorBoard logging on, at most this many times its wall time with it off
DETECTION_LIMIT = 0.95  # the faces stage finds the face in the demo's frames


def per_rule(results: Path) -> pd.DataFrame:
    """Jobs, summed wall and CPU seconds, and the longest job of each rule, from results/benchmarks/**.tsv."""
    rows = []
    for tsv in sorted((results / "benchmarks").rglob("*.tsv")):
        rule = tsv.relative_to(results / "benchmarks").parts[0].removesuffix(".tsv")
        t = pd.read_csv(tsv, sep="\t")
        rows.append({"rule": rule, "wall": float(t["s"].iloc[-1]), "cpu": float(t["cpu_time"].iloc[-1])})
    if not rows:
        raise SystemExit(f"no benchmark files under {results / 'benchmarks'}; run the demo first")
    table = pd.DataFrame(rows).groupby("rule").agg(jobs=("wall", "size"), wall=("wall", "sum"),
                                                   cpu=("cpu", "sum"), longest=("wall", "max"))
    return table.sort_values("wall", ascending=False)


def run(cmd: list[str], cwd: Path, log: Path) -> Clock:
    # the jobs' `python` is this interpreter, as `make demo` puts .venv/bin first on PATH
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    with open(log, "w") as out, Clock() as clock:
        proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed in {cwd} (exit {proc.returncode}); see {log}")
    return clock


def tensorboard_runs(results: Path) -> int:
    """Run folders (model/seed/fold) under results/tensorboard that hold event files."""
    return len({p.parent for p in (results / "tensorboard").glob("*/seed*/fold*/events.out.tfevents.*")})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-setup", action="store_true", help="run the DAG with this checkout's environment")
    parser.add_argument("--results", type=Path, help="read a finished run's results/ folder instead of running")
    parser.add_argument("--keep", action="store_true", help="keep the working folder")
    parser.add_argument("--tensorboard-cost", action="store_true",
                        help="with --no-setup: run the DAG first with train.tensorboard false, then as configured")
    args = parser.parse_args()
    if args.tensorboard_cost and not args.no_setup:
        parser.error("--tensorboard-cost runs the DAG twice with this checkout's environment: add --no-setup")

    table = Table("demo", "the whole demo (six models x two seeds x two folds) from a fresh start")
    work = args.results or Path(tempfile.mkdtemp(prefix="demo-bench-"))
    try:
        if args.results:
            results = args.results
        else:
            if args.no_setup:
                cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--cores", "all"]
                if args.tensorboard_cost:  # the same DAG in a folder of its own, without the event files
                    (work / "off").mkdir()
                    shutil.copy(ROOT / "config.yaml", work / "off" / "config.yaml")
                    off = run([*cmd, "--config", "train={tensorboard: false}"], work / "off", work / "off.log")
                    table.row("the DAG with train.tensorboard false, wall", off.wall, unit="s")
                shutil.copy(ROOT / "config.yaml", work / "config.yaml")
                dag = run(cmd, work, work / "dag.log")
                if args.tensorboard_cost:
                    table.row("  with TensorBoard logging / without it, wall", dag.wall / off.wall,
                              f"<= {TENSORBOARD_COST}", ok=dag.wall / off.wall <= TENSORBOARD_COST)
            else:
                subprocess.run(["git", "clone", "--quiet", str(ROOT), str(work / "clone")], check=True)
                work = work / "clone"
                setup = run(["make", "setup"], work, work.parent / "setup.log")
                table.row("make setup, wall", setup.wall, f"<= {SETUP_LIMIT_S:.0f}", ok=setup.wall <= SETUP_LIMIT_S,
                          unit="s")
                dag = run(["make", "demo"], work, work.parent / "dag.log")
            table.row("the DAG (make demo once set up), wall", dag.wall, f"<= {DAG_LIMIT_S:.0f}",
                      ok=dag.wall <= DAG_LIMIT_S, unit="s")
            table.row("  CPU, all processes", dag.cpu, unit="s")
            results = work / "results"

        rules = per_rule(results)
        for rule, r in rules.iterrows():
            table.row(f"  {rule}: {int(r.jobs)} job(s), wall (sum) / CPU (sum) / longest job", f"{r.wall:.1f} / "
                      f"{r.cpu:.1f} / {r.longest:.1f}", unit="s")
        qc = pd.concat([pd.read_parquet(f) for f in sorted((results / "faces").glob("*_qc.parquet"))])
        rate = float(qc["detection_rate"].mean())
        table.row(f"face found per frame, mean over {len(qc)} videos", rate, f">= {DETECTION_LIMIT}",
                  ok=rate >= DETECTION_LIMIT)
        summary = pd.read_parquet(results / "metrics" / "summary.parquet")
        table.row("models trained and evaluated", len(summary), f">= {MODELS}", ok=len(summary) >= MODELS)
        table.row("seeds per model (fewest)", int(summary["n_seeds"].min()), f">= {SEEDS}",
                  ok=summary["n_seeds"].min() >= SEEDS)
        runs = tensorboard_runs(results)
        table.row("TensorBoard runs (model x seed x fold)", runs, f">= {MODELS * SEEDS * FOLDS}",
                  ok=runs >= MODELS * SEEDS * FOLDS)
        for r in summary.itertuples():
            times = r.accuracy / r.chance
            table.row(f"{r.model}: pooled WAR / chance", times, f">= {LEARNED:.0f}", ok=times >= LEARNED,
                      note=f"WAR {100 * r.accuracy:.1f}%, UAR {100 * r.uar:.1f}%")
        table.extra(rules=rules.reset_index().to_dict("records"))
    finally:
        if args.keep:
            print(f"kept {work}")
        elif not args.results:
            shutil.rmtree(work.parent if work.name == "clone" else work, ignore_errors=True)
    sys.exit(table.finish())


if __name__ == "__main__":
    main()

"""Frames stage against bare ffmpeg doing the same decode, resample (fps, scale) and JPEG encode, at eNTERFACE'05's
size (720x576, 25 fps, mpeg4) and the demo's (320x240), in CPU time and wall time:

  bare          one ffmpeg process per video, nothing else (the floor: it is the stage's own ffmpeg command)
  library       ``extract_many`` in this process (no start-up)
  job           ``video-emotion frames VIDEO... --out DIR`` as the frames rule runs it: one process per shard
  per-video     the former design: one ``video-emotion frames VIDEO OUT`` process per video
  workflow      ``snakemake`` running the whole frames stage over eNTERFACE'05's 1,287 videos (``--workflow [N]``),
                against bare ffmpeg over the same videos two at a time, and against ``snakemake -n`` of the same
                target (Snakemake's own start-up)

    python benchmarks/frames.py [--videos 30] [--seconds 3] [--rounds 3] [--sizes enterface demo] [--workflow [N]]

Limits: the job within 1.15x of bare ffmpeg in CPU time and, two at a time, in wall time; the stage through
Snakemake within 1.15x of bare ffmpeg two at a time in wall time, and in CPU time less Snakemake's start-up; process
start-up (the interpreter and the job's imports, measured by themselves) under 5% of a shard's job at eNTERFACE size
(30 videos, eNTERFACE'05's videos per subject). Figures are medians over ``rounds`` interleaved rounds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench import Clock, Table, make_video, median  # noqa: E402

from video_emotion.frames import extract_many, ffmpeg_exe  # noqa: E402

FPS, HEIGHT = 10, 240
PARAMS = f'{{"fps": {FPS}, "height": {HEIGHT}}}'
LIMIT = 1.15
STARTUP_LIMIT = 0.05
REPO = Path(__file__).resolve().parents[1]


def cli() -> list[str]:
    exe = shutil.which("video-emotion", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return [exe] if exe else [sys.executable, "-m", "video_emotion.cli"]


def bare(video: Path, out: Path) -> None:
    out.mkdir(parents=True)
    subprocess.run([ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(video), "-vf", f"fps={FPS},scale=-2:{HEIGHT}",
                    "-q:v", "2", str(out / "%06d.jpg")], check=True)


def methods(videos: list[Path], workers: int) -> dict:
    ids = [v.stem for v in videos]

    def job(out: Path, n: int) -> None:
        subprocess.run([*cli(), "frames", *map(str, videos), "--ids", *ids, "--out", str(out), "--workers", str(n),
                        "--params", PARAMS], check=True, capture_output=True)

    def parallel(out: Path) -> None:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda v: bare(v, out / v.stem), videos))

    return {
        "bare": lambda out: [bare(v, out / v.stem) for v in videos],
        "library": lambda out: extract_many(list(zip(videos, ids, strict=True)), out, FPS, HEIGHT, workers=1),
        "job": lambda out: job(out, 1),
        "per-video jobs": lambda out: [subprocess.run([*cli(), "frames", str(v), str(out / v.stem), "--params",
                                                       PARAMS], check=True, capture_output=True) for v in videos],
        f"bare, {workers} at a time": parallel,
        f"job, {workers} workers": lambda out: job(out, workers),
    }


def measure(videos: list[Path], work: Path, rounds: int, workers: int) -> dict[str, dict[str, float]]:
    runs: dict[str, list[Clock]] = {}
    todo = methods(videos, workers)
    for r in range(rounds):
        names = list(todo)
        names = names[r % len(names):] + names[:r % len(names)]  # interleaved, starting elsewhere each round
        for name in names:
            out = work / f"out-{r}"
            with Clock() as clock:
                todo[name](out)
            runs.setdefault(name, []).append(clock)
            shutil.rmtree(out)
    return {name: {"cpu": median(c.cpu for c in cs), "wall": median(c.wall for c in cs)} for name, cs in runs.items()}


def startup_seconds(rounds: int) -> Clock:
    """CPU and wall seconds of the frames job's own start-up: the interpreter and what ``video-emotion frames``
    imports (median of ``rounds``), measured without any video."""
    code = "import video_emotion.cli, video_emotion.frames; video_emotion.frames.ffmpeg_exe()"
    clocks = []
    for _ in range(max(rounds, 5)):
        with Clock() as c:
            subprocess.run([sys.executable, "-c", code], check=True)
        clocks.append(c)
    best = Clock()
    best.cpu, best.wall = median(c.cpu for c in clocks), median(c.wall for c in clocks)
    return best


def workflow_stage(videos: list[Path], work: Path, n_videos: int, rounds: int) -> dict[str, float]:
    """Snakemake running the whole frames stage (``--cores 2``, the config's default shards) over ``n_videos``
    videos of 44 subjects, eNTERFACE'05's counts by default (hard links to ``videos``: the same decoding work), its
    dry run, and bare ffmpeg over the same videos two at a time; median wall and CPU seconds."""
    import pandas as pd

    work.mkdir()
    (work / "links").mkdir()
    links = []
    for i in range(n_videos):
        links.append(work / "links" / f"v{i:05d}.avi")
        os.link(videos[i % len(videos)], links[-1])
    csv = work / "videos.csv"
    pd.DataFrame({"path": [str(v) for v in links], "label": [("anger", "fear")[i % 2] for i in range(n_videos)],
                  "subject": [f"s{i * 44 // n_videos}" for i in range(n_videos)]}).to_csv(csv, index=False)
    wd = work / "wf"
    wd.mkdir()
    (wd / "config.yaml").write_text(f"dataset: csv\ndataset_root: {csv}\nfolds: {{scheme: kfold, k: 2}}\n"
                                    f"frames: {{fps: {FPS}, height: {HEIGHT}, keep: true}}\n")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    base = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(wd), "--cores", "2"]
    subprocess.run([*base, "results/manifest.parquet"], check=True, env=env, capture_output=True)
    target = "results/frames/index.parquet"  # every shard's frames, then their index
    out: dict[str, list[Clock]] = {"stage": [], "dry run": [], "bare": []}
    for _ in range(rounds):
        with Clock() as c:
            subprocess.run([*base, "-n", target], check=True, env=env, capture_output=True)
        out["dry run"].append(c)
        with Clock() as c:
            subprocess.run([*base, target], check=True, env=env, capture_output=True)
        out["stage"].append(c)
        shutil.rmtree(wd / "results" / "frames")
        with Clock() as c:
            with ThreadPoolExecutor(2) as pool:
                list(pool.map(lambda v: bare(v, work / "bare2" / v.stem), links))
        out["bare"].append(c)
        shutil.rmtree(work / "bare2")
    shards = pd.read_parquet(wd / "results/manifest.parquet", columns=["shard"])["shard"].nunique()
    return {"shards": shards, **{f"{k} {m}": median(getattr(c, m) for c in cs) for k, cs in out.items()
                                 for m in ("cpu", "wall")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=30, help="videos per shard (eNTERFACE'05: ~30 per subject)")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sizes", nargs="+", default=["enterface", "demo"], choices=["enterface", "demo"])
    parser.add_argument("--workflow", type=int, nargs="?", const=1287, default=0, metavar="N",
                        help="also time the whole stage through snakemake over N videos (default 1287, "
                             "eNTERFACE'05's count; one round takes minutes: use --rounds 1)")
    args = parser.parse_args()
    table = Table("frames", f"{args.videos} videos of {args.seconds:g} s per size -> {FPS} fps, height {HEIGHT}, "
                            f"JPEG q 2; medians of {args.rounds} rounds; CPU = user + system of all processes")
    start = startup_seconds(args.rounds)
    table.row("job start-up (interpreter + imports)", start.cpu, unit="s CPU", note=f"{start.wall:.3f} s wall")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for size in args.sizes:
            folder = tmp / size
            folder.mkdir()
            videos = [make_video(folder / f"v{i:02d}.avi", size, args.seconds, seed=i) for i in range(args.videos)]
            m = measure(videos, tmp, args.rounds, args.workers)
            b = m["bare"]
            table.row(f"[{size}] bare ffmpeg, per video", b["cpu"] / args.videos, unit="s CPU",
                      note=f"{b['wall'] / args.videos:.3f} s wall")
            for name in ("library", "job", "per-video jobs"):
                limit = f"<= {LIMIT}" if name == "job" else "-"
                for kind in ("cpu", "wall"):
                    ratio = m[name][kind] / b[kind]
                    table.row(f"[{size}] {name} / bare, {kind}", ratio, limit,
                              ok=ratio <= LIMIT if name == "job" else None)
            par, job = m[f"bare, {args.workers} at a time"], m[f"job, {args.workers} workers"]
            ratio = job["wall"] / par["wall"]
            table.row(f"[{size}] job {args.workers} workers / bare {args.workers} at a time, wall", ratio,
                      f"<= {LIMIT}", ok=ratio <= LIMIT)
            share = start.cpu / m["job"]["cpu"]
            table.row(f"[{size}] start-up share of a {args.videos}-video job, CPU", share,
                      f"< {STARTUP_LIMIT}" if size == "enterface" else "-",
                      ok=share < STARTUP_LIMIT if size == "enterface" else None,
                      note=f"job - library: {(m['job']['cpu'] - m['library']['cpu']):.3f} s CPU")
            if args.workflow and size == "enterface":
                w = workflow_stage(videos, tmp / "workflow", args.workflow, args.rounds)
                what = f"[enterface] snakemake frames stage, {args.workflow} videos ({w['shards']} jobs, --cores 2)"
                ratio = w["stage wall"] / w["bare wall"]
                table.row(f"{what} / bare 2 at a time, wall", ratio, f"<= {LIMIT}", ok=ratio <= LIMIT,
                          note=f"{w['stage wall']:.1f} s vs {w['bare wall']:.1f} s")
                table.row(f"{what} / bare, CPU", w["stage cpu"] / w["bare cpu"],
                          note=f"{w['stage cpu']:.1f} s vs {w['bare cpu']:.1f} s")
                ratio = (w["stage cpu"] - w["dry run cpu"]) / w["bare cpu"]
                table.row("[enterface] the same less snakemake's own start-up (its dry run), CPU", ratio,
                          f"<= {LIMIT}", ok=ratio <= LIMIT, note=f"dry run {w['dry run cpu']:.2f} s CPU")
            shutil.rmtree(folder)
    table.extra(videos=args.videos, seconds=args.seconds, rounds=args.rounds, workers=args.workers,
                workflow_videos=args.workflow)
    sys.exit(table.finish())


if __name__ == "__main__":
    main()

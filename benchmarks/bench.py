"""What every benchmark shares: the result table with limits and verdicts, the machine description, the record
file, CPU-time accounting of this process and its children, generated test videos, and a matmul reference.

    from bench import Table, timed_run, make_video
    table = Table("frames", "eNTERFACE-size videos, 8 x 3 s")
    table.row("job / bare ffmpeg (CPU)", 1.08, "<= 1.15", ok=1.08 <= 1.15, note="...")
    table.extra(threads=1)                   # anything worth keeping with the figures
    sys.exit(table.finish())                 # prints, appends to benchmarks/out/frames.jsonl, 1 if a limit missed

Each run appends one JSON line to ``benchmarks/out/<name>.jsonl`` (``--out DIR`` or ``$BENCH_OUT`` elsewhere) with
the rows, the machine (CPU model, cores, load average, torch version) and the UTC date, so runs compare over time.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

OUT = Path(os.environ.get("BENCH_OUT", Path(__file__).resolve().parent / "out"))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """What the figures depend on: CPU, cores usable here, load, memory, library versions, the date."""
    info = {"cpu": cpu_model(), "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
            else os.cpu_count(), "load_avg": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(), "platform": platform.platform(),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        info["memory_gib"] = round(pages / 2**30, 1)
    except (ValueError, OSError):
        pass
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name()
    return info


def cpu_seconds() -> float:
    """User + system CPU time of this process and of its waited-for children (and theirs)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class Clock:
    """Wall and CPU seconds (this process + children) between start and stop: ``with Clock() as c: ...; c.wall``."""

    def __enter__(self) -> Clock:
        self._wall, self._cpu = time.perf_counter(), cpu_seconds()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = cpu_seconds() - self._cpu


def timed_run(cmd: list[str], **kw) -> Clock:
    """Run a command to completion (check=True); its wall and CPU seconds, its children's included."""
    with Clock() as clock:
        subprocess.run(cmd, check=True, **kw)
    return clock


def median(values) -> float:
    values = sorted(values)
    n = len(values)
    return values[n // 2] if n % 2 else 0.5 * (values[n // 2 - 1] + values[n // 2])


@dataclass
class Row:
    name: str
    measured: float | str
    limit: str = "-"
    ok: bool | None = None  # None: a figure without a limit
    unit: str = ""
    note: str = ""


class Table:
    """Rows of (figure, measured, limit, verdict); printed, recorded, and turned into the exit code."""

    def __init__(self, name: str, title: str = ""):
        self.name, self.title, self.rows, self.info = name, title, [], {}

    def row(self, name: str, measured, limit: str = "-", ok: bool | None = None, unit: str = "", note: str = ""):
        if isinstance(measured, float):
            measured = round(measured, 4 if abs(measured) < 10 else 2)
        self.rows.append(Row(name, measured, limit, None if ok is None else bool(ok), unit, note))

    def extra(self, **info) -> None:
        self.info.update(info)

    @property
    def failed(self) -> list[Row]:
        return [r for r in self.rows if r.ok is False]

    def render(self) -> str:
        def fmt(v) -> str:
            return f"{v:,.4g}" if isinstance(v, float) else str(v)

        cells = [(r.name, f"{fmt(r.measured)} {r.unit}".strip(), r.limit,
                  "-" if r.ok is None else "ok" if r.ok else "MISSED", r.note) for r in self.rows]
        head = ("figure", "measured", "limit", "verdict", "note")
        widths = [max(len(c[i]) for c in [head, *cells]) for i in range(4)]
        lines = [f"== {self.name}: {self.title}" if self.title else f"== {self.name}"]
        for c in [head, tuple("-" * w for w in widths) + ("",), *cells]:
            lines.append("  ".join(c[i].ljust(widths[i]) if i == 0 else c[i].rjust(widths[i]) for i in range(4))
                         + (f"  {c[4]}" if c[4] else ""))
        m = machine()
        lines.append(f"machine: {m['cpu']}, {m['cores']} cores, load {m['load_avg']}, torch {m.get('torch', '-')}, "
                     f"{m['date']}")
        return "\n".join(lines)

    def record(self, out: Path | None = None) -> Path:
        out = Path(out or OUT)
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{self.name}.jsonl"
        entry = {"benchmark": self.name, "title": self.title, "machine": machine(), "info": self.info,
                 "rows": [asdict(r) for r in self.rows], "passed": not self.failed}
        with open(path, "a") as f:
            f.write(json.dumps(entry, default=str) + "\n")
        return path

    def finish(self, out: Path | None = None) -> int:
        """Print the table, append it to the record file; 1 when a limit was missed, else 0."""
        print(self.render(), flush=True)
        path = self.record(out)
        print(f"recorded in {path}")
        if self.failed:
            print("MISSED: " + "; ".join(f"{r.name} = {r.measured} (limit {r.limit})" for r in self.failed))
            return 1
        return 0


# ---------------------------------------------------------------------------------------------------------------
# Inputs

SIZES = {  # name: (width, height, fps, codec): the demo's videos and eNTERFACE'05's
    "demo": (320, 240, 25, "mpeg4"),
    "enterface": (720, 576, 25, "mpeg4"),
}


def face_photo(width: int, height: int):
    """A photographed face (scikit-image's astronaut; the head fills ~40% of the height, as in the datasets) 32
    pixels larger than the frame each way, the room :func:`face_frame` moves it in. uint8 RGB."""
    import numpy as np
    import skimage.data
    from skimage.transform import resize

    face = skimage.data.astronaut()[0:280, 80:430]
    return (resize(face, (height + 32, width + 32), anti_aliasing=True) * 255).astype(np.uint8)


def face_frame(base, k: int, width: int, height: int, seed: int, rng):
    """Frame ``k`` of the face of :func:`face_photo` moving, with noise so that an encoder has texture to code."""
    import numpy as np

    dx, dy = int(16 + 12 * np.sin(k / 9 + seed)), int(16 + 8 * np.cos(k / 13 + seed))
    frame = base[dy:dy + height, dx:dx + width].astype(np.int16) + rng.integers(-6, 7, (height, width, 1))
    return np.clip(frame, 0, 255).astype(np.uint8)


def make_video(path: Path, size: str = "enterface", seconds: float = 3.0, seed: int = 0) -> Path:
    """A face video at a real dataset's size (:func:`face_frame`), encoded with the imageio-ffmpeg binary (mpeg4,
    q 3, like the datasets)."""
    import imageio_ffmpeg
    import numpy as np

    width, height, fps, codec = SIZES[size]
    base = face_photo(width, height)
    rng = np.random.default_rng(seed)
    n = int(round(seconds * fps))
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", f"{width}x{height}", "-r", str(fps), "-i", "-", "-c:v", codec, "-q:v", "3", "-pix_fmt", "yuv420p",
           str(path)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    for k in range(n):
        proc.stdin.write(face_frame(base, k, width, height, seed, rng).tobytes())
    proc.stdin.close()
    if proc.wait() != 0:
        raise RuntimeError(f"ffmpeg could not write {path}")
    return path


def matmul_gflops(n: int = 1024, repeats: int = 5) -> float:
    """fp32 GFLOP per CPU second of this process of an n x n matmul (best of ``repeats``), current torch threads:
    the reference a model's rate is compared with. CPU time, not wall time: on a shared machine it counts the work
    done, not the time other processes held the cores."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t = time.process_time()
        a @ b
        best = min(best, time.process_time() - t)
    return 2 * n**3 / max(best, 1e-9) / 1e9


# ---------------------------------------------------------------------------------------------------------------
# Reading the records back: `python benchmarks/bench.py [NAME ...] [--last 2]` prints Markdown tables side by side


def markdown(name: str, last: int = 2, out: Path | None = None) -> str:
    """The last ``last`` runs of benchmark ``name`` as one Markdown table: a measured column per run."""
    path = Path(out or OUT) / f"{name}.jsonl"
    if not path.exists():
        return f"no runs recorded in {path}: run `python benchmarks/{name}.py` first"
    runs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()][-last:]
    names = list(dict.fromkeys(r["name"] for run in runs for r in run["rows"]))
    by_run = [{r["name"]: r for r in run["rows"]} for run in runs]
    head = "| figure | " + " | ".join(f"run {i + 1}" for i in range(len(runs))) + " | limit | verdict |"
    lines = [head, "|---|" + "---:|" * len(runs) + "---|---|"]
    for n in names:
        cells, limit, verdicts = [], "-", []
        for rows in by_run:
            r = rows.get(n)
            if r is None:
                cells.append("")
                continue
            value = r["measured"]
            value = f"{value:,.4g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)
            cells.append(f"{value} {r['unit']}".strip())
            limit = r["limit"]
            verdicts.append("-" if r["ok"] is None else "ok" if r["ok"] else "MISSED")
        verdict = "-" if set(verdicts) <= {"-"} else ", ".join(verdicts)
        lines.append(f"| {n} | " + " | ".join(cells) + f" | {limit} | {verdict} |")
    machines = "; ".join(f"run {i + 1}: {r['machine']['date']}, load {r['machine']['load_avg']}"
                         for i, r in enumerate(runs))
    return "\n".join(lines) + f"\n\n{runs[-1]['machine']['cpu']}, {runs[-1]['machine']['cores']} cores. {machines}.\n"


def resolved_config(preset: str) -> dict:
    """The config of a run of ``preset`` ("demo", or a name in workflow/presets/), resolved as the workflow does it
    (schema defaults, the demo preset for the demo, the preset's own keys), with each model's ``specs``."""
    from video_emotion.config import load_yaml, model_specs, resolve

    repo = Path(__file__).resolve().parents[1]
    user = {"dataset": "demo"} if preset == "demo" else \
        {**load_yaml(repo / "workflow" / "presets" / f"{preset}.yaml"), "dataset_root": "/placeholder"}
    config = resolve(user, load_yaml(repo / "workflow" / "schemas" / "config.schema.yaml"),
                     load_yaml(repo / "workflow" / "presets" / "demo.yaml"))
    return {**config, "specs": model_specs(config)}


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Markdown tables of the recorded benchmark runs")
    parser.add_argument("names", nargs="*", help="benchmarks (default: every record in the out folder)")
    parser.add_argument("--last", type=int, default=2)
    args = parser.parse_args()
    for name in args.names or sorted(p.stem for p in OUT.glob("*.jsonl")):
        print(f"### {name}\n\n{markdown(name, args.last)}")


"""The in-the-wild sets at their real sizes: listing, planning, decoding face frames, and the clip cache's bytes.

    python benchmarks/in_the_wild.py [--parts listing dag decode cache] [--repeats 3] [--decode-frames 3000]
                                     [--decode-lengths 77 28] [--keep DIR]

Trees are generated in the maintainers' layouts (``datasets.placeholder``) under a temporary folder, deleted after.

listing  ``build_manifest`` of FERV39k at full size (38,935 clips of 22 scenes, about 1.15 M zero-byte frame files:
         10% of the clips 8-15 frames, the others 16-47; the real set: 1,090,633 frames, 8-47), DFEW (15,906 clip
         folders, 11,697 listed) and MAFW (9,172 listed; folders only: the adapters read the split files and look
         for each clip's folder, never inside it): median of ``repeats``, in CPU time (one single-threaded process:
         its CPU time is its wall time on an idle machine) and wall time. Limit: 10 s CPU each.
dag      ``snakemake -n`` of the FERV39k preset's whole DAG against a one-rule workflow's, in the same run (medians,
         CPU and wall). The manifest is a checkpoint: before it exists the dry run plans up to it; with
         results/manifest.parquet and results/folds.parquet made (by Snakemake), it plans every job. Limit: the
         whole DAG <= 2x the one-rule workflow (CPU).
decode   about ``decode-frames`` real-size 224x224 JPEG face frames (a photographed face moving, with noise;
         OpenCV's JPEG quality 95) in DFEW's layout, in clips of each of ``decode-lengths`` frames (77: DFEW's mean
         in clip_224x224; 28: FERV39k's): the faces stage on aligned frames (``process_shard``, the HDF5 file and
         QC table included) against a plain loop of the decoder it uses (OpenCV's libjpeg-turbo, at the scale the
         stage decodes: 1/2, 224 -> 112); for reference a full-size decode loop and Pillow's (draft mode, the same
         scale). CPU time of this process, median of ``repeats`` interleaved rounds. Limit: stage <= 1.2x the loop.
cache    the clip cache built by ``build_cache`` from the first length's faces (crop size 112): bytes per frame and per clip on
         disk, extrapolated to DFEW (the 11,697 listed clips; 901,703 frames in clip_224x224, 16 per clip in
         clip_224x224_16f) and set against the JPEG input's bytes on disk, extrapolated from the generated frames'
         mean size. A figure, no limit.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench import Clock, Table, face_frame, face_photo, median  # noqa: E402
from dag import snakemake, time_dry_run  # noqa: E402

from video_emotion.datasets import build_manifest  # noqa: E402
from video_emotion.datasets.placeholder import (  # noqa: E402
    DFEW_FOLDS,
    MAFW_FOLDS,
    make_dfew_tree,
    make_ferv39k_tree,
    make_mafw_tree,
)
from video_emotion.frames import frame_files  # noqa: E402
from video_emotion.io import write_parquet  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
LISTING_LIMIT_S = 10.0
DAG_LIMIT = 2.0
DECODE_LIMIT = 1.2
FRAME_SIDE, CROP = 224, 112
DFEW_FRAMES = 901_703  # frames of the 11,697 listed clips in clip_224x224 (a public list of them with frame counts)
DFEW_LISTED = sum(DFEW_FOLDS)
NO_DEFECTS = {"missing": 0, "unpadded": 0, "bad_label": 0, "short": 0}


def ferv39k_lengths(clip: int) -> int:
    """Frames per FERV39k clip: one clip in ten 8-15 frames, the others 16-47."""
    return 8 + clip % 8 if clip % 10 == 0 else 16 + (7 * clip) % 32


def listing(table: Table, base: Path, repeats: int) -> Path:
    """build_manifest of each set at full size; returns the FERV39k tree (for the dag part)."""
    trees = {
        "ferv39k": (make_ferv39k_tree, {"frames": ferv39k_lengths, "write_frames": False}, "38,935 clips"),
        "dfew": (make_dfew_tree, {"frames": 0, "tim": False, "short": 0, "unpadded": 0}, "15,906 clip folders"),
        "mafw": (make_mafw_tree, {"frames": 0, "short": 0, "unpadded": 0}, f"{sum(MAFW_FOLDS):,} clips"),
    }
    for name, (make, kw, what) in trees.items():
        root = base / name
        t0 = time.perf_counter()
        made = make(root, full=True, **kw)
        made_s = time.perf_counter() - t0
        clocks = []
        for _ in range(repeats):
            with Clock() as clock:
                manifest, rejected, _ = build_manifest(name, root)
            clocks.append(clock)
        cpu, wall = median(c.cpu for c in clocks), median(c.wall for c in clocks)
        files = f"{made['frames']:,} frame files" if made["frames"] else "folders only"
        table.row(f"build_manifest, {name} ({what})", cpu, f"<= {LISTING_LIMIT_S}", ok=cpu <= LISTING_LIMIT_S,
                  unit="s CPU", note=f"{wall:.2f} s wall; {len(manifest):,} clips kept, {len(rejected)} rejected "
                                     f"(defects); {files}, tree made in {made_s:.0f} s")
    return base / "ferv39k"


def dag(table: Table, base: Path, root: Path, repeats: int) -> None:
    one = base / "one-rule"
    one.mkdir(parents=True, exist_ok=True)
    (one / "Snakefile").write_text("rule all:\n    shell: 'true'\n")
    config = ["--configfile", str(REPO / "workflow/presets/ferv39k.yaml"), "--config", f"dataset_root={root}"]
    work = base / "work"
    wall0, cpu0, _ = time_dry_run(one, [], repeats, snakefile=one / "Snakefile")
    table.row("snakemake -n, a one-rule workflow", cpu0, unit="s CPU", note=f"{wall0:.2f} s wall; Snakemake's start-up")
    wall, cpu, jobs = time_dry_run(work, config, repeats)
    table.row("snakemake -n, ferv39k, before the manifest", cpu, unit="s CPU",
              note=f"{wall:.2f} s wall; {jobs} jobs (planned up to the manifest checkpoint)")
    built = snakemake(work, config, "results/manifest.parquet", "results/folds.parquet")
    if built.returncode != 0:
        raise RuntimeError("manifest rule failed: " + built.stderr.strip()[-2000:])
    wall, cpu, jobs = time_dry_run(work, config, repeats)
    wall0, cpu0, _ = time_dry_run(one, [], repeats, snakefile=one / "Snakefile")  # again, beside it
    table.row("snakemake -n, ferv39k, whole DAG", cpu, unit="s CPU", note=f"{wall:.2f} s wall; {jobs} jobs")
    table.row("whole DAG / one-rule workflow (CPU)", cpu / cpu0, f"<= {DAG_LIMIT}", ok=cpu / cpu0 <= DAG_LIMIT,
              note=f"wall {wall / wall0:.2f}x; one-rule workflow again: {cpu0:.2f} s CPU")


def decode_tree(base: Path, clips: int, length: int) -> tuple[Path, list[tuple[str, Path]]]:
    """A DFEW tree of about ``clips`` clips of ``length`` real-size JPEG face frames: its manifest file and the faces
    stage's (video_id, frame folder) items."""
    base = base / f"len{length}"
    root = base / "dfew224"
    photo = face_photo(FRAME_SIDE, FRAME_SIDE)

    def draw(clip, index, label):
        return face_frame(photo, index, FRAME_SIDE, FRAME_SIDE, clip, np.random.default_rng([clip, index]))

    per_fold = -(-clips // 5)
    make_dfew_tree(root, folds=per_fold, frames=length, size=FRAME_SIDE, frame=draw, tim=False, **NO_DEFECTS)
    manifest, _, _ = build_manifest("dfew", root)
    manifest_path = base / "manifest.parquet"
    write_parquet(manifest, manifest_path, metadata={"dataset": "dfew"})
    return manifest_path, [(r.video_id, root / r.path) for r in manifest.itertuples()]


def decode(table: Table, base: Path, items: list[tuple[str, Path]], repeats: int, length: int) -> Path:
    """The faces stage on aligned frames against plain decode loops; returns the faces file."""
    from PIL import Image

    from video_emotion.faces.pipeline import process_shard

    files = [str(f) for _, folder in items for f in frame_files(folder)]
    h5 = base / f"len{length}" / "faces" / "shard.h5"

    def stage():
        process_shard(items, h5, h5.with_name("shard_qc.parquet"), {"aligned": True, "crop_size": CROP},
                      progress=False, images=True)

    def loop_half():
        for f in files:
            cv2.imread(f, cv2.IMREAD_REDUCED_COLOR_2)

    def loop_full():
        for f in files:
            cv2.imread(f, cv2.IMREAD_COLOR)

    def loop_pillow():
        for f in files:
            with Image.open(f) as image:
                image.draft("RGB", (CROP, CROP))
                image.convert("RGB").load()

    runs = {"stage": stage, "half": loop_half, "full": loop_full, "pillow": loop_pillow}
    loop_half()  # the files in the page cache
    cpu = {name: [] for name in runs}
    wall = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            with Clock() as clock:
                run()
            cpu[name].append(clock.cpu)
            wall[name].append(clock.wall)
    per = {name: 1e3 * median(v) / len(files) for name, v in cpu.items()}
    at = f"[{length} frames/clip] "
    table.row(at + "plain loop, cv2.imread at 1/2 (224 -> 112)", per["half"], unit="ms CPU/frame",
              note=f"{len(files):,} frames of {len(items)} clips; OpenCV {cv2.__version__} (libjpeg-turbo)")
    table.row(at + "plain loop, cv2.imread full size", per["full"], unit="ms CPU/frame")
    table.row(at + "plain loop, Pillow draft at 1/2", per["pillow"], unit="ms CPU/frame",
              note=f"Pillow {Image.__version__}")
    table.row(at + "faces stage on aligned frames (process_shard)", per["stage"], unit="ms CPU/frame",
              note=f"crop {CROP}: decode, RGB, HDF5 + QC written")
    ratio = median(cpu["stage"]) / median(cpu["half"])
    table.row(at + "faces stage / its decoder's plain loop (CPU)", ratio, f"<= {DECODE_LIMIT}",
              ok=ratio <= DECODE_LIMIT, note=f"wall {median(wall['stage']) / median(wall['half']):.2f}x")
    return h5


def disk_bytes(path: Path) -> int:
    return path.stat().st_blocks * 512


def cache(table: Table, base: Path, manifest_path: Path, faces_h5: Path, items: list[tuple[str, Path]]) -> None:
    import h5py

    from video_emotion.cache import build_cache

    path = base / "cache" / "clips.h5"
    out = build_cache(manifest_path, [faces_h5], path, {"clip_len": 16})
    frame_bytes = CROP * CROP * 3
    on_disk = disk_bytes(path)
    with h5py.File(path, "r") as f:
        index = sum(f["index"][name].nbytes for name in f["index"]) / out["videos"]
    fixed = on_disk - out["frames"] * frame_bytes - out["videos"] * index  # attributes, HDF5 structure, last chunk
    jpegs = [f for _, folder in items for f in frame_files(folder)]
    jpeg_disk = sum(disk_bytes(f) for f in jpegs) / len(jpegs)
    jpeg_size = sum(f.stat().st_size for f in jpegs) / len(jpegs)
    table.row("clip cache, sample", on_disk / out["frames"], unit="B/frame on disk",
              note=f"{out['videos']} clips, {out['frames']:,} frames of {CROP}x{CROP}x3 = {frame_bytes:,} B; index "
                   f"{index:.0f} B per clip; {fixed / 1e3:,.0f} kB per file (HDF5 structure, unfilled last chunk)")
    table.row("JPEG input, sample (224x224)", jpeg_disk, unit="B/frame on disk",
              note=f"{jpeg_size:,.0f} B per file; {len(jpegs):,} generated frames")
    for version, frames in (("clip_224x224", DFEW_FRAMES), ("clip_224x224_16f", 16 * DFEW_LISTED)):
        cache_total = frames * frame_bytes + DFEW_LISTED * index + fixed
        jpeg_total = frames * jpeg_disk
        table.row(f"DFEW cache, {version}, per clip", cache_total / DFEW_LISTED / 1e6, unit="MB",
                  note=f"{frames / DFEW_LISTED:.1f} frames per clip")
        table.row(f"DFEW cache, {version}, total", cache_total / 1e9, unit="GB",
                  note=f"{DFEW_LISTED:,} clips, {frames:,} frames; JPEG input {jpeg_total / 1e9:.1f} GB on disk: "
                       f"cache {cache_total / jpeg_total:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["listing", "dag", "decode", "cache"],
                        choices=["listing", "dag", "decode", "cache"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--decode-frames", type=int, default=3000)
    parser.add_argument("--decode-lengths", type=int, nargs="+", default=[77, 28])
    parser.add_argument("--keep", type=Path, help="build the trees here and keep them (default: a temporary folder)")
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="wild-bench-"))
    table = Table("in_the_wild", f"generated trees at real size; medians of {args.repeats}")
    try:
        if "listing" in args.parts or "dag" in args.parts:
            ferv39k = listing(table, base, args.repeats) if "listing" in args.parts else None
            if "dag" in args.parts:
                if ferv39k is None:
                    ferv39k = base / "ferv39k"
                    make_ferv39k_tree(ferv39k, full=True, frames=ferv39k_lengths, write_frames=False)
                dag(table, base, ferv39k, args.repeats)
        if "decode" in args.parts or "cache" in args.parts:
            for i, length in enumerate(args.decode_lengths):
                manifest_path, items = decode_tree(base, -(-args.decode_frames // length), length)
                faces_h5 = decode(table, base, items, args.repeats, length)
                if i == 0 and "cache" in args.parts:
                    cache(table, base / f"len{length}", manifest_path, faces_h5, items)
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    table.extra(parts=args.parts, repeats=args.repeats, decode_frames=args.decode_frames,
                decode_lengths=args.decode_lengths)
    sys.exit(table.finish())


if __name__ == "__main__":
    main()

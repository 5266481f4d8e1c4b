"""`video-emotion <stage> ...`: one subcommand per workflow rule, plus `predict`.

Rules call these with explicit paths and the JSON of their config section (`--params`); every subcommand also works
by hand. Heavy libraries are imported inside each command so that per-video jobs start quickly.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from pathlib import Path

log = logging.getLogger("video_emotion")


def _params(text: str | None, flag: str = "--params") -> dict:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise SystemExit(f"{flag} is not valid JSON ({err}): {text[:200]}") from None
    if not isinstance(value, dict):
        raise SystemExit(f"{flag} must be a JSON object, got: {text[:200]}")
    return value


def cmd_demo(args: argparse.Namespace) -> None:
    from video_emotion.demo import make_demo

    p = args.params
    paths = make_demo(args.out, **{k: p[k] for k in ("subjects", "sentences", "seconds", "fps", "width", "height",
                                                      "seed") if k in p})
    log.info("wrote %d demo videos under %s", len(paths), args.out)


def cmd_manifest(args: argparse.Namespace) -> None:
    from video_emotion.datasets import add_shards, build_manifest, summarize
    from video_emotion.io import write_parquet

    p = args.params
    dataset = args.dataset or p.get("dataset", "demo")
    manifest, rejected, skipped = build_manifest(dataset, args.root, p.get("classes"),
                                                 p.get("dataset_options") or {})
    if args.out is None:  # summary only
        print(summarize(manifest, rejected, skipped))
        return
    manifest = add_shards(manifest, p.get("shard_videos", 1))
    meta = {"dataset": dataset, "root": str(args.root), "classes": list(manifest["label"].cat.categories)}
    write_parquet(rejected, args.rejected, metadata={**meta, "not_videos": skipped})
    write_parquet(manifest, args.out, metadata=meta)
    print(summarize(manifest, rejected, skipped))


def cmd_folds(args: argparse.Namespace) -> None:
    import pandas as pd

    from video_emotion.datasets import add_folds
    from video_emotion.io import read_parquet_metadata, write_parquet

    manifest = pd.read_parquet(args.manifest)
    manifest = manifest[[c for c in ("video_id", "subject", "official_fold") if c in manifest]]
    table = add_folds(manifest, args.params)[["video_id", "subject", "fold"]]
    write_parquet(table, args.out, metadata={**read_parquet_metadata(args.manifest), "folds": args.params})
    counts = table.groupby("fold")["subject"].agg(["nunique", "size"])
    for fold, row in counts.iterrows():
        log.info("fold %s: %d subjects, %d videos%s", fold, row["nunique"], row["size"],
                 " (never tested)" if int(fold) < 0 else "")


def cmd_config(args: argparse.Namespace) -> None:
    import yaml

    from video_emotion.io import atomic_path

    with atomic_path(args.out) as tmp:
        tmp.write_text(yaml.safe_dump(args.params, sort_keys=False))


def cmd_collect(args: argparse.Namespace) -> None:
    import pandas as pd

    from video_emotion.io import read_json, write_parquet

    def row(meta: Path) -> dict:
        return {k: v for k, v in read_json(meta).items() if not isinstance(v, (list, dict))}

    def table(path: Path) -> pd.DataFrame:
        if path.is_dir():  # a shard's frames folder: one row per video folder's meta.json
            return pd.DataFrame([row(meta) for meta in sorted(path.glob("*/meta.json"))])
        return pd.read_parquet(path)

    tables = [table(p).assign(source=str(p)) for p in args.inputs]
    write_parquet(pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(), args.out)


def cmd_frames(args: argparse.Namespace) -> None:
    # Imports stay light (no numpy, no pandas): a frames job's start-up counts against its videos' decoding time.
    from video_emotion.frames import extract_frames, extract_many

    p, videos = args.params, args.videos
    if args.out is None:  # VIDEO OUT
        if len(videos) != 2:
            raise SystemExit("video-emotion frames: give VIDEO OUT, or VIDEO... --out DIR [--ids ID...]")
        metas = [extract_frames(videos[0], videos[1], fps=p.get("fps"), height=p.get("height"),
                                video_id=videos[1].name)]
    else:
        ids = args.ids or [v.stem for v in videos]
        if len(ids) != len(videos):
            raise SystemExit(f"video-emotion frames: {len(videos)} videos but {len(ids)} --ids")
        metas = extract_many(list(zip(videos, ids, strict=True)), args.out, fps=p.get("fps"),
                             height=p.get("height"), workers=args.workers)
    for meta in metas:
        if meta.get("status") != "ok":
            log.warning("%s: rejected (%s); the run goes on without it", meta["source"], meta.get("reason"))
        else:
            log.info("%s: %d frames at %s fps", meta["source"], meta["n_frames"], meta["fps"])


def cmd_faces(args: argparse.Namespace) -> None:
    import pandas as pd

    from video_emotion.faces import process_shard

    if args.video is not None:
        return faces_of_video(args)
    if args.manifest is None or args.shard is None or args.qc is None:
        raise SystemExit("video-emotion faces: error: give --manifest, --shard and --qc (a shard of the workflow), "
                         "or --video VIDEO (a quick look at one video)")
    manifest = pd.read_parquet(args.manifest, columns=["video_id", "path", "shard"])
    shard = manifest[manifest["shard"] == args.shard]
    if shard.empty:
        raise SystemExit(f"shard {args.shard!r} has no videos in {args.manifest}; rerun the manifest rule")
    if args.images:  # the dataset's own frame folders, named by the manifest
        from video_emotion.datasets import source_path

        items = [(vid, source_path(args.frames_root, path))
                 for vid, path in zip(shard["video_id"], shard["path"], strict=True)]
    else:
        items = [(vid, Path(args.frames_root) / vid) for vid in shard["video_id"]]
    qc = process_shard(items, args.out, args.qc, args.params, images=args.images)
    ok = qc["status"] == "ok"
    log.info("shard %s: %d of %d videos aligned (backend %s, mean detection rate %.3f)", args.shard, ok.sum(),
             len(qc), ", ".join(sorted(set(qc["backend"].astype(str)))), qc.loc[ok, "detection_rate"].mean())
    for row in qc[~ok].itertuples():
        log.warning("%s: rejected (%s)", row.video_id, row.reason)


def faces_of_video(args: argparse.Namespace) -> None:
    """`faces --video VIDEO --out faces.h5`: frames, faces and a QC strip of one raw video, outside the workflow."""
    import tempfile

    from video_emotion.faces import process_shard
    from video_emotion.faces.strip import draw_strip
    from video_emotion.frames import extract_frames
    from video_emotion.io import safe_name

    video_id = safe_name(args.video.stem)
    qc_path = args.qc or args.out.with_suffix(".qc.parquet")
    with tempfile.TemporaryDirectory() as tmp:
        frames = Path(tmp) / video_id
        extract_frames(args.video, frames, fps=args.fps, height=args.height, video_id=video_id)
        row = process_shard([(video_id, frames)], args.out, qc_path, args.params, progress=False).iloc[0]
    if row["status"] != "ok":
        raise SystemExit(f"video-emotion faces: {args.video}: rejected ({row['reason']}); QC in {qc_path}")
    strip = draw_strip(args.out, video_id, args.out.with_suffix(".strip.png"))
    log.info("%s: face in %.0f%% of %d frames (%s); crops and landmarks in %s, QC in %s, strip %s", args.video,
             100 * row["detection_rate"], row["n_frames"], row["backend"], args.out, qc_path, strip)


def cmd_cache(args: argparse.Namespace) -> None:
    from video_emotion.cache import build_cache

    summary = build_cache(args.manifest, args.faces, args.out, args.params)
    log.info("%s", summary)


def cmd_train(args: argparse.Namespace) -> None:
    if args.nproc > 1 and "LOCAL_RANK" not in os.environ:
        # Re-launch this very command under torchrun, one process per GPU; train() detects DDP from the environment.
        torchrun = shutil.which("torchrun") or "torchrun"
        # The workers run the same command without --nproc: torchrun's environment tells them their rank.
        rest, skip = [], False
        for arg in sys.argv[1:]:
            if not skip and not arg.startswith("--nproc"):
                rest.append(arg)
            skip = arg == "--nproc"
        argv = [torchrun, "--standalone", f"--nproc-per-node={args.nproc}", "-m", "video_emotion.cli", *rest]
        log.info("launching %s", " ".join(argv))
        os.execvp(argv[0], argv)
    from video_emotion.parent import orphan_watch, snakemake_ancestor

    watch = orphan_watch(snakemake_ancestor())  # before the heavy imports: Snakemake may die meanwhile
    from video_emotion.train import train

    train(args.cache, args.model, args.fold, args.out, args.params, folds_table=args.folds, watch=watch,
          tensorboard=args.tensorboard)


def cmd_evaluate(args: argparse.Namespace) -> None:
    from video_emotion.evaluate import evaluate

    evaluate(args.cache, args.checkpoint, args.fold, args.out, args.params, folds_table=args.folds,
             tensorboard=args.tensorboard)


def cmd_metrics(args: argparse.Namespace) -> None:
    from video_emotion.metrics import compute_metrics

    compute_metrics(args.predictions, args.out, args.params)


def cmd_attention(args: argparse.Namespace) -> None:
    from video_emotion.attention import compute_attention

    compute_attention(args.cache, args.checkpoints, args.out, args.params, folds_table=args.folds)


def cmd_report(args: argparse.Namespace) -> None:
    from video_emotion.report import build_report

    build_report(args.out, metrics=args.metrics, histories=args.histories, qc=args.qc, faces=args.faces,
                 manifest=args.manifest, rejected=args.rejected, attention=args.attention, strips=args.strips,
                 captions=args.captions,
                 params=args.params)


def cmd_predict(args: argparse.Namespace) -> None:
    from video_emotion.predict import predict, predict_many

    overrides = {k: v for k, v in (("frames", _params(args.frames, "--frames")),
                                   ("faces", _params(args.faces, "--faces"))) if v}
    if args.name and len(args.name) != len(args.video):
        raise SystemExit(f"video-emotion predict: error: {len(args.video)} videos but {len(args.name)} --name")
    kwargs = {"window": args.window, "stride": args.stride, "device": args.device, "overrides": overrides}
    if len(args.video) == 1:
        predict(args.video[0], args.model, args.out, name=(args.name or [None])[0], **kwargs)
        return
    failed = predict_many(args.video, args.model, args.out, names=args.name, **kwargs)
    log.info("%d of %d videos predicted%s", len(args.video) - len(failed), len(args.video),
             "; not readable (empty timelines): " + "; ".join(f"{v}: {why}" for v, why in failed.items())
             if failed else "")


def cmd_faces_strip(args: argparse.Namespace) -> None:
    from video_emotion.faces.strip import draw_lowest, draw_strip

    if args.lowest:
        if not args.qc or not args.faces:
            raise SystemExit("video-emotion faces-strip: error: --lowest needs --qc and --faces")
        log.info("QC strips of the %d least detected videos: %s", args.lowest,
                 draw_lowest(args.qc, args.faces, args.out, k=args.lowest, n=args.n))
        return
    if args.faces_h5 is None or args.video_id is None:
        raise SystemExit("video-emotion faces-strip: error: give FACES_H5 VIDEO_ID, or --lowest K --qc ... --faces ...")
    try:
        path = draw_strip(args.faces_h5, args.video_id, args.out, n=args.n)
    except KeyError as err:
        raise SystemExit(f"video-emotion faces-strip: error: {err.args[0]}") from None
    log.info("QC strip of %s: %s", args.video_id, path)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="video-emotion", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--threads", type=int, help="CPU threads for torch and OpenMP (default: all)")
    parser.add_argument("--gpus", type=int, default=0,
                        help="GPUs this job may use: claims that many free GPUs unless CUDA_VISIBLE_DEVICES is set")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument("--params", type=_params, default={}, help="JSON object: the config section for this stage")
        p.set_defaults(func=func)
        return p

    p = add("demo", cmd_demo, "generate the embedded demo dataset (eNTERFACE'05 layout)")
    p.add_argument("out", type=Path, help="folder to write the demo videos into")

    p = add("manifest", cmd_manifest, "list a dataset's videos; without --out, print the summary table only")
    p.add_argument("root", type=Path, help="dataset root folder (for --dataset csv: the CSV file)")
    p.add_argument("--dataset", help="demo | enterface05 | ravdess | crema_d | csv (default: from --params)")
    p.add_argument("--out", type=Path, help="manifest.parquet to write")
    p.add_argument("--rejected", type=Path, help="manifest_rejected.parquet to write")

    p = add("folds", cmd_folds, "assign each video's subject to a test fold (--params: the config's folds section)")
    p.add_argument("--manifest", type=Path, required=True, help="manifest.parquet (video_id, subject)")
    p.add_argument("--out", type=Path, required=True, help="folds.parquet to write (video_id, subject, fold)")

    p = add("config", cmd_config, "write the resolved config (--params) as YAML")
    p.add_argument("--out", type=Path, required=True, help="YAML file to write")

    p = add("collect", cmd_collect, "one table from many: Parquet tables, or frames folders (their meta.json)")
    p.add_argument("inputs", type=Path, nargs="*", help="Parquet files or frames folders; a source column names each")
    p.add_argument("--out", type=Path, required=True, help="Parquet file to write")

    p = add("frames", cmd_frames, "decode videos to JPEG frames at the configured fps and height: VIDEO OUT for "
            "one, or VIDEO... --out DIR for many in one process (DIR/<id>/ each)")
    p.add_argument("videos", type=Path, nargs="+", metavar="VIDEO", help="video file(s); one, then OUT, or many with --out")
    p.add_argument("--out", type=Path, help="folder of one <id>/ folder per video (000001.jpg ... and meta.json)")
    p.add_argument("--ids", nargs="+", help="the videos' ids, in order (default: their file names' stems)")
    p.add_argument("--workers", type=int, default=1, help="ffmpeg processes at a time (default 1)")

    p = add("faces", cmd_faces, "detect, track and align the faces of one shard (whole subjects), or of one raw video "
            "(--video: frames, faces .h5, QC table and a QC strip beside --out)")
    p.add_argument("--manifest", type=Path, help="manifest.parquet of the manifest rule")
    p.add_argument("--shard", help="the shard (the manifest's shard column) whose videos to process")
    p.add_argument("--frames-root", type=Path, default=Path("results/frames"),
                   help="the shard's frames folder (one folder per video); with --images the dataset root")
    p.add_argument("--images", action="store_true",
                   help="the videos are the dataset's own frame folders (the manifest's paths under --frames-root)")
    p.add_argument("--out", type=Path, required=True, help="faces .h5 to write")
    p.add_argument("--qc", type=Path, help="per-video QC .parquet to write (with --video: default beside --out)")
    p.add_argument("--video", type=Path, help="instead of a shard: one raw video, for a quick look")
    p.add_argument("--fps", type=float, default=10, help="with --video: frames per second to decode (default 10)")
    p.add_argument("--height", type=int, help="with --video: height of the decoded frames (default: the video's)")

    p = add("cache", cmd_cache, "pack aligned faces into the HDF5 clip cache")
    p.add_argument("--manifest", type=Path, required=True, help="manifest.parquet of the manifest rule")
    p.add_argument("--faces", type=Path, nargs="+", required=True, help="the faces .h5 files of every shard")
    p.add_argument("--out", type=Path, required=True, help="clips.h5 to write (skipped.parquet goes beside it)")

    p = add("train", cmd_train, "train one model on one fold (resumes from last.pt)")
    p.add_argument("--cache", type=Path, required=True, help="clips.h5 of the cache rule")
    p.add_argument("--folds", type=Path, help="folds.parquet (default: the fold column of the cache, if any)")
    p.add_argument("--model", required=True, help="model name: an architecture or a variant (--params arch)")
    p.add_argument("--fold", type=int, required=True, help="the test fold whose subjects are left out")
    p.add_argument("--out", type=Path, required=True, help="run folder: best.pt, history.parquet, last.pt")
    p.add_argument("--tensorboard", type=Path,
                   help="folder of the run's TensorBoard event files (a log: none without it or with train.tensorboard "
                        "false)")
    p.add_argument("--nproc", type=int, default=1,
                   help="processes (GPUs) for torchrun DDP; 1 = plain run (give it as `--nproc N`)")

    p = add("evaluate", cmd_evaluate, "predict the test fold; write predictions.parquet")
    p.add_argument("--cache", type=Path, required=True, help="clips.h5 of the cache rule")
    p.add_argument("--folds", type=Path, help="folds.parquet (default: the fold column of the cache, if any)")
    p.add_argument("--checkpoint", type=Path, required=True, help="best.pt of the train rule")
    p.add_argument("--fold", type=int, required=True, help="the test fold to predict")
    p.add_argument("--out", type=Path, required=True, help="predictions.parquet to write")
    p.add_argument("--tensorboard", type=Path, help="the training run's TensorBoard folder: gets the test UAR and WAR")

    p = add("metrics", cmd_metrics, "pooled headline, per-seed and per-fold metrics and paired model comparisons")
    p.add_argument("predictions", type=Path, nargs="+",
                   help="predictions.parquet files; model, seed and fold come from their model=/seed=/fold= folders")
    p.add_argument("--out", type=Path, required=True, help="folder for the metric tables and metrics.json")

    p = add("attention", cmd_attention, "attention maps of a few test clips per class, for the report")
    p.add_argument("--cache", type=Path, required=True, help="the clip cache (clips.h5)")
    p.add_argument("--folds", type=Path, help="folds.parquet (default: the fold column of the cache, if any)")
    p.add_argument("--checkpoints", type=Path, nargs="+", required=True,
                   help="best.pt of one model and seed, one per fold; each clip is scored by its testing fold's")
    p.add_argument("--out", type=Path, required=True, help="attention .h5 to write")

    p = add("report", cmd_report, "figures, tables and index.html from the given result files")
    p.add_argument("--out", type=Path, default=Path("results/report"), help="folder for figures and index.html")
    p.add_argument("--metrics", type=Path, nargs="*", default=[],
                   help="metric tables (summary.parquet, comparisons.parquet, ...; named by file stem)")
    p.add_argument("--histories", type=Path, nargs="*", default=[],
                   help="history.parquet of each training run (model, seed, fold from the path)")
    p.add_argument("--qc", type=Path, nargs="*", default=[], help="faces QC tables (<shard>_qc.parquet)")
    p.add_argument("--faces", type=Path, nargs="*", default=[], help="faces files (<shard>.h5), for the montage")
    p.add_argument("--manifest", type=Path, help="manifest.parquet (labels and subjects for the montage)")
    p.add_argument("--rejected", type=Path, help="manifest_rejected.parquet (files the manifest skipped)")
    p.add_argument("--attention", type=Path, help="the attention stage's .h5")
    p.add_argument("--strips", type=Path, help="the face_strips stage's PNG")
    p.add_argument("--captions", type=Path, nargs="*", default=[], help="caption .rst files of the figures")

    p = add("predict", cmd_predict, "emotion timeline of a new video with a trained model")
    p.add_argument("video", type=Path, nargs="+",
                   help="any video ffmpeg reads; several in one process load the model once, and one that cannot be "
                        "read gets an empty timeline saying why while the others go on")
    p.add_argument("--model", type=Path, default=Path("results/models/res_att/seed0/fold0/best.pt"),
                   help="checkpoint (best.pt)")
    p.add_argument("--out", type=Path, default=Path("results/predict"),
                   help="folder for <name>.timeline.parquet and .timeline.png")
    p.add_argument("--window", type=int, help="frames per clip (default: the checkpoint's clip length)")
    p.add_argument("--stride", type=int, help="frames between clip starts (default: half a window)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--name", nargs="+", help="output file stems, one per video (default: the video's file name, "
                                              "made file-safe)")
    p.add_argument("--faces", help='JSON object replacing the checkpoint\'s faces settings, e.g. \'{"min_face": 30}\'')
    p.add_argument("--frames", help="JSON object replacing the checkpoint's frames settings (fps, height)")

    p = add("faces-strip", cmd_faces_strip, "QC strip of one video: aligned crops over time with their landmarks")
    p.add_argument("faces_h5", type=Path, nargs="?", help="faces .h5 of the video's shard")
    p.add_argument("video_id", nargs="?", help="the video to show")
    p.add_argument("--out", type=Path, required=True, help="PNG to write")
    p.add_argument("-n", type=int, default=12, help="crops shown")
    p.add_argument("--lowest", type=int, help="instead: the strips of the K kept videos least often detected")
    p.add_argument("--qc", type=Path, nargs="*", help="with --lowest: the QC tables (*_qc.parquet)")
    p.add_argument("--faces", type=Path, nargs="*", help="with --lowest: the faces .h5 files")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.threads:  # before torch is imported, so that it takes effect
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.gpus and "LOCAL_RANK" not in os.environ:  # torchrun's workers inherit the launcher's claim
        from video_emotion.gpus import claim_gpus

        log.info("GPUs: %s", claim_gpus(args.gpus) or os.environ.get("CUDA_VISIBLE_DEVICES", "none"))
    try:
        args.func(args)
    except Exception as err:
        if args.verbose or not user_error(err):
            raise
        # Bad input (a missing, damaged or unusable file, a wrong setting): one line, what and where, no traceback.
        raise SystemExit(f"video-emotion {args.command}: error: {err}") from None


def user_error(err: BaseException) -> bool:
    """An error the user fixes (input or setting), as opposed to a bug that needs its traceback."""
    from video_emotion.frames import VideoError

    return isinstance(err, (ValueError, FileNotFoundError, IsADirectoryError, VideoError))


if __name__ == "__main__":
    main()

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


def _params(text: str | None) -> dict:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise SystemExit(f"--params is not valid JSON ({err}): {text[:200]}") from None
    if not isinstance(value, dict):
        raise SystemExit(f"--params must be a JSON object, got: {text[:200]}")
    return value


def cmd_demo(args: argparse.Namespace) -> None:
    from video_emotion.demo import make_demo

    p = args.params
    paths = make_demo(args.out, **{k: p[k] for k in ("subjects", "sentences", "seconds", "fps", "width", "height",
                                                      "seed") if k in p})
    log.info("wrote %d demo videos under %s", len(paths), args.out)


def cmd_manifest(args: argparse.Namespace) -> None:
    from video_emotion.datasets import add_folds, build_manifest, summarize
    from video_emotion.io import safe_name, write_parquet

    p = args.params
    dataset = args.dataset or p.get("dataset", "demo")
    manifest, rejected = build_manifest(dataset, args.root, p.get("classes"), p.get("dataset_options") or {})
    if args.out is None:  # summary only
        print(summarize(manifest, rejected))
        return
    manifest = add_folds(manifest, p.get("folds") or {})
    manifest["shard"] = manifest["subject"].astype(str).map(safe_name)
    meta = {"dataset": dataset, "root": str(args.root), "classes": list(manifest["label"].cat.categories)}
    write_parquet(rejected, args.rejected, metadata=meta)
    write_parquet(manifest, args.out, metadata=meta)
    print(summarize(manifest, rejected))


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

    manifest = pd.read_parquet(args.manifest, columns=["video_id", "shard"])
    ids = manifest.loc[manifest["shard"] == args.shard, "video_id"].tolist()
    if not ids:
        raise SystemExit(f"shard {args.shard!r} has no videos in {args.manifest}; rerun the manifest rule")
    items = [(vid, Path(args.frames_root) / vid) for vid in ids]
    qc = process_shard(items, args.out, args.qc, args.params)
    ok = qc["status"] == "ok"
    log.info("shard %s: %d of %d videos aligned (backend %s, mean detection rate %.3f)", args.shard, ok.sum(),
             len(qc), ", ".join(sorted(set(qc["backend"].astype(str)))), qc.loc[ok, "detection_rate"].mean())
    for row in qc[~ok].itertuples():
        log.warning("%s: rejected (%s)", row.video_id, row.reason)


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
    from video_emotion.train import train

    train(args.cache, args.model, args.fold, args.out, args.params)


def cmd_evaluate(args: argparse.Namespace) -> None:
    from video_emotion.evaluate import evaluate

    evaluate(args.cache, args.checkpoint, args.fold, args.out, args.params)


def cmd_metrics(args: argparse.Namespace) -> None:
    from video_emotion.metrics import compute_metrics

    compute_metrics(args.predictions, args.out, args.params)


def cmd_report(args: argparse.Namespace) -> None:
    from video_emotion.report import build_report

    build_report(args.results, args.out, args.params)


def cmd_predict(args: argparse.Namespace) -> None:
    from video_emotion.predict import predict

    predict(args.video, args.model, args.out, window=args.window, stride=args.stride, device=args.device)


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
    p.add_argument("out", type=Path)

    p = add("manifest", cmd_manifest, "list a dataset's videos; without --out, print the summary table only")
    p.add_argument("root", type=Path, help="dataset root folder (for --dataset csv: the CSV file)")
    p.add_argument("--dataset", help="demo | enterface05 | ravdess | crema_d | csv (default: from --params)")
    p.add_argument("--out", type=Path, help="manifest.parquet to write")
    p.add_argument("--rejected", type=Path, help="manifest_rejected.parquet to write")

    p = add("frames", cmd_frames, "decode videos to JPEG frames at the configured fps and height: VIDEO OUT for "
            "one, or VIDEO... --out DIR for many in one process (DIR/<id>/ each)")
    p.add_argument("videos", type=Path, nargs="+", metavar="VIDEO")
    p.add_argument("--out", type=Path, help="folder of one <id>/ folder per video (000001.jpg ... and meta.json)")
    p.add_argument("--ids", nargs="+", help="the videos' ids, in order (default: their file names' stems)")
    p.add_argument("--workers", type=int, default=1, help="ffmpeg processes at a time (default 1)")

    p = add("faces", cmd_faces, "detect, track and align the faces of one shard (subject)")
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--shard", required=True)
    p.add_argument("--frames-root", type=Path, default=Path("results/frames"))
    p.add_argument("--out", type=Path, required=True, help="faces .h5")
    p.add_argument("--qc", type=Path, required=True, help="per-video QC .parquet")

    p = add("cache", cmd_cache, "pack aligned faces into the HDF5 clip cache")
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--faces", type=Path, nargs="+", required=True)
    p.add_argument("--out", type=Path, required=True)

    p = add("train", cmd_train, "train one model on one fold (resumes from last.pt)")
    p.add_argument("--cache", type=Path, required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--fold", type=int, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--nproc", type=int, default=1,
                   help="processes (GPUs) for torchrun DDP; 1 = plain run (give it as `--nproc N`)")

    p = add("evaluate", cmd_evaluate, "predict the test fold; write predictions.parquet")
    p.add_argument("--cache", type=Path, required=True)
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--fold", type=int, required=True)
    p.add_argument("--out", type=Path, required=True)

    p = add("metrics", cmd_metrics, "metrics per fold and across folds from the predictions")
    p.add_argument("predictions", type=Path)
    p.add_argument("--out", type=Path, required=True)

    p = add("report", cmd_report, "figures and index.html")
    p.add_argument("--results", type=Path, default=Path("results"))
    p.add_argument("--out", type=Path, default=Path("results/report"))

    p = add("predict", cmd_predict, "emotion timeline of a new video with a trained model")
    p.add_argument("video", type=Path)
    p.add_argument("--model", type=Path, default=Path("results/models/res_att/fold0/best.pt"), help="checkpoint")
    p.add_argument("--out", type=Path, default=Path("results/predict"))
    p.add_argument("--window", type=int, help="frames per clip (default: the checkpoint's clip length)")
    p.add_argument("--stride", type=int, help="frames between clip starts (default: half a window)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.threads:  # before torch is imported, so that it takes effect
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    if args.gpus and "LOCAL_RANK" not in os.environ:  # torchrun's workers inherit the launcher's claim
        from video_emotion.gpus import claim_gpus

        log.info("GPUs: %s", claim_gpus(args.gpus) or os.environ.get("CUDA_VISIBLE_DEVICES", "none"))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        args.func(args)
    except (ValueError, FileNotFoundError) as err:  # bad input: say what and where, without a traceback
        if args.verbose:
            raise
        raise SystemExit(f"video-emotion {args.command}: error: {err}") from None


if __name__ == "__main__":
    main()

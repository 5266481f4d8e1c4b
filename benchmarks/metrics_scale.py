"""The metrics and report stages at the size of the in-the-wild benchmarks, with the defaults' 1000 bootstrap
resamples and 10,000 permutations: DFEW's 11,697 single-labelled test clips in 5 official folds (7 classes) or
FERV39k's 7,847 in one, six models, no subject ids (every clip its own subject: videos are resampled).

    python benchmarks/metrics_scale.py [--dataset dfew|ferv39k] [--models 6] [--seeds 1]

The predictions are drawn (each model right on a share of the clips), written as the evaluate stage writes them and
read back by ``compute_metrics``; then ``build_report`` draws every figure and table from the metric files. Limits:
the metrics job within 5 minutes and 4 GiB on one core, the report within 2 minutes.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import Clock, Table  # noqa: E402

from video_emotion.io import write_parquet  # noqa: E402
from video_emotion.labels import CANONICAL  # noqa: E402
from video_emotion.metrics import TABLES, compute_metrics  # noqa: E402
from video_emotion.report import build_report  # noqa: E402

SIZES = {"dfew": [2341, 2341, 2340, 2339, 2336], "ferv39k": [7847]}  # test clips per official fold
CLASSES = list(CANONICAL[:7])  # the six and neutral: DFEW's and FERV39k's
MODELS = ["res_att", "res_att2", "p3d", "p3d_sa", "p3d_mhsa", "c3d"]


def write_predictions(root: Path, folds: list[int], models: list[str], seeds: int) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for fold, n in enumerate(folds):
        ids = [f"{fold}{i:05d}" for i in range(n)]
        labels = rng.integers(0, len(CLASSES), n)
        for m, model in enumerate(models):
            for seed in range(seeds):
                right = rng.random(n) < 0.3 + 0.05 * m
                codes = np.where(right, labels, rng.integers(0, len(CLASSES), n))
                df = pd.DataFrame({"video_id": ids, "subject": ids,
                                   "label": pd.Categorical.from_codes(labels, categories=CLASSES),
                                   "pred": pd.Categorical.from_codes(codes, categories=CLASSES)})
                for c in CLASSES:
                    df[f"p_{c}"] = np.float32(1 / len(CLASSES))
                df["n_clips"] = 1
                paths.append(root / f"model={model}" / f"seed={seed}" / f"fold={fold}" / "predictions.parquet")
                write_parquet(df, paths[-1], {"epoch": 1})
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=sorted(SIZES), default="dfew")
    parser.add_argument("--models", type=int, default=6)
    parser.add_argument("--seeds", type=int, default=1)
    args = parser.parse_args()
    folds, models = SIZES[args.dataset], MODELS[: args.models]
    table = Table("metrics_scale", f"{args.dataset}: {sum(folds):,} test clips in {len(folds)} official fold(s), "
                                   f"{len(models)} models x {args.seeds} seed(s), no subject ids")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = write_predictions(tmp / "predictions", folds, models, args.seeds)
        with Clock() as metrics_clock:
            saved = compute_metrics(paths, tmp / "metrics", {"official_folds": True})
        peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        with Clock() as report_clock:
            build_report(tmp / "report", metrics=[tmp / "metrics" / f"{t}.parquet" for t in TABLES],
                         params={"dataset": args.dataset, "models": models,
                                 "published": [{"model": "C3D", "uar": 42.74, "war": 53.54, "source": "-"}]})
        pairs = len(pd.read_parquet(tmp / "metrics" / "comparisons.parquet")) // 2
    table.row("metrics job (wall)", metrics_clock.wall, "<= 300", ok=metrics_clock.wall <= 300, unit="s",
              note=f"{pairs} model pairs, unit {saved['unit']}, bootstrap 1000, permutations 10000")
    table.row("metrics job (CPU)", metrics_clock.cpu, unit="s")
    table.row("peak memory (metrics, this process)", peak_gib, "<= 4", ok=peak_gib <= 4, unit="GiB")
    table.row("report (wall)", report_clock.wall, "<= 120", ok=report_clock.wall <= 120, unit="s")
    table.extra(dataset=args.dataset, clips=sum(folds), folds=len(folds), models=len(models), seeds=args.seeds)
    return table.finish()


if __name__ == "__main__":
    sys.exit(main())

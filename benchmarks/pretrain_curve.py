"""Learning curves with and without pretraining: validation UAR per epoch of two models of one run, and the epochs
each needs to reach the same validation UAR.

    snakemake --cores all --configfile benchmarks/pretrain_curve.yaml -- results/models/histories.parquet
    python benchmarks/pretrain_curve.py results/models --scratch res_att --pretrained res_att_ft

Reads ``<models>/<name>/seed<s>/fold<f>/history.parquet`` of both models and prints, per fold and as the mean over
folds: the validation UAR at a few epochs, the best, and the first epoch at which each model reaches the scratch
model's best validation UAR of that fold (the target), and 90% of it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd


def first_epoch(history: pd.DataFrame, target: float) -> float:
    hit = history.loc[history["val_uar"] >= target - 1e-9, "epoch"]
    return float(hit.iloc[0]) if len(hit) else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", type=Path, help="the run's results/models folder")
    parser.add_argument("--scratch", default="res_att")
    parser.add_argument("--pretrained", default="res_att_ft")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, nargs="*", default=[1, 2, 3, 5, 10, 20, 40])
    args = parser.parse_args()
    folds = sorted(int(p.name[4:]) for p in (args.models / args.scratch / f"seed{args.seed}").glob("fold*"))
    rows, curves = [], {}
    for fold in folds:
        h = {m: pd.read_parquet(args.models / m / f"seed{args.seed}" / f"fold{fold}" / "history.parquet")
             for m in (args.scratch, args.pretrained)}
        target = h[args.scratch]["val_uar"].max()
        for m, hist in h.items():
            curves.setdefault(m, []).append(hist.set_index("epoch")["val_uar"])
            rows.append({"fold": fold, "model": m, **{f"UAR@{e}": hist.set_index("epoch")["val_uar"].get(e)
                                                       for e in args.epochs},
                         "best": hist["val_uar"].max(), "target": target,
                         "epochs to target": first_epoch(hist, target),
                         "epochs to 90% of target": first_epoch(hist, 0.9 * target)})
    table = pd.DataFrame(rows)
    mean = table.drop(columns="fold").groupby("model", sort=False).mean().reset_index().assign(fold="mean")
    table = pd.concat([table, mean[table.columns]], ignore_index=True)
    print(table.to_markdown(index=False, floatfmt=".3f"))
    print("\nmean validation UAR per epoch over the folds:")
    print(pd.DataFrame({m: pd.concat(c, axis=1).mean(axis=1) for m, c in curves.items()}).T.to_string(
        float_format=lambda v: f"{v:.2f}"))


if __name__ == "__main__":
    main()

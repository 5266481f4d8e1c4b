"""The size and cost table of docs/MODEL.md: parameters and GFLOPs per clip of every registered model.

    python -m video_emotion.models.table                      # print the table
    python -m video_emotion.models.table --write docs/MODEL.md  # replace the table between its markers

FLOPs are counted by torch.utils.flop_counter.FlopCounterMode on the meta device (no memory, no compute), two per
multiply-add; papers that quote "FLOPs" for C3D (38.5 G) count multiply-adds, half our figure.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..io import atomic_path
from . import create_model, list_models

START, END = "<!-- model-table:start -->", "<!-- model-table:end -->"
PRESETS = {  # label: (kwargs of every model but c3d, clip T x H x W)
    "paper": ({}, (16, 112, 112)),
    "demo": ({"width": 8, "layers": (1, 1, 1, 1)}, (8, 64, 64)),
}
PUBLISHED_CLIPS = {"p3d199": (16, 160, 160)}  # at paper size, a model's own published clip where it has one


def count_flops(
    name: str, kwargs: dict, batch: int, clip: tuple[int, int, int], *, backward: bool = False, num_classes: int = 6
) -> tuple[int, int]:
    """(parameters, FLOPs) of ``name`` on a (batch, 3, *clip) input, forward only or forward+backward."""
    with torch.device("meta"):
        model = create_model(name, num_classes, **kwargs)
        model.train(backward)
        x = torch.empty(batch, 3, *clip)
        with FlopCounterMode(display=False) as counter:
            out = model(x)
            if backward:
                out.sum().backward()
    return sum(p.numel() for p in model.parameters()), counter.get_total_flops()


def model_table() -> str:
    """A Markdown table: per preset and model, parameters (M) and GFLOPs per clip."""
    lines = [
        "| preset | model | clip (T x H x W) | params (M) | GFLOPs / clip | GMACs / clip |",
        "|---|---|---|---:|---:|---:|",
    ]
    for preset, (kwargs, clip) in PRESETS.items():
        for name in list_models():
            kw = {} if name == "c3d" else kwargs
            size = PUBLISHED_CLIPS.get(name, clip) if preset == "paper" else clip
            params, flops = count_flops(name, kw, 1, size)
            lines.append(
                f"| {preset} | `{name}` | {'x'.join(map(str, size))} | {params / 1e6:.2f} | "
                f"{flops / 1e9:.2f} | {flops / 2e9:.2f} |"
            )
    return "\n".join(lines)


def write_into(path: Path, table: str) -> None:
    """Replace the text between the table markers of ``path`` with ``table``."""
    text = path.read_text()
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{path} has no {START} ... {END} markers")
    with atomic_path(path) as tmp:
        tmp.write_text(pattern.sub(lambda _: f"{START}\n{table}\n{END}", text))


def main() -> None:
    parser = argparse.ArgumentParser(description="Parameters and GFLOPs per clip of every registered model.")
    parser.add_argument("--write", type=Path, help="Markdown file whose table (between markers) to replace")
    args = parser.parse_args()
    table = model_table()
    if args.write:
        write_into(args.write, table)
    print(table)


if __name__ == "__main__":
    main()

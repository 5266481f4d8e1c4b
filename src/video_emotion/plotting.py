"""Plotting house style shared by the report and ``predict``: palette, colour maps, rc style, figure saving.

Figures use the Okabe-Ito palette (colour-blind safe) and perceptually uniform colour maps; each figure is written
as PNG and SVG with stable metadata, so reruns give identical files.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402

from video_emotion.io import atomic_path  # noqa: E402

# Okabe & Ito (2008), "Color Universal Design"; black last.
OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7", "#F0E442", "#000000")
SEQUENTIAL = "viridis"
OVERLAY = "inferno"

STYLE = {
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.fontsize": 10,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": matplotlib.cycler(color=OKABE_ITO),
    "svg.hashsalt": "video-emotion",  # stable SVG ids: reruns give identical files
}


def save_figure(fig: Figure, png: Path) -> list[Path]:
    """Write ``fig`` as PNG and SVG (same stem), each atomically."""
    paths = []
    for path, kwargs in ((png, {"dpi": 130, "metadata": {"Software": None}}),
                         (png.with_suffix(".svg"), {"metadata": {"Date": None, "Creator": None}})):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=path.suffix[1:], **kwargs)
        paths.append(path)
    return paths

"""A QC strip a person can judge: one video's aligned crops over time, landmarks drawn, detected / interpolated marked.

:func:`draw_strip` reads a faces HDF5 group and writes a PNG: ``n`` crops evenly spaced over the video (frame
number above each; green frame and landmarks where the detector found the face on that frame, blue where the
landmarks followed it from the frame before, orange where it was interpolated over a gap or held, red "no face"
where there is none yet), and under them a bar with the state of every frame of the video and the number of faces
the detector saw. :func:`lowest_detection` picks
the videos of a QC table to show first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from video_emotion.io import atomic_path

# frame states, in the bar's order
NONE, FILLED, TRACKED, DETECTED = "#d62728", "#ff7f0e", "#1f77b4", "#2ca02c"
STATES = {"none": NONE, "int": FILLED, "trk": TRACKED, "det": DETECTED}


def lowest_detection(qc: pd.DataFrame, k: int = 4) -> list[str]:
    """Ids of the ``k`` kept videos (``status == "ok"``: the ones with crops) with the lowest detection rate."""
    kept = qc[qc["status"] == "ok"]
    return kept.sort_values(["detection_rate", "video_id"])["video_id"].head(k).astype(str).tolist()


def draw_strip(faces_h5: str | Path, video_id: str, out_png: str | Path, n: int = 12, fps: float | None = None) -> Path:
    """Write the QC strip of ``video_id`` in ``faces_h5`` to ``out_png`` and return its path. KeyError (naming the
    videos the file holds) when the video is not in the file."""
    import h5py
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with h5py.File(faces_h5, "r") as h5:
        if video_id not in h5:
            held = sorted(h5)
            raise KeyError(f"{faces_h5} holds no video {video_id!r} (rejected videos have no crops; it holds "
                           f"{', '.join(held[:10])}{' ...' if len(held) > 10 else ''})")
        g = h5[video_id]
        detected = g["detected"][:]
        keyframe = g["keyframe"][:] if "keyframe" in g else detected
        t = len(detected)
        picks = np.unique(np.linspace(0, t - 1, min(n, t)).round().astype(int)) if t else np.zeros(0, int)
        crops = g["crops"][picks] if t else np.zeros((0, 1, 1, 3), np.uint8)  # fancy indexing: sorted, unique
        points = g["landmarks_crop"][picks] if t else np.zeros((0, 68, 2), np.float32)
        n_faces = g["n_faces"][:] if "n_faces" in g else np.ones(t, np.uint8)
        outside = g["outside"][:] if "outside" in g else np.zeros(t, np.uint8)
        has_face = np.isfinite(g["landmarks"][:, 0, 0])
        rate = float(g.attrs.get("detection_rate", detected.mean() if t else 0.0))
        backend = str(h5.attrs.get("backend", ""))
    state = np.where(keyframe, 3, np.where(detected, 2, np.where(has_face, 1, 0)))  # index into STATES
    given = backend == "aligned"  # face crops taken as they are: no detection, no landmarks
    cols = max(1, len(picks))
    fig = plt.figure(figsize=(max(6.0, 1.25 * cols), 2.2), dpi=110)
    grid = fig.add_gridspec(2, cols, height_ratios=[5, 1], hspace=0.3, wspace=0.06)
    for j, (i, crop) in enumerate(zip(picks, crops, strict=True)):
        ax = fig.add_subplot(grid[0, j])
        ax.imshow(crop)
        name, colour = list(STATES.items())[state[i]]
        if state[i]:
            ax.scatter(points[j, :, 0], points[j, :, 1], s=3, c=colour, linewidths=0)
        else:
            ax.text(0.5, 0.5, "no face", color=NONE, ha="center", va="center", transform=ax.transAxes, fontsize=7)
        when = f"{i / fps:.1f}s" if fps else f"#{i + 1}"
        ax.set_title(f"{when} {'given' if given else name}" + (" cut" if outside[i] else ""), fontsize=6, color=colour,
                     pad=2)
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_color(colour)
            spine.set_linewidth(2)
    bar = fig.add_subplot(grid[1, :])
    colours = matplotlib.colors.ListedColormap(list(STATES.values()))
    bar.imshow(state[None], aspect="auto", cmap=colours, vmin=0, vmax=3, interpolation="nearest",
               extent=(0, max(t, 1), 0, 1))
    bar.step(np.arange(t) + 0.5, 0.15 + 0.6 * n_faces / max(1, int(n_faces.max(initial=1))), where="mid",
             color="black", linewidth=1.2)
    bar.vlines(picks + 0.5, 0, 1, color="white", linewidth=0.6)
    bar.set_yticks([])
    bar.set_xlim(0, max(t, 1))
    bar.tick_params(labelsize=6)
    if given:
        bar.set_xlabel("frame (blue: the dataset's aligned face crop, taken as given; white: shown above)", fontsize=6)
        fig.suptitle(f"{video_id}: {t} aligned face frames, as given (no detection)", fontsize=8, y=0.99)
    else:
        bar.set_xlabel(f"frame (green det: detector, blue trk: tracked, orange int: interpolated/held, red: none; "
                       f"black line: faces seen, max {int(n_faces.max(initial=0))}; white: shown above)", fontsize=6)
        fig.suptitle(f"{video_id}: face detected in {rate:.0%} of {t} frames ({backend})", fontsize=8, y=0.99)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    plt.close(fig)
    return out_png


def draw_lowest(qc_files, faces_files, out_png: str | Path, k: int = 4, n: int = 12) -> Path:
    """One PNG with the QC strips of the ``k`` kept videos with the lowest detection rate, worst first (a note
    instead when no video was kept), from the per-shard QC tables and faces files."""
    import tempfile

    import h5py
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.image as mpimg

    qc = pd.concat([pd.read_parquet(p) for p in qc_files], ignore_index=True) if qc_files else pd.DataFrame()
    ids = lowest_detection(qc, k) if len(qc) else []
    where = {}
    for path in faces_files:
        with h5py.File(path, "r") as h5:
            where.update({vid: path for vid in ids if vid in h5})
    with tempfile.TemporaryDirectory() as tmp:
        images = [mpimg.imread(draw_strip(where[vid], vid, Path(tmp) / f"{i}.png", n=n))[..., :3]
                  for i, vid in enumerate(ids) if vid in where]
    if not images:
        images = [np.ones((40, 400, 3), np.float32)]
    width = max(im.shape[1] for im in images)
    pad = [np.pad(im, ((0, 12), (0, width - im.shape[1]), (0, 0)), constant_values=1.0) for im in images]
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_png) as tmp_png:
        mpimg.imsave(tmp_png, np.clip(np.concatenate(pad), 0, 1), format="png")
    return out_png

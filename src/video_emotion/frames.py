"""Decode videos with ffmpeg: probe their header, stream RGB frames, extract resampled JPEG frames.

ffmpeg itself resamples the frame rate and size, so a video is never held in memory whole. The binary is the one
on PATH when there is one, else the static build that imageio-ffmpeg ships; no ffprobe is needed.

The frames stage (:func:`extract_frames`, or :func:`extract_many` for many videos in one process) never raises on a bad video: it writes the output folder with a
``meta.json`` whose ``status`` is ``"rejected"`` and whose ``reason`` says why, so the rest of the run continues.
Library callers get a :class:`VideoError` from :func:`probe` and :func:`iter_frames`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

from video_emotion.io import atomic_path, write_json

# A video shorter than this (after resampling) is rejected: it cannot make a clip.
MIN_FRAMES = 2
# Fewer decoded seconds than this share of the header's duration means a truncated or damaged file.
MIN_DECODED_SHARE = 0.8

_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_VIDEO = re.compile(r"Stream #\d+:\d+.*?: Video: .*?(\d{2,5})x(\d{2,5})")
_FPS = re.compile(r"([\d.]+)(k?) (?:fps|tbr)")
# What ffmpeg's demuxers and decoders log for a cut-off or damaged file.
_DAMAGED = re.compile(r"packet corrupt|corrupt input packet|partial file|corrupt decoded frame|decoding error",
                      re.IGNORECASE)


class VideoError(Exception):
    """A video ffmpeg cannot read (missing, empty, corrupt, truncated or too short)."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """The ffmpeg binary: one on PATH, else imageio-ffmpeg's static build."""
    on_path = shutil.which("ffmpeg")
    if on_path:
        return on_path
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _parse_header(path: str | Path, log: str) -> dict:
    """Source fps, size and duration from the header ffmpeg prints to stderr; VideoError if there is no video."""
    stream = next((line for line in log.splitlines() if _VIDEO.search(line)), None)
    if stream is None:
        last = log.strip().splitlines()[-1] if log.strip() else "no output from ffmpeg"
        raise VideoError(path, f"ffmpeg finds no readable video stream ({last.strip()})")
    width, height = (int(v) for v in _VIDEO.search(stream).groups())
    fps = 0.0
    for value, kilo in _FPS.findall(stream):  # "25 fps" first, else "25 tbr"
        fps = float(value) * (1000 if kilo else 1)
        if fps > 0:
            break
    duration = 0.0
    match = _DURATION.search(log)
    if match:
        h, m, s = match.groups()
        duration = int(h) * 3600 + int(m) * 60 + float(s)
    if fps <= 0:
        raise VideoError(path, "ffmpeg reports no frame rate for the video stream")
    return {"fps": fps, "width": width, "height": height, "duration": duration,
            "n_frames": int(round(duration * fps))}


def _check_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise VideoError(path, "file not found; check the dataset root and the manifest path")
    if path.stat().st_size == 0:
        raise VideoError(path, "file is empty (0 bytes); re-copy or re-encode it")
    return path


def probe(path: str | Path) -> dict:
    """``{fps, width, height, n_frames, duration}`` of a video, from its header (n_frames = duration x fps)."""
    path = _check_file(path)
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)],
                          capture_output=True, text=True, errors="replace")
    return _parse_header(path, proc.stderr)


def output_size(width: int, height: int, out_height: int | None) -> tuple[int, int]:
    """The (width, height) of ffmpeg's ``scale=-2:out_height``: aspect kept, even width (None keeps the size)."""
    if not out_height:
        return width, height
    out_width = max(2, int(width * out_height / (2 * height) + 0.5) * 2)
    return out_width, int(out_height)


def _command(path: Path, fps: float | None, height: int | None, *output: str) -> list[str]:
    """The one ffmpeg command line of this module: decode ``path``, resample (fps, then scale to ``height`` with
    the aspect kept and an even width), write ``output``. Built by hand: a frames job imports nothing else."""
    filters = ([f"fps={fps}"] if fps else []) + ([f"scale=-2:{int(height)}"] if height else [])
    return [ffmpeg_exe(), "-hide_banner", "-nostdin", "-y", "-i", str(path),
            *(["-vf", ",".join(filters)] if filters else []), *output]


def iter_frames(path: str | Path, fps: float | None = None, height: int | None = None) -> Iterator[np.ndarray]:
    """Yield the RGB uint8 frames (H, W, 3) of a video, resampled by ffmpeg, one at a time from a pipe."""
    import numpy as np

    info = probe(path)
    width, out_height = output_size(info["width"], info["height"], height)
    args = _command(Path(path), fps, height, "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:")
    frame_bytes = width * out_height * 3
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err)
        n = 0
        try:
            while True:
                buf = proc.stdout.read(frame_bytes)
                if len(buf) < frame_bytes:
                    break
                n += 1
                yield np.frombuffer(buf, np.uint8).reshape(out_height, width, 3)
        finally:
            proc.stdout.close()
            if proc.poll() is None:
                proc.kill()
            code = proc.wait()
        err.seek(0)
        message = err.read().decode(errors="replace").strip()
    if code != 0 and n == 0:
        raise VideoError(path, f"ffmpeg cannot decode the video ({message.splitlines()[-1] if message else code})")


def _decode_to_jpegs(path: Path, folder: Path, fps: float | None, height: int | None, quality: int) -> tuple[dict, int]:
    """One ffmpeg run writes the frames as ``000001.jpg ...`` into ``folder``; the header comes from its log."""
    args = _command(path, fps, height, "-nostats", "-q:v", str(quality), "-start_number", "1",
                    str(folder / "%06d.jpg"))
    proc = subprocess.run(args, capture_output=True, text=True, errors="replace")
    header = _parse_header(path, proc.stderr)
    n_frames = sum(1 for _ in folder.glob("*.jpg"))
    if n_frames == 0 and fps and header["duration"] and header["duration"] * fps < MIN_FRAMES:
        raise VideoError(path, f"only 0 frame(s) at {fps:g} fps (the video lasts {header['duration']:.2f} s); "
                               f"a clip needs at least {MIN_FRAMES}")
    if proc.returncode != 0 and n_frames == 0:
        last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else str(proc.returncode)
        raise VideoError(path, f"ffmpeg cannot decode the video ({last})")
    damaged = next((line for line in proc.stderr.splitlines() if _DAMAGED.search(line)), None)
    if damaged:
        raise VideoError(path, f"truncated or damaged ({damaged.split('] ')[-1].strip()}); re-encode or re-copy it")
    return header, n_frames


def extract_frames(path: str | Path, out_dir: str | Path, fps: float | None, height: int | None,
                   quality: int = 2, video_id: str | None = None) -> dict:
    """Write the resampled frames of ``path`` as ``out_dir/000001.jpg ...`` plus ``out_dir/meta.json``.

    The folder appears atomically (written under a temporary name, then renamed). A video that cannot be used
    (missing, empty, corrupt, truncated, fewer than ``MIN_FRAMES`` frames) gives a folder holding only a
    ``meta.json`` with ``status: "rejected"`` and the ``reason``; nothing is raised. Returns the meta dict.
    """
    path, out_dir = Path(path), Path(out_dir)
    meta = {"video_id": video_id or out_dir.name, "source": str(path), "status": "ok", "reason": "",
            "fps": fps, "source_fps": None, "width": None, "height": height, "source_width": None,
            "source_height": None, "n_frames": 0, "duration": None}
    with atomic_path(out_dir, is_dir=True) as tmp:
        try:
            _check_file(path)
            header, n_frames = _decode_to_jpegs(path, tmp, fps, height, quality)
            meta.update(source_fps=header["fps"], source_width=header["width"], source_height=header["height"],
                        duration=header["duration"], n_frames=n_frames)
            meta["fps"] = fps or header["fps"]
            meta["width"], meta["height"] = output_size(header["width"], header["height"], height)
            decoded = n_frames / meta["fps"]
            if n_frames < MIN_FRAMES:
                raise VideoError(path, f"only {n_frames} frame(s) at {meta['fps']:g} fps; a clip needs "
                                       f"at least {MIN_FRAMES}")
            if header["duration"] and decoded < MIN_DECODED_SHARE * header["duration"]:
                raise VideoError(path, f"truncated or damaged: decoded {decoded:.2f} s of the "
                                       f"{header['duration']:.2f} s its header announces; re-encode or re-copy it")
        except VideoError as err:
            for jpg in tmp.glob("*.jpg"):
                jpg.unlink()
            meta.update(status="rejected", reason=err.reason, n_frames=0)
        write_json(meta, tmp / "meta.json")
    return meta


def extract_many(videos: Sequence[tuple[str | Path, str]], out_root: str | Path, fps: float | None,
                 height: int | None, quality: int = 2, workers: int = 1, progress=None) -> list[dict]:
    """:func:`extract_frames` for many ``(path, video_id)`` pairs in one process: ``out_root/<video_id>/``.

    ``workers`` ffmpeg processes run at a time (threads of this process wait on them), so a batch of videos pays
    for one interpreter start and one import instead of one per video. Each video's folder is the one
    :func:`extract_frames` writes, rejections included. ``out_root`` itself appears atomically, whole. Returns
    the meta dicts in the order of ``videos``; ``progress(meta)`` is called as each video finishes.
    """
    out_root = Path(out_root)
    ids = [vid for _, vid in videos]
    if len(set(ids)) != len(ids):
        raise ValueError(f"video ids repeat in the batch for {out_root}: every video needs its own folder")
    with atomic_path(out_root, is_dir=True) as tmp:
        def one(item: tuple[str | Path, str]) -> dict:
            meta = extract_frames(item[0], tmp / item[1], fps, height, quality, video_id=item[1])
            if progress:
                progress(meta)
            return meta

        with ThreadPoolExecutor(max(1, int(workers))) as pool:
            return list(pool.map(one, videos))


# ---------------------------------------------------------------------------------------------------------------
# Image sequences: datasets distributed as folders of frames (DFEW, FERV39k, MAFW) skip ffmpeg
# ---------------------------------------------------------------------------------------------------------------

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple:
    """Sort key that compares runs of digits as numbers: ``2.jpg`` before ``10.jpg``, ``00001_9`` before
    ``00001_10``."""
    return tuple(int(part) if part.isdigit() else part for part in _DIGITS.split(name))


def frame_files(folder: str | Path) -> list[Path]:
    """The JPEG and PNG frames of ``folder`` in the order of the numbers in their names, never lexical: frame names
    are not zero-padded everywhere (``1.jpg ... 16.jpg``). Hidden files are passed over."""
    folder = Path(folder)
    names = [e.name for e in os.scandir(folder)
             if e.name.lower().endswith(IMAGE_SUFFIXES) and not e.name.startswith(".")]
    return [folder / name for name in sorted(names, key=natural_key)]


def read_images(folder: str | Path, min_side: int | None = None) -> Iterator[np.ndarray]:
    """The RGB frames of an image folder in :func:`frame_files` order, one at a time (OpenCV's libjpeg-turbo and
    libpng). With ``min_side``, frames are decoded at the coarsest of 1/2, 1/4, 1/8 of their size that keeps both
    sides at least ``min_side`` (a JPEG is then decoded at that scale), chosen from the first frame's header. A frame
    that cannot be decoded raises :class:`OSError` naming it; an empty folder yields nothing."""
    import cv2

    flags = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
             8: cv2.IMREAD_REDUCED_COLOR_8}
    files = frame_files(folder)
    factor = 1
    if min_side and files:  # every frame of a clip has the first one's size
        factor = max([f for f in flags if min(_image_size(files[0])) // f >= min_side], default=1)
    for path in files:
        image = cv2.imread(str(path), flags[factor])
        if image is None:
            raise OSError(f"{path}: unreadable or empty image")
        yield cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) from an image's header, without decoding it; (0, 0) when it has none (decoded as it is)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, UnidentifiedImageError):
        return (0, 0)

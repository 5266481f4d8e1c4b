"""Which GPUs a job may use when no scheduler says so.

SLURM sets CUDA_VISIBLE_DEVICES for each job; Snakemake running locally only counts GPUs (`resources: gpu`), so two
jobs that each ask for one GPU would both land on cuda:0. `claim_gpus(n)` takes n GPUs that no other job on this
machine holds (an exclusive lock file per GPU, held until the process and its children end) and sets
CUDA_VISIBLE_DEVICES to them.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path

_held: list = []  # open lock files: the locks last as long as this process (and the children that inherit them)


def gpu_count() -> int:
    """NVIDIA GPUs on this machine, read from the driver without initialising CUDA (0 when there are none)."""
    gpus = Path("/proc/driver/nvidia/gpus")
    return len(list(gpus.iterdir())) if gpus.is_dir() else 0


def claim_gpus(n: int, count: int | None = None, lock_dir: str | os.PathLike | None = None) -> list[int]:
    """Lock ``n`` free GPUs and set CUDA_VISIBLE_DEVICES to them; returns their indices.

    Nothing happens when ``n`` is 0, when CUDA_VISIBLE_DEVICES is already set (a scheduler chose), or on a machine
    without GPUs. Fewer than ``n`` free GPUs is an error: Snakemake's `gpu` resource should have prevented it.
    """
    count = gpu_count() if count is None else count
    if n < 1 or "CUDA_VISIBLE_DEVICES" in os.environ or count == 0:
        return []
    lock_dir = Path(lock_dir or tempfile.gettempdir())
    claimed, locks = [], []
    for index in range(count):
        lock = open(lock_dir / f"video-emotion-gpu{index}.lock", "w")  # noqa: SIM115 (held open on purpose)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        os.set_inheritable(lock.fileno(), True)
        locks.append(lock)
        claimed.append(index)
        if len(claimed) == n:
            _held.extend(locks)
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, claimed))
            return claimed
    for lock in locks:
        lock.close()
    raise RuntimeError(f"asked for {n} GPU(s) but only {len(claimed)} of {count} are free; give Snakemake "
                       f"`--resources gpu={count}` so that it never starts more GPU jobs than there are GPUs")


def release() -> None:
    """Drop every lock this process holds (for tests; a finished job releases them by exiting)."""
    while _held:
        _held.pop().close()

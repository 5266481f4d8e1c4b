"""Is the Snakemake process that started this job still there? (Linux ``/proc``; elsewhere the answer is "yes".)

A job's process is a grandchild of Snakemake (Snakemake -> bash -> python). When Snakemake dies by SIGKILL, its jobs
live on as orphans; a long one (training) checks :func:`orphan_watch` and stops by itself. The ancestor is looked up
when the CLI starts (before the heavy imports), so that the window in which Snakemake can die unnoticed is short.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


def _start_time(pid: int) -> str | None:
    """A live process's start time (clock ticks since boot) from /proc: with the pid, it names one process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else fields[19]  # a zombie is dead, only not yet reaped


def snakemake_ancestor() -> tuple[int, str] | None:
    """Pid and start time of the nearest Snakemake process above this one (Linux /proc), or None."""
    pid = os.getppid()
    while pid > 1:
        try:
            argv = [os.path.basename(a.decode(errors="replace"))
                    for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:3]]
            ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            return None
        if "snakemake" in (argv[:1] + argv[1:2]) or argv[1:3] == ["-m", "snakemake"]:
            started = _start_time(pid)
            return (pid, started) if started else None
        pid = ppid
    return None


def orphan_watch(parent: tuple[int, str] | None, every_s: float = 2.0) -> Callable[[], None]:
    """A check (cheap, call it often) that ends this process once ``parent`` (:func:`snakemake_ancestor`) is gone.

    Snakemake killed by SIGKILL (or the OOM killer) does not take its jobs with it; an orphaned training job
    would go on writing the folder that the next run continues. Without a Snakemake parent it does nothing.
    """
    if parent is None:
        return lambda: None
    last = time.monotonic()

    def check() -> None:
        nonlocal last
        if time.monotonic() - last < every_s:
            return
        last = time.monotonic()
        if _start_time(parent[0]) != parent[1]:
            log.error("the Snakemake process that started this job (pid %d) is gone; stopping. Run snakemake again "
                      "to continue from last.pt", parent[0])
            raise SystemExit(3)

    return check

"""A throwaway single-node Slurm cluster on this machine, for tests.

It writes a private `slurm.conf` (plus `gres.conf` with fake GPUs so GPU requests can be scheduled), starts its own
munged, slurmctld and slurmd (no cgroups, no accounting database), and stops them again. Nothing under /etc is used or
changed: every daemon reads the files in the cluster's folder, talks over ports picked at start-up, and the clients
(`sbatch`, `squeue`, ...) find the cluster through `SLURM_CONF` in `LocalSlurm.env`.

    python tests/slurm/cluster.py up /tmp/slurm      # prints the export line for SLURM_CONF
    python tests/slurm/cluster.py down /tmp/slurm

Needs Debian's `slurm-wlm` and `munge` (.ci/install-slurm.sh) and root (slurmd starts jobs as their owner).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol", "srun")
PARTITION = "debug"
FAKE_GPU_DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/urandom", "/dev/random", "/dev/tty")


def missing() -> str | None:
    """Why a local cluster cannot run here, or None when it can."""
    absent = [name for name in DAEMONS if shutil.which(name) is None and not Path("/usr/sbin", name).exists()]
    if absent:
        return f"Slurm/munge not installed (missing {', '.join(absent)}); run .ci/install-slurm.sh"
    if os.geteuid() != 0:
        return "a local Slurm cluster needs root (slurmd launches jobs as their owner)"
    return None


def _which(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def _mem_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return 4096


class LocalSlurm:
    """One node (`NodeName` = this host's short name), one partition `debug`, `gpus` fake GPUs.

    The node announces `cpus` CPUs and `mem_mb` of memory whatever the machine has (`config_overrides`), so that the
    requests of workflow/profiles/slurm schedule unchanged; the test jobs themselves are tiny.
    """

    def __init__(self, root: Path, cpus: int = 16, mem_mb: int = 65536, gpus: int = 4):
        self.root = Path(root).resolve()
        self.node = socket.gethostname().split(".")[0]
        self.cpus = cpus
        self.mem_mb = mem_mb
        self.gpus = min(gpus, len(FAKE_GPU_DEVICES))
        self.conf = self.root / "slurm.conf"
        self.log_dir = self.root / "log"
        self.munge_socket = self.root / "munge" / "munge.socket"

    @property
    def env(self) -> dict[str, str]:
        """os.environ plus SLURM_CONF pointing at this cluster, and the `srun` shim first on PATH."""
        path = f"{self.root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
        return {**os.environ, "SLURM_CONF": str(self.conf), "PATH": path}

    # ------------------------------------------------------------------ configuration
    def write_config(self) -> None:
        shutil.rmtree(self.root / "state", ignore_errors=True)  # a fresh cluster: no jobs or node states left over
        for sub in ("state", "spool", "log", "munge"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        ctld_port, slurmd_port = _free_ports(2)
        r = self.root
        self.conf.write_text(
            f"""# single-node test cluster, written by tests/slurm/cluster.py
ClusterName=videoemotion
SlurmctldHost={self.node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket}
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={r}/slurmctld.pid
SlurmdPidFile={r}/slurmd.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups, no accounting daemon
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
SlurmdParameters=config_overrides
# finished jobs stay visible to squeue for 10 minutes (the executor polls job states with it)
MinJobAge=600
KillWait=5
GresTypes=gpu
NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.mem_mb} Gres=gpu:{self.gpus} State=UNKNOWN
PartitionName={PARTITION} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP
"""
        )
        # Fake GPUs: Slurm wants one character device per GPU and never opens it here (no cgroups), so harmless
        # ones stand in. Enough for the scheduler to account for `--gpus` requests; jobs see CUDA_VISIBLE_DEVICES
        # but no CUDA, and the CPU build of torch runs them on the CPU.
        files = ",".join(FAKE_GPU_DEVICES[: self.gpus])
        (r / "gres.conf").write_text(f"AutoDetect=off\nNodeName={self.node} Name=gpu File={files}\n")
        # Inside a job, Snakemake's jobstep executor starts `srun` with every SLURM_* variable removed, SLURM_CONF
        # included; a real cluster keeps its config in /etc/slurm, this one does not, so `srun` gets it back here.
        (r / "bin").mkdir(exist_ok=True)
        shim = r / "bin" / "srun"
        shim.write_text(f'#!/bin/sh\nSLURM_CONF={self.conf} exec {shutil.which("srun") or "/usr/bin/srun"} "$@"\n')
        shim.chmod(0o755)

    # ------------------------------------------------------------------ daemons
    def start(self, timeout: float = 60) -> LocalSlurm:
        why = missing()
        if why:
            raise RuntimeError(why)
        self.stop()
        self.write_config()
        key = self.root / "munge" / "munge.key"
        if not key.exists():
            subprocess.run([_which("mungekey"), "--create", f"--keyfile={key}"], check=True)
        key.chmod(0o600)
        (self.root / "munge").chmod(0o700)
        subprocess.run(
            [_which("munged"), "--force", f"--socket={self.munge_socket}", f"--key-file={key}",
             f"--pid-file={r}/munged.pid" if (r := self.root / "munge") else "",
             f"--log-file={self.log_dir}/munged.log", f"--seed-file={self.root}/munge/munged.seed"],
            check=True,
        )
        env = self.env
        subprocess.run([_which("slurmctld"), "-f", str(self.conf)], check=True, env=env)
        subprocess.run([_which("slurmd"), "-f", str(self.conf), "-N", self.node], check=True, env=env)
        self.wait_idle(timeout)
        return self

    def wait_idle(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            proc = subprocess.run(
                ["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True, env=self.env
            )
            state = (proc.stdout or proc.stderr).strip()
            if proc.returncode == 0 and state.rstrip("*") in ("idle", "mixed", "allocated"):
                return
            time.sleep(0.5)
        raise RuntimeError(f"the local Slurm node did not come up (sinfo: {state!r}); logs:\n{self.logs()}")

    def logs(self, tail: int = 40) -> str:
        out = []
        for name in ("slurmctld.log", "slurmd.log", "munged.log"):
            path = self.log_dir / name
            if path.exists():
                lines = path.read_text(errors="replace").splitlines()[-tail:]
                out.append(f"--- {name}\n" + "\n".join(lines))
        return "\n".join(out)

    def stop(self) -> None:
        """Stop this cluster's daemons (by the pids in its own pid files) and cancel what is left."""
        if self.conf.exists():
            subprocess.run(["scancel", "--full", "-u", str(os.getuid())], capture_output=True, env=self.env)
        for pidfile in ("slurmd.pid", "slurmctld.pid", "munge/munged.pid"):
            path = self.root / pidfile
            try:
                pid = int(path.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                path.unlink(missing_ok=True)
                continue
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            else:
                os.kill(pid, signal.SIGKILL)
            path.unlink(missing_ok=True)

    def __enter__(self) -> LocalSlurm:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("up", "down"):
        print(__doc__)
        return 2
    cluster = LocalSlurm(Path(argv[1]))
    if argv[0] == "up":
        cluster.start()
        print(f"export SLURM_CONF={cluster.conf}")
    else:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

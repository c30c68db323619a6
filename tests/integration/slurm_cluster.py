"""A real single-node SLURM cluster for tests: munged, slurmctld and slurmd on this host.

    with slurm_cluster() as cluster:          # or the `slurm` pytest fixture below
        subprocess.run(["sbatch", ...], env=cluster.env)

Everything lives in one temporary folder: slurm.conf, the munge key and socket, the state,
spool, logs and pid files. The daemons listen on free ports of 127.0.0.1 (so a cluster that
already runs on this host is not disturbed), run in the foreground as children of the test
process, and are stopped (with the cluster's jobs cancelled first) when the block ends.
Client tools find the cluster through SLURM_CONF, which `cluster.env` sets; sbatch passes the
environment on to the jobs, so their srun finds it too.

Debian's slurmctld, slurmd, slurm-client and munge are installed with apt-get when missing;
the fixture skips (saying why) only when they are missing and apt-get is not there.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]
BINARIES = ["slurmctld", "slurmd", "sbatch", "sinfo", "srun", "scancel", "munged"]
PARTITION = "debug"


class SlurmUnavailable(RuntimeError):
    """SLURM is not installed and cannot be installed here."""


def ensure_installed() -> None:
    """Install Debian's SLURM and munge packages if any binary is missing."""
    missing = [b for b in BINARIES if shutil.which(b) is None and not Path("/usr/sbin", b).exists()]
    if not missing:
        return
    apt = shutil.which("apt-get")
    if apt is None:
        raise SlurmUnavailable(f"SLURM binaries {missing} are missing and apt-get is unavailable")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [apt, "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
    proc = subprocess.run(install, env=env, capture_output=True, text=True)
    if proc.returncode != 0:  # stale package lists: update once and retry
        subprocess.run([apt, "update", "-q"], env=env, capture_output=True, text=True)
        proc = subprocess.run(install, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"apt-get install {' '.join(PACKAGES)} failed:\n{proc.stderr[-3000:]}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _which(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def _node_resources() -> tuple[int, int]:
    """(CPUs, RealMemory in MiB) as slurmd itself sees them."""
    proc = subprocess.run([_which("slurmd"), "-C"], capture_output=True, text=True)
    fields = dict(item.split("=", 1) for item in proc.stdout.split() if "=" in item)
    cpus = int(fields.get("CPUs", os.cpu_count() or 1))
    if "RealMemory" in fields:
        return cpus, int(fields["RealMemory"])
    kib = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal:")))
    return cpus, kib // 1024


@dataclass
class SlurmCluster:
    root: Path
    node: str
    partition: str = PARTITION
    bringup_s: float = 0.0
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def run(self, *args: str, check: bool = True, timeout: float = 30
            ) -> subprocess.CompletedProcess:
        proc = subprocess.run(list(args), env=self.env, capture_output=True, text=True,
                              timeout=timeout)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} exited {proc.returncode}: {proc.stderr}\n"
                               f"{self.logs()}")
        return proc

    def node_state(self) -> str:
        proc = self.run("sinfo", "-h", "-N", "-n", self.node, "-o", "%T", check=False, timeout=10)
        return proc.stdout.strip() if proc.returncode == 0 else ""

    def logs(self, tail: int = 3000) -> str:
        parts = []
        for name in ("munged.log", "slurmctld.log", "slurmd.log"):
            path = self.root / "log" / name
            if path.exists():
                parts.append(f"--- {name}\n{path.read_text(errors='replace')[-tail:]}")
        return "\n".join(parts)


def _write_config(root: Path, node: str) -> None:
    cpus, memory = _node_resources()
    for sub in ("munge", "state", "spool", "log", "run"):
        (root / sub).mkdir(mode=0o700)
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    socket_path = root / "munge" / "munge.socket"
    conf = f"""\
ClusterName=dedltest
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={socket_path}
StateSaveLocation={root / 'state'}
SlurmdSpoolDir={root / 'spool'}
SlurmctldPidFile={root / 'run' / 'slurmctld.pid'}
SlurmdPidFile={root / 'run' / 'slurmd.pid'}
SlurmctldLogFile={root / 'log' / 'slurmctld.log'}
SlurmdLogFile={root / 'log' / 'slurmd.log'}
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
SlurmdParameters=config_overrides
MailProg=/bin/true
InactiveLimit=0
KillWait=5
MinJobAge=300
SlurmdTimeout=60
SlurmctldTimeout=60
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory} State=UNKNOWN
PartitionName={PARTITION} Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""
    (root / "slurm.conf").write_text(conf)


def _start(cluster: SlurmCluster, name: str, args: list[str]) -> None:
    out = open(cluster.root / "log" / f"{name}.stdout", "wb")
    cluster.processes[name] = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                               stdin=subprocess.DEVNULL, env=cluster.env)
    out.close()


def _wait(what: str, ready, cluster: SlurmCluster, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, proc in cluster.processes.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited {proc.returncode} while waiting for {what}\n"
                                   + (cluster.root / "log" / f"{name}.stdout").read_text()
                                   + cluster.logs())
        if ready():
            return
        time.sleep(0.1)
    raise TimeoutError(f"SLURM test cluster: no {what} after {timeout:.0f}s\n{cluster.logs()}")


def _stop(cluster: SlurmCluster) -> None:
    if "slurmctld" in cluster.processes:
        cluster.run("scancel", "--full", "-p", cluster.partition, check=False)
    for name in ("slurmd", "slurmctld", "munged"):  # reverse start order
        proc = cluster.processes.get(name)
        if proc is None or proc.poll() is not None:
            continue
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@contextmanager
def slurm_cluster(timeout: float = 60) -> Iterator[SlurmCluster]:
    """Bring up munged, slurmctld and slurmd; yield once the node is idle; stop them."""
    ensure_installed()
    start = time.monotonic()
    node = socket.gethostname().split(".")[0]
    cluster = SlurmCluster(Path(tempfile.mkdtemp(prefix="dedl-slurm-")), node)
    try:
        _write_config(cluster.root, node)
        munge = cluster.root / "munge"
        _start(cluster, "munged", [
            _which("munged"), "--foreground", "--force", f"--socket={munge / 'munge.socket'}",
            f"--key-file={munge / 'munge.key'}", f"--seed-file={munge / 'munged.seed'}",
            f"--pid-file={cluster.root / 'run' / 'munged.pid'}",
            f"--log-file={cluster.root / 'log' / 'munged.log'}"])
        _wait("munge socket", (munge / "munge.socket").exists, cluster, timeout)
        _start(cluster, "slurmctld", [_which("slurmctld"), "-D", "-f", str(cluster.conf)])
        _wait("slurmctld", lambda: cluster.node_state() != "", cluster, timeout)
        _start(cluster, "slurmd", [_which("slurmd"), "-D", "-f", str(cluster.conf),
                                   "-N", node])
        _wait("idle node", lambda: cluster.node_state() == "idle", cluster, timeout)
        cluster.bringup_s = time.monotonic() - start
        yield cluster
    finally:
        _stop(cluster)
        shutil.rmtree(cluster.root, ignore_errors=True)


@pytest.fixture(scope="module")
def slurm() -> Iterator[SlurmCluster]:
    """A running single-node cluster (partition `debug`) for the tests of one module."""
    try:
        with slurm_cluster() as cluster:
            yield cluster
    except SlurmUnavailable as err:
        pytest.skip(str(err))

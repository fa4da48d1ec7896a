"""A real single-node SLURM cluster in a temporary folder, for the tests: Debian's slurm-wlm and munge, started
as root with their own config, key, socket, state and logs under that folder (nothing in /etc is read or
written), and stopped with everything it started. Client commands reach it through SLURM_CONF.

    with Cluster.start(tmp_path) as cluster:
        subprocess.run(["sinfo"], env=cluster.env)
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from conftest import free_ports

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue")


def missing() -> str | None:
    """Why a cluster cannot start here (None when it can)."""
    absent = [d for d in DAEMONS if shutil.which(d) is None and not Path("/usr/sbin", d).exists()]
    if absent:
        return f"needs slurm-wlm and munge ({', '.join(absent)} not found; .ci/run installs them as root)"
    if os.geteuid() != 0:
        return "a test SLURM cluster runs its daemons as root"
    return None


def _sbin(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


@dataclass
class Cluster:
    folder: Path
    nodes: list[str]  # their names
    cpus: int  # a node's
    memory_mb: int
    env: dict[str, str]
    daemons: list[subprocess.Popen]

    @classmethod
    def start(
        cls, folder: Path, cpus: int | None = None, memory_mb: int = 4000, nodes: int = 1, partitions: tuple = ()
    ) -> Cluster:
        """nodes > 1: that many slurmd daemons on this machine, each a node of its own (n1, n2, ...) on 127.0.0.1,
        sharing its CPUs; what a multi-node job needs, on one machine. partitions: more PartitionName= lines
        (all nodes), beside the default partition 'debug'."""
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)  # munge refuses a socket or key in a folder others can write
        for sub in ("state", "spool", "log", "munge"):
            (folder / sub).mkdir(exist_ok=True, mode=0o700)
        host = socket.gethostname().split(".")[0]
        cpus = cpus or max(1, (os.cpu_count() or 1) // nodes)
        names = [host] if nodes == 1 else [f"n{i + 1}" for i in range(nodes)]
        key = folder / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        munge_socket = folder / "munge" / "munge.socket"
        daemons = []
        munged = subprocess.Popen(
            [
                _sbin("munged"),
                "--foreground",
                "--force",
                f"--key-file={key}",
                f"--socket={munge_socket}",
                f"--pid-file={folder / 'munge' / 'munged.pid'}",
                f"--seed-file={folder / 'munge' / 'munged.seed'}",
                f"--log-file={folder / 'log' / 'munged.log'}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        daemons.append(munged)
        controller_port, *node_ports = free_ports(1 + nodes)
        conf = folder / "slurm.conf"
        conf.write_text(
            "\n".join(
                [
                    "ClusterName=dlkit-test",
                    f"SlurmctldHost={host}(127.0.0.1)",
                    f"SlurmctldPort={controller_port}",
                    "SlurmUser=root",
                    "SlurmdUser=root",
                    "AuthType=auth/munge",
                    "CredType=cred/munge",
                    f"AuthInfo=socket={munge_socket}",
                    "ProctrackType=proctrack/linuxproc",
                    "TaskPlugin=task/none",
                    "JobAcctGatherType=jobacct_gather/none",
                    "AccountingStorageType=accounting_storage/none",
                    "SelectType=select/cons_tres",
                    "SelectTypeParameters=CR_Core_Memory",
                    "SchedulerType=sched/backfill",
                    "MpiDefault=none",
                    "SwitchType=switch/none",
                    "ReturnToService=2",
                    "KillWait=5",
                    f"StateSaveLocation={folder / 'state'}",
                    f"SlurmdSpoolDir={folder / 'spool' / '%n'}",  # %n: the node's name
                    f"SlurmctldPidFile={folder / 'slurmctld.pid'}",
                    f"SlurmdPidFile={folder / 'slurmd-%n.pid'}",
                    f"SlurmctldLogFile={folder / 'log' / 'slurmctld.log'}",
                    f"SlurmdLogFile={folder / 'log' / 'slurmd-%n.log'}",
                    *(
                        f"NodeName={name} NodeHostname={host} NodeAddr=127.0.0.1 Port={port} CPUs={cpus}"
                        f" RealMemory={memory_mb} State=UNKNOWN"
                        for name, port in zip(names, node_ports)
                    ),
                    "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
                    *(f"PartitionName={line} Nodes=ALL State=UP" for line in partitions),
                    "",
                ]
            )
        )
        env = {**os.environ, "SLURM_CONF": str(conf)}
        cluster = cls(folder, names, cpus, memory_mb, env, daemons)
        try:
            cluster._wait(munge_socket.exists, "munged did not start", "munged.log")
            for daemon, name in [("slurmctld", None), *(("slurmd", n) for n in names)]:
                (folder / "spool" / (name or "")).mkdir(exist_ok=True)
                daemons.append(
                    subprocess.Popen(
                        [_sbin(daemon), "-D", "-f", str(conf), *(["-N", name] if name and nodes > 1 else [])],
                        env=env,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
            cluster._wait(cluster._idle, "the node did not come up idle", "slurmctld.log")
        except BaseException:
            cluster.stop()
            raise
        return cluster

    @property
    def node(self) -> str:
        return self.nodes[0]

    def _idle(self) -> bool:
        shown = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %t"], env=self.env, capture_output=True, text=True)
        states = dict(line.split() for line in shown.stdout.splitlines())  # a node is listed once per partition
        return shown.returncode == 0 and states == dict.fromkeys(self.nodes, "idle")

    def _wait(self, ready, what: str, log: str, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if ready():
                return
            dead = [d.args[0] for d in self.daemons if d.poll() is not None]
            if dead:
                break
            time.sleep(0.2)
        path = self.folder / "log" / log
        text = path.read_text()[-3000:] if path.exists() else "(no log)"
        raise RuntimeError(f"{what} ({', '.join(map(str, dead)) or 'timed out'}); {log}:\n{text}")

    def run(self, *command: str) -> str:
        """A client command's output (sinfo, squeue, scancel, ...) against this cluster."""
        return subprocess.run(command, env=self.env, capture_output=True, text=True, check=True).stdout

    def stop(self) -> None:
        """Stop every job and daemon; nothing of this cluster keeps running."""
        if any(d.poll() is None for d in self.daemons[1:]):
            subprocess.run(["scancel", "--full", "--partition=debug"], env=self.env, capture_output=True)
        for daemon in reversed(self.daemons):
            if daemon.poll() is None:
                os.killpg(daemon.pid, signal.SIGTERM)
        for daemon in reversed(self.daemons):
            try:
                daemon.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
                daemon.wait()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

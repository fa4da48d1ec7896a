"""hydra/launcher=slurm: one SLURM job per sweep job, through submitit, said plainly.

Hydra's submitit launcher submits the jobs and waits on submitit, which asks `sacct` for their states; where
SLURM keeps no accounting every poll prints a warning twice, and a job SLURM can never start waits for ever
without a word. dlkit's launcher submits the same way, then:

- before anything is created, checks the request against the partition (`sinfo`, `scontrol show partition`):
  CPUs, memory and GPUs a node, nodes, time; a request no node can grant is one line with the override to change;
- watches the jobs with `squeue` (no sacct): each job's state as it changes (pending and why, running on which
  node, done) and where its log is; a job pending for a reason SLURM never lifts by itself stops the sweep;
- a job that ends without a result (cancelled, pre-empted, killed) is said with its state and log, and the
  sweep goes on; its run is KILLED with a checkpoint when it got SIGTERM, and launching the sweep again resumes it.
"""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from omegaconf import OmegaConf

from dlkit import environment
from dlkit.errors import ConfigError, stop

log = logging.getLogger("dlkit")

POLL_S = 2.0  # how often squeue is asked
# Pending reasons SLURM never lifts by itself: the request breaks a limit of the partition, QOS or account.
NEVER = re.compile(r"^(Partition(Config|NodeLimit|TimeLimit)|BadConstraints|Invalid\w+|\w*Max\w*PerJob\w*)$")


@dataclass(frozen=True)
class Partition:
    name: str
    offers: tuple[tuple[int, int, int], ...]  # each node's (CPUs, memory in MB, GPUs)
    max_minutes: float  # math.inf: no limit
    max_cpus_per_node: float

    @property
    def cpus(self) -> int:
        return int(min(max((c for c, _, _ in self.offers), default=0), self.max_cpus_per_node))

    @property
    def memory_mb(self) -> int:
        return max((m for _, m, _ in self.offers), default=0)

    @property
    def gpus(self) -> int:
        return max((g for _, _, g in self.offers), default=0)

    def fits(self, cpus: int, memory_mb: int, gpus: int) -> bool:
        """Whether one node offers all three at once."""
        limit = self.max_cpus_per_node
        return any(min(c, limit) >= cpus and m >= memory_mb and g >= gpus for c, m, g in self.offers)


def _client(*command: str) -> str:
    if shutil.which(command[0]) is None:
        raise ConfigError(
            f"hydra/launcher=slurm needs SLURM's commands ({command[0]} is not on the PATH): run it on a cluster's"
            " login node, or pick another launcher (hydra/launcher=joblib runs jobs side by side here)."
        )
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise ConfigError(f"{' '.join(command[:2])} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def _minutes(text: str) -> float:
    """SLURM's time limit ('UNLIMITED', 'MM', 'HH:MM:SS', 'D-HH:MM:SS') in minutes."""
    if text in ("UNLIMITED", "INFINITE", "NONE"):
        return math.inf
    days, _, clock = text.rpartition("-")
    parts = [int(p) for p in clock.split(":")]
    hours, minutes, seconds = ([0] * (3 - len(parts)) + parts) if len(parts) > 1 else (0, parts[0], 0)
    return int(days or 0) * 1440 + hours * 60 + minutes + seconds / 60


def partition(name: str | None) -> Partition:
    """What a partition (the default one when None) offers, read from sinfo and scontrol."""
    shown = _client("scontrol", "show", "partition", "--oneliner")
    fields = [dict(f.split("=", 1) for f in line.split() if "=" in f) for line in shown.splitlines() if line.strip()]
    names = [f["PartitionName"] for f in fields]
    chosen = next(
        (f for f in fields if f["PartitionName"] == name or (name is None and f.get("Default") == "YES")), None
    )
    if chosen is None:
        which = f"partition '{name}' does not exist" if name else "this cluster has no default partition"
        raise ConfigError(f"{which}; its partitions: {', '.join(names)}. Pick one: hydra.launcher.partition=NAME")
    nodes = _client("sinfo", "-h", "-N", "-p", chosen["PartitionName"], "-o", "%N|%c|%m|%G").splitlines()
    rows = {line.split("|")[0]: line.split("|")[1:] for line in nodes if line.strip()}  # a node is listed once
    per_node = chosen.get("MaxCPUsPerNode", "UNLIMITED")
    return Partition(
        chosen["PartitionName"],
        tuple((int(c), int(m.rstrip("+")), _gpus(g)) for c, m, g in rows.values()),
        _minutes(chosen.get("MaxTime", "UNLIMITED")),
        math.inf if per_node == "UNLIMITED" else int(per_node),
    )


def _gpus(gres: str) -> int:
    """GPUs in a node's generic resources ('gpu:4', 'gpu:a100:8(S:0-1)', '(null)')."""
    found = re.findall(r"gpu(?::[^:,(]+)?:(\d+)", gres)
    return sum(int(n) for n in found)


def check_request(launcher: Mapping[str, Any]) -> Partition:
    """The partition, when it can grant what the launcher asks of each job; else one ConfigError that says
    what was asked, what the partition offers and which override to change."""
    offered = partition(launcher.get("partition"))
    asked_cpus = (launcher.get("cpus_per_task") or 1) * (launcher.get("tasks_per_node") or 1)
    asked_memory, asked_gpus = launcher.get("mem_gb") or 0, launcher.get("gpus_per_node") or 0
    problems, fixes = [], []
    node_cpus = offered.cpus
    if asked_cpus > node_cpus:
        problems.append(f"{asked_cpus} CPUs a node (it has {node_cpus})")
        fixes.append(f"hydra.launcher.cpus_per_task={max(1, node_cpus // (launcher.get('tasks_per_node') or 1))}")
    if asked_memory * 1024 > offered.memory_mb:
        problems.append(f"{asked_memory} GB a node (it has {offered.memory_mb / 1024:.1f} GB)")
        fixes.append(f"hydra.launcher.mem_gb={max(1, offered.memory_mb // 1024)}")
    if asked_gpus > offered.gpus:
        problems.append(f"{asked_gpus} GPUs a node (it has {offered.gpus})")
        fixes.append(f"hydra.launcher.gpus_per_node={offered.gpus or 'null'}")
    if (launcher.get("nodes") or 1) > len(offered.offers):
        problems.append(f"{launcher['nodes']} nodes (it has {len(offered.offers)})")
        fixes.append(f"hydra.launcher.nodes={len(offered.offers)} trainer.num_nodes={len(offered.offers)}")
    if (launcher.get("timeout_min") or 0) > offered.max_minutes:
        problems.append(f"{launcher['timeout_min']} minutes (it allows {offered.max_minutes:g})")
        fixes.append(f"hydra.launcher.timeout_min={int(offered.max_minutes)}")
    if not problems and not offered.fits(asked_cpus, asked_memory * 1024, asked_gpus):
        problems.append(f"{asked_cpus} CPUs, {asked_memory} GB and {asked_gpus} GPUs on one node (no node has all)")
        fixes.append("fewer of one of them")
    if problems:
        raise ConfigError(
            f"hydra/launcher=slurm asks partition '{offered.name}' for {' and '.join(problems)}: SLURM would keep"
            f" the jobs pending for ever. Ask for what fits: {' '.join(fixes)}"
        )
    return offered


def launch(launcher, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[JobReturn]:
    """Submit the jobs as Hydra's submitit launcher does (one array job; `launcher` is what each job runs), then
    watch them (see the module's doc)."""
    import submitit

    params = launcher.params
    Path(str(launcher.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
    executor = submitit.AutoExecutor(
        cluster="slurm", folder=params["submitit_folder"], slurm_max_num_timeout=params["max_num_timeout"]
    )
    shared = set(OmegaConf.structured(BaseQueueConf).keys())  # the others are SLURM's own: slurm_<name>
    executor.update_parameters(
        **{
            (k if k in shared else f"slurm_{k}"): v
            for k, v in params.items()
            if k not in ("submitit_folder", "max_num_timeout")
        }
    )
    numbers = range(initial_job_idx, initial_job_idx + len(job_overrides))
    arguments = [
        (list(o), "hydra.sweep.dir", n, f"job_id_for_{n}", Singleton.get_state())
        for o, n in zip(job_overrides, numbers)
    ]
    quiet = logging.getLogger("submitit")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # its sacct warnings at every poll: dlkit watches with squeue instead
    try:
        try:
            jobs = executor.map_array(launcher, *zip(*arguments))
        except subprocess.CalledProcessError as exc:  # sbatch refused: its own words
            said = exc.stderr or exc.output or b""
            said = said.decode(errors="replace") if isinstance(said, bytes) else said
            _stop(f"sbatch refused the jobs: {said.strip() or exc}", [])
        shown = [list(filter_overrides(o)) for o in job_overrides]  # each job named by what tells it apart
        labels = [" ".join(v for v in o if any(v not in other for other in shown)) or " ".join(o) for o in shown]
        return watch(jobs, labels, [n + 1 for n in numbers])
    finally:
        quiet.setLevel(level)


def _stop(message: str, jobs) -> None:
    if jobs:
        subprocess.run(["scancel", *{j.job_id.split("_")[0] for j in jobs}], capture_output=True)
    stop(message)  # the parent is closed FAILED on the way out


def watch(jobs, labels: Sequence[str], numbers: Sequence[int]) -> list[JobReturn]:
    """Wait for every job, saying each one's state as it changes; their returns, in order."""
    total = os.environ.get(environment.SWEEP_SIZE) or str(len(jobs))
    said: dict[str, str] = {}
    returns: dict[str, JobReturn] = {}
    prefix = {j.job_id: f"[job {n}/{total}] SLURM job {j.job_id}" for j, n in zip(jobs, numbers)}
    for job, label in zip(jobs, labels):
        print(f"{prefix[job.job_id]} ({label}) submitted; log: {job.paths.stdout}", flush=True)
    gone_since: dict[str, float] = {}
    while len(returns) < len(jobs):
        queued = _queue({j.job_id.split("_")[0] for j in jobs})
        for job, label in zip(jobs, labels):
            if job.job_id in returns:
                continue
            if job.job_id in queued:
                state, reason, node = queued[job.job_id]
                if NEVER.match(reason):
                    _stop(
                        f"SLURM will never start job {job.job_id} ({label}): pending because of {reason}, a limit of"
                        " its partition, QOS or account. Change hydra.launcher.* to fit, or ask the cluster's admins.",
                        jobs,
                    )
                text = state.lower() + (f" ({reason})" if state == "PENDING" and reason not in ("None", "") else "")
                text += f" on {node}" if state == "RUNNING" and node else ""
                if said.get(job.job_id) != text:
                    print(f"{prefix[job.job_id]} {text}", flush=True)
                    said[job.job_id] = text
                continue
            if job.paths.result_pickle.exists():
                returns[job.job_id] = job.results()[0]
                print(f"{prefix[job.job_id]} done", flush=True)
            elif time.time() - gone_since.setdefault(job.job_id, time.time()) > 5:  # no result is coming
                print(
                    f"{prefix[job.job_id]} ended {_ended(job.job_id)} without a result ({label}); its log:"
                    f" {job.paths.stdout}. Launch the sweep again to resume it.",
                    flush=True,
                )
                returns[job.job_id] = _no_result(label)
        if len(returns) < len(jobs):
            time.sleep(POLL_S)
    return [returns[j.job_id] for j in jobs]


def _queue(array_ids: set[str]) -> dict[str, tuple[str, str, str]]:
    """Each queued job's (state, reason, node) by id ('12_0' for an array's task), from squeue."""
    shown = subprocess.run(
        ["squeue", "-h", "-r", "-j", ",".join(sorted(array_ids)), "-o", "%i|%T|%r|%N"],
        capture_output=True,
        text=True,
    )
    rows = [line.split("|") for line in shown.stdout.splitlines() if line.count("|") == 3]
    return {job_id: (state, reason, node) for job_id, state, reason, node in rows}


def _ended(job_id: str) -> str:
    """'FAILED (exit code 143)', as SLURM still remembers a job that left the queue."""
    shown = subprocess.run(["scontrol", "show", "job", job_id, "--oneliner"], capture_output=True, text=True)
    state, code = re.search(r"JobState=(\S+)", shown.stdout), re.search(r"ExitCode=(\d+):(\d+)", shown.stdout)
    if state is None:
        return "(its state is no longer known)"
    exit_code = (
        f" (exit code {code.group(1)}{f', signal {code.group(2)}' if code.group(2) != '0' else ''})" if code else ""
    )
    return state.group(1) + exit_code


def _no_result(label: str) -> JobReturn:
    """What a job that produced no result returns: as a failed dlkit job does, nan, so the sweep goes on."""
    ret = JobReturn(overrides=label.split(), status=JobStatus.COMPLETED)
    ret.return_value = math.nan
    return ret

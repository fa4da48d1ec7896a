"""Tags that say what ran where: versions, git commit, plugins, device."""

from __future__ import annotations

import getpass
import platform
import subprocess
import sys
from pathlib import Path

from dlkit.tracking import tags as tag


def _git_commit(cwd: Path) -> dict[str, str]:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd, capture_output=True, text=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {}  # not a git checkout, or no git
    return {"mlflow.source.git.commit": commit, tag.GIT_COMMIT: commit, tag.GIT_DIRTY: str(bool(dirty)).lower()}


def run_tags(plugins: list[str]) -> dict[str, str]:
    from importlib.metadata import version

    tags = {
        "mlflow.user": getpass.getuser(),
        "mlflow.source.name": "dlkit",
        "mlflow.source.type": "LOCAL",
        tag.VERSION: version("dlkit"),
        tag.COMMAND: " ".join(["dlkit", *sys.argv[1:]]) if Path(sys.argv[0]).name in ("dlkit", "__main__.py") else "",
        tag.PLUGINS: ", ".join(plugins) or "none",
        "version.python": platform.python_version(),
        "version.torch": version("torch"),  # read from the installed metadata: nothing is imported for a tag
        "version.pytorch_lightning": version("pytorch-lightning"),
        "version.mlflow": version("mlflow"),
        "host.name": platform.node(),
    }
    tags.update(_git_commit(Path.cwd()))
    return {k: v for k, v in tags.items() if v}


def device_tags(trainer) -> dict[str, str]:
    import torch

    device = trainer.strategy.root_device
    # Who started DDP's processes: Lightning itself, torchrun ("TorchElastic"), SLURM's srun ("SLURM").
    environment = getattr(trainer.strategy, "cluster_environment", None)
    launcher = type(environment).__name__.removesuffix("Environment") if environment is not None else ""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = _cpu_name()
    return {
        "device.accelerator": device.type,
        "device.name": name,
        "device.count": str(trainer.num_devices),  # a node's
        "device.nodes": str(trainer.num_nodes),
        "device.processes": str(trainer.world_size),
        "device.precision": str(trainer.precision),
        "device.torch_threads": str(torch.get_num_threads()),
        **({"device.launched_by": launcher} if launcher else {}),
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()

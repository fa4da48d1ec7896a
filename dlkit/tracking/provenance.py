"""Tags that say what ran where: versions, git commit, plugins, device."""
from __future__ import annotations

import getpass
import platform
import subprocess
import sys
from pathlib import Path


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
    return {"mlflow.source.git.commit": commit, "dlkit.git_commit": commit, "dlkit.git_dirty": str(bool(dirty)).lower()}


def run_tags(plugins: list[str]) -> dict[str, str]:
    from importlib.metadata import version

    import pytorch_lightning
    import torch

    import dlkit

    tags = {
        "mlflow.user": getpass.getuser(),
        "mlflow.source.name": "dlkit",
        "mlflow.source.type": "LOCAL",
        "dlkit.version": dlkit.__version__,
        "dlkit.command": " ".join(["dlkit", *sys.argv[1:]]) if Path(sys.argv[0]).name in ("dlkit", "__main__.py") else "",
        "dlkit.plugins": ", ".join(plugins) or "none",
        "version.python": platform.python_version(),
        "version.torch": torch.__version__,
        "version.pytorch_lightning": pytorch_lightning.__version__,
        "version.mlflow": version("mlflow"),  # not imported here: the recorder process writes to MLflow
        "host.name": platform.node(),
    }
    tags.update(_git_commit(Path.cwd()))
    return {k: v for k, v in tags.items() if v}


def device_tags(trainer) -> dict[str, str]:
    import torch

    device = trainer.strategy.root_device
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = _cpu_name()
    return {
        "device.accelerator": device.type,
        "device.name": name,
        "device.count": str(trainer.num_devices),
        "device.precision": str(trainer.precision),
        "device.torch_threads": str(torch.get_num_threads()),
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()

"""DDP as dlkit runs it. Rank 0 reports and records; the processes beside it train their shard in lockstep and record
nothing. Lightning starts those processes by re-running the command line: rank 0 hands them its job's resolved config
and checkpoint, and they run that job (cli.py), not the command (which, for a sweep, would launch the whole sweep
again). A job's DDP ends with the job: its process group closed, the variables Lightning set for it restored.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from dlkit.environment import DDP_CHECKPOINT, DDP_CONFIG

# Set by Lightning's DDP launcher for the processes it starts.
LAUNCHER_ENVIRONMENT = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


def rank() -> int:
    """This process's rank: > 0 beside rank 0 (a process Lightning, torchrun or srun started)."""
    from pytorch_lightning.utilities import rank_zero_only

    return rank_zero_only.rank


def handed_config() -> str | None:
    """The config file rank 0 handed this process, when Lightning started it beside rank 0; else None."""
    if os.environ.get("LOCAL_RANK", "0") == "0":
        return None
    return os.environ.get(DDP_CONFIG) or None


def hand_over(config_yaml: str, checkpoint: str | Path | None, folder: Path) -> None:
    """Rank 0: its job's config and the checkpoint it starts from, for the processes Lightning starts beside it."""
    (folder / "ddp-config.yaml").write_text(config_yaml)
    os.environ.update({DDP_CONFIG: str(folder / "ddp-config.yaml"), DDP_CHECKPOINT: str(checkpoint or "")})


def handed_checkpoint() -> str | None:
    """Beside rank 0: the checkpoint rank 0 starts from (None: a fresh start)."""
    return os.environ.get(DDP_CHECKPOINT) or None


@contextlib.contextmanager
def job_scope() -> Iterator[None]:
    """One job's DDP: afterwards its process group is closed and the variables Lightning and hand_over set are
    restored (with LOCAL_RANK set, Lightning would take the next job of a sweep for one whose processes someone else
    starts)."""
    saved = {k: os.environ.get(k) for k in (*LAUNCHER_ENVIRONMENT, DDP_CONFIG, DDP_CHECKPOINT)}
    try:
        yield
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

"""Pins on the non-public Hydra and Lightning APIs dlkit uses (all in dlkit/internals.py): a release that
changes one fails here, by name."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from dlkit import config, internals


class Direct(pl.LightningModule):
    """Steps PyTorch's optimizer itself, as dlkit's task does, and counts the step."""

    def __init__(self):
        super().__init__()
        self.automatic_optimization = False
        self.layer = nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        optimizer = self.optimizers().optimizer
        optimizer.zero_grad()
        self.layer(batch[0]).sum().backward()
        optimizer.step()
        internals.count_optimizer_step(self.trainer)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(**options) -> pl.Trainer:
    trainer = pl.Trainer(
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, **options
    )
    trainer.fit(Direct(), DataLoader(TensorDataset(torch.randn(10, 2)), batch_size=2))
    return trainer


def test_count_optimizer_step_counts_global_steps_and_max_steps_honours_them():
    assert _fit(max_epochs=2).global_step == 10  # 5 batches, 2 epochs
    assert _fit(max_epochs=5, max_steps=3).global_step == 3  # Lightning stops on the count


def test_hydra_args_parser_reads_hydras_flags():
    parser = internals.hydra_args_parser()
    args = parser.parse_args(["-m", "seed=0,1", "model=lenet5"])
    assert args.multirun and args.overrides == ["seed=0,1", "model=lenet5"]
    args = parser.parse_args(["--cfg", "job", "seed=1"])
    assert args.cfg == "job" and not args.multirun
    for flag, attribute in [("--help", "help"), ("--hydra-help", "hydra_help"), ("--info", "info")]:
        assert getattr(parser.parse_args([flag]), attribute)
    args = parser.parse_args([])
    assert args.config_name is None and args.config_dir is None and args.shell_completion is False


def test_apply_value_overrides_sets_adds_and_deletes_as_hydra():
    cfg = OmegaConf.create({"a": 1, "b": {"c": 2, "d": 3}})
    OmegaConf.set_struct(cfg, True)  # as Hydra composes: a key must exist to be set without +
    internals.apply_value_overrides(config.parse(["a=5", "+e=1", "~b.c", "++b.d=7", "++f=[1,2]"]), cfg)
    assert OmegaConf.to_container(cfg) == {"a": 5, "b": {"d": 7}, "e": 1, "f": [1, 2]}
    with pytest.raises(Exception, match="Could not override 'x'"):
        internals.apply_value_overrides(config.parse(["x=1"]), cfg)


def test_mlflow_pytorch_imports_without_lightning_and_lightning_imports_afterwards():
    """The recorder's import of mlflow.pytorch: it goes on when Lightning cannot be imported (an MLflow release
    that needs Lightning there fails this), and the block is lifted afterwards."""
    import subprocess
    import sys

    script = (
        "import sys; from dlkit.tracking import logged_model; logged_model.import_mlflow_pytorch_without_lightning(); "
        "import mlflow.pytorch; assert callable(mlflow.pytorch.log_model); "
        "assert 'pytorch_lightning' not in sys.modules and 'lightning' not in sys.modules; "
        "import pytorch_lightning; print('ok')"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


class Counting:
    """Hydra's config loader, counting the jobs it composes."""

    def __init__(self, loader):
        self.loader, self.composed = loader, 0

    def list_groups(self, parent):
        return self.loader.list_groups(parent)

    def load_sweep_config(self, master, overrides):
        self.composed += 1
        return self.loader.load_sweep_config(master, overrides)


def test_composed_once_gives_each_job_hydras_own_config_composing_once_per_choice_of_groups():
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    jobs = [
        ["seed=1"],
        ["seed=2", "optimizer.lr=0.5"],
        ["model=lenet5", "seed=2"],
        ["model=lenet5", "seed=3", "+tracking.run_name=x"],
        ["optimizer=sgd", "trainer.max_epochs=3", "++extra.key=1", "~data.val_fraction"],
        ["hydra.job.name=other", "seed=4"],  # Hydra's own settings: composed anew
    ]
    with initialize_config_dir(config_dir=str(config.CONF_DIR), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        hydra_overrides = [
            "hydra.sweep.subdir=${hydra.job.override_dirname}",
            "hydra.job.config.override_dirname.exclude_keys=[seed]",
        ]
        master = loader.load_configuration(
            config_name=config.CONFIG_NAME, overrides=hydra_overrides, run_mode=RunMode.MULTIRUN
        )
        counting = Counting(loader)
        once = internals.ComposedOnce(counting)
        subdirs = []
        for job in jobs:
            ours, hydras = once.load_sweep_config(master, job), loader.load_sweep_config(master, job)
            assert OmegaConf.to_container(ours) == OmegaConf.to_container(hydras), job
            for key in ("hydra.sweep.dir", "hydra.sweep.subdir", "hydra.job.name", "hydra.overrides.task"):
                assert OmegaConf.select(ours, key) == OmegaConf.select(hydras, key), key
            subdirs.append(ours.hydra.sweep.subdir)
        # A copied job's folder is named for its own overrides, not for the job it was copied from.
        assert subdirs[:2] == ["", "optimizer.lr=0.5"] and subdirs[3] == "+tracking.run_name=x,model=lenet5"
        assert counting.composed == 4  # the default groups, lenet5, sgd, and the job that sets Hydra's own name
        assert once.load_sweep_config(master, ["seed=5"]).seed == 5 and counting.composed == 4


def test_dlkit_sweeper_hands_one_composing_loader_to_its_check_and_its_launcher():
    """What hydra/sweeper=dlkit relies on in Hydra's basic sweeper: setup() gives the launcher the context it was
    given, and the check of a batch composes through that context's loader."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.plugins import Plugins
    from hydra.types import HydraContext, RunMode

    with initialize_config_dir(config_dir=str(config.CONF_DIR), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        master = loader.load_configuration(config_name=config.CONFIG_NAME, overrides=[], run_mode=RunMode.MULTIRUN)
        counting = Counting(loader)
        sweeper = Plugins.instance().instantiate_sweeper(  # as Hydra's multirun does
            config=master,
            hydra_context=HydraContext(config_loader=counting, callbacks=None),  # no job runs here
            task_function=lambda cfg: None,
        )
        assert type(sweeper).__name__ == "DlkitSweeper"  # the default
        shared = sweeper.hydra_context.config_loader
        assert isinstance(shared, internals.ComposedOnce) and sweeper.launcher.hydra_context.config_loader is shared
        sweeper.validate_batch_is_legal([["seed=1"], ["seed=2"], ["seed=3"]])
        assert counting.composed == 1
        assert shared.load_sweep_config(master, ["seed=2"]).seed == 2 and counting.composed == 1

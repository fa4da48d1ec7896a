"""Every form of Hydra's extended override grammar (its documentation's examples) plans, job for job, what Hydra's
basic sweeper launches: dlkit's check before launch (config.compose_jobs, which hydra/sweeper=dlkit runs) against
Hydra's BasicSweeper expanding the same command and Hydra's own composition of each job it launches."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from dlkit import config

FORMS = [
    ["seed=1,2"],
    ["optimizer.lr=0.1,0.01", "seed=3"],
    ["seed=range(1,4)"],
    ["seed=range(0,6,2)"],
    ["seed=sort(3,1,2)"],
    ["seed=sort(3,1,2,reverse=true)"],
    ["seed=choice(1,2)"],
    ["activation=glob(*,exclude=[sigmoid,identity])"],
    ["activation=glob(*elu)"],
    ["activation=relu,tanh", "optimizer=sgd,adam", "optimizer.lr=0.05"],  # group choices with inner values
    ["+tracking.run_name='a,b',c"],  # a quoted comma is part of a value
    ["model.hidden=[64],[32,32]"],  # lists as values
    ["seed=1,2", "~data.val_fraction"],
    ["+extra.key=1,2", "++seed=4"],
    ["seed=1,2", "+tracking.run_name=run-${seed}"],  # an interpolation, resolved per job
    ["seed=1,2", "+extra={a:1,b:[x,y]}"],  # a dict value
]


class Recording:
    """A launcher that launches nothing: it keeps the batches Hydra's sweeper hands it."""

    def __init__(self) -> None:
        self.jobs: list[list[str]] = []

    def launch(self, job_overrides, initial_job_idx):
        from hydra.core.utils import JobReturn, JobStatus

        self.jobs += [list(job) for job in job_overrides]
        return [JobReturn(status=JobStatus.COMPLETED, _return_value=None) for _ in job_overrides]


def hydras_jobs(overrides: list[str]) -> list[tuple[list[str], dict]]:
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.plugins import Plugins
    from hydra.types import HydraContext, RunMode

    with initialize_config_dir(config_dir=str(config.CONF_DIR), version_base="1.3", job_name="dlkit"):
        loader = GlobalHydra.instance().config_loader()
        master = loader.load_configuration(
            config_name=config.CONFIG_NAME, overrides=["hydra/sweeper=basic"], run_mode=RunMode.MULTIRUN
        )
        sweeper = Plugins.instance().instantiate_sweeper(
            config=master, hydra_context=HydraContext(config_loader=loader, callbacks=None), task_function=None
        )
        assert type(sweeper).__name__ == "BasicSweeper"
        sweeper.launcher = launcher = Recording()
        sweeper.sweep(arguments=overrides)
        return [(job, plain(loader.load_sweep_config(master, job))) for job in launcher.jobs]


def plain(cfg) -> dict:
    """The job's config without Hydra's own node (whose job number only a launch sets); interpolations as written."""
    cfg = OmegaConf.to_container(cfg)
    cfg.pop("hydra", None)
    return cfg


@pytest.mark.parametrize("overrides", FORMS, ids=[" ".join(f) for f in FORMS])
def test_each_form_of_hydras_sweep_grammar_plans_the_jobs_the_basic_sweeper_launches(overrides, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the basic sweeper writes multirun.yaml into its sweep folder
    theirs = hydras_jobs(overrides)
    ours = [(job, plain(cfg)) for job, cfg in config.compose_jobs(overrides, multirun=True)]
    assert len(theirs) > 1
    assert [job for job, _ in ours] == [job for job, _ in theirs]
    for (job, mine), (_, hydras) in zip(ours, theirs):
        assert mine == hydras, job

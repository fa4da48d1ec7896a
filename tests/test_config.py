"""Composition of every option, the overrides users type, and the messages for the ones they mistype."""

from pathlib import Path

import pytest
import torch

import dlkit
from dlkit import config
from dlkit.build import build
from dlkit.errors import ConfigError
from dlkit.plan import Plan
from idx_files import write_mnist

GROUPS = sorted(p.name for p in config.CONF_DIR.iterdir() if p.is_dir())
# Study presets are sweeps, not options of a single run: tests/test_report.py runs every one. Options that need
# other processes or machines have their own tests: DDP (tests/test_devices.py, as real `dlkit` processes, since
# Lightning re-runs the command line), GPUs (skipped without one), the tracking server (tests/test_server.py).
ELSEWHERE = {("trainer", "ddp"), ("trainer", "ddp_cpu"), ("trainer", "gpu"), ("tracking", "server")}
OPTIONS = [(g, f.stem) for g in GROUPS if g != "study" for f in sorted((config.CONF_DIR / g).glob("*.yaml"))]
RUNNABLE = [o for o in OPTIONS if o not in ELSEWHERE]


def test_every_issue_group_exists():
    for group in (
        "model",
        "activation",
        "norm",
        "dropout",
        "residual",
        "loss",
        "optimizer",
        "data",
        "trainer",
        "tracking",
        "task",
    ):
        assert group in GROUPS
    stems = {g: {o for gg, o in OPTIONS if gg == g} for g in GROUPS}
    assert {"mlp", "lenet5", "resnet"} <= stems["model"]
    assert {"sigmoid", "tanh", "relu"} <= stems["activation"]
    assert {"off", "on"} <= stems["residual"] and {"none", "batch"} <= stems["norm"]
    assert {"sgd", "momentum", "adam"} <= stems["optimizer"] and {"cross_entropy", "mse"} <= stems["loss"]


# What an option needs beside it to make a valid run (a loss needs its task, a task its data).
COMPANIONS = {
    ("task", "binary"): ["data=moons", "loss=bce"],
    ("task", "regression"): ["data=regression_outliers"],
    ("task", "seq2seq"): ["data=reverse"],
    ("loss", "bce"): ["task=binary", "data=moons"],
    ("loss", "sequence_cross_entropy"): ["data=reverse"],
    ("optimizer", "sgd"): ["data.limit=8"],  # batch size 1: keep the epoch short
}


@pytest.fixture(scope="module")
def idx_root(tmp_path_factory):
    return tmp_path_factory.mktemp("idx")


@pytest.mark.parametrize("group,option", RUNNABLE)
def test_every_option_trains_one_epoch(group, option, idx_root, tmp_path):
    overrides = [
        f"{group}={option}",
        "trainer.max_epochs=1",
        "data.limit=48",
        f"paths.output_dir={tmp_path}",
        *COMPANIONS.get((group, option), []),
    ]
    if group == "data" and option in ("mnist", "fashion_mnist"):
        overrides.append(f"data.root={write_mnist(idx_root / option)}")
    if group != "tracking":
        overrides.append("tracking=none")
    cfg = config.compose(overrides)
    experiment = build(Plan.from_config(cfg))
    x, y = next(iter(experiment.loaders["train"]))
    outputs = experiment.task(x)
    assert outputs.shape == (len(y), *type(experiment.task).output_shape(experiment.dataset))
    result = dlkit.run(overrides)
    assert result.metrics["train/loss"] == result.metrics["train/loss"]  # not NaN
    assert any(k.startswith("test/") for k in result.metrics)


def test_overrides_reach_the_config():
    cfg = config.compose(["model=lenet5", "activation=tanh", "optimizer.lr=0.05", "norm=batch"])
    assert cfg.model.name == "lenet5" and cfg.activation.name == "tanh"
    assert cfg.optimizer.lr == 0.05 and cfg.norm.name == "batch"
    assert cfg.data.resize == 32  # LeNet-5 is drawn for 32x32 input


def test_resnet_turns_skips_on_unless_told_otherwise():
    assert config.compose(["model=resnet"]).residual.name == "identity"
    assert config.compose(["model=resnet", "residual=off"]).residual.name == "none"
    assert config.compose([]).residual.name == "none"


def test_trainer_cpu_inherits_auto():
    cfg = config.compose(["trainer=cpu"])
    assert cfg.trainer.accelerator == "cpu" and cfg.trainer.max_epochs == config.compose([]).trainer.max_epochs


def test_tracking_uri_is_an_absolute_sqlite_path_under_outputs(tmp_path):
    cfg = config.compose([f"paths.output_dir={tmp_path}/out"])
    assert cfg.tracking.uri == f"sqlite:///{tmp_path}/out/mlflow.db"
    relative = config.compose([]).tracking.uri
    assert relative == f"sqlite:///{Path.cwd() / 'outputs'}/mlflow.db"


@pytest.mark.parametrize(
    "override,expected",
    [
        ("activation=relux", "activation 'relux' is unknown; did you mean 'relu'"),
        ("optimizer.lrr=0.1", "'optimizer.lrr' is not a key of the config; did you mean 'optimizer.lr'?"),
        ("optimzer.lr=0.1", "did you mean 'optimizer.lr'?"),
        ("activaton=relu", "did you mean 'activation'?"),
        ("model.hidden=[3", "cannot parse the override 'model.hidden=[3'"),
    ],
)
def test_mistakes_get_one_line_with_a_close_match(override, expected):
    with pytest.raises(ConfigError) as err:
        config.compose([override])
    assert expected in str(err.value)
    assert "\n" not in str(err.value)
    assert "+" not in str(err.value).split("(")[0]  # not Hydra's advice to append the key


def check(overrides: list[str], multirun: bool) -> list:
    """Every job a command would launch, composed and planned (what the command does before it launches)."""
    return config.plan_jobs(config.compose_jobs(overrides, multirun))


def test_a_sweep_is_checked_job_by_job_before_launch():
    plans = check(["activation=relu,tanh", "seed=0,1,2"], multirun=True)
    assert [(p.parts.activation.name, p.seed) for p in plans] == [(a, s) for a in ("relu", "tanh") for s in (0, 1, 2)]
    with pytest.raises(
        ConfigError, match=r"job 2 of 2 \(activation=tanhh\): activation 'tanhh' is unknown; did you mean 'tanh'"
    ):
        check(["activation=relu,tanhh"], multirun=True)


@pytest.mark.parametrize(
    "job",
    [
        ["seed=1"],
        ["model=lenet5", "seed=2", "optimizer.lr=0.5"],
        ["model=mlp", "model.hidden=[100,100]", "+tracking.run_name=x", "optimizer=sgd"],
        ["trainer.max_epochs=3", "++extra.key=1", "~data.val_fraction"],
    ],
)
def test_a_sweeps_jobs_compose_as_hydra_composes_them_one_by_one(job):
    from omegaconf import OmegaConf

    composer = config.Composer()
    composer(["model=lenet5", "seed=9"])  # a job before it that picked the same group options
    assert OmegaConf.to_yaml(composer(job)) == OmegaConf.to_yaml(config.compose(job))


def test_a_bad_value_in_a_later_job_of_a_sweep_is_still_named():
    with pytest.raises(ConfigError, match=r"job 3 of 3 \(optimizer.lr=-0.3\): optimizer.lr must be a number > 0"):
        check(["optimizer.lr=0.1,0.2,-0.3"], multirun=True)
    # Every job's mistake.
    with pytest.raises(ConfigError, match=r"^'optimizer.lrr' is not a key.*did you mean 'optimizer.lr'"):
        check(["seed=0,1", "optimizer.lrr=3"], multirun=True)


def test_a_plans_params_are_the_flattened_resolved_config():
    flat = dlkit.plan_for([]).params
    assert flat["optimizer.lr"] == 0.001 and flat["model.hidden"] == [256, 128]
    assert flat["tracking.uri"].startswith("sqlite:////")


def test_lenet5_on_raw_8x8_digits_is_rejected_with_the_formula():
    cfg = config.compose(["model=lenet5", "data.resize=null", "data.limit=16"])
    with pytest.raises(
        ConfigError,
        match=r"lenet5 conv2: output size \(input 2 − kernel 5 \+ 2·padding 0\) / stride 1 \+ 1 = -2 is below 1",
    ):
        build(Plan.from_config(cfg))
    assert build(dlkit.plan_for(["model=lenet5", "data.limit=16"])).dataset.input_shape == (1, 32, 32)  # resized: valid


def test_same_seed_same_batches():
    a = build(dlkit.plan_for(["seed=3", "data.limit=64"])).loaders["train"]
    b = build(dlkit.plan_for(["seed=3", "data.limit=64"])).loaders["train"]
    c = build(dlkit.plan_for(["seed=4", "data.limit=64"])).loaders["train"]
    ya, yb, yc = (torch.cat([y for _, y in loader]) for loader in (a, b, c))
    assert torch.equal(ya, yb) and not torch.equal(ya, yc)


def test_the_python_api_switches_plugins_off_and_sets_the_torch_threads():
    import subprocess
    import sys

    from conftest import REPO

    code = """
import torch, dlkit
from dlkit.errors import ConfigError
try:
    dlkit.plan_for(["activation=swish"], plugins=False)
    print("swish without plugins")
except ConfigError as exc:
    print("off:", str(exc)[:40])
print("on:", dlkit.plan_for(["activation=swish"]).parts.activation.name)
for n in (1, 2):
    dlkit.run([f"threads={n}", "trainer.max_epochs=1", "data.limit=32", "tracking=none"])
    print("threads:", torch.get_num_threads())
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith(("off:", "on:", "threads:", "swish"))]
    assert lines == ["off: activation 'swish' is unknown; available", "on: swish", "threads: 1", "threads: 2"], lines

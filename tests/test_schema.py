"""Validation: every value a config gives is checked for type and range before anything runs."""

from __future__ import annotations

from typing import Annotated

import annotated_types as at
import pytest

import dlkit
from conftest import NO_MODEL, QUICK, all_runs, dlkit_cli
from dlkit import config
from dlkit.errors import ConfigError
from dlkit.plan import Plan
from dlkit.schema import Fraction, PositiveInt, check_value


@pytest.mark.parametrize(
    "value,annotation,ok",
    [
        (0.5, Fraction, True),
        (0, Fraction, True),
        (1, Fraction, False),
        (-0.01, Fraction, False),
        (3, PositiveInt, True),
        (0, PositiveInt, False),
        (2.5, PositiveInt, False),
        (True, PositiveInt, False),  # a bool is no count
        (None, PositiveInt | None, True),
        (None, PositiveInt, False),
        (4, Annotated[float, at.Le(4)], True),
        (4.001, Annotated[float, at.Le(4)], False),
        ("x", str, True),
        (1, str, False),
    ],
)
def test_check_value_follows_the_annotation(value, annotation, ok):
    if ok:
        check_value("key", value, annotation)
    else:
        with pytest.raises(ConfigError, match=r"^key must be "):
            check_value("key", value, annotation)


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["optimizer.lr=-0.1"], "optimizer.lr must be a number > 0, got -0.1."),
        (["optimizer=sgd", "optimizer.lr=abc"], "optimizer.lr must be a number > 0, got 'abc'."),
        (["dropout=inverted", "dropout.p=1.0"], "dropout.p must be a number in [0, 1), got 1.0."),
        (["optimizer.batch_size=0"], "optimizer.batch_size must be a whole number ≥ 1 (or null), got 0."),
        (["optimizer=heavy_ball", "optimizer.momentum=1.5"], "optimizer.momentum must be a number in [0, 1), got 1.5."),
        (["scheduler=step", "scheduler.step_size=0"], "scheduler.step_size must be a whole number ≥ 1, got 0."),
        (["data.val_fraction=1.5"], "data.val_fraction must be a number in (0, 1), got 1.5."),
        (["data.limit=0"], "data.limit must be a whole number ≥ 1 (or null), got 0."),
        (["seed=-1"], "seed must be a whole number ≥ 0, got -1."),
        (["seed=abc"], "seed must be a whole number ≥ 0, got 'abc'."),
        (["trainer.max_epochs=0"], "trainer.max_epochs must be a whole number ≥ 1, got 0."),
        (
            ["trainer.limit_val_batches=-1"],
            "trainer.limit_val_batches must be a whole number of batches ≥ 0 or a fraction in [0, 1], got -1.",
        ),
        (
            ["trainer.limit_train_batches=1.5"],
            "trainer.limit_train_batches must be a whole number of batches ≥ 0 or a fraction in [0, 1], got 1.5.",
        ),
        (["tracking.enabled=maybe"], "tracking.enabled must be true or false, got 'maybe'."),
        (
            ["compile=reduce-overhed"],
            "compile='reduce-overhed' is not a torch.compile mode; did you mean 'reduce-overhead'?",
        ),
        (["+trainer.max_epoch=3"], "trainer.max_epoch is not a Lightning Trainer argument; did you mean 'max_epochs'"),
        (["+trainer.callbacks=[]"], "trainer.callbacks is set by dlkit itself"),
        (["trainer.accelerator=gpu"], "trainer.accelerator=gpu needs a CUDA GPU; this machine has 0 CUDA GPUs"),
        (["trainer.devices=99"], "trainer.devices=99 on CPU: this machine has"),
        (["loss=mse", "task=seq2seq"], "loss 'mse' does not fit a seq2seq task"),
        (["+model.depth=3"], "model 'mlp' has no parameter 'depth'"),
    ],
)
def test_bad_values_are_named_with_what_is_allowed(overrides, message):
    with pytest.raises(ConfigError) as err:
        Plan.from_config(config.compose(overrides))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_every_shipped_option_validates():
    for group, options in {
        "optimizer": ["gd", "sgd", "momentum", "rmsprop", "adagrad", "adamw"],
        "scheduler": ["step", "cosine"],
        "dropout": ["chapter"],
        "norm": ["batch", "layer"],
        "loss": ["focal", "mae"],
        "data": ["mnist1d", "spirals", "reverse", "regression_outliers", "imbalanced", "mnist"],
        "model": ["cnn", "lenet5", "resnet"],
    }.items():
        for option in options:
            Plan.from_config(config.compose([f"{group}={option}"]))


def test_a_plugin_declares_its_ranges_in_its_signature():
    from dlkit.registry import Registry

    reg = Registry("activation")

    @reg.register("scaled")
    def scaled(scale: Annotated[float, at.Interval(gt=0, le=10)] = 1.0):
        return scale

    assert reg.build({"name": "scaled", "scale": 10}) == 10
    with pytest.raises(ConfigError, match=r"activation.scale must be a number in \(0, 10\], got 11"):
        reg.build({"name": "scaled", "scale": 11})


def test_a_bad_value_in_one_sweep_job_is_named_before_any_job_runs(outputs):
    done = dlkit_cli("-m", "optimizer.lr=0.01,-0.01", *QUICK, f"paths.output_dir={outputs}", model=True)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        f"dlkit: error: job 2 of 2 (optimizer.lr=-0.01,{','.join(QUICK)},paths.output_dir={outputs}):"
        " optimizer.lr must be a number > 0, got -0.01."
    )
    assert "Traceback" not in done.stderr + done.stdout
    assert not (outputs / "mlflow.db").exists()  # nothing was created, so nothing is left RUNNING


def test_a_bad_value_on_a_single_run_leaves_no_run(outputs, store):
    dlkit.run([*QUICK, f"paths.output_dir={outputs}", NO_MODEL])  # a store with one good run (in-process: quicker)
    done = dlkit_cli("dropout=chapter", "dropout.p=-0.5", *QUICK, f"paths.output_dir={outputs}")
    assert done.returncode == 2 and "dropout.p must be a number in [0, 1), got -0.5." in done.stderr
    assert [r.info.status for r in all_runs(store())] == ["FINISHED"]

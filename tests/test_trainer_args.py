"""Lightning's Trainer arguments keep their meaning in optimizer steps and batches, or are refused before training
(dlkit/trainer_args.py): effects counted by an optimizer that counts its own steps, refusals by their line."""

from __future__ import annotations

import inspect
import re

import pytest
import pytorch_lightning as pl
import torch

import dlkit
from conftest import all_runs, dlkit_cli
from dlkit import trainer_args
from dlkit.errors import ConfigError
from dlkit.registry import register
from dlkit.schema import PositiveFloat

# digits: 1,257 training samples, batch 32 -> 40 optimizer steps an epoch
STEPS_AN_EPOCH = 40


class CountingSGD(torch.optim.SGD):
    """Plain SGD that counts the steps it takes: what a Trainer argument that counts steps must agree with."""

    taken = 0

    def step(self, closure=None):
        CountingSGD.taken += 1
        return super().step(closure)


@register("optimizer", "counting_sgd")
def counting_sgd(params, lr: PositiveFloat = 0.05) -> torch.optim.Optimizer:
    return CountingSGD(params, lr=lr)


def steps_taken(*overrides: str) -> int:
    CountingSGD.taken = 0
    dlkit.run(["optimizer=counting_sgd", "+optimizer.batch_size=32", "tracking=none", *overrides])
    return CountingSGD.taken


@pytest.mark.parametrize("steps_per_call", [64, 3])
@pytest.mark.parametrize("max_steps", [7, 50])
def test_max_steps_counts_optimizer_steps_exactly_whatever_steps_per_call(max_steps, steps_per_call):
    # Lightning alone checks max_steps between its steps: with 64 batches a step, 50 became 80 (two whole epochs)
    assert steps_taken(f"+trainer.max_steps={max_steps}", f"steps_per_call={steps_per_call}") == max_steps


def test_without_max_steps_every_epoch_takes_every_step():
    assert steps_taken("trainer.max_epochs=2") == 2 * STEPS_AN_EPOCH


@pytest.mark.parametrize("key", sorted(trainer_args.REFUSED))
def test_each_refused_argument_is_refused_before_training_with_what_to_use(key):
    default = inspect.signature(pl.Trainer.__init__).parameters[key].default
    value = {bool: "true", int: "4", float: "0.5"}.get(type(default), "4")
    if default is True:
        value = "false"
    with pytest.raises(ConfigError) as refused:
        dlkit.plan_for([f"+trainer.{key}={value}"])
    message = str(refused.value)
    assert message == f"trainer.{key} is not supported: {trainer_args.REFUSED[key]}." and "\n" not in message
    if default is not inspect.Parameter.empty and default is not None:  # Lightning's default changes nothing
        dlkit.plan_for([f"+trainer.{key}={str(default).lower() if isinstance(default, bool) else default}"])


def test_a_refused_argument_stops_the_command_with_exit_2_and_no_run(outputs, store):
    done = dlkit_cli("+trainer.accumulate_grad_batches=4", f"paths.output_dir={outputs}")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == (
        "dlkit: error: trainer.accumulate_grad_batches is not supported: dlkit steps the optimizer itself, once per"
        " batch; use a larger optimizer.batch_size."
    )
    assert not (outputs / "mlflow.db").exists() or all_runs(store()) == []


def test_the_docs_table_names_every_trainer_argument_as_dlkit_takes_it():
    from markdown_pages import page

    text = page("options/trainer.md")
    table = text[text.index("| Trainer argument | how dlkit takes it |") :].split("\n\n", 1)[0]
    rows = {line.split("|")[2].strip(): line.split("|")[1] for line in table.splitlines()[2:]}
    named = {how: set(re.findall(r"`([a-z_]+)`", cell)) for how, cell in rows.items()}
    everything = set(inspect.signature(pl.Trainer.__init__).parameters) - {"self"}
    assert set().union(*named.values()) == everything  # each argument once, none left out
    refused = next(v for k, v in named.items() if k.startswith("refused unless"))
    assert refused == set(trainer_args.REFUSED)
    assert next(v for k, v in named.items() if k == "set by dlkit: refused") == set(trainer_args.OWN)

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
    last: CountingSGD | None = None  # the latest made, and its parameters' values when it was made
    initial: list[torch.Tensor] = []

    def __init__(self, params, lr: float):
        super().__init__(params, lr=lr)
        CountingSGD.last = self
        CountingSGD.initial = [p.detach().clone() for group in self.param_groups for p in group["params"]]

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
    done = dlkit_cli("+trainer.val_check_interval=0.5", f"paths.output_dir={outputs}")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == (
        "dlkit: error: trainer.val_check_interval is not supported: dlkit validates at each epoch's end (a run's"
        " metrics are per epoch); use trainer.check_val_every_n_epoch=N."
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
    translated = next(v for k, v in named.items() if k.startswith("translated"))
    assert translated == set(trainer_args.TRANSLATED)


@pytest.mark.parametrize("steps_per_call", [64, 5])
def test_accumulated_gradients_make_the_update_of_a_hand_written_loop(steps_per_call):
    """accumulate_grad_batches=3 over 40 batches an epoch: 14 optimizer steps an epoch (the last of one batch, at
    the epoch's end, as Lightning's), each of the summed gradients of losses divided by 3; the weights after two
    epochs are the hand-written loop's, over the same batches from the same initial weights."""
    from dlkit import build

    overrides = ["+trainer.accumulate_grad_batches=3", "trainer.max_epochs=2", f"steps_per_call={steps_per_call}"]
    assert steps_taken(*overrides) == 2 * 14
    trained = [p.detach().clone() for group in CountingSGD.last.param_groups for p in group["params"]]
    plan = dlkit.plan_for(["optimizer=counting_sgd", "+optimizer.batch_size=32", "tracking=none", *overrides])
    experiment = build.build(plan)
    model, loss_of = experiment.task.model, experiment.task.loss
    with torch.no_grad():
        for p, p0 in zip(model.parameters(), CountingSGD.initial):
            p.copy_(p0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(2):
        batches = list(experiment.loaders["train"])
        assert len(batches) == STEPS_AN_EPOCH
        for i, (x, y) in enumerate(batches):
            (loss_of(model(x), y) / 3).backward()
            if (i + 1) % 3 == 0 or i + 1 == len(batches):
                optimizer.step()
                optimizer.zero_grad()
    for p, q in zip(model.parameters(), trained):
        torch.testing.assert_close(p.detach(), q, rtol=0, atol=1e-5)


def test_min_steps_counts_optimizer_steps_when_a_run_is_stopped_early():
    # trainer.max_time of zero asks the run to stop after its first Lightning step; min_steps=50 keeps it going to
    # exactly 50 optimizer steps (Lightning alone checks between its steps: 80, two whole epochs of 40)
    assert steps_taken("+trainer.min_steps=50", "+trainer.max_time=00:00:00:00", "trainer.max_epochs=5") == 50


def test_overfit_batches_trains_the_same_first_batches_each_epoch():
    from dlkit import build

    assert steps_taken("+trainer.overfit_batches=2", "trainer.max_epochs=3") == 6
    plan = dlkit.plan_for(["+trainer.overfit_batches=2", "tracking=none"])
    assert plan.trainer.limit_train_batches == plan.trainer.limit_val_batches == 2
    train = build.build(plan).loaders["train"]
    first, again = [y for _, y in train], [y for _, y in train]
    assert all(torch.equal(a, b) for a, b in zip(first, again))  # unshuffled: the same batches each epoch


def test_fast_dev_run_trains_n_batches_of_one_epoch_and_records_nothing(outputs, store):
    done = dlkit_cli("+trainer.fast_dev_run=3", f"paths.output_dir={outputs}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert not (outputs / "mlflow.db").exists() or all_runs(store()) == []
    assert steps_taken("+trainer.fast_dev_run=3", "trainer.max_epochs=5") == 3


def test_the_progress_bar_counts_the_epochs_optimizer_steps_and_is_off_where_stderr_is_no_terminal(outputs):
    import subprocess
    import sys

    def stderr(*args: str) -> str:  # as bytes: text mode would turn the bar's carriage returns into newlines
        command = [sys.executable, "-m", "dlkit", "trainer.max_epochs=2", "steps_per_call=4", "tracking=none", *args]
        done = subprocess.run([*command, f"paths.output_dir={outputs}"], capture_output=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stderr.decode()

    drawn = stderr("+trainer.enable_progress_bar=true", "+trainer.accumulate_grad_batches=2")
    bars = re.findall(r"\repoch (\d)/2 [█░]{24} (\d+)/(\d+) steps  \d+:\d\d elapsed, \d+:\d\d left", drawn)
    assert {epoch for epoch, *_ in bars} == {"1", "2"} and {total for *_, total in bars} == {"20"}
    assert drawn.count("\r\x1b[K") == 2  # cleared before each epoch's line
    assert "\r" not in stderr()  # by default only on a terminal


@register("callback", "probe")
class Probe(pl.Callback):
    """What a kept Trainer argument acts on, seen from inside the run: epochs, validation passes, test batches, and
    torch's switches while training and testing."""

    seen: dict = {}

    def __init__(self):
        Probe.seen = {"epochs": 0, "validations": 0, "test_batches": 0, "switches": set()}

    def on_train_epoch_end(self, trainer, pl_module):
        Probe.seen["epochs"] += 1
        Probe.seen["switches"] |= {
            ("deterministic", torch.are_deterministic_algorithms_enabled()),
            ("anomaly", torch.is_anomaly_enabled()),
            ("cudnn_benchmark", torch.backends.cudnn.benchmark),
        }

    def on_validation_epoch_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            Probe.seen["validations"] += 1

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        Probe.seen["test_batches"] += 1
        Probe.seen["switches"].add(("inference_mode", torch.is_inference_mode_enabled()))


def probed(*overrides: str) -> dict:
    dlkit.run(["callbacks=probe", "tracking=none", "trainer.max_epochs=4", *overrides])
    return Probe.seen


def test_kept_arguments_act_as_lightning_documents_them():
    """Each kept argument's effect, seen by a callback: none of them may quietly stop meaning what it says."""
    default = probed()
    assert default["epochs"] == default["validations"] == 4 and default["test_batches"] > 2
    assert probed("+trainer.check_val_every_n_epoch=2")["validations"] == 2
    assert probed("+trainer.min_epochs=3", "+trainer.max_time=00:00:00:00")["epochs"] == 3  # asked to stop at once
    assert probed("trainer.limit_test_batches=1")["test_batches"] == 2  # one from each test loader
    assert probed("trainer.limit_test_batches=0")["test_batches"] == 0
    switched = probed("trainer.deterministic=true", "+trainer.detect_anomaly=true", "+trainer.benchmark=true")[
        "switches"
    ]
    assert {("deterministic", True), ("anomaly", True)} <= switched
    assert ("cudnn_benchmark", True) in probed("+trainer.benchmark=true")["switches"]
    assert ("inference_mode", True) in default["switches"]
    assert ("inference_mode", False) in probed("+trainer.inference_mode=false")["switches"]
    assert {("deterministic", False), ("anomaly", False)} <= default["switches"]


def test_the_profilers_report_is_written_where_the_user_sees_it(tmp_path):
    # Lightning logs it at INFO, which dlkit's console does not show: dlkit has it written to a file
    dlkit.run(["tracking=none", "trainer.max_epochs=1", "+trainer.profiler=simple", f"paths.output_dir={tmp_path}"])
    (report,) = tmp_path.glob("profiles/*/fit-profile.txt")
    assert report.read_text().startswith("FIT Profiler Report")
    with pytest.raises(
        ConfigError, match="trainer.profiler='simpel' is not a Lightning profiler; did you mean 'simple'"
    ):
        dlkit.run(["tracking=none", "+trainer.profiler=simpel", f"paths.output_dir={tmp_path}"])

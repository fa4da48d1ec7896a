"""The callbacks group: early stopping (where it stops, what the run records of its best epoch), the monitor checked
before training, and a plugin's own Lightning callback chosen from YAML."""

import itertools
import re

import pytest
import torch
import torch.nn.functional as F

import dlkit
from conftest import all_runs, dlkit_cli
from dlkit.errors import ConfigError

PATIENCE = 2
# Adam at a high rate on a small slice of the digits: val/loss bottoms out within a few epochs, long before 40.
STOPS = [
    "callbacks=early_stopping",
    f"callbacks.early_stopping.patience={PATIENCE}",
    "optimizer.lr=0.05",
    "data.limit=64",
    "trainer.max_epochs=40",
]


def test_early_stopping_stops_at_patience_and_the_run_is_its_best_epoch(tmp_path):
    """It stops at the first epoch that is the patience-th without a new lowest val/loss; the run's best.pt, logged
    model and test metrics are the best epoch's weights, and best/* its metrics."""
    import mlflow.pytorch
    from mlflow.tracking import MlflowClient

    from dlkit.build import build

    result = dlkit.run([*STOPS, f"paths.output_dir={tmp_path / 'outputs'}"])
    client = MlflowClient(result.tracking_uri)
    run = client.get_run(result.run_id)
    val = {m.step: m.value for m in client.get_metric_history(result.run_id, "val/loss")}
    lowest, waited = val[0], 0
    for epoch in sorted(val)[1:]:  # without a new lowest for PATIENCE epochs: that epoch is the last, and only it
        lowest, waited = (val[epoch], 0) if val[epoch] < lowest else (lowest, waited + 1)
        assert (waited == PATIENCE) == (epoch == max(val)), epoch
    best, last = min(val, key=val.get), max(val)
    assert last < 39 and result.epochs == last + 1
    tags = run.data.tags
    assert (tags["dlkit.stopped_epoch"], tags["dlkit.best_epoch"]) == (str(last), str(best))
    assert tags["dlkit.stopped_reason"].startswith(f"early stopping: val/loss did not improve in {PATIENCE} valid")
    assert run.data.metrics["best/val/loss"] == val[best] and result.metrics["val/loss"] == val[best]
    assert run.data.metrics["val/loss"] == val[last]  # the curve itself is as it was logged

    plan = dlkit.plan_for(STOPS)
    split = plan.data()
    logged = mlflow.pytorch.load_model(client.get_logged_model(tags["dlkit.model_id"]).artifact_location)
    saved = build(plan).task.model
    saved.load_state_dict(torch.load(client.download_artifacts(result.run_id, "best.pt", str(tmp_path))))
    for model in (logged, saved.eval()):  # the best epoch's weights: they score its val/loss, and the test metrics
        with torch.no_grad():
            assert F.cross_entropy(model(split.val.x), split.val.y).item() == pytest.approx(val[best], rel=1e-5)
            test_loss = F.cross_entropy(model(split.test.x), split.test.y).item()
        assert test_loss == pytest.approx(run.data.metrics["test/loss"], rel=1e-5)


def test_a_monitor_the_run_never_logs_is_refused_in_one_line_before_any_run(tmp_path):
    outputs = tmp_path / "outputs"
    monitor = ["callbacks=early_stopping", "callbacks.early_stopping.monitor=val/accc", "data.limit=48"]
    with pytest.raises(ConfigError) as refused:
        dlkit.run([*monitor, f"paths.output_dir={outputs}"])
    assert str(refused.value).startswith(
        "callbacks.early_stopping monitors 'val/accc', which this run never logs; did you mean 'val/acc'? it logs"
        " every epoch: train/loss, train/acc, train/recall_min, val/loss, val/acc, val/recall_min, train/lr,"
    )
    assert "\n" not in str(refused.value)
    from mlflow.tracking import MlflowClient

    assert not (outputs / "mlflow.db").exists() or not all_runs(MlflowClient(f"sqlite:///{outputs}/mlflow.db"))


@pytest.mark.parametrize(
    "override, expected",
    [
        ("callbacks.early_stopping.mode=mx", "callbacks.early_stopping: mode 'mx' is unknown; did you mean 'max'?"),
        ("objective=test/acc", "callbacks.early_stopping: monitor is 'test/acc': early stopping watches a metric the"),
        ("callbacks.early_stopping.monitor=train/lr", "not known from its name (val/loss: lower, val/acc: higher)"),
        ("callbacks.early_stopping.patience=-1", "callbacks.early_stopping.patience must be a whole number ≥ 0"),
    ],
)
def test_a_wrong_early_stopping_setting_is_refused_when_the_job_is_planned(override, expected):
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
        dlkit.plan_for(["callbacks=early_stopping", override])


def test_the_monitor_defaults_to_the_objective_and_its_direction_to_the_metrics():
    (key, spec), *_ = dlkit.plan_for(["callbacks=early_stopping", "objective=val/acc"]).callbacks
    made = spec()
    assert (key, made.monitor, made.mode, made.patience, made.min_delta) == ("early_stopping", "val/acc", "max", 3, 0)
    assert dlkit.plan_for([]).callbacks == ()  # callbacks=none, the default


ECHO = '''
"""A user's own Lightning callback: logs each epoch the value of a metric as Lightning's callbacks read it."""
from pytorch_lightning import Callback

from dlkit.registry import register


@register("callback", "echo")
class Echo(Callback):
    def __init__(self, metric: str = "val/loss"):
        self.metric = metric

    def on_train_epoch_end(self, trainer, pl_module):
        pl_module.log(f"echo/{self.metric}", trainer.callback_metrics[self.metric])
'''


def summary_rows(stdout: str, header: str) -> list[list[str]]:
    """The sweep's closing table under its title, each row split at two or more spaces."""
    lines = stdout[stdout.index("Sweep summary: ") :].splitlines()[1:]
    table = list(itertools.takewhile(lambda line: not line.startswith(("Sweep ", "Best of ")), lines))
    assert re.split(r"\s{2,}", table[0]) == header.split("|")
    return [re.split(r"\s{2,}", line) for line in table[1:]]


def test_a_parallel_sweep_with_a_plugins_callback_and_early_stopping(tmp_path):
    """A project's plugin registers a callback that its YAML selects beside early_stopping; two jobs end in two worker
    processes: each says how far the sweep is, the sweep ends with a table of its jobs, the report shows how many
    epochs each run trained, and the sweep's best is an early-stopped job's best epoch."""
    from mlflow.tracking import MlflowClient

    from dlkit import report

    (tmp_path / "plugins/echo/conf/callbacks").mkdir(parents=True)
    (tmp_path / "plugins/echo/__init__.py").write_text(ECHO)
    (tmp_path / "plugins/echo/conf/callbacks/echo.yaml").write_text("echo:\n  name: echo\n  metric: val/loss\n")
    outputs = tmp_path / "outputs"
    done = dlkit_cli(
        "-m",
        "hydra/launcher=parallel",
        "hydra.launcher.n_jobs=2",
        "optimizer.lr=0.01,0.05",
        "callbacks=[early_stopping,echo]",
        "callbacks.early_stopping.patience=1",
        "data.limit=48",
        "trainer.max_epochs=12",
        f"paths.output_dir={outputs}",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{outputs}/mlflow.db")
    runs = all_runs(client)
    (parent,) = [r for r in runs if r.data.tags.get("dlkit.sweep") == "parent"]
    children = {r.data.tags["factor.optimizer.lr"]: r for r in runs if r is not parent}
    for child in children.values():  # the plugin's callback ran every epoch and read what dlkit logged
        echoed = {m.step: m.value for m in client.get_metric_history(child.info.run_id, "echo/val/loss")}
        logged = {m.step: m.value for m in client.get_metric_history(child.info.run_id, "val/loss")}
        assert echoed == pytest.approx(logged) and len(logged) == int(child.data.tags["dlkit.stopped_epoch"]) + 1
        assert "echo (plugins/echo)" in child.data.tags["dlkit.plugins"]
    best = min(children.values(), key=lambda c: c.data.metrics["best/val/loss"])
    assert parent.data.tags["dlkit.best_run_id"] == best.info.run_id
    assert parent.data.metrics["best/val/loss"] == best.data.metrics["best/val/loss"] < best.data.metrics["val/loss"]

    ended = re.findall(
        r"^\[sweep\] (\d) of 2 jobs done; \d:\d\d:\d\d elapsed(, about \d:\d\d:\d\d left)?$", done.stdout, re.M
    )
    assert [n for n, _ in ended] == ["1", "2"] and ended[0][1] and not ended[1][1]
    rows = summary_rows(done.stdout, "job|optimizer.lr|val/loss|status|epochs")
    assert done.stdout.count("Sweep summary: 2 of 2 jobs ran, 2 finished, 0 failed, in 0:") == 1
    assert sorted(rows) == sorted(
        [
            f"{job}/2",
            lr,
            f"{children[lr].data.metrics['best/val/loss']:.4f}",
            "FINISHED",
            f"early stopping at epoch {len(client.get_metric_history(children[lr].info.run_id, 'val/loss'))}",
        ]
        for job, lr in ((1, "0.01"), (2, "0.05"))
    )
    shown = report.markdown(report.load(f"sqlite:///{outputs}/mlflow.db"))
    for lr, child in children.items():
        acc, epochs = child.data.metrics["test/acc"], int(child.data.tags["dlkit.stopped_epoch"]) + 1
        assert f"| optimizer.lr={lr} | FINISHED | {acc:.4f} | early stopping at epoch {epochs} |" in shown


def test_a_searchs_trials_stop_early_or_are_pruned_and_count_as_their_best_epoch(tmp_path):
    """Early stopping under hydra/sweeper=optuna's pruning: a trial that early-stops completes with its best epoch's
    objective; one the pruner stops (the same epoch as early stopping, or not) is pruned and says so."""
    import optuna
    from mlflow.tracking import MlflowClient
    from optuna.trial import TrialState

    from dlkit import report
    from dlkit.tracking.tags import trained

    outputs = tmp_path / "outputs"
    done = dlkit_cli(
        "-m",
        "hydra/sweeper=optuna",
        "hydra.sweeper.seed=0",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.startup_trials=1",
        "optimizer.lr=tag(log,interval(0.0001,0.3))",
        "callbacks=early_stopping",
        "callbacks.early_stopping.patience=1",
        "data.limit=48",
        "trainer.max_epochs=10",
        f"paths.output_dir={outputs}",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    url = f"sqlite:///{outputs}/optuna.db"
    study = optuna.load_study(study_name=optuna.get_all_study_names(url)[0], storage=url)
    assert {t.state for t in study.trials} == {TrialState.COMPLETE, TrialState.PRUNED}  # this seed's search has both
    client = MlflowClient(f"sqlite:///{outputs}/mlflow.db")
    runs = {r.data.tags.get("dlkit.trial.number"): r for r in all_runs(client)}
    shown = report.markdown(report.load(f"sqlite:///{outputs}/mlflow.db"))
    expected = []
    for trial in study.trials:
        run = runs[str(trial.number)]
        val = [m.value for m in sorted(client.get_metric_history(run.info.run_id, "val/loss"), key=lambda m: m.step)]
        reason = run.data.tags["dlkit.stopped_reason"]
        assert run.data.tags["dlkit.stopped_epoch"] == str(len(val) - 1) and run.data.metrics["best/val/loss"] == min(
            val
        )
        if trial.state == TrialState.PRUNED:  # the pruner's word, when early stopping stopped it the same epoch too
            assert reason.startswith("pruned: ") and run.data.tags["dlkit.trial.pruned_epoch"] == str(len(val) - 1)
        else:  # the study holds its best epoch's objective
            assert reason.startswith("early stopping: val/loss did not improve in 1 validations")
            assert trial.value == min(val) < val[-1]
        (row,) = [line for line in shown.splitlines() if line.startswith(f"| {trial.number} |")]
        assert row.endswith(f"| {trained(len(val), 10, reason)} |")
        expected.append(
            [
                f"#{trial.number}",
                run.data.tags["factor.optimizer.lr"],
                f"{min(val):.4f}",
                "FINISHED",
                trained(len(val), 10, reason),
            ]
        )
    assert summary_rows(done.stdout, "trial|optimizer.lr|val/loss|status|epochs") == expected
    assert re.search(r"^\[sweep\] 4 of 4 trials done; \d:\d\d:\d\d elapsed$", done.stdout, re.M)

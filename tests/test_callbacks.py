"""The callbacks group: early stopping (where it stops, what the run records of its best epoch), the monitor checked
before training, and a plugin's own Lightning callback chosen from YAML."""

import pytest
import torch
import torch.nn.functional as F

import dlkit
from conftest import all_runs
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

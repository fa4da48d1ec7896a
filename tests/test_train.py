"""End to end in-process: dlkit.run trains, and the MLflow record is read back from the sqlite store."""

import io
import subprocess
import sys

import pytest
import torch
import yaml

import dlkit
from conftest import QUICK, REPO, all_runs
from dlkit.registry import register


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """One quick tracked run, shared by the tests that read its record."""
    outputs = tmp_path_factory.mktemp("run") / "outputs"
    overrides = [*QUICK, f"paths.output_dir={outputs}", "tracking.experiment=e2e", "optimizer.lr=0.003"]
    result = dlkit.run(overrides)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=result.tracking_uri)
    return result, client, client.get_run(result.run_id), outputs


def test_result_carries_final_metrics_and_run_id(recorded):
    result, client, run, _ = recorded
    assert result.run_id == run.info.run_id
    assert {"train/loss", "train/acc", "val/loss", "val/acc", "test/loss", "test/acc"} <= set(result.metrics)
    assert 0.0 <= result.metrics["test/acc"] <= 1.0


def test_exactly_one_finished_run_in_the_named_experiment(recorded):
    result, client, run, outputs = recorded
    assert (outputs / "mlflow.db").is_file()
    runs = all_runs(client)
    assert [r.info.run_id for r in runs] == [result.run_id]
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "e2e"


def test_params_are_the_flattened_resolved_config(recorded):
    _, _, run, outputs = recorded
    params = run.data.params
    assert params["optimizer.lr"] == "0.003"
    assert params["model.name"] == "mlp" and params["activation.name"] == "relu"
    assert params["model.hidden"] == "[256, 128]"
    assert params["tracking.uri"] == f"sqlite:///{outputs}/mlflow.db"


def test_metrics_are_logged_once_per_epoch_with_step_equal_to_epoch(recorded):
    result, client, _, _ = recorded
    for key in ("train/loss", "train/acc", "val/loss", "val/acc"):
        history = client.get_metric_history(result.run_id, key)
        assert sorted(m.step for m in history) == [0, 1], key
    assert client.get_metric_history(result.run_id, "val/acc")[-1].value == pytest.approx(result.metrics["val/acc"])
    (test,) = client.get_metric_history(result.run_id, "test/acc")
    assert test.value == pytest.approx(result.metrics["test/acc"])


def test_tags_say_what_ran_where(recorded):
    _, _, run, _ = recorded
    tags = run.data.tags
    assert tags["device.accelerator"] == "cpu" and tags["device.count"] == "1"
    assert tags["device.precision"] == "32-true" and tags["device.name"]
    import mlflow
    import pytorch_lightning
    import torch

    assert tags["version.torch"] == torch.__version__
    assert tags["version.pytorch_lightning"] == pytorch_lightning.__version__
    assert tags["version.mlflow"] == mlflow.__version__
    assert "swish (plugins/swish)" in tags["dlkit.plugins"]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    if head.returncode == 0:  # the tests run inside the project's checkout
        assert tags["dlkit.git_commit"] == head.stdout.strip()
    assert tags["mlflow.runName"].startswith("trainer.max_epochs=2,data.limit=120")


def test_config_and_overrides_are_artifacts(recorded):
    result, client, _, outputs = recorded
    assert {a.path for a in client.list_artifacts(result.run_id)} == {
        "config.yaml",
        "overrides.yaml",
        "learning_curves.png",
        "confusion_matrix.csv",
        "confusion_matrix.png",
        "best.pt",
    }
    local = client.download_artifacts(result.run_id, "config.yaml", str(outputs.parent))
    cfg = yaml.safe_load(open(local))
    assert cfg["optimizer"]["lr"] == 0.003 and cfg["model"]["name"] == "mlp"
    overrides = yaml.safe_load(open(client.download_artifacts(result.run_id, "overrides.yaml", str(outputs.parent))))
    assert "optimizer.lr=0.003" in overrides
    assert str(outputs) in client.get_run(result.run_id).info.artifact_uri  # artifacts live under outputs/


def test_review_artifacts_confusion_matrix_and_best_weights(recorded):
    import torch

    result, client, run, outputs = recorded
    rows = (
        open(client.download_artifacts(result.run_id, "confusion_matrix.csv", str(outputs.parent))).read().splitlines()
    )
    matrix = [[int(v) for v in row.split(",")[1:]] for row in rows[1:]]
    assert len(matrix) == 10 and sum(map(sum, matrix)) == 120  # every test sample once (data.limit=120)
    assert sum(matrix[i][i] for i in range(10)) / 120 == pytest.approx(result.metrics["test/acc"])
    weights = torch.load(client.download_artifacts(result.run_id, "best.pt", str(outputs.parent)), weights_only=True)
    from dlkit.build import build

    fresh = build(dlkit.plan_for(["data.limit=8"])).task.model  # the same architecture as the recorded run
    fresh.load_state_dict(weights)  # strict: every key and shape matches
    best_epoch = int(run.data.tags["dlkit.best_epoch"])
    val_losses = {m.step: m.value for m in client.get_metric_history(result.run_id, "val/loss")}
    assert best_epoch == min(val_losses, key=val_losses.get)
    assert float(run.data.tags["dlkit.best_val_loss"]) == pytest.approx(min(val_losses.values()), rel=1e-5)


LOAD_AND_SCORE = """
import sys, mlflow, mlflow.pytorch, torch
mlflow.set_tracking_uri(sys.argv[1])
registered = mlflow.register_model(f"models:/{sys.argv[2]}", "digits-mlp")
models = [mlflow.pytorch.load_model(uri) for uri in (f"models:/{sys.argv[2]}", f"models:/{registered.name}/1")]
assert "dlkit" not in sys.modules  # the exported model loads with torch alone
import dlkit
test = dlkit.plan_for(sys.argv[3:]).data().test
for model in models:
    with torch.no_grad():
        print((model(test.x).argmax(dim=1) == test.y).double().mean().item(), test.digest())
"""


def test_the_best_epochs_model_is_an_mlflow_model_that_scores_the_same_in_a_fresh_process(recorded):
    """tracking.log_model (default): the best epoch's weights as an MLflow model, linked to the run: loaded with
    mlflow.pytorch.load_model in another process (by its id, and registered), it scores model/test/acc."""
    result, client, run, outputs = recorded
    model_id = run.data.tags["dlkit.model_id"]
    assert [o.model_id for o in run.outputs.model_outputs] == [model_id]
    logged = client.get_logged_model(model_id)
    best_epoch = int(run.data.tags["dlkit.best_epoch"])
    assert logged.status == "READY" and logged.source_run_id == result.run_id
    assert logged.params["optimizer.lr"] == "0.003"  # the run's config
    linked = {m.key: m for m in logged.metrics}
    val_loss = {m.step: m.value for m in client.get_metric_history(result.run_id, "val/loss")}[best_epoch]
    assert linked["val/loss"].value == val_loss and linked["val/loss"].step == best_epoch  # the best epoch's
    (test_input,) = [d for d in run.inputs.dataset_inputs if d.dataset.name == "digits/test"]
    assert linked["model/test/acc"].dataset_digest == test_input.dataset.digest
    assert [a.path for a in client.list_logged_model_artifacts(model_id, "data")] == ["data/model.pt2"]  # exported
    overrides = [*QUICK, "optimizer.lr=0.003"]
    scored = subprocess.run(
        [sys.executable, "-c", LOAD_AND_SCORE, result.tracking_uri, model_id, *overrides],
        capture_output=True,
        text=True,
        cwd=outputs.parent,
    )
    assert scored.returncode == 0, scored.stderr[-3000:]
    for line in scored.stdout.split("\n")[-3:-1]:  # by its id, then as version 1 of a registered model
        accuracy, digest = line.split()
        assert float(accuracy) == pytest.approx(linked["model/test/acc"].value, abs=1e-12)
        assert digest == test_input.dataset.digest


def test_same_seed_same_metrics_other_seed_other_metrics():
    base = [*QUICK, "tracking=none", "model=lenet5", "norm=batch", "dropout=inverted"]
    first, again, other = (dlkit.run([*base, f"seed={s}"]).metrics for s in (1, 1, 2))
    for metrics in (first, again, other):
        del metrics["train/epoch_seconds"]  # wall time, the one thing a seed cannot fix
    assert first == again
    assert first != other


def test_compiled_model_trains_like_eager_and_keeps_its_parameter_names(tmp_path):
    """compile=default steps through torch.compile (inductor's C++ kernels on the CPU): the metrics of eager
    training within float tolerance (fused kernels round differently), and best.pt loads into an uncompiled model."""
    import torch
    from torch._dynamo.utils import counters

    base = [*QUICK, f"paths.output_dir={tmp_path}/out"]
    eager = dlkit.run([*base, "tracking=none"]).metrics
    frames = counters["frames"]["ok"]
    compiled = dlkit.run([*base, "compile=default"])
    assert counters["frames"]["ok"] > frames  # dynamo really captured the model: not silently eager
    for key in ("train/loss", "val/loss", "test/loss", "test/acc"):
        assert compiled.metrics[key] == pytest.approx(eager[key], rel=1e-4), key
    from mlflow.tracking import MlflowClient

    weights = torch.load(
        MlflowClient(compiled.tracking_uri).download_artifacts(compiled.run_id, "best.pt", str(tmp_path)),
        weights_only=True,
    )
    from dlkit.build import build

    build(dlkit.plan_for(["data.limit=8"])).task.model.load_state_dict(weights)  # strict: no '_orig_mod.' keys
    torch._dynamo.reset()


def test_tracking_none_records_nothing(tmp_path):
    result = dlkit.run([*QUICK, "tracking=none", f"paths.output_dir={tmp_path}/out"])
    assert result.run_id is None and "test/acc" in result.metrics
    assert not (tmp_path / "out" / "mlflow.db").exists()


@register("activation", "fails_in_training")
class FailsInTraining(torch.nn.Module):
    """An activation that raises once training starts (shapes are found in eval mode, before any run exists)."""

    def forward(self, x):
        if self.training:
            raise ValueError("fails_in_training: this activation raises in training")
        return x


def test_a_failing_run_ends_failed_not_running(tmp_path, store, outputs):
    # An exception inside fit: the run must end FAILED, with the reason.
    with pytest.raises(ValueError, match="fails_in_training"):
        dlkit.run([*QUICK, f"paths.output_dir={outputs}", "activation=fails_in_training"])
    (run,) = all_runs(store())
    assert run.info.status == "FAILED" and run.data.tags["dlkit.failure"] == "ValueError"
    assert "fails_in_training" in run.data.tags["dlkit.failure_reason"]


def test_gradient_norms_are_logged_per_layer_and_epoch_and_artifacts_can_be_skipped(tmp_path):
    from mlflow.tracking import MlflowClient

    from conftest import all_runs, dlkit_cli

    done = dlkit_cli(
        "task.grad_norms=true",
        "tracking.artifacts=false",
        "tracking.log_model=false",
        "trainer.max_epochs=2",
        "data.limit=64",
        f"paths.output_dir={tmp_path}",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    (run,) = all_runs(client)
    norms = sorted(k for k in run.data.metrics if k.startswith("grad_norm/"))
    assert len(norms) == 3  # the default MLP's two hidden layers' weights and the output layer's
    for key in norms:
        history = client.get_metric_history(run.info.run_id, key)
        assert [m.step for m in sorted(history, key=lambda m: m.step)] == [0, 1] and all(m.value > 0 for m in history)
    # tracking.artifacts=false: the config is kept (resume needs it); best.pt and the figures are not written
    assert {f.path for f in client.list_artifacts(run.info.run_id)} == {"config.yaml", "overrides.yaml"}
    # tracking.log_model=false: no MLflow model
    assert client.search_logged_models([run.info.experiment_id]) == [] and not run.outputs.model_outputs


class BranchesOnItsInput(torch.nn.Module):
    """A model torch.export cannot trace: which branch runs depends on the data."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(3, 2)

    def forward(self, x):
        return self.linear(x) if x.sum() > 0 else -self.linear(x)


def test_a_model_torch_export_cannot_trace_is_logged_pickled(tmp_path):
    import mlflow.pytorch

    from dlkit.tracking.store import StoreRun

    run = StoreRun(f"sqlite:///{tmp_path}/mlflow.db", "e", str(tmp_path / "artifacts"), "r", {})
    model, saved = BranchesOnItsInput(), io.BytesIO()
    torch.save(model, saved)
    x = torch.rand(4, 3)
    run.log_model(saved.getvalue(), x.numpy(), 0, {"model/test/acc": 0.5}, {"name": "d/test", "digest": "abc"})
    run.finish("FINISHED")
    (logged,) = run.client.search_logged_models([run.experiment_id])  # the failed export left no model behind
    assert [a.path for a in run.client.list_logged_model_artifacts(logged.model_id, "data")] == [
        "data/model.pth",  # pickled (the exported form is data/model.pt2)
        "data/pickle_module_info.txt",
    ]
    assert torch.equal(mlflow.pytorch.load_model(f"models:/{logged.model_id}")(x), model(x))
    assert {m.key: m.value for m in logged.metrics}["model/test/acc"] == 0.5


def test_bf16_mixed_precision_trains_on_the_cpu_in_bf16():
    """trainer.precision=bf16-mixed on the CPU: the forward passes run under bf16 autocast (the losses differ from
    fp32's in their rounding, not in what is learned) and the run says which precision it used."""
    overrides = [*QUICK, "trainer.max_epochs=3", "tracking=none"]
    full = dlkit.run(overrides).metrics
    mixed = dlkit.run([*overrides, "trainer.precision=bf16-mixed"]).metrics
    assert mixed["train/loss"] != full["train/loss"]  # bf16 rounding: the forward ran in bf16
    assert abs(mixed["train/loss"] - full["train/loss"]) < 0.05 * full["train/loss"]  # the same training
    assert abs(mixed["test/acc"] - full["test/acc"]) <= 0.05

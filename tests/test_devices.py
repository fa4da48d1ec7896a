"""Devices and scale-out: DDP on two CPU processes (gloo), alone and under a Hydra multirun; GPU tests skip
without one."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from conftest import all_runs, dlkit_cli

DDP = ["trainer=ddp_cpu", "trainer.max_epochs=1", "data.limit=96"]


def test_a_ddp_run_is_one_mlflow_run_with_metrics_over_every_process(outputs, store):
    done = dlkit_cli(*DDP, f"paths.output_dir={outputs}")
    assert done.returncode == 0, done.stderr[-3000:]
    client = store()
    (run,) = all_runs(client)  # rank 1 recorded nothing
    assert run.info.status == "FINISHED" and run.data.tags["device.count"] == "2"
    assert run.data.params["optimizer.batch_size"] == "32" and run.data.params["optimizer.global_batch_size"] == "64"

    # The logged test accuracy is over the whole test split, not rank 0's half: evaluate the final weights here.
    from dlkit.build import build
    from dlkit.plan import Plan

    cfg = OmegaConf.load(client.download_artifacts(run.info.run_id, "config.yaml", str(outputs)))
    # 1 epoch: best = last.
    weights = torch.load(client.download_artifacts(run.info.run_id, "best.pt", str(outputs)), weights_only=True)
    experiment = build(Plan.from_config(cfg))
    model = experiment.task.model
    model.load_state_dict(weights)
    model.eval()
    test = experiment.dataset.test
    with torch.no_grad():
        accuracy = (model(test.x).argmax(1) == test.y).float().mean().item()
    assert len(test) == 96
    assert run.data.metrics["test/acc"] == pytest.approx(accuracy, abs=1e-6)


def test_a_ddp_sweep_is_one_parent_and_its_children_not_a_sweep_per_process(outputs, store):
    done = dlkit_cli("-m", "seed=0,1", *DDP, f"paths.output_dir={outputs}")
    assert done.returncode == 0, done.stderr[-3000:]
    runs = all_runs(store())
    parents = [r for r in runs if r.data.tags.get("dlkit.sweep") == "parent"]
    children = [r for r in runs if r not in parents]
    assert len(parents) == 1 and sorted(c.info.run_name for c in children) == ["seed=0", "seed=1"]
    assert all(c.info.status == "FINISHED" and c.data.tags["device.count"] == "2" for c in children)
    assert parents[0].info.status == "FINISHED"


def test_devices_the_machine_lacks_are_named_before_training(outputs):
    wanted = "trainer=gpu" if not torch.cuda.is_available() else f"trainer.devices={torch.cuda.device_count() + 1}"
    done = dlkit_cli(wanted, f"paths.output_dir={outputs}")
    assert done.returncode == 2 and "this machine has" in done.stderr and "CPU cores" in done.stderr
    assert not (outputs / "mlflow.db").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_a_gpu_the_data_lives_on_the_device(outputs, store):
    import dlkit

    result = dlkit.run(["trainer=gpu", "trainer.max_epochs=2", f"paths.output_dir={outputs}"])
    run = store().get_run(result.run_id)
    assert run.data.tags["device.accelerator"] == "cuda" and result.metrics["test/acc"] > 0.5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("data", ["digits", "regression_outliers"])  # regression keeps the outputs themselves
def test_on_a_gpu_cuda_graphs_train_like_eager(data):
    """compile=reduce-overhead: the model's passes replayed from CUDA graphs give eager's metrics (the kept
    predictions are copies, so a later replay cannot overwrite them)."""
    import dlkit

    base = ["trainer=gpu", "trainer.max_epochs=2", "tracking=none", f"data={data}"]
    eager = dlkit.run(base).metrics
    graphs = dlkit.run([*base, "compile=reduce-overhead"]).metrics
    for key in ("train/loss", "val/loss", "test/loss"):
        assert graphs[key] == pytest.approx(eager[key], rel=1e-3), key

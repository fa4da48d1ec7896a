"""Devices and scale-out: DDP on two CPU processes (gloo), alone and under a Hydra multirun; GPU tests skip
without one."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf

import dlkit
from conftest import NO_MODEL, REPO, all_runs, dlkit_cli, free_port

DDP = ["trainer=ddp_cpu", "trainer.max_epochs=1", "data.limit=96"]
# Two nodes of one CPU process each, as a cluster starts them (torchrun on each node, or SLURM's srun).
TWO_NODES = ["trainer=ddp_cpu", "trainer.devices=1", "trainer.num_nodes=2", "trainer.max_epochs=2", "data.limit=96"]
FINAL = ("train/loss", "val/loss", "val/acc", "test/loss", "test/acc")


def one_process_with_the_global_batch() -> dict[str, float]:
    """The same training on one process, its batch the two nodes' together: dlkit shards each global batch
    across processes, so DDP should reproduce it up to the order floats are summed in."""
    result = dlkit.run(["trainer.max_epochs=2", "data.limit=96", "optimizer.batch_size=64", "tracking=none"])
    return {k: result.metrics[k] for k in FINAL}


def assert_one_run_over_two_nodes(client, launched_by: str) -> None:
    (run,) = all_runs(client)  # the other node's process recorded nothing
    assert run.info.status == "FINISHED"
    tags, params = run.data.tags, run.data.params
    assert (tags["device.nodes"], tags["device.processes"], tags["device.launched_by"]) == ("2", "2", launched_by)
    assert params["optimizer.batch_size"] == "32" and params["optimizer.global_batch_size"] == "64"
    reference = one_process_with_the_global_batch()
    assert {k: run.data.metrics[k] for k in FINAL} == pytest.approx(reference, abs=1e-4)


def test_two_nodes_started_by_torchrun_train_one_run_as_one_process_would(outputs, store):
    port, env = free_port(), {k: v for k, v in os.environ.items() if not k.startswith("DLKIT_")}
    nodes = [
        subprocess.Popen(
            [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", f"--node_rank={rank}", "--nproc_per_node=1"]
            + ["--master_addr=127.0.0.1", f"--master_port={port}", "-m", "dlkit", *TWO_NODES, NO_MODEL]
            + [f"paths.output_dir={outputs}"],
            cwd=REPO,
            env={**env, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in (0, 1)
    ]
    outputs_of = [node.communicate(timeout=300)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs_of[0][-2000:] + outputs_of[1][-2000:]
    assert "test/acc" in outputs_of[0] and "epoch" not in outputs_of[1] and "MLflow run" not in outputs_of[1]
    assert_one_run_over_two_nodes(store(), "TorchElastic")


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
    # One job is enough: were the other process to re-run the command, it would launch a sweep (a parent) of its own.
    done = dlkit_cli("-m", "seed=0", *DDP, f"paths.output_dir={outputs}")
    assert done.returncode == 0, done.stderr[-3000:]
    runs = all_runs(store())
    parents = [r for r in runs if r.data.tags.get("dlkit.sweep") == "parent"]
    children = [r for r in runs if r not in parents]
    assert len(parents) == 1 and [c.data.params["seed"] for c in children] == ["0"]
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

"""How a sweep's parent run is closed (dlkit/tracking/sweep_store.py), on hand-made runs in a real sqlite store:
its status from its jobs' latest attempts, the failures it lists, and its best job. Fast, and what mutation
testing of the sweep's statuses runs (see the README); the end-to-end sweeps in test_sweep.py check the same
through real launches."""

import itertools

import pytest

from dlkit.tracking import tags as tag
from dlkit.tracking.sweep_store import close_parent

counter = itertools.count()


@pytest.fixture(scope="module")
def uri(tmp_path_factory):
    return f"sqlite:///{tmp_path_factory.mktemp('store')}/mlflow.db"


@pytest.fixture
def sweep(uri):
    """A new experiment with a RUNNING parent; add(name, status, val_loss, ...) adds a child run to it."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiment = client.create_experiment(f"sweep-{next(counter)}")
    parent = client.create_run(experiment, run_name="parent").info.run_id

    def add(name: str, status: str = "FINISHED", val_loss: float | None = None, config: str | None = None, **tags):
        child = client.create_run(
            experiment,
            start_time=1_800_000_000_000 + 1000 * next(counter),  # each a second after the last: attempts in order
            run_name=name,
            tags={tag.PARENT: parent, tag.CONFIG_HASH: config or name, **tags},
        ).info.run_id
        if val_loss is not None:
            client.log_metric(child, "val/loss", val_loss)
        client.set_terminated(child, status=status)
        return child

    return client, parent, add


def test_every_job_finished_closes_it_finished_with_the_lowest_objective_as_best(uri, sweep):
    client, parent, add = sweep
    add("a", val_loss=0.5)
    best = add("b", val_loss=0.2)
    add("c", val_loss=0.9)
    outcome = close_parent(uri, parent, "val/loss", maximize=False)
    assert outcome.status == "FINISHED" and outcome.failures == []
    run = client.get_run(parent)
    assert run.info.status == "FINISHED"
    assert run.data.tags[tag.BEST_RUN_ID] == best and run.data.tags[tag.BEST_RUN_NAME] == "b"
    assert run.data.metrics["best/val/loss"] == 0.2


def test_a_maximized_objective_takes_the_highest(uri, sweep):
    client, parent, add = sweep
    add("a", val_loss=0.5)
    best = add("b", val_loss=0.9)
    close_parent(uri, parent, "val/loss", maximize=True)
    assert client.get_run(parent).data.tags[tag.BEST_RUN_ID] == best


def test_a_failed_job_fails_it_and_is_listed_with_its_reason_and_never_best(uri, sweep):
    client, parent, add = sweep
    best = add("a", val_loss=0.5)
    add("b", "FAILED", val_loss=0.1, **{tag.FAILURE_REASON: "diverged"})
    add("c", "KILLED")
    outcome = close_parent(uri, parent, "val/loss", maximize=False)
    assert outcome.status == "FAILED" and sorted(outcome.failures) == ["b: diverged", "c: KILLED"]
    run = client.get_run(parent)
    assert run.info.status == "FAILED" and run.data.tags[tag.BEST_RUN_ID] == best  # only finished jobs compete


def test_a_job_that_failed_before_its_run_existed_fails_it(uri, sweep):
    client, parent, add = sweep
    add("a", val_loss=0.5)
    client.set_tag(parent, f"{tag.EARLY_FAILURE_PREFIX}1", "model.blocks=[...]: cnn conv1: output size 4.5")
    outcome = close_parent(uri, parent, "val/loss", maximize=False)
    assert outcome.status == "FAILED" and outcome.failures == ["model.blocks=[...]: cnn conv1: output size 4.5"]


def test_failed_or_a_given_status_wins_over_finished_jobs(uri, sweep):
    client, parent, add = sweep
    add("a", val_loss=0.5)
    assert close_parent(uri, parent, "val/loss", maximize=False, failed=True).status == "FAILED"
    client.update_run(parent, status="RUNNING")
    outcome = close_parent(uri, parent, "val/loss", maximize=False, status="KILLED")  # an interrupted sweep
    assert outcome.status == "KILLED" and client.get_run(parent).info.status == "KILLED"


def test_no_job_at_all_is_not_a_finished_sweep(uri, sweep):
    client, parent, _ = sweep
    outcome = close_parent(uri, parent, "val/loss", maximize=False)
    assert outcome.status == "FAILED" and client.get_run(parent).info.status == "FAILED"
    assert tag.BEST_RUN_ID not in client.get_run(parent).data.tags


def test_a_relaunched_sweep_counts_each_jobs_latest_attempt(uri, sweep):
    client, parent, add = sweep
    add("a", "FAILED", config="job-a")
    again = add("a", val_loss=0.4, config="job-a")  # the relaunch ran it again, to the end
    add("b", val_loss=0.6)
    outcome = close_parent(uri, parent, "val/loss", maximize=False)
    assert outcome.status == "FINISHED" and client.get_run(parent).data.tags[tag.BEST_RUN_ID] == again
    add("b", "KILLED", config="b")  # and the other way round: a later attempt that did not finish
    client.update_run(parent, status="RUNNING")
    assert close_parent(uri, parent, "val/loss", maximize=False).status == "FAILED"


def test_a_parent_already_ended_keeps_its_status_and_jobs_without_the_objective_are_not_scored(uri, sweep):
    client, parent, add = sweep
    add("a")  # finished, but never logged val/loss
    client.set_terminated(parent, status="KILLED")
    outcome = close_parent(uri, parent, "val/loss", maximize=False)
    assert outcome.status == "FINISHED"  # what its jobs say...
    run = client.get_run(parent)
    assert run.info.status == "KILLED" and tag.BEST_RUN_ID not in run.data.tags  # ...but the store is not rewritten

"""How a sweep's parent run is closed (dlkit/tracking/sweep_store.py), on hand-made runs in a real sqlite store:
its status from its jobs' latest attempts, the failures it lists, and its best job. Fast, and what mutation
testing of the sweep's statuses runs (see the README); the end-to-end sweeps in test_sweep.py check the same
through real launches."""

import itertools

import pytest

from dlkit.tracking import tags as tag
from dlkit.tracking.sweep_store import Attempt, close_parent

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


def test_jobs_without_a_run_fail_it_a_search_that_ran_fewer_trials_does_not(uri, sweep):
    # a recorder that died with a job's run still queued: the run was never written, and the parent says so
    client, parent, add = sweep
    add("a", val_loss=0.5)
    add("b", val_loss=0.4)
    client.set_tag(parent, tag.JOBS, "3")
    outcome = close_parent(uri, parent, "val/loss", maximize=False)
    assert outcome.status == "FAILED"
    assert outcome.failures == ["1 of 3 jobs have no run; launch the sweep again to run them"]
    client.update_run(parent, status="RUNNING")
    client.set_tag(parent, tag.SEARCH_STUDY, "study")  # a search's n_trials: a timeout may end it with fewer
    assert close_parent(uri, parent, "val/loss", maximize=False).status == "FINISHED"


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


def open_parent(uri, experiment, key="k1", resume=True, artifact_root=None, **tags):
    from dlkit.tracking.sweep_store import open_parent as opened

    return opened(uri, experiment, artifact_root, key, "sweep seed=0,1", tags, ["data.limit=48", "lr=0.1"], resume)


def test_a_new_sweep_gets_a_parent_tagged_with_its_key_and_fixed_overrides(uri):
    from mlflow.tracking import MlflowClient

    experiment = f"open-{next(counter)}"
    run_id, attempts = open_parent(uri, experiment, **{"dlkit.jobs": "2"})
    assert attempts is None  # nothing ran before
    run = MlflowClient(uri).get_run(run_id)
    assert run.info.run_name == "sweep seed=0,1" and run.info.status == "RUNNING"
    assert run.data.tags[tag.SWEEP_KEY] == "k1" and run.data.tags[tag.SWEEP_ID] == run_id
    assert run.data.tags["dlkit.jobs"] == "2"
    assert run.data.params == {"override.0": "data.limit=48", "override.1": "lr=0.1"}
    assert open_parent(uri, experiment, key="k2")[0] != run_id  # another sweep: another parent
    assert open_parent(uri, experiment, resume=False)[0] != run_id  # tracking.resume=false: afresh


def test_the_same_sweep_launched_again_reopens_its_parent_with_each_jobs_latest_attempt(uri):
    from mlflow.tracking import MlflowClient

    client, experiment = MlflowClient(uri), f"reopen-{next(counter)}"
    first, _ = open_parent(uri, experiment, **{tag.STUDY: "dropout", f"{tag.STUDY}.guards": "{}"})
    experiment_id = client.get_run(first).info.experiment_id
    client.set_tag(first, f"{tag.EARLY_FAILURE_PREFIX}0", "lr=9: a bad value")
    client.set_terminated(first, status="FAILED")

    def child(config: str | None, status: str, loss: float, second: int) -> str:
        tags = {tag.PARENT: first, **({tag.CONFIG_HASH: config} if config else {})}
        run_id = client.create_run(experiment_id, start_time=1_900_000_000_000 + second * 1000, tags=tags).info.run_id
        client.log_metric(run_id, "val/loss", loss)
        client.set_terminated(run_id, status=status)
        return run_id

    other = client.create_run(experiment_id, tags={tag.PARENT: "another-parent", tag.CONFIG_HASH: "c"})
    client.set_terminated(other.info.run_id)  # another sweep's job in the same experiment: not this sweep's attempt
    child("a", "KILLED", 0.9, 1)
    again = child("a", "FINISHED", 0.3, 2)  # a's latest attempt
    cut = child("b", "KILLED", 0.7, 3)
    child(None, "FINISHED", 0.1, 4)  # no config hash: not a job a relaunch can match
    run_id, attempts = open_parent(uri, experiment, **{tag.STUDY: "dropout", "dlkit.jobs": "3"})
    assert run_id == first
    assert attempts == {
        "a": Attempt(again, experiment_id, "FINISHED", {"val/loss": 0.3}),
        "b": Attempt(cut, experiment_id, "KILLED", {"val/loss": 0.7}),
    }
    run = client.get_run(first)
    assert run.info.status == "RUNNING"  # goes on
    assert not [k for k in run.data.tags if k.startswith(tag.EARLY_FAILURE_PREFIX)]  # those jobs run again
    assert f"{tag.STUDY}.guards" not in run.data.tags and run.data.tags["dlkit.jobs"] == "3"  # as launched now


def test_latest_is_the_most_recently_started_match_and_the_recorder_runs_only_named_operations(uri):
    from mlflow.tracking import MlflowClient

    from dlkit.tracking.recorder import Service
    from dlkit.tracking.sweep_store import latest

    client = MlflowClient(uri)
    experiment_id = client.create_experiment(f"latest-{next(counter)}")
    runs = [
        client.create_run(experiment_id, start_time=1_950_000_000_000 + s * 1000, tags={"k": "v"}).info.run_id
        for s in (3, 1, 2)
    ]
    assert latest(client, experiment_id, "tags.k = 'v'").info.run_id == runs[0]
    assert latest(client, experiment_id, "tags.k = 'w'") is None
    service = Service()
    assert service.handle(
        "prepare", {"uri": uri, "experiment": f"called-{next(counter)}", "artifact_root": None}
    ).isdigit()
    with pytest.raises(ValueError, match="latest is not one of the recorder's operations"):
        service.handle("latest", (0, client))


def test_a_sweeps_experiment_keeps_its_artifacts_where_asked_and_jobs_without_a_config_hash_stay_apart(uri, tmp_path):
    from mlflow.tracking import MlflowClient

    from dlkit.tracking.sweep_store import latest_attempts, prepare

    client = MlflowClient(uri)
    name = f"artifacts-{next(counter)}"
    made = prepare(uri, name, str(tmp_path / "a"))
    assert client.get_experiment(made).artifact_location == (tmp_path / "a" / name).as_uri()  # <root>/<experiment>
    name = f"artifacts-{next(counter)}"
    run_id, _ = open_parent(uri, name, artifact_root=str(tmp_path / "b"))
    experiment = client.get_experiment(client.get_run(run_id).info.experiment_id)
    assert experiment.artifact_location == (tmp_path / "b" / name).as_uri()
    runs = [client.create_run(made) for _ in range(2)]  # neither carries a config hash: two jobs, not one
    assert {r.info.run_id for r in latest_attempts([client.get_run(r.info.run_id) for r in runs])} == {
        r.info.run_id for r in runs
    }

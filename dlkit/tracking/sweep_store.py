"""What the MLflow store holds of a sweep: its parent run, its jobs' earlier attempts, and how the parent is closed.

Plain values in and plain values out, so that dlkit/tracking/sweeps.py can run these in the recorder process: each
operation declares how a call reaches it there (dlkit/tracking/delivery.py), and OPERATIONS names them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dlkit.metrics import BEST, run_outcome
from dlkit.tracking import store
from dlkit.tracking import tags as tag
from dlkit.tracking.delivery import SENT, WAITS, delivered


@dataclass(frozen=True)
class Attempt:
    """A job's earlier run in this sweep."""

    run_id: str
    experiment_id: str
    status: str
    metrics: dict[str, float]


@dataclass
class Outcome:
    status: str  # FINISHED, FAILED or KILLED
    failures: list[str] = field(default_factory=list)  # the jobs that did not finish, with the reason
    views: list[tuple[str, str]] = field(default_factory=list)  # the sweep's saved views in MLflow's UI: name, link
    warning: str = ""  # why the views could not be written (the sweep's outcome stands)


@delivered(SENT)  # while Hydra sets the sweep up: open_parent, which waits, tells what failed
def prepare(uri: str, experiment: str, artifact_root: str | None) -> str:
    """Create the store and the experiment if they do not exist yet (a new sqlite store migrates: ~1.6 s)."""
    return store.experiment_id(store.client(uri), experiment, artifact_root)


@delivered(WAITS)
def open_parent(
    uri: str,
    experiment: str,
    artifact_root: str | None,
    key: str,
    name: str,
    tags: Mapping[str, str],
    fixed: Sequence[str],
    resume: bool,
) -> tuple[str, dict[str, Attempt] | None]:
    """The sweep's parent run: created, or (resume and the same sweep key ran before) reopened. Returns its id and,
    for a reopened parent, each job's latest attempt by its config's hash (read once, here: no job asks again);
    None for a new parent."""
    from mlflow.entities import Param, RunTag

    client = store.client(uri)
    experiment_id = store.experiment_id(client, experiment, artifact_root)
    earlier = latest(client, experiment_id, f"tags.`{tag.SWEEP_KEY}` = '{key}'") if resume else None
    if earlier is not None:  # the same sweep launched again: its parent goes on, finished jobs are skipped
        run_id = earlier.info.run_id
        client.update_run(run_id, status="RUNNING")
        for early in [t for t in earlier.data.tags if t.startswith(tag.EARLY_FAILURE_PREFIX)]:
            client.delete_tag(run_id, early)  # those jobs run again
        stale = [k for k in earlier.data.tags if k.startswith(tag.STUDY) and k not in tags]
        for key in stale:  # the study's declaration as launched now: a guard removed is gone
            client.delete_tag(run_id, key)
        client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])  # the jobs count, the study, ...
        children = client.search_runs([experiment_id], filter_string=f"tags.`{tag.PARENT}` = '{run_id}'")
        attempts = {
            run.data.tags[tag.CONFIG_HASH]: Attempt(
                run.info.run_id, experiment_id, run.info.status, dict(run.data.metrics)
            )
            for run in latest_attempts(children)
            if tag.CONFIG_HASH in run.data.tags
        }
        return run_id, attempts
    run_id = client.create_run(experiment_id, run_name=name, tags={**tags, tag.SWEEP_KEY: key}).info.run_id
    client.set_tag(run_id, tag.SWEEP_ID, run_id)
    client.log_batch(run_id, params=[Param(f"override.{i}", item) for i, item in enumerate(fixed)])
    return run_id, None


@delivered(WAITS)
def set_parent_tag(uri: str, run_id: str, key: str, value: str) -> None:
    store.client(uri).set_tag(run_id, key, value)


@delivered(WAITS)
def close_parent(
    uri: str, parent: str, objective: str, maximize: bool, failed: bool = False, status: str | None = None
) -> Outcome:
    """End the parent run: FINISHED if every job's latest attempt finished (and nothing failed), else FAILED,
    or the status given (KILLED on an interrupt). The best job is recorded on the parent."""
    client = store.client(uri)
    run = client.get_run(parent)
    children = client.search_runs([run.info.experiment_id], filter_string=f"tags.`{tag.PARENT}` = '{parent}'")
    children = latest_attempts(children)
    tags = run.data.tags
    early = [v for k, v in tags.items() if k.startswith(tag.EARLY_FAILURE_PREFIX)]
    done = children and all(c.info.status == "FINISHED" for c in children) and not early
    outcome = Outcome(status or ("FINISHED" if done and not failed else "FAILED"))
    outcome.failures += [
        f"{c.info.run_name}: {c.data.tags.get(tag.FAILURE_REASON, c.info.status)}"
        for c in children
        if c.info.status != "FINISHED"
    ]
    outcome.failures += early
    expected = run.data.tags.get(tag.JOBS, "")
    missing = int(expected) - len(children) - len(early) if expected.isdigit() and tag.SEARCH_STUDY not in tags else 0
    if missing > 0:  # runs never written (a recorder that died with them queued): the sweep is not whole
        outcome.status = status or "FAILED"
        outcome.failures.append(f"{missing} of {expected} jobs have no run; launch the sweep again to run them")
    scored = [  # an early-stopped child's outcome is its best epoch's
        (c, run_outcome(c.data.metrics)[objective])
        for c in children
        if c.info.status == "FINISHED"
        and objective in c.data.metrics
        and c.data.tags.get(tag.TRIAL_STATE) != "PRUNED"  # a search's trial stopped early: not a candidate
    ]
    if scored:  # the best job, recorded on the parent (for an optimizing sweeper: the best trial)
        best, value = (max if maximize else min)(scored, key=lambda pair: pair[1])
        client.set_tag(parent, tag.BEST_RUN_ID, best.info.run_id)
        client.set_tag(parent, tag.BEST_RUN_NAME, best.info.run_name)
        client.log_metric(parent, f"{BEST}{objective}", value)
    outcome.views, outcome.warning = publish_views(client, run, children)
    if run.info.status == "RUNNING":
        client.set_terminated(parent, status=outcome.status)
    return outcome


def publish_views(client, parent, children: list) -> tuple[list[tuple[str, str]], str]:
    """The sweep's saved views (experiment tags) and the parent's description: their names and links, or why not. A
    store that refuses them costs the views, never the sweep."""
    from dlkit.tracking import views

    tags = parent.data.tags
    sweep = views.Sweep(
        parent.info.experiment_id,
        parent.info.run_id,
        parent.info.run_name,
        tags.get(tag.FACTORS, "").split(","),
        tags.get(tag.OBJECTIVE, "val/loss"),
        tags.get(tag.MAXIMIZE) == "true",
        tag.SEARCH_STUDY in tags,
        [
            views.Child(
                {k[len(tag.FACTOR_PREFIX) :]: v for k, v in c.data.tags.items() if k.startswith(tag.FACTOR_PREFIX)},
                dict(c.data.metrics),
                list(c.data.params),
                c.info.status == "FINISHED",
            )
            for c in children
        ],
    )
    made = views.views(sweep)
    links = [(view.name, view.link(sweep)) for view in made]
    try:
        for view in made:
            client.set_experiment_tag(sweep.experiment_id, view.key, view.value)
        client.set_tag(sweep.parent_id, views.NOTE, views.note(sweep, links, [n for v in made for n in v.notes]))
    except Exception as exc:  # noqa: BLE001 - whatever the store refuses, the sweep has ended as it did
        return [], f"the sweep's views in MLflow's UI were not saved: {str(exc).splitlines()[0][:300]}"
    return links, ""


OPERATIONS = {operation.__name__: operation for operation in (prepare, open_parent, set_parent_tag, close_parent)}


def latest(client, experiment_id: str, filter_string: str):
    """The most recently started run that matches, or None."""
    found = client.search_runs([experiment_id], filter_string, order_by=["attributes.start_time DESC"], max_results=1)
    return found[0] if found else None


def latest_attempts(runs: list) -> list:
    """A relaunched sweep may run a job again: keep each job's latest attempt (by its config's hash)."""
    kept: dict[str, Any] = {}
    for run in sorted(runs, key=lambda r: r.info.start_time):
        kept[run.data.tags.get(tag.CONFIG_HASH, run.info.run_id)] = run
    return list(kept.values())

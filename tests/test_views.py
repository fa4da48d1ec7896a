"""A sweep's saved views in MLflow's UI (experiment tags), and its parent's description, read back from the store."""

from __future__ import annotations

from conftest import dlkit_cli
from dlkit.tracking import sweep_store, views

TINY = ["trainer.max_epochs=2", "data.limit=48"]


def saved_views(client, experiment_id: str) -> dict[str, dict]:
    """The experiment's views by name, each with its state decoded."""
    tags = client.get_experiment(experiment_id).tags
    found = [views.decode(v) for k, v in tags.items() if k.startswith(views.VIEW_TAG_PREFIX)]
    return {view["name"].split(": ", 1)[1]: view for view in found}


def test_a_sweep_saves_a_view_per_factor_and_of_its_grid_and_a_relaunch_replaces_them(outputs, store):
    command = ["-m", "activation=relu,tanh", "norm=none,batch", *TINY, f"paths.output_dir={outputs}"]
    done = dlkit_cli(*command)
    assert done.returncode == 0, done.stderr[-2000:]
    client = store()
    (parent,) = client.search_runs(["1"], "tags.`dlkit.sweep` = 'parent'")
    found = saved_views(client, "1")
    assert sorted(found) == ["by activation", "by norm", "grid of activation × norm"]
    state = found["by activation"]["state"]
    assert state["searchFilter"] == f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
    children = client.search_runs(["1"], state["searchFilter"])  # the filter MLflow's UI will send
    assert len(children) == 4 and parent.info.run_id not in {c.info.run_id for c in children}
    assert state["groupBy"] == {
        "aggregateFunction": "average",
        "groupByKeys": [{"mode": "tag", "groupByData": "factor.activation"}],
    }
    assert [k["groupByData"] for k in found["grid of activation × norm"]["state"]["groupBy"]["groupByKeys"]] == [
        "factor.activation",
        "factor.norm",
    ]
    assert (state["orderByKey"], state["orderByAsc"]) == ("metrics.`val/loss`", True)  # the objective, lowest first
    assert state["runsHiddenMode"] == "SHOW_ALL" and state["useGroupedValuesInCharts"] is True
    charts = [(c["type"], c.get("metricKey")) for c in state["compareRunCharts"]]
    assert charts[:2] == [("LINE", "val/loss"), ("BAR", "val/loss")] and ("BAR", "test/acc") in charts
    assert {c["metricSectionId"] for c in state["compareRunCharts"]} == {s["uuid"] for s in state["compareRunSections"]}
    assert state["selectedColumns"][:3] == ["tags.`factor.activation`", "tags.`factor.norm`", "metrics.`val/loss`"]
    assert "metrics.`test/acc`" in state["selectedColumns"]

    note = parent.data.tags[views.NOTE]
    assert "- **activation**: relu, tanh" in note and "| relu | " in note and "| none | " in note
    for name, view in found.items():
        link = f"viewStateShareKey={view_id(client, view)}&compareRunsMode=CHART"
        assert link in note and link in done.stdout, name

    report = dlkit_cli("report", f"paths.output_dir={outputs}")
    assert report.returncode == 0, report.stderr[-2000:]
    assert all(
        f"view '{view['name']}': http://127.0.0.1:5000/#/experiments/1/runs?viewStateShareKey=" in report.stdout
        for view in found.values()
    )

    again = dlkit_cli(*command)  # every job finished: skipped; the views written again, under the same ids
    assert again.returncode == 0, again.stderr[-2000:]
    assert len(saved_views(store(), "1")) == 3


def view_id(client, view: dict) -> str:
    tags = client.get_experiment("1").tags
    (key,) = [k for k, v in tags.items() if k.startswith(views.VIEW_TAG_PREFIX) and views.decode(v) == view]
    return key[len(views.VIEW_TAG_PREFIX) :]


def test_a_search_saves_its_trials_with_the_searched_values_in_parallel_coordinates(outputs, store):
    done = dlkit_cli(
        "-m",
        "hydra/sweeper=optuna",
        "hydra.sweeper.seed=0",
        "hydra.sweeper.n_trials=2",
        "optimizer.lr=tag(log,interval(0.001,0.1))",
        "activation=choice(relu,tanh)",
        *TINY,
        f"paths.output_dir={outputs}",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (view,) = saved_views(store(), "1").values()
    state = view["state"]
    assert state["groupBy"] is None and state["orderByKey"] == "metrics.`val/loss`"
    parallel = state["compareRunCharts"][0]
    assert parallel["type"] == "PARALLEL" and parallel["selectedMetrics"] == ["val/loss"]
    assert sorted(parallel["selectedParams"]) == ["activation.name", "optimizer.lr"]  # as the trials' params are named
    trial = store().search_runs(["1"], state["searchFilter"])[0]
    assert set(parallel["selectedParams"]) <= set(trial.data.params)


def sweep(children: int, tests: int = 1, factors=("activation", "seed")) -> views.Sweep:
    metrics = {"val/loss": 1.0, **{f"test/metric_{i:03}": 0.5 for i in range(tests)}}
    runs = [views.Child({"activation": f"a{i % 3}", "seed": str(i)}, metrics) for i in range(children)]
    return views.Sweep("1", "p" * 32, "sweep", list(factors), "val/loss", False, False, runs)


def test_seeds_are_replicates_never_a_factor_and_large_sweeps_say_the_ui_pages():
    (only,) = views.views(sweep(3))
    assert only.name == "sweep: by activation"
    assert "100 runs at a time" not in views.note(sweep(3), [])
    assert "100 runs at a time" in views.note(sweep(101), [])


def test_a_view_too_long_for_a_tag_is_compressed_then_loses_charts_never_the_view():
    compressed = views.views(sweep(3, tests=300))[0]  # ~300 columns and charts: over 20,000 characters as JSON
    assert len(compressed.value) <= views.MAX_TAG and '"state": "deflate;' in compressed.value
    assert len(views.decode(compressed.value)["state"]["compareRunCharts"]) == 302 and not compressed.notes
    cut = views.views(sweep(3, tests=3000))[0]
    assert len(cut.value) <= views.MAX_TAG and cut.notes
    assert [c["type"] for c in views.decode(cut.value)["state"]["compareRunCharts"][:2]] == ["LINE", "BAR"]


def test_a_store_that_refuses_the_views_costs_the_views_not_the_sweep(tmp_path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.create_experiment("gone")
    parent = client.create_run(experiment, run_name="sweep", tags={"dlkit.factors": "activation"})
    client.delete_experiment(experiment)  # MLflow refuses tags on a deleted experiment
    links, warning = sweep_store.publish_views(client, client.get_run(parent.info.run_id), [])
    assert links == [] and warning.startswith("the sweep's views in MLflow's UI were not saved: ")

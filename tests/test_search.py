"""dlkit's search (hydra/sweeper=optuna): the space read from Hydra's grammar, wrong searches refused before anything
runs, trials pruned per epoch, two workers sharing one stored study, a relaunch that continues it, and trials cut
short (Ctrl-C, a killed worker) run again. Real searches: real dlkit processes, a real MLflow store, a real study."""

from __future__ import annotations

import dataclasses
import signal

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from conftest import all_runs, dlkit_cli, signal_after_first_epoch, start_dlkit
from dlkit import config, search
from dlkit.errors import ConfigError

LR = "optimizer.lr=tag(log,interval(0.00001,1.0))"  # wide enough that some trials learn and some do not
SMALL = ["data.limit=96", "trainer.max_epochs=6"]


def search_command(outputs, *args: str) -> list[str]:
    return ["-m", "hydra/sweeper=optuna", "hydra.sweeper.seed=0", *args, *SMALL, f"paths.output_dir={outputs}"]


def study_of(outputs) -> optuna.Study:
    url = f"sqlite:///{outputs.resolve()}/optuna.db"
    (name,) = optuna.get_all_study_names(url)
    return optuna.load_study(study_name=name, storage=url)


def test_the_search_space_is_read_from_hydras_grammar():
    space = config.search_space(
        [
            "optimizer.lr=tag(log,interval(0.0001,0.1))",
            "model.hidden=choice([64],[128],[256,128])",
            "activation=relu,tanh",
            "+model.extra=range(1,5)",
            "dropout.p=interval(0.1,0.5)",
            "model.width=tag(int,interval(8,64))",
            "seed=3",
        ],
        params={"optimizer.beta": "interval(0.5,0.99)", "seed": "7"},  # the old plugin's form; the command line wins
    )
    assert space.fixed == ("seed=3",)
    found = {d.name: d.distribution for d in space.dimensions}
    assert found == {
        "optimizer.lr": FloatDistribution(0.0001, 0.1, log=True),
        "model.hidden": CategoricalDistribution(["[64]", "[128]", "[256,128]"]),
        "activation": CategoricalDistribution(["relu", "tanh"]),
        "model.extra": IntDistribution(1, 4),  # range() stops before its stop, as Hydra's
        "dropout.p": FloatDistribution(0.1, 0.5),
        "model.width": IntDistribution(8, 64),
        "optimizer.beta": FloatDistribution(0.5, 0.99),
    }
    extra = next(d for d in space.dimensions if d.name == "model.extra")
    assert extra.override(3) == "+model.extra=3"  # a trial's override keeps the key's + as written


def test_every_searched_value_is_planned_at_its_edges_before_the_first_trial():
    jobs = config.job_overrides(
        ["hydra/sweeper=optuna", "optimizer.lr=tag(log,interval(0.0001,0.1))", "activation=relu,tanh", "seed=1"], True
    )
    assert jobs == [
        ["seed=1", "optimizer.lr=0.0001", "activation=relu"],
        ["seed=1", "optimizer.lr=0.1", "activation=relu"],
        ["seed=1", "optimizer.lr=0.0001", "activation=tanh"],
    ]


@pytest.mark.parametrize(
    "sampler, kind", [("tpe", "TPESampler"), ("random", "RandomSampler"), ("grid", "GridSampler"), ("cmaes", "CmaEs")]
)
def test_each_sampler_is_optunas_and_a_grid_runs_each_point_once(sampler, kind):
    space = config.search_space(["optimizer.lr=0.001,0.01,0.1", "model.blocks=range(1,3)"])
    chosen = ["hydra/sweeper=optuna", f"hydra.sweeper.sampler={sampler}", "hydra.sweeper.seed=4"]
    settings = search.Settings.read(config.sweeper_config(chosen))
    made = search.sampler(settings, space, worker=1)
    assert type(made).__name__.startswith(kind)
    assert space.trials(settings) == (6 if sampler == "grid" else 20)  # the grid's 3 × 2 points, else n_trials

    def first_points(worker: int) -> list[tuple]:
        study = optuna.create_study(sampler=search.sampler(settings, space, worker))
        trials = [study.ask() for _ in range(3)]
        return [tuple(d.suggest(t) for d in space.dimensions) for t in trials]

    assert first_points(1) == first_points(1)  # seeded
    assert first_points(0) != first_points(1)  # each worker draws its own points: seed + its number


@pytest.mark.parametrize(
    "override, expected",
    [
        ("optimizer.lr=interval(0.1,0.01)", "an interval's start must be below its end: interval(0.01,0.1)"),
        ("hydra.sweeper.pruner=medain", "hydra.sweeper.pruner=medain is unknown; did you mean 'median'?"),
        ("activation=relu,gleu", "activation 'gleu' is unknown; did you mean 'gelu'?"),
        ("optimizer.lrr=interval(0.1,0.2)", "'optimizer.lrr' is not a key of the config; did you mean 'optimizer.lr'?"),
        ("hydra.sweeper.sampler.seed=1", "dlkit's search takes hydra.sweeper.seed=N"),
        ("hydra.sweeper.sampler=grid", "hydra.sweeper.sampler=grid needs a finite set of values for optimizer.lr"),
        ("hydra.sweeper.n_trials=0", "hydra.sweeper.n_trials must be a whole number ≥ 1, got 0."),
        ("hydra.sweeper.trial_files=bets", "trial_files=bets is unknown; did you mean 'best'? available: best,"),
        ("hydra.sweeper.timeout=-5", "hydra.sweeper.timeout must be a number > 0 (or null), got -5."),
    ],
)
def test_a_wrong_search_is_refused_in_one_line_before_anything_runs(override, expected):
    with pytest.raises(ConfigError) as refused:
        config.compose_jobs(["hydra/sweeper=optuna", "optimizer.lr=interval(0.001,0.01)", override], True)
    assert expected in str(refused.value) and "\n" not in str(refused.value)


def test_the_command_refuses_a_wrong_search_with_exit_2_and_creates_nothing(outputs):
    done = dlkit_cli(*search_command(outputs, "optimizer.lr=interval(0.1,0.01)"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == (
        "dlkit: error: optimizer.lr=interval(0.1,0.01): an interval's start must be below its end: interval(0.01,0.1)."
    )
    assert not outputs.exists()  # no store, no study


def test_a_pruned_search_records_every_trial_and_a_relaunch_runs_nothing_new(outputs, store):
    command = search_command(outputs, LR, "hydra.sweeper.n_trials=6", "hydra.sweeper.startup_trials=2")
    done = dlkit_cli(*command, model=True)
    assert done.returncode == 0, done.stderr[-3000:]
    study = study_of(outputs)
    states = [t.state for t in study.trials]
    assert len(states) == 6 and set(states) <= {TrialState.COMPLETE, TrialState.PRUNED}
    assert TrialState.PRUNED in states, states  # this seed's bad learning rates are stopped early
    runs = {r.data.tags.get("dlkit.trial.number"): r for r in all_runs(store())}
    parent = runs.pop(None)
    assert parent.data.tags["dlkit.search.study"] == study.study_name and parent.info.status == "FINISHED"
    for trial in study.trials:
        run = runs[str(trial.number)]
        assert run.info.status == "FINISHED" and run.data.tags["dlkit.trial.state"] == trial.state.name
        assert float(run.data.tags["factor.optimizer.lr"]) == trial.params["optimizer.lr"]
        epochs = [m.step for m in store().get_metric_history(run.info.run_id, "val/loss")]
        if trial.state == TrialState.PRUNED:  # stopped at the epoch the pruner named: the last one reported
            stopped = int(run.data.tags["dlkit.trial.pruned_epoch"])
            assert epochs == list(range(stopped + 1)) and stopped == max(trial.intermediate_values) < 5
            assert f"[trial #{trial.number}] pruned at epoch {stopped + 1}" in done.stdout
            assert "dlkit.model_id" not in run.data.tags and "pruned trial" in run.data.tags["dlkit.model_skipped"]
            assert "learning_curves.png" not in {a.path for a in store().list_artifacts(run.info.run_id)}  # nor files
        else:
            assert epochs == list(range(6)) and trial.value == run.data.metrics["val/loss"]
    # A trial that ran to its end keeps its model and files if it was the study's best then (trial_files=best): the
    # study's final best always was; the others say why they have none.
    complete = sorted((t for t in study.trials if t.state == TrialState.COMPLETE), key=lambda t: t.datetime_complete)
    kept = [t.number for i, t in enumerate(complete) if t.value <= min(c.value for c in complete[: i + 1])]
    assert study.best_trial.number in kept and len(kept) < len(complete), [(t.number, t.value) for t in complete]
    for trial in complete:
        run = runs[str(trial.number)]
        files = {a.path for a in store().list_artifacts(run.info.run_id)}
        if trial.number in kept:
            assert "dlkit.model_id" in run.data.tags and {"learning_curves.png", "best.pt"} <= files
        else:
            assert "dlkit.model_id" not in run.data.tags and "learning_curves.png" not in files
            assert "not the study's best" in run.data.tags["dlkit.model_skipped"]
    # The parent's best is the study's: a trial that ran to the end, never a pruned one.
    assert runs[str(study.best_trial.number)].info.run_id == parent.data.tags["dlkit.best_run_id"]
    assert parent.data.metrics["best/val/loss"] == study.best_value

    # The report of a search: its trials best first by the objective, the pruned ones after them with the epoch they
    # stopped at; the objective against each searched value, the history and Optuna's importances, on the parent.
    shown = dlkit_cli("report", f"paths.output_dir={outputs}")
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "trials, best first: val/loss (lower is better)" in shown.stdout and "baseline" not in shown.stdout

    def rank(trial):  # those that ran to their end first, then the pruned ones, each by their last val/loss
        return trial.state == TrialState.PRUNED, runs[str(trial.number)].data.metrics["val/loss"]

    ranked = sorted(study.trials, key=rank)
    rows = [line.split("│")[1].strip() for line in shown.stdout.splitlines() if line.startswith("│")]
    assert rows[: len(ranked)] == [str(t.number) for t in ranked]
    assert shown.stdout.count("pruned at epoch") == states.count(TrialState.PRUNED)
    assert "parameter importances" in shown.stdout and "optimizer.lr │ 1.000" in shown.stdout  # the one searched key
    files = {a.path for a in store().list_artifacts(parent.info.run_id, "report")}
    assert {"report/trials.png", "report/history.png"} <= files and not any("curves" in f for f in files)

    again = dlkit_cli(*command, model=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "6 of 6 trials done" in again.stdout and "[trial" not in again.stdout
    assert len(study_of(outputs).trials) == 6 and len(all_runs(store())) == 7


@pytest.mark.parametrize("pruner, rungs", [("successive_halving", {1, 4}), ("hyperband", {1, 3})])
def test_each_pruner_stops_trials_at_its_own_rungs(pruner, rungs, outputs, store):
    """Successive halving (reduction factor 4) decides at epochs 1, 4, 16, ...; hyperband's brackets (factor 3, up to
    the 6 epochs) at 1, 3, ...: a trial is pruned only there, never at epoch 0 as the median pruner may."""
    done = dlkit_cli(*search_command(outputs, LR, "hydra.sweeper.n_trials=5", f"hydra.sweeper.pruner={pruner}"))
    assert done.returncode == 0, done.stderr[-3000:]
    trials = study_of(outputs).trials
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert pruned, [t.state for t in trials]
    assert {max(t.intermediate_values) for t in pruned} <= rungs
    assert all(any(a.startswith("completed_rung_") for a in t.system_attrs) for t in trials)
    runs = {r.data.tags.get("dlkit.trial.number"): r for r in all_runs(store())}
    assert all(runs[str(t.number)].data.tags["dlkit.trial.state"] == "PRUNED" for t in pruned)


def test_two_parallel_workers_share_one_study_without_repeating_a_suggestion(outputs, store):
    done = dlkit_cli(
        *search_command(
            outputs,
            "optimizer.lr=tag(log,interval(0.0001,0.1))",
            "model.hidden=choice([16],[32],[64])",
            "hydra/launcher=parallel",
            "hydra.launcher.n_jobs=2",
            "hydra.sweeper.n_trials=4",
            "hydra.sweeper.pruner=none",
            "hydra.sweeper.trial_files=complete",
            "hydra.sweeper.direction=maximize",
            "objective=val/acc",
        )
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 workers" in done.stdout
    trials = study_of(outputs).trials
    assert len(trials) == 4 and all(t.state == TrialState.COMPLETE for t in trials)
    assert {t.user_attrs["dlkit.worker"] for t in trials} == {0, 1}  # both asked the study for trials
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 4
    children = [r for r in all_runs(store()) if "mlflow.parentRunId" in r.data.tags]
    assert sorted(int(c.data.tags["dlkit.trial.number"]) for c in children) == list(range(4))
    # A worker's trial leaves its run to the recorder while the next trains; the worker flushes it before it returns.
    # trial_files=complete: every trial that ran to its end keeps its files
    for child in children:
        assert child.info.status == "FINISHED"
        assert "learning_curves.png" in {f.path for f in store().list_artifacts(child.info.run_id)}
    # A maximized objective: the parent's best is the highest val/acc, the study's best
    (parent,) = [r for r in all_runs(store()) if r.data.tags.get("dlkit.sweep") == "parent"]
    accuracies = sorted(c.data.metrics["val/acc"] for c in children)
    assert accuracies[0] < accuracies[-1] == parent.data.metrics["best/val/acc"] == study_of(outputs).best_value


def test_a_worker_in_a_process_of_its_own_leaves_its_trials_runs_to_the_recorder_until_it_returns():
    from dlkit import sweep
    from dlkit.tracking.sweeps import Sweep

    opened_elsewhere = Sweep("p" * 32, "sqlite:///x.db", (), opened_in="another-host:1")
    assert not opened_elsewhere.runs_here  # a parallel sweep's job waits for its run to be written
    with sweep.worker_flushes():  # no recorder was started here: the flush on leaving has nothing to wait for
        assert opened_elsewhere.runs_here
    assert not opened_elsewhere.runs_here


def test_a_search_without_tracking_runs_its_trials_and_records_nothing(outputs):
    done = dlkit_cli(*search_command(outputs, LR, "hydra.sweeper.n_trials=2", "trainer.max_epochs=2", "tracking=none"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert [t.state for t in study_of(outputs).trials] == [TrialState.COMPLETE] * 2
    assert not (outputs / "mlflow.db").exists()


def test_an_interrupted_trial_runs_again_on_relaunch_and_resumes_its_run(outputs, store):
    """Ctrl-C in a trial: the trial FAILs and is queued again with its parameters; the same command launched again
    runs it, in the same MLflow run, from its checkpoint."""
    command = search_command(outputs, LR, "hydra.sweeper.n_trials=1", "trainer.max_epochs=150", "data.limit=48")
    job = start_dlkit(*command)
    signal_after_first_epoch(job, signal.SIGINT)
    assert job.returncode == 128 + signal.SIGINT
    (first,) = study_of(outputs).trials[:1]
    assert first.state == TrialState.FAIL
    (cut,) = [r for r in all_runs(store()) if "mlflow.parentRunId" in r.data.tags]
    assert cut.info.status == "KILLED"

    again = dlkit_cli(*command)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resuming run {cut.info.run_id}" in again.stdout
    study = study_of(outputs)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert study.trials[1].params == first.params and study.trials[1].system_attrs["retry_history"] == [0]
    (run,) = [r for r in all_runs(store()) if "mlflow.parentRunId" in r.data.tags]
    assert run.info.run_id == cut.info.run_id and run.info.status == "FINISHED"


def test_a_killed_workers_trial_is_failed_by_its_heartbeat_and_run_again(outputs, store):
    """SIGKILL (out of memory, a node lost): the trial stays RUNNING until its heartbeat is stale; the relaunched
    search fails it then, and runs it again with the same parameters."""
    command = search_command(outputs, LR, "hydra.sweeper.n_trials=1", "trainer.max_epochs=150", "data.limit=48")
    signal_after_first_epoch(start_dlkit(*command), signal.SIGKILL)
    assert [t.state for t in study_of(outputs).trials] == [TrialState.RUNNING]

    again = dlkit_cli(*command)
    assert again.returncode == 0, again.stderr[-3000:]
    study = study_of(outputs)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert study.trials[1].params == study.trials[0].params
    statuses = sorted(r.info.status for r in all_runs(store()) if "mlflow.parentRunId" in r.data.tags)
    assert statuses == ["FINISHED"]  # the killed run resumed (from the start: no checkpoint was written) and finished


def test_under_ddp_rank_zero_prunes_and_the_other_process_stops_with_it(outputs, store):
    """Only rank 0 holds the trial; the process beside it takes its decision at the same epoch (or the next epoch's
    collectives would wait for a process that has stopped: a hang, cut by the timeout)."""
    command = search_command(
        outputs, LR, "trainer=ddp_cpu", "hydra.sweeper.n_trials=3", "hydra.sweeper.startup_trials=1"
    )
    done = dlkit_cli(*command, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    trials = study_of(outputs).trials
    assert TrialState.PRUNED in [t.state for t in trials], [t.state for t in trials]
    for trial in trials:
        (run,) = [r for r in all_runs(store()) if r.data.tags.get("dlkit.trial.number") == str(trial.number)]
        assert run.data.params["trainer.strategy"] == "ddp" and run.info.status == "FINISHED"
        epochs = len(store().get_metric_history(run.info.run_id, "val/loss"))
        assert epochs == (max(trial.intermediate_values) + 1 if trial.state == TrialState.PRUNED else 6)


def test_a_journal_file_holds_a_study_that_a_second_worker_joins(tmp_path):
    """journal:PATH (Optuna's journal file, locked for a shared file system): the sweeper's study and a worker's
    handle on it are one study, its space read back from it."""
    space = config.search_space(["optimizer.lr=interval(0.001,0.1)", "seed=1"])
    chosen = ["hydra/sweeper=optuna", f"hydra.sweeper.storage=journal:{tmp_path}/study.log", "hydra.sweeper.seed=0"]
    settings = search.Settings.read(config.sweeper_config(chosen))
    url = search.storage_url(settings.storage, str(tmp_path))
    created = search.create(settings, space, "journal-study", url)
    created.tell(created.ask({"optimizer.lr": space.dimensions[0].distribution}), 0.5)
    joined = dataclasses.replace(settings, study_name="journal-study", storage=url)
    study, read = search.join(joined, worker=1, max_epochs=3, read_space=config.search_space)
    assert read.fixed == ("seed=1",) and [d.name for d in read.dimensions] == ["optimizer.lr"]
    assert [t.value for t in study.trials] == [0.5] and search.progress(study).done == 1
    assert (tmp_path / "study.log").stat().st_size > 0


def _trivial_worker(settings: search.Settings, worker: int) -> int:
    study, space = search.join(settings, worker, max_epochs=1, read_space=config.search_space)
    return search.work(study, settings, space, "val/loss", lambda overrides, callbacks, prefix: 0.5, worker)


def race(folder, *where: str, workers: int = 4, n_trials: int = 12) -> list:
    """The trials of a study that `workers` processes ran at once, each trial taking no time at all."""
    import multiprocessing

    space = config.search_space(["optimizer.lr=interval(0.001,0.1)"])
    chosen = ["hydra/sweeper=optuna", f"hydra.sweeper.n_trials={n_trials}", *where]
    settings = search.Settings.read(config.sweeper_config(chosen))
    url = search.storage_url(settings.storage, str(folder))
    search.create(settings, space, "race", url)
    settings = dataclasses.replace(settings, study_name="race", storage=url)
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        ran = pool.starmap(_trivial_worker, [(settings, worker) for worker in range(workers)])
    trials = optuna.load_study(study_name="race", storage=search.open_storage(url)).trials
    assert sum(ran) == len(trials)
    return trials


def test_workers_racing_for_the_last_trials_run_exactly_n_trials(tmp_path):
    """Four workers race to ask for the last trials: the claim held from counting to asking keeps the study at
    exactly n_trials (without it, two workers both take the last one). The lock file is the same beside a journal
    file; PostgreSQL's advisory lock: test_postgres.py."""
    trials = race(tmp_path)
    assert len(trials) == 12 and {t.state for t in trials} == {TrialState.COMPLETE}


def test_a_trial_that_repeats_a_finished_ones_values_takes_its_outcome_without_running(tmp_path):
    """A choice space makes a sampler repeat values: a repeat of a pruned trial is pruned (not told its last epoch's
    value as complete), a repeat of a complete one has its value; neither trains again."""
    space = config.search_space(["activation=relu,tanh"])
    chosen = ["hydra/sweeper=optuna", "hydra.sweeper.n_trials=6", "hydra.sweeper.seed=0", "hydra.sweeper.pruner=none"]
    settings = search.Settings.read(config.sweeper_config(chosen))
    url = search.storage_url(settings.storage, str(tmp_path))
    study = search.create(settings, space, "twins", url)
    distributions = {"activation": space.dimensions[0].distribution}
    for value, state, objective in (("relu", TrialState.PRUNED, None), ("tanh", TrialState.COMPLETE, 0.25)):
        made = optuna.trial.create_trial(
            params={"activation": value}, distributions=distributions, state=state, value=objective
        )
        study.add_trial(made)
    ran = []

    def run_trial(overrides, callbacks, prefix):
        ran.append(overrides)
        return 0.5

    settings = dataclasses.replace(settings, study_name="twins", storage=url)
    study, _ = search.join(settings, worker=0, max_epochs=1, read_space=config.search_space)
    search.work(study, settings, space, "val/loss", run_trial)
    outcome = {t.params["activation"]: (t.state, t.value) for t in study.trials[:2]}
    for t in study.trials[2:]:
        assert (t.state, t.value) == outcome[t.params["activation"]]
    assert ran == []  # both values had finished trials: nothing trained again
    assert {t.state for t in study.trials[2:]} == {TrialState.PRUNED, TrialState.COMPLETE}


def test_the_median_pruner_reads_the_studys_trials_once_a_second_and_decides_as_optunas(monkeypatch):
    """Each epoch the median pruner reads every trial of the study (about 3 ms through SQLAlchemy); dlkit's reads them
    for each new trial and then at most once a second, and decides as Optuna's MedianPruner on the same trials."""
    settings = search.Settings.read(config.sweeper_config(["hydra/sweeper=optuna", "hydra.sweeper.startup_trials=2"]))
    ours, optunas = search.pruner(settings, max_epochs=5), optuna.pruners.MedianPruner(n_startup_trials=2)
    study = optuna.create_study(pruner=ours)
    for curve in ([1.0, 0.8, 0.6], [1.0, 0.9, 0.7]):  # two completed trials: medians 1.0, 0.85, 0.65
        study.add_trial(optuna.trial.create_trial(value=curve[-1], intermediate_values=dict(enumerate(curve))))
    reads = []
    monkeypatch.setattr(search.RecentTrials, "EVERY_S", 60.0)
    real_get_trials = study.get_trials
    monkeypatch.setattr(study, "get_trials", lambda **kw: reads.append(1) or real_get_trials(**kw))
    trial = study.ask()
    decisions = []
    for step, value in enumerate([0.9, 0.95, 0.6]):  # under, above, under the median: kept, pruned, kept
        trial.report(value, step)
        decisions.append(bool(trial.should_prune()))
        assert decisions[-1] == optunas.prune(study, study._storage.get_trial(trial._trial_id))
    ours_read = len(reads) - 3  # Optuna's own pruner read the trials each time
    assert decisions == [False, True, False] and ours_read == 1  # one read for the trial's three epochs
    study.tell(trial, 0.6)
    following = study.ask()
    following.report(0.62, 2)  # under 0.6 and 0.7's median (0.65), above 0.6, 0.7 and 0.6's (0.6): the third counts
    assert following.should_prune() and len(reads) == 5  # a new trial reads the study again

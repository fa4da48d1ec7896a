"""A hyperparameter search (hydra/sweeper=optuna): one stored Optuna study, asked for trials by one or more workers.

The search space is written in Hydra's override grammar, as users of Hydra's optuna plugin write it:
`'optimizer.lr=tag(log,interval(0.0001,0.1))'`, `'model.hidden=choice([64],[128],[256,128])'`, `activation=relu,tanh`,
`'model.blocks=range(1,5)'`. The sweeper (hydra_plugins/dlkit_sweeper/optuna_sweeper.py) creates the study in a
storage beside the MLflow store and launches its workers through Hydra's launcher: one in this process (the basic
launcher), one per core (hydra/launcher=parallel) or one per SLURM job. Each worker asks the study for trials until
`n_trials` are done (finished, pruned or failed), so a worker never waits for another; each trial is one dlkit run,
a child of the sweep's MLflow parent, whose objective is reported to the study every epoch and may be pruned there.

A trial cut short by Ctrl-C or SIGTERM is failed and queued again with its parameters (the relaunched command resumes
its MLflow run from its checkpoint, as a sweep's job); one whose worker was killed outright is failed by the study's
heartbeat (RDB storages: sqlite, PostgreSQL) and queued again the same way.
"""

from __future__ import annotations

import copy
import logging
import math
import time
import warnings
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlkit.errors import ConfigError, did_you_mean
from dlkit.overrides import key as override_key
from dlkit.schema import NonNegativeInt, PositiveFloat, PositiveInt, check_value
from dlkit.tracking import tags as tag

log = logging.getLogger("dlkit")

SAMPLERS = ("tpe", "random", "grid", "cmaes")
PRUNERS = ("median", "successive_halving", "hyperband", "none")
DIRECTIONS = ("minimize", "maximize")
TRIAL_FILES = ("best", "complete", "all")  # which trials' runs keep their figures, best.pt and logged model
HEARTBEAT_S = 2  # a worker's trial tells the storage it is alive this often (RDB storages)
GRACE_S = 8  # a RUNNING trial silent this long belongs to a worker that was killed: failed and queued again
MAX_RETRY = 3
SPACE_ATTR = "dlkit.space"  # the study's user attribute: the overrides that define the search space
WORKER_ATTR = "dlkit.worker"  # a trial's user attribute: the number of the worker that ran it


@dataclass(frozen=True)
class Dimension:
    """One searched key: its Optuna distribution; a categorical's choices are the override texts of its values."""

    name: str  # the key, as dlkit names it: optimizer.lr
    prefix_key: str  # the key as written, with any +, ++ or @package: what the trial's override starts with
    distribution: Any  # optuna.distributions.BaseDistribution

    def override(self, value: Any) -> str:
        return f"{self.prefix_key}={value}"

    def corners(self) -> list[str]:
        """The values a typo or an impossible value would show in: every choice, the ends of a range."""
        d = self.distribution
        if hasattr(d, "choices"):
            return [str(c) for c in d.choices]
        return [str(d.low), str(d.high)] if d.low != d.high else [str(d.low)]

    def grid(self) -> list[Any]:
        d = self.distribution
        if hasattr(d, "choices"):
            return list(d.choices)
        if getattr(d, "step", None) is None:
            raise ConfigError(
                f"hydra.sweeper.sampler=grid needs a finite set of values for {self.name}: write choice(...) or"
                f" range(start,stop,step), not an interval."
            )
        count = int(round((d.high - d.low) / d.step)) + 1
        return [d.low + i * d.step for i in range(count)]

    def suggest(self, trial: Any) -> Any:
        from optuna.distributions import IntDistribution

        d = self.distribution
        if hasattr(d, "choices"):
            return trial.suggest_categorical(self.name, d.choices)
        if isinstance(d, IntDistribution):
            return trial.suggest_int(self.name, d.low, d.high, step=d.step, log=d.log)
        return trial.suggest_float(self.name, d.low, d.high, step=d.step, log=d.log)


@dataclass(frozen=True)
class Space:
    fixed: tuple[str, ...]  # the overrides every trial has
    dimensions: tuple[Dimension, ...]
    written: tuple[str, ...] = ()  # the overrides it was read from

    def check_jobs(self) -> list[list[str]]:
        """The jobs that plan every value a trial can be given at its edges: each choice and each end of an
        interval once, the other keys at their first value. Planned before the first trial, they fail a typo at once."""
        first = [d.override(d.corners()[0]) for d in self.dimensions]
        jobs = [[*self.fixed, *first]]
        for i, dimension in enumerate(self.dimensions):
            for value in dimension.corners()[1:]:
                jobs.append([*self.fixed, *first[:i], dimension.override(value), *first[i + 1 :]])
        return jobs

    def trials(self, settings: Settings) -> int:
        """How many trials the search runs in all: n_trials, or a grid's every point when it has fewer."""
        if settings.sampler != "grid":
            return settings.n_trials
        return min(settings.n_trials, math.prod(len(d.grid()) for d in self.dimensions))

    def trial_overrides(self, trial: Any) -> list[str]:
        return [*self.fixed, *(d.override(d.suggest(trial)) for d in self.dimensions)]


def written(overrides: Sequence[str], params: Mapping[str, Any] | None = None) -> list[str]:
    """The overrides that define a search: the command line's, and the sweeper's `params` (Hydra's optuna plugin's
    form) for keys the command line does not give."""
    given = {override_key(o) for o in overrides}
    return [*overrides, *(f"{k}={v}" for k, v in (params or {}).items() if override_key(str(k)) not in given)]


def space(overrides: Sequence[str], parsed: Sequence[Any]) -> Space:
    """The search space of the overrides (parsed: Hydra's parse of them, config.parse): the swept ones are searched,
    the others fixed. config.search_space reads and parses them."""
    fixed, dimensions = [], []
    for text, override in zip(overrides, parsed):
        if not override.is_sweep_override():
            fixed.append(text)
            continue
        name = override_key(override.get_key_element())
        dimensions.append(Dimension(name, override.get_key_element(), _distribution(name, override)))
    return Space(tuple(fixed), tuple(dimensions), tuple(overrides))


def _distribution(name: str, parsed: Any) -> Any:
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    value = parsed.value()
    tags = set(getattr(value, "tags", ()) or ())
    unknown_tags = tags - {"log", "int"}
    if unknown_tags:
        raise ConfigError(
            f"{name}: unknown tag {', '.join(sorted(unknown_tags))}; a search knows tag(log, ...) and tag(int, ...)."
        )
    if isinstance(value, ChoiceSweep):
        return CategoricalDistribution(list(parsed.sweep_string_iterator()))
    if isinstance(value, RangeSweep):
        values = [float(v) for v in parsed.sweep_string_iterator()]
        if not values:
            raise ConfigError(f"{parsed.input_line}: the range is empty; range(start,stop,step) stops before stop.")
        whole = all(isinstance(v, int) for v in (value.start, value.stop, value.step or 1))
        if whole:
            return IntDistribution(int(values[0]), int(values[-1]), step=int(value.step or 1))
        return FloatDistribution(values[0], values[-1], step=value.step)
    if isinstance(value, IntervalSweep):
        low, high = value.start, value.end
        if not low < high:
            raise ConfigError(
                f"{parsed.input_line}: an interval's start must be below its end: interval({min(low, high)},"
                f"{max(low, high)})."
            )
        if "log" in tags and low <= 0:
            raise ConfigError(f"{parsed.input_line}: a log interval must start above 0 (a log scale has no 0).")
        if "int" in tags:
            return IntDistribution(math.ceil(low), math.floor(high), log="log" in tags)
        return FloatDistribution(low, high, log="log" in tags)
    raise ConfigError(f"{parsed.input_line}: a search takes choice(...), a,b,c, range(...) or interval(...).")


@dataclass(frozen=True)
class Settings:
    """hydra.sweeper's options, checked."""

    direction: str
    n_trials: int
    timeout: float | None
    seed: int | None
    sampler: str
    pruner: str
    warmup_epochs: int
    startup_trials: int
    storage: str | None
    study_name: str | None
    n_workers: int | None
    trial_files: str

    @classmethod
    def read(cls, sweeper: Mapping[str, Any]) -> Settings:
        def one_of(key: str, allowed: Sequence[str]) -> str:
            value = str(sweeper.get(key)).lower()
            if value not in allowed:
                raise ConfigError(
                    f"hydra.sweeper.{key}={sweeper.get(key)} is unknown;{did_you_mean(value, allowed)}"
                    f" available: {', '.join(allowed)}."
                )
            return value

        def checked(key: str, annotation: Any) -> Any:
            check_value(f"hydra.sweeper.{key}", sweeper.get(key), annotation)
            return sweeper.get(key)

        return cls(
            direction=one_of("direction", DIRECTIONS),
            n_trials=checked("n_trials", PositiveInt),
            timeout=checked("timeout", PositiveFloat | None),
            seed=checked("seed", NonNegativeInt | None),
            sampler=one_of("sampler", SAMPLERS),
            pruner=one_of("pruner", PRUNERS),
            warmup_epochs=checked("warmup_epochs", NonNegativeInt),
            startup_trials=checked("startup_trials", NonNegativeInt),
            storage=sweeper.get("storage"),
            study_name=sweeper.get("study_name"),
            n_workers=checked("n_workers", PositiveInt | None),
            trial_files=one_of("trial_files", TRIAL_FILES),
        )


def storage_url(setting: str | None, output_dir: str) -> str:
    """Where the study lives: `setting` (an RDB URL, or journal:PATH for Optuna's journal file), by default a sqlite
    file beside the MLflow store."""
    if setting:
        return str(setting)
    return f"sqlite:///{(Path(output_dir) / 'optuna.db').resolve()}"


def open_storage(url: str) -> Any:
    """The Optuna storage at `url`. RDB storages keep a heartbeat: a killed worker's trial is failed and queued again.
    journal:PATH is Optuna's journal file, locked for a shared file system (a cluster's NFS) but without heartbeats."""
    import optuna
    from optuna.exceptions import ExperimentalWarning
    from optuna.storages import RDBStorage

    warnings.simplefilter("ignore", ExperimentalWarning)  # the heartbeat and its retry: in Optuna since 2.8
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

        path = str(Path(url[len("journal:") :]).expanduser().resolve())
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    engine = (
        {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    )  # workers wait for each other's writes
    storage = RDBStorage(
        url,
        engine_kwargs=engine,
        heartbeat_interval=HEARTBEAT_S,
        grace_period=GRACE_S,
        heartbeat_stale_trial_callback=_retry(),
    )
    if url.startswith("sqlite"):
        _write_ahead(storage.engine)
    return storage


def _write_ahead(engine: Any) -> None:
    """SQLite's write-ahead log, synced at checkpoints: a trial's report of each epoch costs a millisecond instead of
    a synced commit of about 20 (a study's 40 trials of 30 epochs: 25 s less), and workers read while one writes.
    A machine that loses power may lose the last reports; a crashed process loses nothing. (Not for a file on NFS:
    journal:PATH is the study's file for a cluster's shared disk.)"""
    from sqlalchemy import event

    def pragmas(connection: Any, _: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    event.listen(engine, "connect", pragmas)
    engine.dispose()  # the connections Optuna opened to set the study's tables up: opened again with the pragmas


def _retry() -> Any:
    """What queues a failed trial again, with its parameters: a killed worker's (by the heartbeat) or an interrupted
    one's (by the worker itself). A trial is tried at most MAX_RETRY more times."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    return RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)


def sampler(settings: Settings, space: Space, worker: int = 0) -> Any:
    """The sampler; each parallel worker seeds its own (seed + worker), or they would suggest the same points."""
    import optuna

    seed = None if settings.seed is None else settings.seed + worker
    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if settings.sampler == "grid":
        return optuna.samplers.GridSampler({d.name: d.grid() for d in space.dimensions}, seed=seed)
    if settings.sampler == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    # constant_liar: a trial still running counts as a poor result, so parallel workers spread their suggestions.
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True)


def pruner(settings: Settings, max_epochs: int) -> Any:
    import optuna

    warmup = settings.warmup_epochs
    if settings.pruner == "median":
        median = optuna.pruners.MedianPruner(n_startup_trials=settings.startup_trials, n_warmup_steps=warmup)

        class EachSecond(optuna.pruners.BasePruner):  # the median pruner on the study's trials read once a second
            view: RecentTrials | None = None

            def prune(self, study: Any, trial: Any) -> bool:
                if self.view is None or self.view.stale(trial.number):
                    self.view = RecentTrials(study, trial.number)
                return median.prune(self.view, trial)

        return EachSecond()
    if settings.pruner == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, warmup))
    if settings.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, warmup), max_resource=max_epochs)
    return optuna.pruners.NopPruner()


class RecentTrials:
    """A study as the median pruner reads it each epoch: its trials read from the storage again for each trial, and
    while a trial trains at most once a second. A read costs about 3 ms (SQLAlchemy), a twentieth of a small model's
    epoch; the pruner may miss, for that second, a trial another worker has just completed."""

    EVERY_S = 1.0

    def __init__(self, study: Any, trial_number: int):
        self._study, self._number = study, trial_number
        self._read_at, self._trials = time.monotonic(), study.get_trials(deepcopy=False)

    def stale(self, trial_number: int) -> bool:
        return trial_number != self._number or time.monotonic() - self._read_at >= self.EVERY_S

    def get_trials(self, deepcopy: bool = True, states: Sequence[Any] | None = None) -> list:
        trials = [t for t in self._trials if states is None or t.state in states]
        return copy.deepcopy(trials) if deepcopy else trials

    def __getattr__(self, name: str) -> Any:  # direction, and anything else a pruner reads: the study's own
        return getattr(self._study, name)


def check(settings: Settings, space: Space) -> None:
    """What can be known wrong before a study exists."""
    if not space.dimensions:
        raise ConfigError(
            "hydra/sweeper=optuna has nothing to search: give a key a range of values, e.g."
            " 'optimizer.lr=tag(log,interval(0.0001,0.1))' or activation=relu,tanh."
        )
    if settings.sampler == "grid":
        for dimension in space.dimensions:
            dimension.grid()
    if settings.sampler == "cmaes" and all(hasattr(d.distribution, "choices") for d in space.dimensions):
        raise ConfigError("hydra.sweeper.sampler=cmaes searches numbers: every key here is a choice (use tpe).")


def create(settings: Settings, space: Space, name: str, url: str) -> Any:
    """The study, created in its storage (or found there: the same command launched again continues it). It holds
    its search space, so that a worker needs only its name and storage."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # dlkit prints a line per trial itself
    study = optuna.create_study(
        storage=open_storage(url), study_name=name, direction=settings.direction, load_if_exists=True
    )
    if study.direction.name.lower() != settings.direction:
        raise ConfigError(
            f"study '{name}' in {url} was created to {study.direction.name.lower()}: give it another"
            f" hydra.sweeper.study_name to {settings.direction}."
        )
    study.set_user_attr(SPACE_ATTR, list(space.written))
    return study


def join(
    settings: Settings, worker: int, max_epochs: int, read_space: Callable[[list[str]], Space]
) -> tuple[Any, Space]:
    """A worker's handle on the study the sweeper created (its name and storage are in settings), with the worker's
    own sampler, and the search space (read_space: config.search_space, which reads it from the overrides the study
    holds)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = open_storage(str(settings.storage))
    searched = read_space(optuna.load_study(study_name=settings.study_name, storage=storage).user_attrs[SPACE_ATTR])
    study = optuna.load_study(
        study_name=settings.study_name,
        storage=storage,
        sampler=sampler(settings, searched, worker),
        pruner=pruner(settings, max_epochs),
    )
    return study, searched


def print_best(study: Any) -> None:
    done = progress(study)
    try:
        best = study.best_trial
    except ValueError:  # no trial completed
        return print(f"Study '{study.study_name}': {done.done} trials done, none completed.")
    values = " ".join(f"{k}={v}" for k, v in best.params.items())
    print(f"Best of {done.done} trials: #{best.number}, {best.value:.6g} with {values}")


@dataclass(frozen=True)
class Progress:
    counted: int  # trials that count toward n_trials: each retried trial once
    waiting: int  # queued again, to be run
    running: int
    done: int  # finished, pruned or failed for good


def progress(study: Any) -> Progress:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    retried = {number for t in trials for number in t.system_attrs.get("retry_history", ())}
    counted = [t for t in trials if t.number not in retried]
    states = [t.state for t in counted]
    return Progress(
        counted=len(counted),
        waiting=states.count(TrialState.WAITING),
        running=states.count(TrialState.RUNNING),
        done=sum(s.is_finished() for s in states),
    )


def pruning(trial: Any, objective: str, trial_files: str = "best") -> Any:
    """A Lightning callback that reports each epoch's objective to the trial and stops training where the pruner says
    so; it also says which trials' runs keep their files (trial_files, see files_skipped). Made here, not at import:
    this module is imported before Lightning where a search is only checked."""
    from pytorch_lightning import Callback

    class _Pruning(Callback):
        def __init__(self):
            self.pruned_epoch: int | None = None
            self.stop_reason = ""  # read by train(): why the run stopped early, once pruned

        def files_skipped(self, outcome: Mapping[str, float]) -> str:
            """Read by train() once the trial has trained: why its run writes no figures, best.pt or model ('': it
            writes them). By default only a trial that is the study's best when it ends writes them, which the
            study's final best always was; the others' would cost the recorder about 0.6 s of CPU each, unread."""
            if self.pruned_epoch is not None and trial_files != "all":
                return "a pruned trial (hydra.sweeper.trial_files=all logs its files)"
            if trial_files == "best" and not _best_so_far(trial.study, outcome.get(objective, math.nan)):
                return "not the study's best when it ended (hydra.sweeper.trial_files=complete logs its files)"
            return ""

        def on_fit_start(self, trainer, pl_module) -> None:
            trainer.logger.experiment.set_tags({tag.TRIAL_NUMBER: str(trial.number), tag.TRIAL_STATE: "RUNNING"})

        def on_fit_end(self, trainer, pl_module) -> None:
            if self.pruned_epoch is None:
                trainer.logger.experiment.set_tags({tag.TRIAL_STATE: "COMPLETE"})

        def on_exception(self, trainer, pl_module, exception) -> None:
            trainer.logger.experiment.set_tags({tag.TRIAL_STATE: "FAIL"})

        def on_validation_end(self, trainer, pl_module) -> None:
            value = pl_module.metrics.get(objective)
            if value is None or trainer.sanity_checking or not math.isfinite(float(value)):
                return
            trial.report(float(value), trainer.current_epoch)
            if trial.should_prune() and trainer.current_epoch + 1 < trainer.max_epochs:
                self.pruned_epoch = trainer.current_epoch
                self.stop_reason = f"pruned: the search's pruner stopped it ({objective} {float(value):.6g})"
                trainer.should_stop = True
                trainer.logger.experiment.set_tags(
                    {tag.TRIAL_STATE: "PRUNED", tag.PRUNED_EPOCH: str(trainer.current_epoch)}
                )

    return _Pruning()


def _best_so_far(study: Any, value: float) -> bool:
    """Whether a trial's objective is at least as good as every completed trial's now (before it is told)."""
    if not math.isfinite(value):
        return False
    try:
        best = study.best_value
    except ValueError:  # no trial completed yet
        return True
    return value <= best if study.direction.name == "MINIMIZE" else value >= best


def _twin(study: Any, trial: Any) -> Any:
    """The earliest finished trial (complete or pruned) with this trial's values, if any: running the same job again
    would only find its run and report its last metrics, a pruned one's as if it had completed."""
    from optuna.trial import TrialState

    finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    return next((t for t in finished if t.number != trial.number and t.params == trial.params), None)


class Claim:
    """Held by a worker from counting the study's trials to asking for one, so that two workers never both take the
    last of n_trials (Optuna's own MaxTrialsCallback may overshoot): a lock file beside a sqlite or journal file (the
    journal's own kind of lock, safe on NFS), a PostgreSQL advisory lock on a server. Released at most once a turn."""

    def __init__(self, url: str, study_name: str):
        self._held, self._file, self._engine, self._connection = False, None, None, None
        if url.startswith(("sqlite:///", "journal:")):
            from optuna.storages.journal import JournalFileOpenLock

            path = Path(url.split(":///" if url.startswith("sqlite") else ":", 1)[1]).expanduser().resolve()
            self._file = JournalFileOpenLock(f"{path}.claim")
        elif url.startswith("postgresql"):
            import sqlalchemy

            self._engine, self._key = sqlalchemy.create_engine(url), zlib.crc32(study_name.encode())

    def __enter__(self) -> Claim:
        if self._file is not None:
            self._file.acquire()
        elif self._engine is not None:
            self._connection = self._engine.connect()
            self._advisory("pg_advisory_lock")
        self._held = True
        return self

    def release(self, *_) -> None:
        if not self._held:
            return
        self._held = False
        if self._file is not None:
            self._file.release()
        elif self._connection is not None:
            self._advisory("pg_advisory_unlock")
            self._connection.close()

    __exit__ = release

    def _advisory(self, function: str) -> None:
        import sqlalchemy

        self._connection.execute(sqlalchemy.text(f"SELECT {function}(:key)"), {"key": self._key})


def work(
    study: Any,
    settings: Settings,
    space: Space,
    objective_name: str,
    run_trial: Callable[[list[str], list, str], float],
    worker: int = 0,
) -> int:
    """One worker: ask the study for trials and run them until n_trials are done in all (or the timeout).
    run_trial(overrides, callbacks, prefix) trains one and returns its objective (nan: it failed).
    Returns how many trials this worker ran."""
    import optuna
    from optuna.trial import TrialState

    heartbeat = not str(settings.storage).startswith("journal:")  # RDB storages keep one (open_storage)
    started, ran = time.monotonic(), 0
    claim = Claim(str(settings.storage), study.study_name)

    def objective(trial: optuna.Trial) -> float:
        claim.release()  # the trial is asked: another worker may count it now
        trial.set_user_attr(WORKER_ATTR, worker)
        overrides = space.trial_overrides(trial)
        prefix = f"[trial #{trial.number}] "  # Optuna's number, as the run's tag, the report and optuna-dashboard
        twin = _twin(study, trial)
        if twin is not None:  # the sampler repeated a finished trial (a choice space): its outcome, not a rerun
            log.info("%sthe values of trial #%d: %s again", prefix, twin.number, twin.state.name.lower())
            if twin.state == TrialState.PRUNED:
                raise optuna.TrialPruned(f"as trial #{twin.number}")
            return twin.value
        callback = pruning(trial, objective_name, settings.trial_files)
        try:
            value = run_trial(overrides, [callback], prefix)
        except SystemExit:  # Ctrl-C or SIGTERM: the trial is run again (its MLflow run resumed) when relaunched
            study.tell(trial, state=TrialState.FAIL)
            _retry()(study, study.get_trials(deepcopy=False)[trial.number])
            raise
        if callback.pruned_epoch is not None:
            log.info("%spruned at epoch %d", prefix, callback.pruned_epoch + 1)
            raise optuna.TrialPruned(f"at epoch {callback.pruned_epoch + 1}")
        return value

    while settings.timeout is None or time.monotonic() - started < settings.timeout:
        with claim:
            now = progress(study)
            if now.waiting or now.counted < space.trials(settings):
                study.optimize(objective, n_trials=1)  # asks the trial under the claim; objective releases it
                ran += 1
                continue
        if now.running and heartbeat:  # another worker's, or a killed one's: failed once silent, then run again
            time.sleep(HEARTBEAT_S)
            optuna.storages.fail_stale_trials(study)
        else:
            break
    return ran

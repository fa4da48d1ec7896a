"""The MLflow store: a client for its URI, the experiment (created once, with its artifacts under outputs/),
and `StoreRun`, a run written directly through the client."""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dlkit.errors import ConfigError
from dlkit.folders import write_refused, written_whole
from dlkit.tracking import tags as tag
from dlkit.tracking.delivery import BATCHED, ENDS, HERE, SENT, WAITS, delivered

MAX_PARAM_CHARS = 6000  # MLflow's limit on a param value
BATCH = 100  # MLflow's limit on params per log_batch call
MAX_METRICS = 1000  # and on metrics
SYSTEM_EVERY_S = 2  # tracking.system_metrics: seconds between samples


# MLflow retries a failed HTTP request for minutes by default (7 retries, doubling waits, 120 s timeouts): a server
# that is down would hang a run. dlkit's defaults fail within seconds; the user's own settings win.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}
REACH_TIMEOUT_S = 5.0


def use_http_defaults() -> None:
    """Set dlkit's HTTP retry defaults for this process and those it starts (the recorder), unless set already."""
    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)


def check_reachable(uri: str) -> None:
    """The store at uri can be used, or a ConfigError says what to check, within seconds and changing nothing: a
    sqlite file is an SQLite database (or not there yet), a tracking server answers its health check, a database
    server takes a TCP connection (SQLAlchemy would retry for minutes). Other URIs (files) are not checked."""
    path = sqlite_path(uri)
    if path is not None:
        _check_sqlite_file(path)
    elif uri.startswith(("http://", "https://")):
        _check_server(uri)
    elif uri.split("+")[0].split(":")[0] in DATABASE_PORTS:
        _check_database(uri)


def lost(uri: str, failure: Exception, run_ids: Sequence[str]) -> str | None:
    """Why nothing more can be written to the store at uri after a write failed with `failure`, as one line that
    names the runs left RUNNING there and how to go on; None when the store can still be written (the write itself
    was refused). A tracking server that stopped answering; a full disk; a sqlite store whose folder can no longer
    be written (SQLite writes its journal there); a sqlite file that is no SQLite database any more."""
    path = sqlite_path(uri)
    if path is not None and path.is_file():
        with path.open("rb") as file:
            overwritten = file.read(len(SQLITE_HEADER)) != SQLITE_HEADER
        damaged = next((d for d in SQLITE_DAMAGED if d in str(failure)), None)
        if overwritten or damaged:
            what = "is no longer an SQLite database" if overwritten else f"is damaged ({damaged})"
            when = f" while run {', '.join(run_ids)} trained" if run_ids else ""
            return (
                f"the tracking store {path} {what}: something overwrote it{when} (dlkit leaves it as it is);"
                " restore it from a copy, or move it aside and start again"
            )
    go_on = (
        f"continue it with: dlkit resume {run_ids[0]} (a sweep: launch the same command again)"
        if run_ids
        else "launch the same command again"
    )
    left = f"run {', '.join(run_ids)} stays RUNNING there" if run_ids else "the sweep's runs stay as they are"
    try:
        check_reachable(uri)
    except ConfigError as exc:
        return f"{str(exc).rstrip('.')}; {left}; once the server is back, {go_on}"
    if "disk is full" in str(failure) or getattr(failure, "errno", None) == errno.ENOSPC:
        return f"the disk that holds the tracking store {path or uri} is full; {left}; once there is space, {go_on}"
    refused = write_refused(path.parent) if path is not None else None
    if refused is not None:
        reason = "the disk is full" if refused.errno == errno.ENOSPC else refused.strerror
        where = f"the tracking store's folder {path.parent}"
        return f"{where} can no longer be written ({reason}); {left}; once it can, {go_on}"
    return None


SQLITE_DAMAGED = ("database disk image is malformed", "file is not a database")  # SQLite's words, as MLflow relays
SQLITE_HEADER = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file
DATABASE_PORTS = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}  # MLflow's database stores, default ports


def _check_sqlite_file(path: Path) -> None:
    if not path.is_file() or path.stat().st_size == 0:  # none yet (one is made), or SQLite's own empty database
        return
    with path.open("rb") as file:
        if file.read(len(SQLITE_HEADER)) == SQLITE_HEADER:
            return
    raise ConfigError(
        f"the tracking store {path} is not an SQLite database (it is left as it is): move it aside to start a new"
        " store there, or point paths.output_dir (or tracking.uri) at another folder."
    )


def _check_server(uri: str) -> None:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=REACH_TIMEOUT_S):
            return
    except urllib.error.HTTPError:
        return  # it answered: a server is there (a proxy may guard /health)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ConfigError(
            f"the MLflow tracking server at {uri} cannot be reached ({reason}): start it (mlflow server --port ...),"
            " or point tracking.uri at a running one; tracking=sqlite records to a local file instead."
        ) from None


def _check_database(uri: str) -> None:
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    scheme = parts.scheme.split("+")[0]
    try:
        where = (parts.hostname or "localhost", parts.port or DATABASE_PORTS[scheme])
        socket.create_connection(where, timeout=REACH_TIMEOUT_S).close()
    except (OSError, ValueError) as exc:  # the password stays out of the message
        raise ConfigError(
            f"the {scheme} tracking database at {parts.hostname}:{parts.port or DATABASE_PORTS[scheme]} cannot be"
            f" reached ({exc}): start it, or point tracking.uri at a running one; tracking=sqlite records to a local"
            " file instead."
        ) from None


EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}
VIEW = "?workflowType=machine_learning"  # MLflow 3's model-training view (Runs, Models), not its GenAI one


def ui_link(base: str, experiment_id: str, run_id: str | None = None) -> str:
    """The MLflow UI's page of an experiment's runs, or of one run, in the model-training view."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs" + (f"/{run_id}" if run_id else "") + VIEW


@functools.lru_cache(maxsize=8)  # one client (one connection pool) per store, however many runs
def client(uri: str):
    check_reachable(uri)
    put_in_place(uri)
    return _client(uri)


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    # After the import: mlflow sets its own loggers up when imported. Store migrations are not news.
    for noisy in ("mlflow", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return MlflowClient(tracking_uri=uri)


# A new sqlite store runs MLflow's migrations (1-1.6 s here). The recorder makes one in a temporary folder as soon as
# the command is composed, while the training process imports torch, and a copy goes to the store's path once every
# job is planned: a command that fails its checks leaves no store behind.
_made: dict[str, Path] = {}


def sqlite_path(uri: str) -> Path | None:
    """The file of a sqlite store's URI (sqlite:///relative or sqlite:////absolute); None for other stores."""
    if not uri.startswith("sqlite:///") or uri.startswith("sqlite:///:memory:"):
        return None
    return Path(uri.removeprefix("sqlite:///"))


def make_ready(uri: str) -> None:
    """An empty, migrated store for the sqlite store at uri when there is none yet, made aside (see put_in_place)."""
    path = sqlite_path(uri)
    if path is None or path.exists() or uri in _made:
        return
    made = Path(tempfile.mkdtemp(prefix="dlkit-store-")) / path.name
    try:
        if not _from_template(made):
            _client(f"sqlite:///{made.resolve()}").search_experiments(max_results=1)  # creates and migrates it
            _keep_as_template(made)
    except BaseException:
        shutil.rmtree(made.parent, ignore_errors=True)
        raise
    _made[uri] = made


def _template() -> Path | None:
    """A new store as this MLflow release migrates it, kept in the user's cache: MLflow's migrations of a new sqlite
    store cost 1-1.4 s of CPU, a copy milliseconds (every test of the suite makes a store of its own). None for a
    user without a home folder."""
    import mlflow

    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    if cache.startswith("~"):
        return None
    return Path(cache) / "dlkit" / f"mlflow-{mlflow.__version__}-empty.db"


def _from_template(made: Path) -> bool:
    """made: a copy of the template, its Default experiment's artifacts where MLflow puts them for this process
    (./mlruns/0, resolved here); False where there is no template yet."""
    import sqlite3

    default, template = os.path.join(os.path.abspath("mlruns"), "0"), _template()
    if template is None:
        return False
    try:
        shutil.copyfile(template, made)
        with contextlib.closing(sqlite3.connect(made)) as db, db:
            db.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0", (default,))
    except (OSError, sqlite3.Error):  # none yet, or unreadable: migrated as without one
        made.unlink(missing_ok=True)
        return False
    return True


def _keep_as_template(made: Path) -> None:
    """A copy of a newly migrated store as the template; none where the cache cannot be written (it is a saving)."""
    template = _template()
    if template is None:
        return
    with contextlib.suppress(OSError):
        template.parent.mkdir(parents=True, exist_ok=True)
        with written_whole(template) as partial:
            shutil.copyfile(made, partial)


def put_in_place(uri: str) -> None:
    """The store made ready for uri goes to its path, unless a store is there by now (another process's: kept)."""
    made = _made.pop(uri, None)
    if made is None:
        return
    path = sqlite_path(uri)
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
            try:
                shutil.copyfile(made, partial)
                try:
                    os.link(partial, path)  # never over a store made meanwhile
                except FileExistsError:
                    pass
                except OSError:  # a file system without hard links
                    if not path.exists():
                        os.replace(partial, path)
            finally:  # a copy cut short (a full disk) leaves nothing behind
                partial.unlink(missing_ok=True)
    finally:
        shutil.rmtree(made.parent, ignore_errors=True)


def discard_made() -> None:
    """The stores made ready and never put in place (the command failed its checks): removed."""
    while _made:
        shutil.rmtree(_made.popitem()[1].parent, ignore_errors=True)


def experiment_id(mlflow_client, name: str, artifact_root: str | Path | None) -> str:
    """The experiment's id, creating it (artifacts under artifact_root/<name>) if it does not exist."""
    from mlflow.exceptions import MlflowException

    found = mlflow_client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    if artifact_root is not None:
        location = (Path(artifact_root).resolve() / re.sub(r"[^\w.-]+", "_", name)).as_uri()
    try:
        # MLflow 3 opens an experiment in its GenAI view unless its kind says model training.
        return mlflow_client.create_experiment(name, artifact_location=location, tags=EXPERIMENT_TAGS)
    except MlflowException:  # another process created it between our look-up and our create
        found = mlflow_client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


# MLflow's SQL store looks a data set up, then inserts it: the jobs of a parallel sweep logging the same splits at once
# (on PostgreSQL, which unlike SQLite lets them write together) can both insert it, and one fails on its unique key.
# Once the other has committed, the same call finds the data set and succeeds.
RACE_RETRIES = 5
LOST_RACE = ("IntegrityError", "UniqueViolation", "duplicate key")


def _retry_lost_race(call) -> None:
    for attempt in range(RACE_RETRIES):
        try:
            return call()
        except Exception as failure:
            if attempt == RACE_RETRIES - 1 or not any(s in str(failure) for s in LOST_RACE):
                raise
            time.sleep(0.05 * 2**attempt)


class StoreRun:
    """A run written synchronously through MlflowClient: by the recorder process, or by the training
    process itself when tracking.recorder=false. Not the fluent API or Lightning's MLFlowLogger: no global
    active run to leak between jobs, no 250-character cut of param values, and the status is dlkit's to set.

    Each method declares how a call reaches the recorder process (dlkit/tracking/delivery.py): RecordedRun, the
    training process's side, is a generic proxy of this class."""

    records = True

    def __init__(
        self,
        uri: str,
        experiment: str,
        artifact_root: str | None,
        run_name: str,
        tags: Mapping[str, str],
        run_id: str | None = None,
        system_metrics: bool = False,
    ):
        """run_id: reopen that run (to resume it) instead of creating one; system_metrics: sample this machine's
        CPU, memory and GPU use into the run while it is open (MLflow's own monitor, a thread)."""
        self.uri = uri
        self.client = client(uri)
        if run_id is None:
            self.experiment_id = experiment_id(self.client, experiment, artifact_root)
            self.run_id = self.client.create_run(self.experiment_id, run_name=run_name, tags=dict(tags)).info.run_id
        else:
            self.experiment_id, self.run_id = self.client.get_run(run_id).info.experiment_id, run_id
            self.client.update_run(run_id, status="RUNNING")
        self.monitor = None
        if system_metrics:
            from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

            self.monitor = SystemMetricsMonitor(self.run_id, sampling_interval=SYSTEM_EVERY_S, tracking_uri=uri)
            self.monitor.start()

    @delivered(SENT)
    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:MAX_PARAM_CHARS]) for k, v in params.items()]
        for i in range(0, len(items), BATCH):
            self.client.log_batch(self.run_id, params=items[i : i + BATCH])

    @delivered(HERE)  # timestamped when called, gathered by write_metrics
    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        self.write_metrics([(k, float(v), now, step) for k, v in metrics.items()])

    @delivered(BATCHED)
    def write_metrics(self, points: Sequence[tuple[str, float, int, int]]) -> None:
        """points: (key, value, timestamp in ms, step)."""
        from mlflow.entities import Metric

        metrics = [Metric(*point) for point in points]
        for i in range(0, len(metrics), MAX_METRICS):
            self.client.log_batch(self.run_id, metrics=metrics[i : i + MAX_METRICS])

    @delivered(SENT)
    def set_tags(self, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    @delivered(SENT)
    def log_text(self, text: str, path: str) -> None:
        self.client.log_text(self.run_id, text, path)

    @delivered(SENT)
    def log_inputs(self, datasets: Sequence[Mapping[str, str]]) -> None:
        """Each split as an MLflow dataset input, with its context: the run page's and runs table's Datasets."""
        from mlflow.entities import Dataset, DatasetInput, InputTag

        datasets = [
            DatasetInput(
                Dataset(d["name"], d["digest"], "dlkit", d["source"], profile=json.dumps({"num_rows": int(d["rows"])})),
                tags=[InputTag("mlflow.data.context", d["context"])],
            )
            for d in datasets
        ]
        _retry_lost_race(lambda: self.client.log_inputs(self.run_id, datasets=datasets))

    @delivered(WAITS)  # the file may be temporary
    def log_artifact(self, path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    @delivered(SENT)  # the bytes travel: nothing to wait for
    def log_bytes(self, content: bytes, path: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            file = Path(tmp) / Path(path).name
            file.write_bytes(content)
            self.log_artifact(file, str(Path(path).parent) if Path(path).parent != Path(".") else None)

    @delivered(SENT)  # drawn in the recorder, while the training process goes on
    def log_figures(self, history: Mapping[str, list[tuple[int, float]]], confusion: list[list[int]] | None) -> None:
        from dlkit.tracking import figures

        with tempfile.TemporaryDirectory() as tmp:
            for path in figures.draw(dict(history), confusion, Path(tmp)):
                self.log_artifact(path)

    @delivered(SENT)  # pickled: written while the training process goes on
    def log_model(
        self, model: bytes, example: Any, step: int, metrics: Mapping[str, float], dataset: Mapping[str, str]
    ) -> None:
        from dlkit.tracking.logged_model import NotLoadable, log_model

        try:
            model_id = log_model(self.client, self.run_id, self.experiment_id, model, example, step, metrics, dataset)
        except NotLoadable as exc:
            self.set_tags({tag.MODEL_SKIPPED: str(exc)[:5000]})
            return
        self.set_tags({tag.MODEL_ID: model_id})

    @delivered(WAITS)
    def download(self, artifact: str, into: Path) -> Path | None:
        folder = str(Path(artifact).parent) if Path(artifact).parent != Path(".") else None
        if artifact not in [f.path for f in self.client.list_artifacts(self.run_id, folder)]:
            return None
        return Path(self.client.download_artifacts(self.run_id, artifact, str(into)))

    @delivered(ENDS)
    def finish(self, status: str) -> None:
        if self.monitor is not None:
            self.monitor.finish()
        self.client.set_terminated(self.run_id, status=status)

"""The recorder: a process beside the training process that does all of a run's MLflow writing.

Why a process: importing MLflow and opening its store costs about 1.5 s, and each sqlite write about
10 ms of Python holding the GIL. The recorder pays both on another core: `dlkit` starts it first thing,
so it imports MLflow while the training process imports torch and Lightning, and the training process
only ever puts a message on a pipe. It also outlives a training process that is killed outright
(SIGKILL, out of memory): its end of the pipe closes, and the recorder ends that process's open runs
KILLED, tagged with why, instead of leaving them RUNNING.

The training process's side is a generic proxy of the store's: RecordedRun of StoreRun, InRecorder of sweep_store's
operations, each call sent or waited for as the method declares (dlkit/tracking/delivery.py); what belongs to no run
(a sweep's parent, a flush, a hint) is a named operation of the recorder (Service.operations).
Calls that only write (params, tags, text, bytes, metrics, figures) are sent without waiting. Logging a file,
downloading one, and creating and ending a run wait for the answer, and raise what the store refused
for that run so far; a run with a refused write ends FAILED, never FINISHED. A sweep's job that runs in
the sweep's own process creates and ends its run without waiting (the recorder finishes one job's
records while the next trains), and the sweep flushes the recorder before it counts its jobs. Metrics
are written when the stream of messages pauses, or a second after they arrived: one write per burst.

    python -m dlkit.tracking.recorder FD    (started by Recorder; FD is its end of the pipe)
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import itertools
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from pathlib import Path
from types import MethodType
from typing import Any

from dlkit.errors import RecorderError, RecorderGone, StoreLost
from dlkit.tracking import store, sweep_store
from dlkit.tracking import tags as tag
from dlkit.tracking.delivery import ENDS, HERE, WAITS, delivery
from dlkit.tracking.store import StoreRun

WRITE_EVERY_S = 1.0  # how late a metric may reach the store (the MLflow UI) while a run trains
# A pause this long in the messages writes the metrics gathered so far. Shorter than an epoch of a small model (a
# search's MLP on MNIST-1D: 0.05-0.1 s), it would write every epoch: 300 writes of a 40-trial search, not 120.
PAUSE_S = 0.25
LOST_REASON = "the training process ended without closing its run (killed outright, e.g. SIGKILL or out of memory)"


EXIT_LOST = 75  # the recorder's exit code when the store can no longer be written (EX_TEMPFAIL)
LOST = "lost"  # its last message then: why, and what to do


class Recorder:
    """The training process's handle on its recorder process."""

    def __init__(self):
        ours, theirs = Pipe()
        package_root = str(Path(__file__).resolve().parents[2])  # the recorder imports this same dlkit
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dlkit.tracking.recorder", str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            env=env,
            start_new_session=True,
        )
        theirs.close()
        self.connection = ours
        self.pid = os.getpid()

    def alive(self) -> bool:
        return self.pid == os.getpid() and self.process.poll() is None  # a forked child needs its own recorder

    def send(self, op: str, args: tuple | dict) -> None:
        """args: a run's handle and the call's arguments, or a named operation's keyword arguments."""
        try:
            self.connection.send((op, args, False))
        except OSError:
            raise self._gone() from None

    def call(self, op: str, args: tuple | dict) -> Any:
        try:
            self.connection.send((op, args, True))
            ok, value = self.connection.recv()
        except (OSError, EOFError):
            raise self._gone() from None
        if ok == LOST:
            self.process.wait(timeout=5)
            raise StoreLost(value)
        if not ok:
            raise RecorderError(value)
        return value

    def _gone(self) -> RecorderError:
        code = self.process.wait(timeout=5)
        if code == EXIT_LOST:
            why = "the MLflow store can no longer be written"
            with contextlib.suppress(OSError, EOFError):
                while self.connection.poll():  # answers not read yet, then why the store was lost
                    message = self.connection.recv()
                    why = message[1] if message[0] == LOST else why
            return StoreLost(why)
        if code < 0:
            return RecorderGone(f"the MLflow recorder process was killed by {signal.Signals(-code).name}")
        return RecorderGone(f"the MLflow recorder process ended (exit code {code}); its message, if any, is above")

    def close(self) -> None:
        """No more runs from this process: the recorder writes what it still holds, ends any run left open KILLED
        (none, when every run was finished and a sweep flushed), and exits."""
        self.connection.close()


_recorder: Recorder | None = None


def start() -> Recorder:
    """This process's recorder, started if there is none (or it ended)."""
    global _recorder
    if _recorder is None or not _recorder.alive():
        _recorder = Recorder()
        atexit.register(_recorder.close)
    return _recorder


class RecordedRun:
    """A run as the training process sees it: StoreRun, proxied. Each call is a message to the recorder about this
    run's handle (a number this process gives it), sent or waited for as StoreRun's method declares; its MLflow run
    id is asked for when first needed."""

    _handles = itertools.count()

    records = True

    def __init__(
        self,
        settings: Mapping[str, Any],
        run_name: str,
        tags: Mapping[str, str],
        run_id: str | None = None,
        detached: bool = False,
    ):
        """settings: the tracking config's uri, experiment and artifact_root; run_id: reopen that run.
        detached: a sweep's job in the sweep's own process (which flushes the recorder before it counts its jobs; its
        store was written already): the run is created and ended without waiting, so the job never waits for the
        recorder to finish the job before it, and a write that failed ends it FAILED, tagged with why. Otherwise the
        run is created now: a store that cannot be written fails here, before any training."""
        self.recorder = start()
        self.handle = next(self._handles)
        self.uri = settings["uri"]
        self.detached = detached
        self._ids: tuple[str, str] | None = None
        self._settings, self._attempt = plain(settings), uuid.uuid4().hex
        tags = {**tags, tag.ATTEMPT: self._attempt}
        self._opening = (str(run_name), plain(tags), run_id)
        self.recorder.send("open", (self.handle, self._settings, *self._opening))
        if not detached:
            self._resolve()

    def _resolve(self) -> tuple[str, str]:
        if self._ids is None:
            self._ids = self.recorder.call("ids", (self.handle,))
        return self._ids

    @property
    def run_id(self) -> str:
        return self._resolve()[0]

    @property
    def experiment_id(self) -> str:
        return self._resolve()[1]

    def reopened(self) -> StoreRun:
        """This run written from this process, as tracking.recorder=false would: the recorder died with it open.
        Found by its id, or by this opening's tag when the recorder never said it; created here (with the same name
        and tags) when the recorder died before it created it."""
        run_id = self._ids[0] if self._ids else None
        settings = self._settings
        if run_id is None:
            writer = store.client(self.uri)
            experiment = writer.get_experiment_by_name(settings["experiment"])
            found = experiment and writer.search_runs(
                [experiment.experiment_id], f"tags.`{tag.ATTEMPT}` = '{self._attempt}'", max_results=1
            )
            run_id = found[0].info.run_id if found else None
        if run_id is None:
            return StoreRun(settings["uri"], settings["experiment"], settings["artifact_root"], *self._opening)
        return StoreRun(settings["uri"], settings["experiment"], None, "", {}, run_id=run_id)

    def __getattr__(self, name: str) -> Callable:
        """StoreRun's method `name`: run here (HERE), or a message about this run, waited for or not."""
        method = getattr(StoreRun, name, None)
        how = delivery(method)
        if how is None:
            raise AttributeError(name)
        if how == HERE:
            return MethodType(method, self)
        send = self.recorder.call if how == WAITS or (how == ENDS and not self.detached) else self.recorder.send

        def call(*args: Any) -> Any:
            return send(name, (self.handle, *plain(args)))

        return call


class InRecorder:
    """A store's named operations (sweep_store's: a sweep's parent), run in the recorder process, each sent or
    waited for as the operation declares; one that waits is answered once everything sent before is written."""

    def __init__(self, operations: Mapping[str, Callable]):
        self.operations = operations

    def __getattr__(self, name: str) -> Callable:
        if name not in self.operations:
            raise AttributeError(name)
        waits = delivery(self.operations[name]) == WAITS

        def operation(**kwargs: Any) -> Any:
            recorder = start()
            return recorder.call(name, plain(kwargs)) if waits else recorder.send(name, plain(kwargs))

        return operation


sweeps = InRecorder(sweep_store.OPERATIONS)


def plain(value: Any) -> Any:
    """Plain strings, dicts, lists and tuples: a str subclass (torch.__version__) would make the recorder import its
    module to read the message."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Mapping):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return (list if isinstance(value, list) else tuple)(plain(v) for v in value)
    return value


def prepare(uri: str, experiment: str, artifact_root: str | None) -> None:
    """Have the recorder create the store (or put the one made ready in place) and the experiment now, without
    waiting, while Hydra sets the sweep up on this side."""
    sweeps.prepare(uri=uri, experiment=experiment, artifact_root=artifact_root)


def make_store_ready(uri: str) -> None:
    """Have the recorder make a new sqlite store's tables now, aside: it goes in place when a run or a sweep first uses
    the store, which is only once every job is planned."""
    start().send("make_store_ready", {"uri": uri})


def prepare_model() -> None:
    """Have the recorder import what logging a model needs now, while this process imports torch and trains."""
    start().send("prepare_model", {})


def flush() -> None:
    """Wait until this process's recorder has written everything sent to it (a sweep's runs, before the
    sweep counts them); raises what it could not write."""
    if _recorder is not None and _recorder.alive():
        _recorder.call("flush", {})


# The recorder process.


class Service:
    """The runs of one training process, by handle, and what is still to be written to them."""

    def __init__(self, connection: Connection | None = None):
        self.connection = connection  # to the training process: why the store was lost
        self.uris: set[str] = set()  # the stores it was asked to prepare: a sweep's parent writes there too
        self.runs: dict[int, StoreRun] = {}
        self.ended: dict[int, tuple[str, str]] = {}  # the ids of runs ended (a sweep's job may ask for them later)
        self.metrics: dict[int, list] = {}  # points not yet written
        self.first_unwritten: float | None = None
        # Writes that failed, by run (None: a named operation's): told at the run's next call that waits (or at a
        # flush, once the run has ended); a run with any cannot end FINISHED.
        self.errors: dict[int | None, list[str]] = {}
        self.preparing: threading.Thread | None = None  # what logging a model needs, imported while runs train
        # The operations that belong to no run, by name: each takes keyword arguments.
        self.operations: dict[str, Callable] = {
            **sweep_store.OPERATIONS,  # a sweep's parent, its jobs' earlier attempts: plain values in and out
            "make_store_ready": self.make_store_ready,
            "prepare_model": self.prepare_model,
            "flush": lambda: None,  # answered once everything before it is written
        }

    def run_of(self, op: str, args: Any) -> int | None:
        """The handle of the run a message is about (None: a named operation's)."""
        return None if op in self.operations else args[0]

    def handle(self, op: str, args: Any) -> Any:
        """op: a named operation (args: its keyword arguments), or a call about a run (args: its handle, then the
        call's arguments): open, ids, or a StoreRun method's."""
        if op == "write_metrics":
            handle, points = args
            self.metrics.setdefault(handle, []).extend(points)
            self.first_unwritten = self.first_unwritten or time.monotonic()
            return None
        self.write_metrics()  # every later call sees the metrics before it written, in order
        if op in self.operations:
            return self.operations[op](**args)
        handle, *rest = args
        if op == "open":
            return self.open(handle, *rest)
        if op == "ids":
            run = self.runs.get(handle)
            return (run.run_id, run.experiment_id) if run is not None else self.ended[handle]
        if op == "finish":
            return self.finish(handle, *rest)
        if delivery(getattr(StoreRun, op, None)) in (None, HERE):
            raise ValueError(f"{op} is not one of the recorder's operations")
        if op == "log_model" and self.preparing is not None:
            self.preparing.join()  # torch.export traces one model at a time
        return getattr(self.runs[handle], op)(*rest)

    def open(self, handle: int, settings: Mapping[str, Any], run_name: str, tags: Mapping[str, str], run_id) -> None:
        self.runs[handle] = StoreRun(
            settings["uri"],
            settings["experiment"],
            settings["artifact_root"],
            run_name,
            tags,
            run_id,
            settings.get("system_metrics", False),
        )
        if settings.get("log_model"):
            self.prepare_model()

    def make_store_ready(self, uri: str) -> None:
        self.uris.add(uri)
        with contextlib.suppress(Exception):  # a hint: if it fails, the store is made where it is first used
            store.make_ready(uri)

    def prepare_model(self) -> None:
        """Import what logging a model needs, in a thread: this process is idle while the run trains."""
        if self.preparing is None:
            from dlkit.tracking import logged_model

            self.preparing = threading.Thread(target=logged_model.prepare, daemon=True)
            self.preparing.start()

    def finish(self, handle: int, status: str) -> None:
        run = self.runs.pop(handle)
        self.ended[handle] = (run.run_id, run.experiment_id)
        errors = self.errors.get(handle)
        if errors and status == "FINISHED":
            run.set_tags(tag.failure("recording", "; ".join(errors)))
            status = "FAILED"
        run.finish(status)

    def failed(self, handle: int | None, exc: Exception) -> None:
        self.errors.setdefault(handle, []).append(f"{type(exc).__name__}: {exc}")
        self.exit_if_lost(exc)

    def exit_if_lost(self, failure: Exception) -> None:
        """After a failed write: if the store can no longer be written (a tracking server gone, a full disk, a folder
        made read-only, a store file overwritten), nothing more can be recorded. Tell the training process why, in
        one line that names the runs left RUNNING and how to go on, and exit: it stops at its next message."""
        runs = list(self.runs.values())
        for uri in {run.uri for run in runs} or set(self.uris):
            why = store.lost(uri, failure, [run.run_id for run in runs if run.uri == uri])
            if why:
                with contextlib.suppress(OSError, AttributeError):
                    self.connection.send((LOST, why))
                os._exit(EXIT_LOST)

    def answer(self, op: str, handle: int | None, value: Any) -> tuple[bool, Any]:
        if op == "flush":  # everything is written: what failed, anywhere, since the last flush
            errors = [e for key in list(self.errors) if key not in self.runs for e in self.errors.pop(key)]
        else:
            errors = self.errors.pop(handle, None) if op == "finish" or handle is None else self.errors.get(handle)
        return (False, "; ".join(errors)) if errors else (True, value)

    def write_metrics(self) -> None:
        pending, self.metrics, self.first_unwritten = self.metrics, {}, None
        for handle, points in pending.items():
            try:
                self.runs[handle].write_metrics(points)
            except Exception as exc:
                self.failed(handle, exc)

    def next_message(self, inbox: queue.SimpleQueue) -> tuple | None:
        """The next message (None: the training process closed its end); meanwhile write the metrics gathered
        once the messages pause (or have waited a second)."""
        while self.first_unwritten is not None:
            timeout = min(PAUSE_S, max(0.0, self.first_unwritten + WRITE_EVERY_S - time.monotonic()))
            try:
                message = inbox.get(timeout=timeout)
            except queue.Empty:
                self.write_metrics()
                continue
            if time.monotonic() - self.first_unwritten >= WRITE_EVERY_S:
                self.write_metrics()
            return message
        return inbox.get()

    def abandon(self) -> None:
        """The training process is gone without finishing these runs: KILLED, with why."""
        self.write_metrics()
        for run in self.runs.values():
            run.set_tags({tag.KILLED_REASON: LOST_REASON})
            run.finish("KILLED")
        self.runs.clear()


def serve(connection: Connection) -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):  # the training process decides how its runs end
        signal.signal(signum, signal.SIG_IGN)
    # Now, while the training process imports torch: MLflow, its sqlite store, and matplotlib for the figures.
    import mlflow.store.tracking.sqlalchemy_store  # noqa: F401
    import mlflow.tracking  # noqa: F401

    # MLflow logs each failed database write with its traceback; dlkit says what failed, once, in its own words.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)

    from dlkit.plots import pyplot

    pyplot()

    inbox: queue.SimpleQueue = queue.SimpleQueue()
    threading.Thread(target=_read, args=(connection, inbox), daemon=True).start()
    service = Service(connection)
    while True:
        message = service.next_message(inbox)
        if message is None:
            store.discard_made()
            return service.abandon()
        op, args, reply = message
        run = service.run_of(op, args)
        try:
            value = service.handle(op, args)
        except Exception as exc:
            value = None
            service.failed(run, exc)
        if reply:
            connection.send(service.answer(op, run, value))


def _read(connection: Connection, inbox: queue.SimpleQueue) -> None:
    """Take every message off the pipe as it arrives. A message can be larger than the pipe holds (a model's
    weights): were it read only when this process is done writing the last job, the training process would
    wait for it in send()."""
    while True:
        try:
            inbox.put(connection.recv())
        except (EOFError, OSError):
            return inbox.put(None)
        except Exception as exc:  # a message that cannot be read: stop as if the pipe had closed, never hang
            print(f"dlkit: the recorder could not read a message ({exc}); its runs end KILLED", file=sys.stderr)
            return inbox.put(None)


if __name__ == "__main__":
    serve(Connection(int(sys.argv[1])))
    # Everything is written. The interpreter's teardown would run the garbage collector over every object MLflow,
    # SQLAlchemy and matplotlib made (about a second); the memory goes back to the system anyway.
    gc.freeze()

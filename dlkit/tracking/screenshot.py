"""A picture of a sweep's first saved view as MLflow's UI draws it (`dlkit report --screenshot`): a temporary
`mlflow ui` on a free port of this machine over the store, headless Chromium's screenshot of the view's link, the PNG
attached to the sweep's parent run as report/view.png."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from dlkit.errors import ConfigError

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# The name the browser reaches the server by, mapped to 127.0.0.1 in the browser: on a first visit to localhost or
# 127.0.0.1, MLflow opens its assistant panel over a quarter of the page.
HOST = "dlkit-view"
SIZE = "1600,1000"
# Virtual time: the browser skips ahead while no request is pending, so this costs seconds; the UI fetches its charts
# after the runs and draws them lazily.
BUDGET_MS = 60_000
WAIT_S = 120  # for the server to answer, and for the browser


class ScreenshotFailed(RuntimeError):
    """The server or the browser did not give a picture (the report is attached without it)."""


def browser() -> str:
    """Chromium's path; a ConfigError saying how to install it when it is not on PATH."""
    found = next(filter(None, map(shutil.which, BROWSERS)), None)
    if found is None:
        raise ConfigError(
            "--screenshot needs Chromium (or Chrome), which is not on PATH: install it (Debian/Ubuntu: apt-get "
            "install chromium; macOS: brew install --cask chromium), or leave out --screenshot."
        )
    return found


def attach(uri: str, parent_id: str, path: Path, chromium: str) -> Path:
    """The sweep's first saved view photographed into path, and logged to its parent run as report/<path's name>."""
    from dlkit.tracking import store, views

    client = store.client(uri)
    experiment_id = client.get_run(parent_id).info.experiment_id
    tags = client.get_experiment(experiment_id).tags
    if not views.saved(experiment_id, tags, parent_id):
        raise ScreenshotFailed(f"run {parent_id} has no saved view in MLflow's UI (a sweep of seeds only has none)")
    with tempfile.TemporaryDirectory(prefix="dlkit-view-") as tmp:
        if uri.startswith(("http://", "https://")):  # a tracking server is a UI already
            base, host_rules, server = uri, [], None
        else:
            port = _free_port()
            base, host_rules = f"http://{HOST}:{port}", [f"--host-resolver-rules=MAP {HOST} 127.0.0.1"]
            server = _start_ui(uri, port, Path(tmp))
        try:
            _, link = views.saved(experiment_id, tags, parent_id, base)[0]
            _photograph(chromium, link, path, [*host_rules, f"--user-data-dir={tmp}/profile"], Path(tmp))
        finally:
            if server is not None:
                _stop(server)
    client.log_artifact(parent_id, str(path), artifact_path="report")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_ui(uri: str, port: int, folder: Path) -> subprocess.Popen:
    """`mlflow ui` over the store on 127.0.0.1:port (as `dlkit ui` starts it), answering to HOST; run in folder,
    where MLflow would put artifacts logged through it (none are)."""
    with (folder / "server.log").open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1"]
            + ["--port", str(port), "--workers", "1", "--allowed-hosts", f"{HOST}:{port}"]
            + ["--cors-allowed-origins", f"http://{HOST}:{port}"],
            cwd=folder,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped with the workers it starts
        )
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline and server.poll() is None:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            return server
        except OSError:
            time.sleep(0.5)
    _stop(server)
    last = (folder / "server.log").read_text().strip().splitlines()[-1:] or ["no output"]
    raise ScreenshotFailed(f"mlflow ui did not start on 127.0.0.1:{port} within {WAIT_S} s ({last[0]})")


def _photograph(chromium: str, link: str, path: Path, flags: list[str], folder: Path) -> None:
    path.unlink(missing_ok=True)
    command = [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *flags]
    command += [f"--window-size={SIZE}", f"--virtual-time-budget={BUDGET_MS}", f"--screenshot={path}", link]
    shot = subprocess.Popen(
        command, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        output, _ = shot.communicate(timeout=WAIT_S)
    except subprocess.TimeoutExpired:
        _stop(shot, signal.SIGKILL)
        raise ScreenshotFailed(f"{chromium} did not draw {link} within {WAIT_S} s") from None
    if shot.returncode != 0 or not path.is_file():
        last = output.strip().splitlines()[-1:] or ["no output"]
        raise ScreenshotFailed(f"{chromium} exited {shot.returncode} without a screenshot ({last[0]})")


def _stop(process: subprocess.Popen, signum: int = signal.SIGTERM) -> None:
    """The process and what it started (its process group), killed when it outlasts 30 s."""
    for sent in (signum, signal.SIGKILL):
        try:
            os.killpg(process.pid, sent)
            process.wait(timeout=30)
            return
        except ProcessLookupError:  # the whole group is gone
            return
        except subprocess.TimeoutExpired:
            continue

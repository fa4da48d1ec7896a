"""The one exception type for mistakes a user can make, and the did-you-mean helper."""

from __future__ import annotations

import difflib
import sys
from collections.abc import Iterable
from typing import NoReturn

USER_ERROR = 2  # the exit code of a mistake in what the user asked for (as argparse's)


class ConfigError(Exception):
    """A user error: printed as one line, without a traceback, and the process exits non-zero."""

    def __init__(self, message: str = "") -> None:
        super().__init__(one_line(message))


def one_line(text: str) -> str:
    """text with what a user typed that is not printable (a newline in a value, a tab) shown escaped, as Python
    writes it: the message stays one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text).strip())


def stop(message: str) -> NoReturn:
    """Print `dlkit: error: <message>` and exit with USER_ERROR, from anywhere: SystemExit passes Hydra's error
    report, which would print a traceback for an exception."""
    print(f"dlkit: error: {one_line(message)}", file=sys.stderr)
    sys.exit(USER_ERROR)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' did you mean 'x'?' for the closest choices, or '' when none is close."""
    close = difflib.get_close_matches(str(word), sorted(set(choices)), n=3, cutoff=0.6)
    if not close:
        return ""
    return " did you mean " + " or ".join(f"'{c}'" for c in close) + "?"


def unknown(kind: str, name: str, choices: Iterable[str], hint: str = "") -> ConfigError:
    """`activation 'relux' is unknown; did you mean 'relu'? Available: ...`"""
    choices = sorted(set(choices))
    suggestion = did_you_mean(name, choices)
    available = ", ".join(choices) if choices else "(none)"
    return ConfigError(f"{kind} '{name}' is unknown;{suggestion} available: {available}.{hint}")


class RecorderError(RuntimeError):
    """The store refused a write (the message is MLflow's), or the recorder process is gone."""


class StoreLost(RecorderError):
    """The store can no longer be written (a tracking server gone, a full disk, a folder made read-only, a store file
    overwritten): the recorder exited, saying why, which runs stay RUNNING there and how to go on."""


class RecorderGone(RecorderError):
    """The recorder process ended while a run was open (killed, out of memory): the training process ends the run
    FAILED in the store itself and stops."""


class Diverged(Exception):
    """The training loss became NaN or infinite: the run stops and ends FAILED, tagged with this reason."""


class Interrupted(SystemExit):
    """Ctrl-C or SIGTERM ended a run KILLED; its exit code is 128 + the signal's number, as a shell's."""

    def __init__(self, run_id: str | None, code: int):
        super().__init__(code)
        self.run_id = run_id

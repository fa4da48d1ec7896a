"""How a call of the store's methods and operations reaches a recorder process (dlkit/tracking/recorder.py), declared
once where the call is defined: on StoreRun's methods (dlkit/tracking/store.py) and on sweep_store's operations. The
recorder's proxies read it there; called directly (tracking.recorder=false, or in the recorder), a function runs as
written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

SENT = "sent"  # a message, not waited for: a write the store refuses is raised at the run's next call that waits
WAITS = "waits"  # the caller waits for the answer: a value, or a file that may be gone once the call returns
ENDS = "ends"  # waits, unless the run was opened detached (the recorder ends it once it has written the rest)
BATCHED = "batched"  # gathered, and written once the messages pause (one write per burst)
HERE = "here"  # runs in the caller's process, through the calls above


def delivered(how: str) -> Callable:
    """Declares how a call of a store's method or operation travels to a recorder process (one of the above)."""

    def declare(function: Callable) -> Callable:
        function.delivery = how
        return function

    return declare


def delivery(function: Any) -> str | None:
    return getattr(function, "delivery", None)

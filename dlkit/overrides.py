"""Command-line overrides as text: `key=value`, `+key=value` (add), `++key=value` (add or set), `~key` (delete)."""

from __future__ import annotations

from collections.abc import Iterable


def key(override: str) -> str:
    """'+optimizer.lr=0.1' -> 'optimizer.lr'; also takes a bare key with its prefix ('~data.limit')."""
    return override.split("=", 1)[0].lstrip("+~")


def pairs(overrides: Iterable[str]) -> dict[str, str]:
    """{'optimizer.lr': '0.1', ...} for the overrides that set a value (a deletion sets none)."""
    return {key(o): o.split("=", 1)[1] for o in overrides if "=" in o}

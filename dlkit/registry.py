"""Names to components: one registry per kind, filled by `@register` decorators.

Configs name registry keys (`activation: {name: relu}`), never import paths, so a config can
only reach what dlkit or a plugin chose to register.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from dlkit.errors import ConfigError, did_you_mean, unknown

KINDS = ("model", "activation", "norm", "dropout", "residual", "loss", "optimizer", "scheduler", "data", "task")

# Where entries registered right now come from; the plugin loader sets it while importing a plugin.
_current_source: str | None = None


@dataclass(frozen=True)
class Entry:
    name: str
    obj: Callable[..., Any]
    source: str  # "dlkit", "plugins/swish.py", "dlkit-extras 1.0 (entry point)", ...


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, module: str | None = None) -> Callable[[Callable], Callable]:
        def add(obj: Callable) -> Callable:
            source = _current_source or (module or obj.__module__).split(".")[0]
            if name in self._entries and self._entries[name].obj is not obj:
                raise ConfigError(
                    f"{self.kind} '{name}' is already registered by {self._entries[name].source};"
                    f" {source} cannot register it again: pick another name."
                )
            self._entries[name] = Entry(name, obj, source)
            return obj

        return add

    def get(self, name: str) -> Callable[..., Any]:
        if name not in self._entries:
            from dlkit import plugins  # a plugin that failed to import may be the one that was meant

            raise unknown(self.kind, name, self._entries, plugins.failure_hint())
        return self._entries[name].obj

    def build(self, cfg: Mapping[str, Any], **context: Any) -> Any:
        """Call the entry named by cfg['name'] with the rest of cfg, and context, as keyword arguments."""
        name, params = self._split(cfg)
        factory = self.get(name)
        _check_params(self.kind, name, factory, params, context, complete=True)
        return factory(**params, **context)

    def partial(self, cfg: Mapping[str, Any]) -> Callable[..., Any]:
        """Like build, for entries that need arguments known only later (an optimizer's parameters)."""
        name, params = self._split(cfg)
        factory = self.get(name)
        _check_params(self.kind, name, factory, params, {}, complete=False)
        return functools.partial(factory, **params)

    def _split(self, cfg: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        params = dict(cfg)
        name = params.pop("name", None)
        if name is None:
            raise ConfigError(f"the {self.kind} config has no 'name' key; it needs one of: {', '.join(self.names())}.")
        return name, params

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        return [self._entries[n] for n in self.names()]


def _check_params(kind: str, name: str, factory: Callable, params: dict, context: dict, complete: bool) -> None:
    """Reject a misspelled or missing parameter, or a value of the wrong type or range, before the call."""
    from dlkit.schema import check_value, hints

    what = f"{kind} '{name}'"
    signature = inspect.signature(factory)
    accepted = [p for p in signature.parameters if p not in context]
    if not any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
        for key in params:
            if key not in signature.parameters:
                raise ConfigError(
                    f"{what} has no parameter '{key}';{did_you_mean(key, accepted)}"
                    f" it takes: {', '.join(accepted) or '(nothing)'}."
                )
    try:
        (signature.bind if complete else signature.bind_partial)(**params, **context)
    except TypeError as exc:
        raise ConfigError(f"{what}: {exc}.") from None
    annotations = hints(factory)
    for key, value in params.items():
        if key in annotations:
            check_value(f"{kind}.{key}", value, annotations[key])


REGISTRIES: dict[str, Registry] = {kind: Registry(kind) for kind in KINDS}


def registry(kind: str) -> Registry:
    if kind not in REGISTRIES:
        raise unknown("registry kind", kind, REGISTRIES)
    return REGISTRIES[kind]


def register(kind: str, name: str) -> Callable[[Callable], Callable]:
    """Decorator: `@register("activation", "swish")` on a class or factory function."""
    caller = sys._getframe(1).f_globals.get("__name__")  # the registering module, not the object's
    return registry(kind).register(name, caller)


@contextlib.contextmanager
def source(label: str) -> Iterator[None]:
    """Attribute every entry registered inside the block to `label` (used by the plugin loader)."""
    global _current_source
    previous, _current_source = _current_source, label
    try:
        yield
    finally:
        _current_source = previous

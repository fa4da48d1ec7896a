"""Names to components: one registry per kind, filled by `@register` decorators.

Configs name registry keys (`activation: {name: relu}`), never import paths, so a config can
only reach what dlkit or a plugin chose to register. `Registry.spec` checks a config section against
the entry's signature (names, parameters, ranges) without calling it: the result, a `Spec`, builds
the component later, when what it needs from elsewhere (a layer's width, the model's parameters) is known.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from dlkit.errors import ConfigError, did_you_mean, unknown
from dlkit.schema import check_value, hints

KINDS = (
    "model",
    "activation",
    "norm",
    "dropout",
    "residual",
    "loss",
    "optimizer",
    "scheduler",
    "data",
    "task",
    "callback",
)
# The config group that selects a kind's entries, where it is not the kind's own name: `callbacks`, whose options are
# each a mapping of named callbacks, several chosen at once (callbacks=[early_stopping,mine]), as lightning-hydra-
# template's users know it.
GROUPS = {"callback": "callbacks"}

# Where entries registered right now come from; the plugin loader sets it while importing a plugin.
_current_source: str | None = None
# Called for a note on an unknown name (the plugin loader adds one: a plugin that failed to import may be the one
# meant).
unknown_name_hints: list[Callable[[], str]] = []


@dataclass(frozen=True)
class Entry:
    name: str
    obj: Callable[..., Any]
    source: str  # "dlkit", "plugins/swish.py", "dlkit-extras 1.0 (entry point)", ...


@dataclass(frozen=True)
class Spec:
    """One chosen component with its checked parameters. Calling it builds the component, with the arguments
    only known then (`spec(num_features=64, dim=1)`); each call gets its own copy of the parameters."""

    kind: str
    name: str
    _params: dict[str, Any] = field(repr=False)
    factory: Callable[..., Any] = field(repr=False, compare=False)

    @property
    def params(self) -> dict[str, Any]:
        return copy.deepcopy(self._params)

    def __call__(self, *args: Any, **context: Any) -> Any:
        return self.factory(*args, **self.params, **context)


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
        if not isinstance(name, str):  # activation.name=[] composes; a name is text
            raise ConfigError(f"{group(self.kind)}.name is {name!r}: give a name, one of: {', '.join(self.names())}.")
        if name not in self._entries:
            raise unknown(self.kind, name, self._entries, "".join(hint() for hint in unknown_name_hints))
        return self._entries[name].obj

    def spec(self, cfg: Mapping[str, Any], context: Iterable[str] = (), where: str | None = None) -> Spec:
        """Check cfg ({'name': ..., parameters...}) against the entry; `context`: the arguments dlkit passes
        when it builds the component, which the config may not set and which need not be given now; `where`: the
        config key that holds cfg, as messages name a parameter (default: the kind, as in optimizer.lr)."""
        params = copy.deepcopy(dict(cfg))
        name = params.pop("name", None)
        if name is None:
            raise ConfigError(f"the {self.kind} config has no 'name' key; it needs one of: {', '.join(self.names())}.")
        factory = self.get(name)
        _check_params(self.kind, name, factory, params, tuple(context), where or self.kind)
        return Spec(self.kind, name, params, factory)

    def build(self, cfg: Mapping[str, Any], **context: Any) -> Any:
        """Check cfg and build the entry at once, with context as keyword arguments."""
        return self.spec(cfg, context)(**context)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        return [self._entries[n] for n in self.names()]


def _check_params(kind: str, name: str, factory: Callable, params: dict, context: tuple[str, ...], where: str) -> None:
    """Reject a misspelled, missing or dlkit-owned parameter, or a value of the wrong type or range."""
    what = f"{kind} '{name}'"
    signature = inspect.signature(factory)
    accepted = [p for p in signature.parameters if p not in context]
    taken = [p for p in params if p in context and p in signature.parameters]
    if taken:
        raise ConfigError(f"{what}: '{taken[0]}' is set by dlkit and cannot be configured.")
    if not any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
        for key in params:
            if key not in signature.parameters:
                raise ConfigError(
                    f"{what} has no parameter '{key}';{did_you_mean(key, accepted)}"
                    f" it takes: {', '.join(accepted) or '(nothing)'}."
                )
    missing = [
        p.name
        for p in signature.parameters.values()
        if p.default is p.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and p.name not in params
        and p.name not in context
        and p.name != "self"
    ]
    if missing:
        raise ConfigError(f"{what}: missing a required argument: '{missing[0]}'.")
    annotations = hints(factory)
    for key, value in params.items():
        if key in annotations:
            check_value(f"{where}.{key}", value, annotations[key])


REGISTRIES: dict[str, Registry] = {kind: Registry(kind) for kind in KINDS}


def group(kind: str) -> str:
    """The config group whose options select the entries of `kind`."""
    return GROUPS.get(kind, kind)


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

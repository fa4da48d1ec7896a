"""What a valid config is: the types and ranges of its values, checked before anything runs.

A component declares its parameters' ranges in its own signature, with the annotated-types
vocabulary (`lr: Annotated[float, Gt(0)]`, or the aliases below); the registry checks every value a
config gives against them. The keys that belong to no component (seed, trainer, tracking) are
declared in FIXED. `validate(cfg)` checks a whole composed config, including every component's
name and parameters, without loading data or building a model: cheap enough to run on every job of
a sweep before the first one starts.
"""
from __future__ import annotations

import inspect
import os
import types
import typing
from typing import Annotated, Any

import annotated_types as at
from omegaconf import DictConfig, OmegaConf

from dlkit.errors import ConfigError, did_you_mean

PositiveFloat = Annotated[float, at.Gt(0)]
NonNegativeFloat = Annotated[float, at.Ge(0)]
Fraction = Annotated[float, at.Interval(ge=0, lt=1)]  # dropout p, a momentum β
SplitFraction = Annotated[float, at.Interval(gt=0, lt=1)]  # a validation or test share
PositiveInt = Annotated[int, at.Ge(1)]
NonNegativeInt = Annotated[int, at.Ge(0)]

FIXED: dict[str, Any] = {
    "seed": NonNegativeInt,
    "threads": NonNegativeInt,
    "steps_per_call": PositiveInt,
    "objective": str,
    "paths.output_dir": str,
    "trainer.max_epochs": PositiveInt,
    "trainer.gradient_clip_val": NonNegativeFloat | None,
    "trainer.deterministic": bool,
    "tracking.enabled": bool,
    "tracking.artifacts": bool,
    "tracking.resume": bool,
    "tracking.experiment": str,
    "tracking.uri": str,
}
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")  # torch.compile's modes
# Trainer arguments dlkit passes itself; a config that sets them would silently fight dlkit.
OWN_TRAINER_ARGS = ("logger", "callbacks", "enable_progress_bar", "enable_model_summary", "enable_checkpointing", "default_root_dir")

_TYPE_WORDS = {int: "a whole number", float: "a number", bool: "true or false", str: "a string"}


def check_value(key: str, value: Any, annotation: Any) -> None:
    """Raise a ConfigError naming key, value and what is allowed, if value does not fit annotation."""
    options, constraints = _parts(annotation)
    if value is None:
        if type(None) not in options:
            raise ConfigError(f"{key} must be set ({_describe(options, constraints)}), got null.")
        return
    simple = [t for t in options if t in _TYPE_WORDS]
    if simple and not any(_is(value, t) for t in simple) and len(simple) == len([t for t in options if t is not type(None)]):
        raise ConfigError(f"{key} must be {_describe(options, constraints)}, got {value!r}.")
    for constraint in _flat(constraints):
        if not _holds(constraint, value):
            raise ConfigError(f"{key} must be {_describe(options, constraints)}, got {value!r}.")


def _parts(annotation: Any) -> tuple[tuple, list]:
    """Annotated[float, Gt(0)] | None -> ((float, NoneType), [Gt(0)])."""
    constraints: list = []
    if typing.get_origin(annotation) is Annotated:
        annotation, *constraints = typing.get_args(annotation)
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    options = []
    for option in typing.get_args(annotation) if union else (annotation,):
        if typing.get_origin(option) is Annotated:
            option, *extra = typing.get_args(option)
            constraints += extra
        options.append(option)
    return tuple(options), constraints


def _is(value: Any, kind: type) -> bool:
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _flat(constraints: list) -> list:
    flat = []
    for c in constraints:
        flat += list(c) if isinstance(c, at.GroupedMetadata) else [c]
    return flat


_OPS = {at.Gt: (">", lambda v, b: v > b), at.Ge: ("≥", lambda v, b: v >= b), at.Lt: ("<", lambda v, b: v < b), at.Le: ("≤", lambda v, b: v <= b)}


def _bound(constraint) -> Any:
    return next(getattr(constraint, f) for f in ("gt", "ge", "lt", "le") if hasattr(constraint, f))


def _holds(constraint, value: Any) -> bool:
    op = _OPS.get(type(constraint))
    if op is None or not isinstance(value, (int, float)):
        return True
    return op[1](value, _bound(constraint))


def _describe(options: tuple, constraints: list) -> str:
    words = " or ".join(_TYPE_WORDS[t] for t in options if t in _TYPE_WORDS) or "a value"
    flat = [c for c in _flat(constraints) if type(c) in _OPS]
    low = next((c for c in flat if isinstance(c, (at.Gt, at.Ge))), None)
    high = next((c for c in flat if isinstance(c, (at.Lt, at.Le))), None)
    if low is not None and high is not None:
        words += f" in {'(' if isinstance(low, at.Gt) else '['}{_bound(low)}, {_bound(high)}{')' if isinstance(high, at.Lt) else ']'}"
    elif low is not None or high is not None:
        c = low if low is not None else high
        words += f" {_OPS[type(c)][0]} {_bound(c)}"
    if type(None) in options:
        words += " (or null)"
    return words


def hints(factory: Any) -> dict[str, Any]:
    """A factory's parameter annotations, resolved (a plugin's unresolvable ones are skipped)."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        return typing.get_type_hints(target, include_extras=True)
    except Exception:
        return {}


def validate(cfg: DictConfig) -> None:
    """Every check a config can pass without data: fixed keys, the trainer, every component."""
    for key, annotation in FIXED.items():
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None or key in ("seed", "trainer.max_epochs"):
            check_value(key, value, annotation)
    for key in ("trainer.limit_train_batches", "trainer.limit_val_batches"):  # applied by dlkit (data.Chunks), so checked here
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None and not ((_is(value, int) and value >= 0) or (isinstance(value, float) and 0 <= value <= 1)):
            raise ConfigError(f"{key} must be a whole number of batches ≥ 0 or a fraction in [0, 1], got {value!r}.")
    _check_compile(cfg.get("compile"))
    check_trainer(OmegaConf.to_container(cfg.trainer, resolve=True))
    from dlkit import plugins
    from dlkit.build import plan

    plugins.load_all()  # a plugin's components are names the config may use
    plan(cfg)


def _check_compile(mode: Any) -> None:
    if mode is None or isinstance(mode, bool) or mode in COMPILE_MODES:
        return
    raise ConfigError(
        f"compile={mode!r} is not a torch.compile mode;{did_you_mean(str(mode), COMPILE_MODES)}"
        f" use one of {', '.join(COMPILE_MODES)}, true (= default), or null (eager)."
    )


def check_trainer(options: dict[str, Any]) -> None:
    import pytorch_lightning as pl

    accepted = [p for p in inspect.signature(pl.Trainer.__init__).parameters if p not in ("self", *OWN_TRAINER_ARGS)]
    for key in options:
        if key in OWN_TRAINER_ARGS:
            raise ConfigError(f"trainer.{key} is set by dlkit itself and cannot be configured.")
        if key not in accepted:
            raise ConfigError(f"trainer.{key} is not a Lightning Trainer argument;{did_you_mean(key, accepted)} (see `dlkit --cfg job` for the trainer keys)")
    _check_devices(options.get("accelerator", "auto"), options.get("devices", "auto"))


def _check_devices(accelerator: str, devices: Any) -> None:
    """More devices than the machine has fail here, naming what it has."""
    import torch

    gpus = torch.cuda.device_count()
    wanted = devices if isinstance(devices, int) and not isinstance(devices, bool) else len(devices) if isinstance(devices, (list, tuple)) else None
    has = f"this machine has {gpus} CUDA GPU{'s' if gpus != 1 else ''} and {os.cpu_count()} CPU cores"
    if accelerator in ("gpu", "cuda") and gpus == 0:
        raise ConfigError(f"trainer.accelerator={accelerator} needs a CUDA GPU; {has} (use trainer=cpu or trainer.accelerator=auto).")
    if wanted is None:
        return
    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and gpus > 0)
    available = gpus if on_gpu else os.cpu_count() or 1
    if wanted > available or wanted == 0 or wanted < -1:
        raise ConfigError(f"trainer.devices={devices} on {'GPU' if on_gpu else 'CPU'}: {has} (use a number from 1 to {available}, or -1 for all).")

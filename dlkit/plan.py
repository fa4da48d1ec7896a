"""One job, planned: the composed config checked once and turned into an immutable `Plan`.

Everything a config can get wrong without data is found here: the fixed keys' types and ranges, the
Lightning trainer's arguments and the machine's devices, each component's name and parameters (checked
against its registered signature, without building it), and whether the loss fits the task. `dlkit check`,
`train`, the sweep's pre-launch check and `dlkit.run` all take a Plan; nothing after it reads the raw config.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import os
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

from dlkit import components, data, early_stopping, models, tasks  # noqa: F401  (importing registers the built-ins)
from dlkit.errors import ConfigError, did_you_mean
from dlkit.metrics import LOGGED, parse
from dlkit.models.parts import LayerParts
from dlkit.registry import Spec, registry
from dlkit.schema import NonEmptyStr, NonNegativeFloat, NonNegativeInt, PositiveInt, check_value, is_a
from dlkit.trainer_args import APPLIED, refusal, translate

# The keys that belong to no component, with what they may be.
FIXED: dict[str, Any] = {
    "seed": NonNegativeInt,
    "threads": PositiveInt,
    "steps_per_call": PositiveInt,
    "objective": str,
    "paths.output_dir": str,
    "trainer.max_epochs": PositiveInt,
    "trainer.gradient_clip_val": NonNegativeFloat | None,
    "trainer.deterministic": bool,
    "trainer.accumulate_grad_batches": PositiveInt,
    "trainer.fast_dev_run": bool | NonNegativeInt,
    "trainer.min_steps": NonNegativeInt | None,
    "trainer.enable_progress_bar": bool | None,
    "tracking.enabled": bool,
    "tracking.artifacts": bool,
    "tracking.resume": bool,
    "tracking.recorder": bool,
    "tracking.experiment": NonEmptyStr,
    "tracking.uri": NonEmptyStr,
}
REQUIRED = ("seed", "trainer.max_epochs")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")  # torch.compile's modes
# What dlkit passes each component when it builds it: the config may not set these.
CONTEXT = {
    "model": ("input_shape", "output_shape", "parts", "input_vocab"),
    "loss": ("output",),
    "optimizer": ("params",),
    "scheduler": ("optimizer", "max_epochs"),
    "task": ("model", "loss", "optimizer", "scheduler", "shape", "clip_val", "clip_algorithm", "accumulate"),
    "data": (),
}


@dataclass(frozen=True)
class TrainerPlan:
    max_epochs: int
    clip_val: float | None
    clip_algorithm: str
    limit_train_batches: int | float | None
    limit_val_batches: int | float | None
    accumulate: int = 1  # accumulate_grad_batches: batches whose gradients make one optimizer step
    shuffle: bool = True  # the training batches' order, each epoch (not under overfit_batches)
    dev_run: bool = False  # fast_dev_run: a check that records nothing
    progress_bar: bool | None = None  # enable_progress_bar; None: where stderr is a terminal, in a single run
    _options: dict[str, Any] = field(default_factory=dict, repr=False)  # the other Lightning Trainer arguments, checked

    @property
    def options(self) -> dict[str, Any]:
        return copy.deepcopy(self._options)


@dataclass(frozen=True)
class TrackingPlan:
    enabled: bool
    uri: str | None = None
    experiment: str = "dlkit"
    artifact_root: str | None = None
    run_name: str | None = None
    artifacts: bool = True
    resume: bool = True
    recorder: bool = True  # write through a recorder process (False: from the training process itself)
    system_metrics: bool = False  # MLflow's monitor of this machine (CPU, memory, GPU) beside each run
    log_model: bool = True  # the best epoch's model as an MLflow model (PyTorch flavour), linked to the run


@dataclass(frozen=True)
class Plan:
    """Every choice of one job, checked: build.build(plan) makes the things Lightning trains from it."""

    parts: LayerParts
    model: Spec
    loss: Spec
    optimizer: Spec
    scheduler: Spec
    task: Spec
    data: Spec
    batch_size: int | None  # None: the whole training split (gradient descent)
    resize: int | None  # images scaled to resize×resize (LeNet-5's 32×32)
    seed: int
    threads: int
    compile: str | None
    steps_per_call: int
    objective: str
    output_dir: str
    trainer: TrainerPlan
    tracking: TrackingPlan
    callbacks: tuple[tuple[str, Spec], ...]  # callbacks=...: each chosen Lightning callback by its config key
    config_yaml: str = field(repr=False)  # the resolved config: what a run logs, and how it is known again
    fingerprint: str = ""
    _params: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def params(self) -> dict[str, Any]:
        """{'optimizer.lr': 0.001, 'model.hidden': [256, 128], ...}: the resolved config flattened, as a run logs it."""
        return copy.deepcopy(self._params)

    @classmethod
    def from_config(cls, cfg: DictConfig) -> Plan:
        return plan(cfg)


def plan(cfg: DictConfig) -> Plan:
    try:
        resolved = OmegaConf.to_container(cfg, resolve=True)
    except InterpolationResolutionError as exc:  # ${oops}: resolved here, when the job is planned
        raise ConfigError(
            f"{exc.full_key}: {str(exc).strip().splitlines()[0]}; an interpolation ${{...}} names a key of the config"
            " (e.g. ${seed}) or a resolver (e.g. ${now:%H-%M}); or write the value itself."
        ) from None
    _check_fixed(cfg)
    sections = {k: _section(resolved, k) for k in ("activation", "norm", "dropout", "residual", *CONTEXT)}
    parts = LayerParts.from_configs(**{k: sections[k] for k in ("activation", "norm", "dropout", "residual")})
    batch_size = sections["optimizer"].pop("batch_size", None)
    check_value("optimizer.batch_size", batch_size, PositiveInt | None)
    resize = sections["data"].pop("resize", None)  # for any image data set: a transform, not a data set's parameter
    specs = {kind: registry(kind).spec(sections[kind], context) for kind, context in CONTEXT.items()}
    output = getattr(specs["task"].factory, "output", "softmax")
    specs["loss"](output=output)  # a loss checks that it serves the task's output when it is made (a cheap module)
    yaml = OmegaConf.to_yaml(cfg, resolve=True)
    trainer = _trainer(resolved["trainer"])
    return Plan(
        parts=parts,
        **specs,
        batch_size=batch_size,
        resize=resize,
        seed=int(cfg.seed),
        threads=int(cfg.get("threads") or 0),
        compile=_compile_mode(cfg.get("compile")),
        steps_per_call=int(cfg.get("steps_per_call") or 1),
        objective=_objective(cfg.get("objective") or "val/loss"),
        output_dir=str(cfg.paths.output_dir),
        trainer=trainer,
        tracking=TrackingPlan(enabled=False) if trainer.dev_run else _tracking(resolved),
        callbacks=_callbacks(resolved.get("callbacks") or {}),
        config_yaml=yaml,
        fingerprint=fingerprint(cfg),
        _params=dict(_flatten(resolved)),
    )


def fingerprint(cfg: DictConfig) -> str:
    """A job's identity: its resolved config, hashed, less a study's declaration (how a verdict is decided trains
    nothing: a study relaunched with a new guard reuses its runs). A relaunched sweep knows the jobs it ran by it."""
    training = {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k != "study"}
    return hashlib.sha256(OmegaConf.to_yaml(training).encode()).hexdigest()[:16]


def _flatten(tree: dict, prefix: str = ""):
    """(dotted key, value) for every leaf of a nested dict; an empty dict is a leaf."""
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _section(resolved: dict, key: str) -> dict[str, Any]:
    value = resolved.get(key)
    if not isinstance(value, dict):
        raise ConfigError(f"'{key}' must be a mapping with a 'name' key, got {value!r}.")
    return value


def _check_fixed(cfg: DictConfig) -> None:
    for key, annotation in FIXED.items():
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None or key in REQUIRED:
            check_value(key, value, annotation)
    for key in ("trainer.limit_train_batches", "trainer.limit_val_batches", "trainer.overfit_batches"):  # data.Chunks
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None and not (
            (is_a(value, int) and value >= 0) or (isinstance(value, float) and 0 <= value <= 1)
        ):
            raise ConfigError(f"{key} must be a whole number of batches ≥ 0 or a fraction in [0, 1], got {value!r}.")


def _objective(text: Any) -> str:
    """The metric a job returns to an optimizing sweeper, and a sweep's parent takes its best child by: read from the
    job's final metrics, so one that it logs (a derived one is computed by dlkit report)."""
    objective = parse(str(text), "objective")
    if objective.kind != LOGGED:
        raise ConfigError(
            f"objective is '{objective.text}': it must be a metric each job logs, e.g. val/loss or val/acc"
            " (a derived metric is for dlkit report --metric)."
        )
    return objective.text


def _callbacks(chosen: dict[str, Any]) -> tuple[tuple[str, Spec], ...]:
    """The callbacks group's choices (callbacks=early_stopping, callbacks=[early_stopping,mine]): each a registered
    callback's name and parameters, checked, and made once, so that what only its constructor checks (early
    stopping's mode) fails here. A run makes its own (build.build)."""
    specs = []
    for key, section in chosen.items():
        if not isinstance(section, dict):
            raise ConfigError(
                f"callbacks.{key} must be a mapping with a 'name' key (a registered callback), got {section!r}."
            )
        spec = registry("callback").spec(section, where=f"callbacks.{key}")
        try:
            spec()
        except ConfigError as exc:
            raise ConfigError(f"callbacks.{key}: {exc}") from None
        specs.append((key, spec))
    return tuple(specs)


def _compile_mode(mode: Any) -> str | None:
    if mode is None or mode is False:
        return None
    if mode is True:
        return "default"
    if mode in COMPILE_MODES:
        return mode
    raise ConfigError(
        f"compile={mode!r} is not a torch.compile mode;{did_you_mean(str(mode), COMPILE_MODES)}"
        f" use one of {', '.join(COMPILE_MODES)}, true (= default), or null (eager)."
    )


def _trainer(options: dict[str, Any]) -> TrainerPlan:
    check_trainer(options)
    dev_run = bool(options.get("fast_dev_run"))
    options = translate(options)
    applied = {k: options.get(k) for k in APPLIED}
    rest = {k: v for k, v in options.items() if v is not None and k not in (*APPLIED, "shuffle")}
    return TrainerPlan(
        max_epochs=int(options["max_epochs"]),
        clip_val=applied["gradient_clip_val"],
        clip_algorithm=applied["gradient_clip_algorithm"] or "norm",
        limit_train_batches=applied["limit_train_batches"],
        limit_val_batches=applied["limit_val_batches"],
        accumulate=int(applied["accumulate_grad_batches"] or 1),
        shuffle=options.get("shuffle", True),
        dev_run=dev_run,
        progress_bar=applied["enable_progress_bar"],
        _options=rest,
    )


def _tracking(resolved: dict) -> TrackingPlan:
    given = resolved.get("tracking") or {}
    if not given.get("enabled", True):
        return TrackingPlan(enabled=False)
    known = {k: given[k] for k in TrackingPlan.__dataclass_fields__ if k in given and given[k] is not None}
    return TrackingPlan(**{**known, "enabled": True})


def check_trainer(options: dict[str, Any]) -> None:
    import pytorch_lightning as pl

    signature = inspect.signature(pl.Trainer.__init__).parameters
    accepted = [p for p in signature if p != "self"]
    for key, value in options.items():
        refused = refusal(key, value, signature[key].default if key in signature else None)
        if refused:
            raise ConfigError(refused)
        if key not in accepted:
            raise ConfigError(
                f"trainer.{key} is not a Lightning Trainer argument;{did_you_mean(key, accepted)}"
                " (see `dlkit --cfg job` for the trainer keys)"
            )
    _check_devices(options.get("accelerator", "auto"), options.get("devices", "auto"))


def _check_devices(accelerator: str, devices: Any) -> None:
    """More devices than the machine has fail here, naming what it has."""
    import torch

    gpus = torch.cuda.device_count()
    if isinstance(devices, int) and not isinstance(devices, bool):
        wanted = devices
    else:
        wanted = len(devices) if isinstance(devices, (list, tuple)) else None
    has = f"this machine has {gpus} CUDA GPU{'s' if gpus != 1 else ''} and {os.cpu_count()} CPU cores"
    if accelerator in ("gpu", "cuda") and gpus == 0:
        raise ConfigError(
            f"trainer.accelerator={accelerator} needs a CUDA GPU; {has} (use trainer=cpu or trainer.accelerator=auto)."
        )
    if wanted is None:
        return
    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and gpus > 0)
    available = gpus if on_gpu else os.cpu_count() or 1
    if wanted > available or wanted == 0 or wanted < -1:
        raise ConfigError(
            f"trainer.devices={devices} on {'GPU' if on_gpu else 'CPU'}: {has} (use a number from 1 to {available}, or "
            "-1 for all)."
        )

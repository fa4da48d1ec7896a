"""`dlkit check`: build the configured model without training, show every layer's output shape and
parameter count, run one forward and backward pass on a real batch, and check plugin components'
gradients numerically (torch.autograd.gradcheck, in double precision)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.autograd.gradcheck import GradcheckError

from dlkit.build import Experiment, build
from dlkit.errors import ConfigError
from dlkit.plan import Plan
from dlkit.registry import Spec, registry


def check(plan: Plan) -> str:
    torch.manual_seed(plan.seed)
    experiment = build(plan)
    x, y = next(iter(experiment.loaders["train"]))
    lines = [
        f"model '{plan.model.name}' on {experiment.dataset.describe()}; task '{plan.task.name}', loss "
        f"'{plan.loss.name}'",
        *_layer_table(experiment.task.model, x),
        *_forward_backward(experiment, x, y),
        *_plugin_gradients(plan, experiment, x, y),
    ]
    return "\n".join(lines)


def _layer_table(model: nn.Module, x: torch.Tensor) -> list[str]:
    shapes: dict[str, tuple[int, ...]] = {}
    leaves = [(n, m) for n, m in model.named_modules() if not list(m.children()) and not isinstance(m, nn.Identity)]

    def record(name: str):
        def hook(module, inputs, output) -> None:  # returns None: a forward hook's return value replaces the output
            shapes[name] = _shape(output)

        return hook

    hooks = [m.register_forward_hook(record(name)) for name, m in leaves]
    with torch.no_grad():
        model.eval()
        model(x)
        model.train()
    for hook in hooks:
        hook.remove()
    rows = [f"  {'layer':<28} {'output':<20} {'params':>9}"]
    for name, module in leaves:
        count = sum(p.numel() for p in module.parameters())
        rows.append(f"  {name + ' ' + type(module).__name__:<28} {str(shapes.get(name, '-')):<20} {count:>9,}")
    rows.append(f"  total parameters: {sum(p.numel() for p in model.parameters()):,}")
    for note in getattr(model, "rounded", []):  # model.size_rounding=floor: PyTorch's rounding, opted into
        rows.append(f"  size rounded down (model.size_rounding=floor): {note}")
    return rows


def _shape(output) -> tuple[int, ...]:
    """A layer's output shape; a recurrent layer returns (outputs, state): its outputs' shape."""
    while isinstance(output, (tuple, list)):
        output = output[0]
    return tuple(output.shape)


def _forward_backward(experiment: Experiment, x: torch.Tensor, y: torch.Tensor) -> list[str]:
    task = experiment.task
    task.train()
    loss = task.loss(task(x), y)
    loss.backward()
    missing = [n for n, p in task.named_parameters() if p.grad is None]
    broken = [n for n, p in task.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
    if not torch.isfinite(loss):
        raise ConfigError(f"the loss on a real batch is {loss.item()}: check the data and the loss.")
    if broken:
        raise ConfigError(f"gradients are not finite in {', '.join(broken[:3])}.")
    note = f"; no gradient reaches {', '.join(missing[:3])}" if missing else ", every parameter gets a gradient"
    return [f"forward and backward on a batch of {len(y)}: loss {loss.item():.4f}{note}"]


def _plugin_gradients(plan: Plan, experiment: Experiment, x: torch.Tensor, y: torch.Tensor) -> list[str]:
    """gradcheck each component of this plan that a plugin (not dlkit) registered."""
    parts = plan.parts
    chosen: dict[str, Spec] = {
        "activation": parts.activation,
        "norm": parts.norm,
        "model": plan.model,
        "loss": plan.loss,
    }
    checks: dict[str, Callable[[], None]] = {
        "activation": lambda: _gradcheck(parts.act().double(), torch.randn(3, 5, dtype=torch.double)),
        "norm": lambda: _gradcheck(parts.norm_layer(5, 1).double(), torch.randn(4, 5, dtype=torch.double)),
        "model": lambda: _gradcheck(
            experiment.task.model.double().eval(), x[:2].double() if x.is_floating_point() else None
        ),
        "loss": lambda: _gradcheck(
            lambda out: experiment.task.loss(out, y[:2]), experiment.task(x[:2]).detach().double()
        ),
    }
    lines = []
    for kind, run in checks.items():
        name = chosen[kind].name
        source = {e.name: e.source for e in registry(kind).entries()}[name]
        if source == "dlkit":
            continue
        try:
            run()
        except GradcheckError as exc:
            first = str(exc).strip().splitlines()[0]
            raise ConfigError(
                f"{kind} '{name}' ({source}): its backward does not match numerical gradients ({first})"
            ) from None
        lines.append(f"{kind} '{name}' ({source}): gradients match numerical differentiation")
    experiment.task.model.float()
    return lines


def _gradcheck(fn: Callable, sample: torch.Tensor | None) -> None:
    if sample is None:
        return  # token inputs: nothing to differentiate with respect to
    torch.autograd.gradcheck(fn, (sample.requires_grad_(True),), eps=1e-6, atol=1e-4)

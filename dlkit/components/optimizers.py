"""Optimizers and learning-rate schedulers.

An optimizer entry takes the parameters and its settings and returns a torch optimizer; a scheduler
entry takes the optimizer and the number of epochs and returns a scheduler stepped once per epoch.
The chapter's three gradient-descent variants (gd, sgd, minibatch) are the same update
θ = θ − α∇J(θ) on different batch sizes: their YAML files set optimizer.batch_size.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from dlkit.registry import register
from dlkit.schema import Fraction, NonNegativeFloat, PositiveFloat, PositiveInt

Params = Iterable[nn.Parameter]


def _plain(params: Params, lr: PositiveFloat, weight_decay: NonNegativeFloat = 0.0) -> torch.optim.Optimizer:
    """θ = θ − α∇J(θ)."""
    return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)


for _variant in ("gd", "sgd", "minibatch"):  # full batch, batch size 1, batch size k: see their YAML files
    register("optimizer", _variant)(_plain)


class ChapterMomentum(torch.optim.Optimizer):
    """Momentum as the chapter writes it: v = βv + (1 − β)∇J(θ), then θ = θ − αv.

    PyTorch's SGD momentum is the heavy-ball form v = βv + ∇J(θ): the same direction, but a step
    1/(1 − β) times larger once v settles, so the two need different learning rates.
    """

    def __init__(self, params: Params, lr: float, beta: float = 0.9):
        super().__init__(params, {"lr": lr, "beta": beta})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None if closure is None else torch.enable_grad()(closure)()
        for group in self.param_groups:
            lr, beta = group["lr"], group["beta"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                v = self.state[p].setdefault("velocity", torch.zeros_like(p))
                v.mul_(beta).add_(p.grad, alpha=1.0 - beta)
                p.add_(v, alpha=-lr)
        return loss


@register("optimizer", "momentum")
def momentum(params: Params, lr: PositiveFloat = 0.1, beta: Fraction = 0.9) -> torch.optim.Optimizer:
    return ChapterMomentum(params, lr=lr, beta=beta)


@register("optimizer", "heavy_ball")
def heavy_ball(
    params: Params, lr: PositiveFloat = 0.01, momentum: Fraction = 0.9, weight_decay: NonNegativeFloat = 0.0
) -> torch.optim.Optimizer:
    """PyTorch's SGD momentum: v = μv + ∇J(θ), θ = θ − αv."""
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


@register("optimizer", "nesterov")
def nesterov(
    params: Params, lr: PositiveFloat = 0.01, momentum: Fraction = 0.9, weight_decay: NonNegativeFloat = 0.0
) -> torch.optim.Optimizer:
    """PyTorch's Nesterov momentum: the gradient step looks ahead along the velocity."""
    return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=True, weight_decay=weight_decay)


@register("optimizer", "adagrad")
def adagrad(
    params: Params, lr: PositiveFloat = 0.01, eps: PositiveFloat = 1e-10, weight_decay: NonNegativeFloat = 0.0
) -> torch.optim.Optimizer:
    return torch.optim.Adagrad(params, lr=lr, eps=eps, weight_decay=weight_decay)


@register("optimizer", "rmsprop")
def rmsprop(
    params: Params,
    lr: PositiveFloat = 0.001,
    alpha: Fraction = 0.99,
    eps: PositiveFloat = 1e-8,
    weight_decay: NonNegativeFloat = 0.0,
) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(params, lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay)


@register("optimizer", "adam")
def adam(
    params: Params,
    lr: PositiveFloat = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    weight_decay: NonNegativeFloat = 0.0,
) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay)


@register("optimizer", "adamw")
def adamw(
    params: Params,
    lr: PositiveFloat = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    weight_decay: NonNegativeFloat = 0.01,
) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay)


@register("scheduler", "none")
def no_scheduler(optimizer: torch.optim.Optimizer, max_epochs: int):
    return None


@register("scheduler", "step")
def step_scheduler(
    optimizer: torch.optim.Optimizer, max_epochs: int, step_size: PositiveInt = 10, gamma: PositiveFloat = 0.1
):
    """α is multiplied by gamma every step_size epochs."""
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma)


@register("scheduler", "cosine")
def cosine_scheduler(optimizer: torch.optim.Optimizer, max_epochs: int, min_lr: NonNegativeFloat = 0.0):
    """α follows half a cosine from its initial value down to min_lr over the run's epochs."""
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, max_epochs), eta_min=min_lr)

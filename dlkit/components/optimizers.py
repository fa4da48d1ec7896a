"""Optimizers: each entry takes the parameters and its settings and returns a torch optimizer."""
from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from dlkit.registry import register

Params = Iterable[nn.Parameter]


@register("optimizer", "sgd")
def sgd(params: Params, lr: float = 0.1, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """θ = θ − α∇J(θ)."""
    return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)


class ChapterMomentum(torch.optim.Optimizer):
    """Momentum as the chapter writes it: v = βv + (1 − β)∇J(θ), then θ = θ − αv.

    PyTorch's SGD momentum is the heavy-ball form v = βv + ∇J(θ): the same direction, but a step
    1/(1 − β) times larger once v settles, so the two need different learning rates.
    """

    def __init__(self, params: Params, lr: float, beta: float = 0.9):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"momentum beta must be in [0, 1), got {beta}")
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
def momentum(params: Params, lr: float = 0.1, beta: float = 0.9) -> torch.optim.Optimizer:
    return ChapterMomentum(params, lr=lr, beta=beta)


@register("optimizer", "heavy_ball")
def heavy_ball(params: Params, lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """PyTorch's SGD momentum: v = μv + ∇J(θ), θ = θ − αv."""
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


@register("optimizer", "adam")
def adam(params: Params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), weight_decay: float = 0.0) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay)

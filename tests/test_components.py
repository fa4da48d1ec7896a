"""Components against the chapter's formulas, on numbers worked out by hand here."""
import math

import pytest
import torch
from torch import nn

from dlkit.registry import registry
import dlkit.build  # noqa: F401


def test_activations_match_their_formulas():
    x = torch.tensor([-2.0, 0.0, 1.0])
    build = lambda name: registry("activation").build({"name": name})  # noqa: E731
    assert torch.allclose(build("sigmoid")(x), torch.tensor([1 / (1 + math.e**2), 0.5, 1 / (1 + math.e**-1)]))
    tanh1 = (math.e - 1 / math.e) / (math.e + 1 / math.e)
    assert torch.allclose(build("tanh")(x), torch.tensor([-((math.e**2 - math.e**-2) / (math.e**2 + math.e**-2)), 0.0, tanh1]))
    assert torch.equal(build("relu")(x), torch.tensor([0.0, 0.0, 1.0]))
    assert torch.equal(build("identity")(x), x)


def test_cross_entropy_is_minus_log_softmax_of_the_label():
    logits = torch.tensor([[1.0, 2.0, 3.0]])
    expected = -math.log(math.exp(3) / (math.exp(1) + math.exp(2) + math.exp(3)))  # label 2
    loss = registry("loss").build({"name": "cross_entropy"})(logits, torch.tensor([2]))
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_mse_on_values_and_on_class_labels():
    mse = registry("loss").build({"name": "mse"})
    assert mse(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 4.0])).item() == pytest.approx((1 + 4) / 2)
    # class labels: softmax of equal logits is [0.5, 0.5]; one-hot of label 0 is [1, 0]
    loss = mse(torch.tensor([[0.0, 0.0]]), torch.tensor([0]))
    assert loss.item() == pytest.approx((0.5**2 + 0.5**2) / 2)


def test_chapter_momentum_two_steps_by_hand():
    # J(θ) = θ²/2, so ∇J = θ. θ0 = 1, α = 0.5, β = 0.9.
    # step 1: v = 0.1·1 = 0.1,             θ = 1 − 0.05 = 0.95
    # step 2: v = 0.9·0.1 + 0.1·0.95 = 0.185, θ = 0.95 − 0.0925 = 0.8575
    theta = nn.Parameter(torch.tensor([1.0]))
    opt = registry("optimizer").build({"name": "momentum", "lr": 0.5, "beta": 0.9}, params=[theta])
    for expected in (0.95, 0.8575):
        opt.zero_grad()
        (theta**2 / 2).sum().backward()
        opt.step()
        assert theta.item() == pytest.approx(expected, abs=1e-6)


def test_heavy_ball_is_pytorchs_form():
    # v = 0.9·v + g; step 1: v = 1, θ = 1 − 0.5 = 0.5; step 2: v = 0.9 + 0.5 = 1.4, θ = 0.5 − 0.7 = −0.2
    theta = nn.Parameter(torch.tensor([1.0]))
    opt = registry("optimizer").build({"name": "heavy_ball", "lr": 0.5, "momentum": 0.9}, params=[theta])
    for expected in (0.5, -0.2):
        opt.zero_grad()
        (theta**2 / 2).sum().backward()
        opt.step()
        assert theta.item() == pytest.approx(expected, abs=1e-6)


def test_batch_norm_normalizes_over_the_batch():
    bn = registry("norm").build({"name": "batch"}, num_features=1, dim=1)
    x = torch.tensor([[1.0], [3.0]])  # μ = 2, σ = 1 (biased), γ = 1, β = 0
    assert torch.allclose(bn(x), torch.tensor([[-1.0], [1.0]]), atol=1e-4)


def test_inverted_dropout_keeps_the_expected_activation():
    torch.manual_seed(0)
    drop = registry("dropout").build({"name": "inverted", "p": 0.25})
    out = drop(torch.ones(200_000))
    assert torch.allclose(out.unique(), torch.tensor([0.0, 1 / 0.75]))
    assert out.mean().item() == pytest.approx(1.0, abs=0.01)
    drop.eval()
    assert torch.equal(drop(torch.ones(5)), torch.ones(5))

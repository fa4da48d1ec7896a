"""A forward and a backward pass through every model, with the layer options that change its shape."""

import itertools

import pytest
import torch

import dlkit.plan  # noqa: F401
from dlkit.models.parts import LayerParts
from dlkit.registry import registry

IMAGES = (1, 8, 8)
MODELS = [("mlp", IMAGES, {}), ("lenet5", (1, 32, 32), {}), ("resnet", IMAGES, {})]
VARIANTS = list(itertools.product(["none", "batch", "layer"], ["none", "identity"], ["none", "inverted"]))


def parts(norm="none", residual="none", dropout="none", activation="relu"):
    drop = {"name": dropout} if dropout == "none" else {"name": dropout, "p": 0.3}
    return LayerParts.from_configs(
        activation={"name": activation}, norm={"name": norm}, dropout=drop, residual={"name": residual}
    )


@pytest.mark.parametrize("model,shape,params", MODELS)
@pytest.mark.parametrize("norm,residual,dropout", VARIANTS)
def test_forward_and_backward(model, shape, params, norm, residual, dropout):
    torch.manual_seed(0)
    net = registry("model").build(
        {"name": model, **params}, input_shape=shape, output_shape=(10,), parts=parts(norm, residual, dropout)
    )
    x = torch.randn(4, *shape)
    out = net(x)
    assert out.shape == (4, 10)
    out.sum().backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_residual_off_is_the_same_network_without_the_skips():
    def names(residual):
        net = registry("model").build(
            {"name": "resnet"}, input_shape=IMAGES, output_shape=(10,), parts=parts(residual=residual)
        )
        return {n for n, _ in net.named_parameters()}

    with_skips, plain = names("identity"), names("none")
    assert plain < with_skips
    assert all(".skip." in n for n in with_skips - plain)  # only the projection skips are extra


def test_skip_adds_the_input():
    from dlkit.components.residual import Residual

    body = torch.nn.Linear(3, 3)
    x = torch.randn(2, 3)
    assert torch.allclose(Residual(body, torch.nn.Identity())(x), body(x) + x)
    assert torch.allclose(Residual(body, None)(x), body(x))


def test_mlp_layers_follow_the_config():
    net = registry("model").build(
        {"name": "mlp", "hidden": [7, 5]}, input_shape=IMAGES, output_shape=(3,), parts=parts()
    )
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(64, 7), (7, 5), (5, 3)]


def test_lenet5_has_the_chapters_shape():
    net = registry("model").build({"name": "lenet5"}, input_shape=(1, 32, 32), output_shape=(10,), parts=parts())
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [(1, 6, (5, 5)), (6, 16, (5, 5))]
    assert [(m.in_features, m.out_features) for m in linears] == [(400, 120), (120, 84), (84, 10)]


def test_the_single_neuron_and_the_single_layer_are_the_smallest_mlps():
    import dlkit
    from dlkit.build import build

    neuron = build(
        dlkit.plan_for(["task=binary", "data=moons", "loss=bce", "model.hidden=[]", "data.limit=8"])
    ).task.model
    linears = [m for m in neuron.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(2, 1)]  # h = f(wᵀx + b), f = σ in the loss
    x = torch.randn(5, 2)
    assert torch.allclose(neuron(x), x @ linears[0].weight[0] + linears[0].bias)
    layer = build(dlkit.plan_for(["model.hidden=[]", "data.limit=8"])).task.model
    assert [(m.in_features, m.out_features) for m in layer.modules() if isinstance(m, torch.nn.Linear)] == [
        (64, 10)
    ]  # a = Wx + b

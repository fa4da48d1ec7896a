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


def rnn(shape, output=(10,), activation="tanh", **params):
    return registry("model").build(
        {"name": "rnn", **params}, input_shape=shape, output_shape=output, parts=parts(activation=activation)
    )


def test_rnn_reads_signals_images_and_tokens_and_trains():
    torch.manual_seed(0)
    signals = rnn((1, 40), hidden=6, bidirectional=True)  # MNIST-1D's GRU baseline
    # a GRU layer: 3 gates of W (hidden × inputs), U (hidden × hidden) and two biases, per direction
    gru = 2 * 3 * (6 * 1 + 6 * 6 + 2 * 6)
    assert sum(p.numel() for p in signals.parameters()) == gru + (40 * 12 * 10 + 10)  # + one linear on all outputs
    out = signals(torch.randn(4, 1, 40))
    assert out.shape == (4, 10)
    out.sum().backward()
    assert all(p.grad is not None for p in signals.parameters())
    assert rnn(IMAGES, cell="lstm", hidden=5)(torch.randn(3, *IMAGES)).shape == (3, 10)  # 8 rows of 8
    tokens = rnn((8,), output=(8, 10), input_vocab=10, embed_dim=4)  # the sequence task: one output per step
    assert tokens(torch.randint(0, 10, (2, 8))).shape == (2, 8, 10)
    plain = rnn((1, 40), cell="rnn", activation="relu")
    assert plain.layer.nonlinearity == "relu"


@pytest.mark.parametrize(
    "options,message",
    [
        ({"activation": "relu"}, "with cell=gru: activation=relu cannot apply"),
        ({"activation": "sigmoid", "cell": "rnn"}, "a rnn's is tanh or relu"),
        ({"cell": "gruu"}, "cell 'gruu' is unknown; did you mean 'gru'?"),
        ({"shape": (2,)}, "rnn reads sequences"),
        ({"output": (5, 10), "shape": (1, 40)}, "rnn gives one output per input step (40)"),
    ],
)
def test_rnn_rejects_what_means_nothing_for_recurrent_layers(options, message):
    from dlkit.errors import ConfigError

    shape, output = options.pop("shape", (1, 40)), options.pop("output", (10,))
    activation = options.pop("activation", "tanh")
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        rnn(shape, output=output, activation=activation, **options)


@pytest.mark.parametrize(
    "norm,residual,dropout,message",
    [
        ("batch", "none", "none", "norm=batch has no place in a recurrent layer"),
        ("none", "identity", "none", "residual=identity has no place"),
        ("none", "none", "chapter", "dropout=chapter is for feed-forward layers"),
        ("none", "none", "inverted", "set model.layers=2 or more"),
    ],
)
def test_rnn_rejects_layer_options_it_cannot_apply(norm, residual, dropout, message):
    from dlkit.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        registry("model").build(
            {"name": "rnn"}, input_shape=(1, 40), output_shape=(10,), parts=parts(norm, residual, dropout, "tanh")
        )
    if dropout == "inverted":  # between two stacked layers it applies
        net = registry("model").build(
            {"name": "rnn", "layers": 2},
            input_shape=(1, 40),
            output_shape=(10,),
            parts=parts(dropout="inverted", activation="tanh"),
        )
        assert net.layer.dropout == 0.3


@pytest.mark.parametrize("model,shape,params", [("cnn", IMAGES, {}), ("lenet5", (1, 32, 32), {"pool": "avg"})])
def test_average_pooling_is_chosen_and_halves_the_size(model, shape, params):
    blocks = {"blocks": [{"channels": 2, "kernel": 3, "padding": 1, "pool": "avg"}]} if model == "cnn" else {}
    net = registry("model").build(
        {"name": model, **params, **blocks}, input_shape=shape, output_shape=(10,), parts=parts()
    )
    pools = [m for m in net.modules() if isinstance(m, (torch.nn.AvgPool2d, torch.nn.MaxPool2d))]
    assert pools and all(isinstance(m, torch.nn.AvgPool2d) for m in pools)
    x = torch.zeros(1, *shape)
    x[..., 0, 0] = 4.0  # one corner: a 2×2 average gives 1.0 there, a max would give 4.0
    assert pools[0](x)[..., 0, 0].item() == pytest.approx(1.0)

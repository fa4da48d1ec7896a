"""Every component against the chapter's formula, on numbers worked out by hand in the comments."""

import math
import re

import pytest
import torch
from torch import nn

import dlkit.plan  # noqa: F401  (registers the built-ins)
from dlkit.errors import ConfigError
from dlkit.models.conv import output_size
from dlkit.registry import registry


def build(kind, name, **params):
    return registry(kind).build({"name": name, **params.pop("cfg", {})}, **params)


# --- activations ---------------------------------------------------------------------------------
def test_activations_match_their_formulas():
    x = torch.tensor([-2.0, 0.0, 1.0])
    e = math.e
    assert torch.allclose(build("activation", "sigmoid")(x), torch.tensor([1 / (1 + e**2), 0.5, 1 / (1 + e**-1)]))
    tanh = lambda v: (e**v - e**-v) / (e**v + e**-v)  # noqa: E731
    assert torch.allclose(build("activation", "tanh")(x), torch.tensor([tanh(-2), 0.0, tanh(1)]))
    assert torch.equal(build("activation", "relu")(x), torch.tensor([0.0, 0.0, 1.0]))  # max(0, x)
    leaky = registry("activation").build({"name": "leaky_relu", "negative_slope": 0.1})
    assert torch.allclose(leaky(x), torch.tensor([-0.2, 0.0, 1.0]))
    # GELU(x) = x·Φ(x), Φ the standard normal CDF: Φ(1) = 0.841345, Φ(−2) = 0.022750
    assert torch.allclose(build("activation", "gelu")(x), torch.tensor([-2 * 0.0227501, 0.0, 0.8413447]), atol=1e-6)
    assert torch.equal(build("activation", "identity")(x), x)


def test_without_activation_a_deep_mlp_is_one_affine_map():
    from dlkit.models.parts import LayerParts

    parts = LayerParts.from_configs(
        activation={"name": "identity"}, norm={"name": "none"}, dropout={"name": "none"}, residual={"name": "none"}
    )
    net = registry("model").build(
        {"name": "mlp", "hidden": [16, 16, 16]}, input_shape=(4,), output_shape=(3,), parts=parts
    )
    x, y = torch.randn(4), torch.randn(4)
    f = lambda v: net(v[None])[0]  # noqa: E731
    zero = f(torch.zeros(4))
    # affine: f(2x − 3y) = 2f(x) − 3f(y) + 2f(0)   (since 2 − 3 + 2 = 1)
    assert torch.allclose(f(2 * x - 3 * y), 2 * f(x) - 3 * f(y) + 2 * zero, atol=1e-5)


# --- convolution and pooling ---------------------------------------------------------------------
def plain_parts():
    """dlkit's layer options with nothing around the convolution: identity activation, no norm, no dropout."""
    from dlkit.models.parts import LayerParts

    none = {"name": "none"}
    return LayerParts.from_configs(activation={"name": "identity"}, norm=none, dropout=none, residual=none)


def conv_layers(block: dict, size: int) -> tuple[nn.Sequential, int]:
    """A block as dlkit's cnn builds it from its config (conv → norm → activation → dropout → pool)."""
    from dlkit.models.conv import conv_block

    layers, _, size = conv_block(plain_parts(), 2, 1, size, block, "cnn", 1)
    return nn.Sequential(*layers), size


def test_the_chapters_convolution_example_gives_zero():
    # (−1)×1 + 0×0 + 1×2 + (−1)×5 + 0×4 + 1×2 + (−1)×3 + 0×4 + 1×5 = 0
    patch = torch.tensor([[1.0, 0, 2], [5, 4, 2], [3, 4, 5]]).view(1, 1, 3, 3)
    block, size = conv_layers({"channels": 1, "kernel": 3, "bias": False}, 3)
    (conv,) = [m for m in block if isinstance(m, nn.Conv2d)]
    conv.weight.data = torch.tensor([[-1.0, 0, 1]] * 3).view(1, 1, 3, 3)
    assert size == 1 and block(patch).item() == 0.0
    # The same kernel slid with stride 1 over a 4×4 input: (4 − 3)/1 + 1 = 2 outputs a side, each by hand
    x = torch.tensor([[1.0, 0, 2, 1], [5, 4, 2, 0], [3, 4, 5, 2], [0, 1, 0, 3]]).view(1, 1, 4, 4)
    block, size = conv_layers({"channels": 1, "kernel": 3, "bias": False}, 4)
    block[0].weight.data = conv.weight.data
    # top-left 0 (above); top-right: −(0+4+4) + (1+0+2) = −5; bottom-left: −(5+3+0) + (2+5+0) = −1;
    # bottom-right: −(4+4+1) + (0+2+3) = −4
    assert size == 2 and block(x).view(-1).tolist() == [0.0, -5.0, -1.0, -4.0]


def test_output_size_is_the_chapters_formula():
    assert output_size(32, 5, layer="c") == 28  # (32 − 5 + 0)/1 + 1
    assert output_size(28, 2, 2, layer="p") == 14  # (28 − 2)/2 + 1
    assert output_size(7, 3, 2, 1, layer="c") == 4  # (7 − 3 + 2)/2 + 1
    assert output_size(5, 5, layer="c") == 1
    with pytest.raises(
        ConfigError, match=r"c: output size \(input 2 − kernel 5 \+ 2·padding 0\) / stride 1 \+ 1 = -2 is below 1"
    ):
        output_size(2, 5, layer="c")
    with pytest.raises(
        ConfigError, match=r"output size \(input 8 − kernel 3 \+ 2·padding 1\) / stride 2 \+ 1 = 4.5 is not whole"
    ):
        output_size(8, 3, 2, 1, layer="c")


def test_a_size_that_is_not_whole_names_what_would_mend_it_or_rounds_down_on_request():
    # 8 − 3 = 5 is odd and 2·padding even: no padding mends it with stride 2; a kernel of 4 or 2, or stride 1, does
    with pytest.raises(ConfigError, match=r"use a kernel of 4 or 2 or stride 1 \(no padding can: input − kernel = 5"):
        output_size(8, 3, 2, 1, layer="c")
    with pytest.raises(ConfigError, match=r"= 2.5 is not whole; use padding 1 or stride 2;"):  # (9 − 3)/4 + 1
        output_size(9, 3, 4, layer="c")
    assert (9 - 3 + 2 * 1) % 4 == 0  # padding 1 is whole: (9 − 3 + 2)/4 + 1 = 3
    # MNIST-1D's published CNN: kernel 5, stride 2, padding 1 on length 40 is 19.5; PyTorch uses 19
    notes: list[str] = []
    assert output_size(40, 5, 2, 1, layer="c", rounding="floor", notes=notes) == 19
    assert nn.Conv1d(1, 1, 5, stride=2, padding=1)(torch.zeros(1, 1, 40)).shape[-1] == 19
    assert notes == ["c: (input 40 − kernel 5 + 2·padding 1) / stride 2 + 1 = 19.5, rounded down to 19"]
    assert output_size(28, 2, 2, layer="p", rounding="floor", notes=notes) == 14 and len(notes) == 1  # whole: no note


@pytest.mark.parametrize("pool, expected", [("max", [4.0, 8, 4, 1]), ("avg", [2.5, 6.5, 1.0, 1.0])])
def test_max_and_average_pooling_by_hand(pool, expected):
    """The pool a block's config names (pool_kernel 2, its stride the kernel's by default), after a 1×1 conv of
    weight 1: each output is the max (or mean) of one 2×2 window."""
    x = torch.tensor([[1.0, 2, 5, 6], [3, 4, 7, 8], [0, 0, 1, 1], [0, 4, 1, 1]]).view(1, 1, 4, 4)
    block, size = conv_layers({"channels": 1, "kernel": 1, "bias": False, "pool": pool}, 4)
    block[0].weight.data.fill_(1.0)
    assert size == 2 and block(x).view(-1).tolist() == expected


# --- norms, dropout, residual --------------------------------------------------------------------
def test_batch_norm_is_gamma_times_standardized_plus_beta():
    bn = build("norm", "batch", num_features=1, dim=1, cfg={"eps": 1e-12})
    bn.weight.data.fill_(2.0)  # γ
    bn.bias.data.fill_(0.5)  # β
    x = torch.tensor([[1.0], [3.0]])  # μ = 2, σ = 1 over the batch
    assert torch.allclose(bn(x), torch.tensor([[2 * -1 + 0.5], [2 * 1 + 0.5]]))


def test_layer_norm_standardizes_each_sample():
    ln = build("norm", "layer", num_features=2, dim=1, cfg={"eps": 1e-12})
    assert torch.allclose(ln(torch.tensor([[1.0, 3.0], [10.0, 0.0]])), torch.tensor([[-1.0, 1.0], [1.0, -1.0]]))


@pytest.mark.parametrize("form", ["inverted", "chapter"])
def test_both_dropout_forms_keep_the_expected_activation(form):
    torch.manual_seed(0)
    p = 0.25
    drop = build("dropout", form, cfg={"p": p})
    train_out = drop(torch.ones(400_000))
    kept = train_out[train_out != 0]
    assert (train_out == 0).float().mean().item() == pytest.approx(p, abs=0.005)
    # inverted scales the kept units by 1/(1 − p) in training; the chapter's leaves them as they are
    assert torch.allclose(kept, torch.full_like(kept, 1 / (1 - p) if form == "inverted" else 1.0))
    drop.eval()
    test_out = drop(torch.ones(3))
    # Chapter: × (1 − p) at test.
    assert torch.allclose(test_out, torch.full((3,), 1.0 if form == "inverted" else 1 - p))
    assert train_out.mean().item() == pytest.approx(test_out[0].item(), abs=0.005)  # expectation kept


def test_the_chapters_dropout_drops_half_by_default():
    from dlkit.components.dropout import ChapterDropout

    assert torch.equal(ChapterDropout().eval()(torch.ones(2)), torch.tensor([0.5, 0.5]))  # × (1 − 0.5) at test


def test_dropout_p_out_of_range_is_rejected():
    with pytest.raises(ConfigError, match=r"dropout.p must be a number in \[0, 1\), got 1.0"):
        build("dropout", "chapter", cfg={"p": 1.0})


def test_skip_is_identity_where_shapes_match_and_a_projection_where_not():
    from dlkit.components.residual import Residual

    assert isinstance(build("residual", "identity", in_features=4, out_features=4, dim=1), nn.Identity)
    assert isinstance(build("residual", "identity", in_features=4, out_features=6, dim=1), nn.Linear)
    projection = build("residual", "identity", in_features=4, out_features=8, dim=2, stride=2)
    assert isinstance(projection, nn.Conv2d) and projection.kernel_size == (1, 1) and projection.stride == (2, 2)
    assert build("residual", "none", in_features=4, out_features=4, dim=1) is None
    body = nn.Linear(3, 3)
    x = torch.randn(2, 3)
    assert torch.allclose(Residual(body, nn.Identity())(x), body(x) + x)


# --- losses --------------------------------------------------------------------------------------
def loss(name, output, **cfg):
    return registry("loss").build({"name": name, **cfg}, output=output)


def test_mse_and_mae_on_values():
    y_hat, y = torch.tensor([1.0, 2.0, 4.0]), torch.tensor([0.0, 4.0, 4.0])
    assert loss("mse", "identity")(y_hat, y).item() == pytest.approx((1 + 4 + 0) / 3)
    assert loss("mae", "identity")(y_hat, y).item() == pytest.approx((1 + 2 + 0) / 3)


def test_mse_on_class_labels_compares_softmax_with_one_hot():
    # equal logits → softmax [0.5, 0.5]; label 0 → one-hot [1, 0]: ((0.5)² + (0.5)²)/2
    assert loss("mse", "softmax")(torch.tensor([[0.0, 0.0]]), torch.tensor([0])).item() == pytest.approx(0.25)


def test_predictions_put_outputs_and_targets_in_one_space_of_the_outputs_dtype():
    from dlkit.components.losses import predictions

    logits = torch.zeros(2, 3, dtype=torch.float64)
    y_hat, y = predictions(logits, torch.tensor([0, 0]), "softmax")  # one-hot as wide as the classes, not the labels
    assert torch.equal(y, torch.tensor([[1.0, 0, 0], [1, 0, 0]], dtype=torch.float64)) and y_hat[0, 0] == 1 / 3
    assert y.dtype == torch.float64
    y_hat, y = predictions(torch.tensor([0.0, 2.0], dtype=torch.float64), torch.tensor([1, 0]), "sigmoid")
    assert y_hat.tolist() == [0.5, 1 / (1 + math.exp(-2))] and y.dtype == torch.float64 and y.tolist() == [1, 0]
    y_hat, y = predictions(torch.tensor([0.5], dtype=torch.float64), torch.tensor([2]), "identity")
    assert y_hat.tolist() == [0.5] and y.dtype == torch.float64
    # MSE on a sigmoid output: (σ(0) − 1)² = 0.25
    assert loss("mse", "sigmoid")(torch.tensor([0.0]), torch.tensor([1])).item() == pytest.approx(0.25)


def test_binary_cross_entropy_by_hand():
    # z = 0 → ŷ = 0.5, y = 1: −log 0.5;  z = ln 3 → ŷ = 0.75, y = 0: −log 0.25
    z, y = torch.tensor([0.0, math.log(3)]), torch.tensor([1.0, 0.0])
    assert loss("bce", "sigmoid")(z, y).item() == pytest.approx((math.log(2) + math.log(4)) / 2, rel=1e-6)
    # Labels as integers, as a data set may hold them: the same loss.
    assert loss("bce", "sigmoid")(z, torch.tensor([1, 0])).item() == pytest.approx((math.log(2) + math.log(4)) / 2)


def test_cross_entropy_is_minus_log_softmax_of_the_label():
    logits = torch.tensor([[1.0, 2.0, 3.0]])
    expected = -math.log(math.exp(3) / (math.exp(1) + math.exp(2) + math.exp(3)))  # label 2
    assert loss("cross_entropy", "softmax")(logits, torch.tensor([2])).item() == pytest.approx(expected, rel=1e-6)


def test_sequence_cross_entropy_averages_each_sequence_over_its_own_steps():
    # vocabulary 2; zero logits give log 0.5 at every step; sequence 1 has 1 real step, sequence 2 has 2.
    # seq 1: the step's logits favour the right token: −log(e²/(e²+1)); seq 2: −log 0.5 at each step.
    logits = torch.zeros(2, 3, 2)
    logits[0, 0] = torch.tensor([0.0, 2.0])
    target = torch.tensor([[1, 0, 0], [1, 1, 0]])  # 0 pads
    seq1 = -math.log(math.exp(2) / (math.exp(2) + 1))
    seq2 = (math.log(2) + math.log(2)) / 2
    value = loss("sequence_cross_entropy", "sequence")(logits, target).item()
    assert value == pytest.approx((seq1 + seq2) / 2, rel=1e-6)


def test_focal_loss_by_hand_and_gamma_zero_is_cross_entropy():
    # binary: z = ln 3 → p = 0.75; y = 1 → ŷₜ = 0.75: −(0.25)² log 0.75; y = 0 → ŷₜ = 0.25: −(0.75)² log 0.25
    z, y = torch.tensor([math.log(3), math.log(3)]), torch.tensor([1.0, 0.0])
    expected = (-(0.25**2) * math.log(0.75) - (0.75**2) * math.log(0.25)) / 2
    assert loss("focal", "sigmoid", gamma=2.0)(z, y).item() == pytest.approx(expected, rel=1e-6)
    assert loss("focal", "sigmoid")(z, y).item() == pytest.approx(expected, rel=1e-6)  # γ = 2 by default (Lin et al.)
    assert loss("focal", "sigmoid")(z, torch.tensor([1, 0])).item() == pytest.approx(expected, rel=1e-6)  # int labels
    logits, labels = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 0, 1])
    assert loss("focal", "softmax", gamma=0.0)(logits, labels).item() == pytest.approx(
        loss("cross_entropy", "softmax")(logits, labels).item(), rel=1e-6
    )
    assert loss("focal", "sigmoid", gamma=0.0)(z, y).item() == pytest.approx(
        loss("bce", "sigmoid")(z, y).item(), rel=1e-6
    )
    # softmax, γ = 2: logits (ln 3, 0) → p = (0.75, 0.25); class 0: −(0.25)² log 0.75; class 1: −(0.75)² log 0.25
    two = torch.tensor([[math.log(3), 0.0], [math.log(3), 0.0]])
    assert loss("focal", "softmax", gamma=2.0)(two, torch.tensor([0, 1])).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    "name,output,message",
    [
        (
            "bce",
            "softmax",
            "loss 'bce' does not fit a classification task (softmax output); it serves: binary (task=binary).",
        ),
        ("mse", "sequence", "loss 'mse' does not fit a seq2seq task"),
        ("cross_entropy", "identity", "loss 'cross_entropy' does not fit a regression task"),
        (
            "focal",
            "identity",
            "loss 'focal' does not fit a regression task (identity output);"
            " it serves: classification (task=classification), binary (task=binary).",
        ),
        ("sequence_cross_entropy", "softmax", "loss 'sequence_cross_entropy' does not fit a classification task"),
        ("bce", "ranking", "loss 'bce' does not fit a ranking task (ranking output)"),  # a plugin task's own output
    ],
)
def test_a_loss_that_cannot_serve_the_task_is_rejected(name, output, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        loss(name, output)


# --- optimizers and schedulers -------------------------------------------------------------------
def steps(name, count, **cfg):
    """θ after `count` steps on J(θ) = θ²/2 (so ∇J = θ) from θ₀ = 1."""
    theta = nn.Parameter(torch.tensor([1.0]))
    opt = registry("optimizer").build({"name": name, **cfg}, params=[theta])
    values = []
    for _ in range(count):
        opt.zero_grad()
        (theta**2 / 2).sum().backward()
        opt.step()
        values.append(theta.item())
    return values


@pytest.mark.parametrize("name", ["gd", "sgd", "minibatch"])
def test_gradient_descent_variants_step_theta_minus_alpha_grad(name):
    assert steps(name, 2, lr=0.5) == pytest.approx([0.5, 0.25])  # θ = θ − 0.5θ


def test_plain_gradient_descent_applies_weight_decay_and_the_chapters_momentum_defaults_to_beta_point_nine():
    # weight decay λ adds λθ to the gradient: θ = 1 − 0.5·(1 + 0.2·1) = 0.4
    assert steps("sgd", 1, lr=0.5, weight_decay=0.2) == pytest.approx([0.4])
    from dlkit.components.optimizers import ChapterMomentum

    assert ChapterMomentum([torch.zeros(1, requires_grad=True)], lr=0.1).defaults["beta"] == 0.9


def test_chapter_momentum_two_steps_by_hand():
    # α = 0.5, β = 0.9. step 1: v = 0.1·1 = 0.1, θ = 1 − 0.05 = 0.95
    # step 2: v = 0.9·0.1 + 0.1·0.95 = 0.185, θ = 0.95 − 0.0925 = 0.8575
    assert steps("momentum", 2, lr=0.5, beta=0.9) == pytest.approx([0.95, 0.8575], abs=1e-6)


def test_heavy_ball_and_nesterov_are_pytorchs_forms():
    # heavy ball: v = 0.9v + g. step 1: v = 1, θ = 0.5; step 2: v = 0.9 + 0.5 = 1.4, θ = 0.5 − 0.7 = −0.2
    assert steps("heavy_ball", 2, lr=0.5, momentum=0.9) == pytest.approx([0.5, -0.2], abs=1e-6)
    # nesterov: v = 0.9v + g, step along g + 0.9v. step 1: v = 1, θ = 1 − 0.5·1.9 = 0.05
    assert steps("nesterov", 1, lr=0.5, momentum=0.9) == pytest.approx([0.05], abs=1e-6)


def test_adaptive_optimizers_first_step_by_hand():
    # adagrad: θ − α g / √(g²) = 1 − 0.1
    assert steps("adagrad", 1, lr=0.1) == pytest.approx([0.9], abs=1e-6)
    # rmsprop: s = (1 − 0.99)·g² = 0.01; θ − α g / √s = 1 − 0.001·1/0.1
    assert steps("rmsprop", 1, lr=0.001, alpha=0.99) == pytest.approx([0.99], abs=1e-5)
    # adam, bias-corrected: m̂ = g, v̂ = g²: θ − α = 1 − 0.1
    assert steps("adam", 1, lr=0.1) == pytest.approx([0.9], abs=1e-6)
    # adamw: decay first, θ(1 − α·λ) − α = 1·(1 − 0.1·0.5) − 0.1
    assert steps("adamw", 1, lr=0.1, weight_decay=0.5) == pytest.approx([0.85], abs=1e-6)


def test_schedulers_change_the_learning_rate_per_epoch():
    def lrs(name, epochs, **cfg):
        opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
        sched = registry("scheduler").build({"name": name, **cfg}, optimizer=opt, max_epochs=epochs)
        seen = []
        for _ in range(epochs):
            seen.append(opt.param_groups[0]["lr"])
            opt.step()
            if sched is not None:
                sched.step()
        return seen

    assert lrs("none", 3) == [1.0, 1.0, 1.0]
    assert lrs("step", 4, step_size=2, gamma=0.5) == pytest.approx([1.0, 1.0, 0.5, 0.5])
    # cosine: α_t = ½(1 + cos(πt/T)) over T = 4 epochs
    assert lrs("cosine", 4) == pytest.approx([0.5 * (1 + math.cos(math.pi * t / 4)) for t in range(4)])


def test_label_smoothing_by_hand():
    # two classes, logits (ln 3, 0) → p = (0.75, 0.25); smoothing ε = 0.2 spreads ε/2 to each class:
    # target (0.9, 0.1) → −(0.9 log 0.75 + 0.1 log 0.25)
    logits, labels = torch.tensor([[math.log(3), 0.0]]), torch.tensor([0])
    expected = -(0.9 * math.log(0.75) + 0.1 * math.log(0.25))
    assert loss("cross_entropy", "softmax", label_smoothing=0.2)(logits, labels).item() == pytest.approx(expected)
    assert loss("cross_entropy", "softmax")(logits, labels).item() == pytest.approx(-math.log(0.75))


def test_the_cosine_schedule_ends_at_min_lr_by_hand():
    from dlkit.registry import registry

    weight = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    schedule = registry("scheduler").build({"name": "cosine", "min_lr": 0.02}, optimizer=optimizer, max_epochs=4)
    rates = []
    for _ in range(4):
        optimizer.step()
        schedule.step()
        rates.append(optimizer.param_groups[0]["lr"])
    # α_t = min + (α₀ − min)(1 + cos(πt/T))/2 for t = 1..4, T = 4
    expected = [0.02 + 0.08 * (1 + math.cos(math.pi * t / 4)) / 2 for t in range(1, 5)]
    assert rates == pytest.approx(expected) and rates[-1] == pytest.approx(0.02)

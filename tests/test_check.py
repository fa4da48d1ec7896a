"""`dlkit check`: shapes and parameters per layer, one real forward/backward, plugin gradient checks."""

import textwrap

import pytest

import dlkit
from conftest import REPO, dlkit_cli
from dlkit.check import check
from dlkit.errors import ConfigError
from idx_files import write_mnist

MODELS = sorted(p.stem for p in (REPO / "conf" / "model").glob("*.yaml"))
DATA = sorted(p.stem for p in (REPO / "conf" / "data").glob("*.yaml"))

BAD_PLUGIN = textwrap.dedent(
    """
    import torch
    from torch import nn
    from dlkit.registry import register


    class WrongBackward(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x.clamp(min=0)

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return grad * 2.0  # wrong: ReLU's derivative is 0 or 1


    @register("activation", "bad_relu")
    class BadReLU(nn.Module):
        def forward(self, x):
            return WrongBackward.apply(x)


    @register("activation", "good_softplus")
    class GoodSoftplus(nn.Module):
        def forward(self, x):
            return torch.log1p(torch.exp(x))
    """
)


def test_check_lists_layers_with_shapes_and_parameters():
    report = check(dlkit.plan_for(["model=lenet5", "data.limit=16"]))
    lines = report.splitlines()
    assert lines[0].startswith("model 'lenet5' on data 'digits' (inputs (1, 32, 32), 10 classes)")
    assert any("Conv2d" in line and "(16, 6, 28, 28)" in line and "156" in line for line in lines)  # 6·(5·5·1) + 6
    assert any("MaxPool2d" in line and "(16, 16, 5, 5)" in line for line in lines)
    assert any("Linear" in line and "(16, 120)" in line and "48,120" in line for line in lines)  # 400·120 + 120
    assert "total parameters: 61,706" in report  # 156 + 2,416 + 48,120 + 10,164 + 850
    assert "forward and backward on a batch of 16" in report and "every parameter gets a gradient" in report


def test_check_verifies_a_plugins_gradients_numerically(tmp_path):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "acts.py").write_text(BAD_PLUGIN)
    good = dlkit_cli("check", "activation.name=good_softplus", "data.limit=8", cwd=tmp_path)
    assert good.returncode == 0, good.stderr
    assert "activation 'good_softplus' (plugins/acts.py): gradients match numerical differentiation" in good.stdout
    bad = dlkit_cli("check", "activation.name=bad_relu", "data.limit=8", cwd=tmp_path)
    assert bad.returncode == 2
    assert "activation 'bad_relu' (plugins/acts.py): its backward does not match numerical gradients" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_check_names_each_size_rounded_down_when_asked_and_rejects_it_otherwise():
    from conftest import dlkit_cli

    blocks = "model.blocks=[{channels: 8, kernel: 5, stride: 2, padding: 1}]"
    exact = dlkit_cli("check", "data=mnist1d", "model=cnn", blocks)
    assert (
        exact.returncode == 2 and "= 19.5 is not whole" in exact.stderr and "model.size_rounding=floor" in exact.stderr
    )
    floor = dlkit_cli("check", "data=mnist1d", "model=cnn", blocks, "model.size_rounding=floor")
    assert floor.returncode == 0, floor.stderr[-2000:]
    assert (
        "size rounded down (model.size_rounding=floor): cnn conv1: (input 40 − kernel 5 + 2·padding 1)" in floor.stdout
    )
    assert "(32, 8, 19)" in floor.stdout  # the conv's output, as PyTorch computes it


@pytest.mark.parametrize("data", DATA)
@pytest.mark.parametrize("model", [*MODELS, "rnn model.cell=lstm", "rnn model.cell=rnn"])
def test_check_passes_every_model_on_every_data_set_it_accepts(model, data, tmp_path_factory):
    """Each pair either checks through (every layer's row, one forward and backward) or is refused with a
    ConfigError that names why; never another exception (a recurrent layer's (outputs, state) broke the table)."""
    overrides = [*f"model={model}".split(), f"data={data}", "data.limit=8", "tracking=none"]
    if data in ("mnist", "fashion_mnist"):
        overrides.append(f"data.root={write_mnist(tmp_path_factory.mktemp('idx') / data)}")
    try:
        report = check(dlkit.plan_for(overrides))
    except ConfigError as refused:
        assert str(refused) and "\n" not in str(refused).strip()
        return
    assert "forward and backward on a batch of 8" in report
    if model.startswith("rnn") and data == "mnist1d":
        assert "(8, 40, 64)" in report  # the recurrent layer's outputs: (batch, steps, hidden)

import pytest
from torch import nn

from dlkit.errors import ConfigError
from dlkit.registry import Registry, register, registry
import dlkit.build  # noqa: F401  (registers the built-ins)


def test_unknown_name_names_the_kind_suggests_and_lists():
    with pytest.raises(ConfigError) as err:
        registry("activation").get("relux")
    message = str(err.value)
    assert message.startswith("activation 'relux' is unknown; did you mean 'relu'")
    for name in ("sigmoid", "tanh", "relu"):
        assert name in message.split("available:")[1]
    assert "\n" not in message


def test_unknown_name_without_close_match_still_lists_what_exists():
    with pytest.raises(ConfigError, match=r"optimizer 'zzz' is unknown; available: .*adam.*sgd"):
        registry("optimizer").get("zzz")


def test_unknown_kind():
    with pytest.raises(ConfigError, match="registry kind 'activations' is unknown; did you mean 'activation'"):
        registry("activations")


def test_build_passes_yaml_params_and_rejects_a_misspelled_one():
    act = registry("activation").build({"name": "leaky_relu", "negative_slope": 0.2})
    assert isinstance(act, nn.LeakyReLU) and act.negative_slope == 0.2
    with pytest.raises(ConfigError, match="activation 'leaky_relu' has no parameter 'negative_slop'; did you mean 'negative_slope'"):
        registry("activation").build({"name": "leaky_relu", "negative_slop": 0.2})


def test_build_needs_a_name():
    with pytest.raises(ConfigError, match="the loss config has no 'name' key"):
        registry("loss").build({"reduction": "mean"})


def test_partial_checks_params_now_and_binds_the_rest_later():
    make = registry("optimizer").partial({"name": "sgd", "lr": 0.5})
    opt = make(nn.Linear(2, 1).parameters())
    assert opt.param_groups[0]["lr"] == 0.5
    with pytest.raises(ConfigError, match="has no parameter 'lrr'; did you mean 'lr'"):
        registry("optimizer").partial({"name": "sgd", "lrr": 0.5})


def test_entries_remember_where_they_come_from():
    entries = {e.name: e.source for e in registry("activation").entries()}
    assert entries["relu"] == "dlkit"  # registered by dlkit, though the class is torch's
    assert registry("model").entries()[0].source == "dlkit"


def test_a_name_cannot_be_taken_twice():
    fresh = Registry("activation")
    fresh.register("same")(nn.ReLU)
    with pytest.raises(ConfigError, match="activation 'same' is already registered by"):
        fresh.register("same")(nn.Tanh)

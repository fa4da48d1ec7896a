import pytest
from torch import nn

import dlkit.plan  # noqa: F401  (registers the built-ins)
from dlkit.errors import ConfigError
from dlkit.registry import Registry, registry


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
    with pytest.raises(
        ConfigError, match="activation 'leaky_relu' has no parameter 'negative_slop'; did you mean 'negative_slope'"
    ):
        registry("activation").build({"name": "leaky_relu", "negative_slop": 0.2})


def test_build_needs_a_name():
    with pytest.raises(ConfigError, match="the loss config has no 'name' key"):
        registry("loss").build({"reduction": "mean"})


def test_a_spec_checks_params_now_and_builds_later():
    make = registry("optimizer").spec({"name": "sgd", "lr": 0.5}, context=["params"])
    opt = make(nn.Linear(2, 1).parameters())
    assert opt.param_groups[0]["lr"] == 0.5
    with pytest.raises(ConfigError, match="has no parameter 'lrr'; did you mean 'lr'"):
        registry("optimizer").spec({"name": "sgd", "lrr": 0.5}, context=["params"])
    with pytest.raises(ConfigError, match="optimizer 'sgd': missing a required argument: 'params'"):
        registry("optimizer").spec({"name": "sgd"})  # not in the context: nobody would pass it
    with pytest.raises(ConfigError, match="norm 'batch': 'dim' is set by dlkit and cannot be configured"):
        registry("norm").spec({"name": "batch", "dim": 2}, context=["num_features", "dim"])


def test_a_spec_gives_each_build_its_own_parameters():
    spec = registry("model").spec({"name": "mlp", "hidden": [4]}, context=["input_shape", "output_shape", "parts"])
    spec.params["hidden"].append(99)  # a copy: the spec is not changed through it
    assert spec.params == {"hidden": [4]}
    with pytest.raises(AttributeError):
        spec.name = "cnn"


def test_entries_remember_where_they_come_from():
    entries = {e.name: e.source for e in registry("activation").entries()}
    assert entries["relu"] == "dlkit"  # registered by dlkit, though the class is torch's
    assert registry("model").entries()[0].source == "dlkit"


def test_a_name_cannot_be_taken_twice():
    fresh = Registry("activation")
    fresh.register("same")(nn.ReLU)
    with pytest.raises(ConfigError, match="activation 'same' is already registered by"):
        fresh.register("same")(nn.Tanh)

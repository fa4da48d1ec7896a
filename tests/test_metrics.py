"""The metric language (dlkit/metrics.py) on hand-written expressions: what each is, which way it improves, the curve
that shows it, its value from a run's numbers; and a malformed one, named in one line wherever it is given."""

import math

import pytest

from dlkit import config
from dlkit.errors import ConfigError
from dlkit.metrics import DIFFERENCE, EPOCHS_TO, LOGGED, Condition, condition, parse
from dlkit.plan import Plan
from dlkit.verdict import Study


def test_a_logged_metric_its_direction_from_its_name_and_its_curve():
    acc = parse("test/acc")
    assert (acc.kind, acc.bases, acc.target) == (LOGGED, ("test/acc",), None)
    assert acc.direction == "higher" and acc.curve_key == "val/acc"  # the test split's once; its curve is val's
    assert parse("train_eval/recall_min").curve_key == "val/recall_min"
    assert parse("train/loss").direction == "lower" and parse("train/loss").curve_key == "train/loss"
    assert parse("val/perplexity").direction == "lower" and parse("test/mse").direction == "lower"
    assert parse("train/epoch_seconds").direction is None  # the name does not say
    assert parse(" val/acc ").text == "val/acc"
    assert acc.of({"test/acc": 0.9, "val/acc": 0.8}) == 0.9 and acc.of({"val/acc": 0.8}) is None


def test_a_difference_of_two_logged_metrics():
    gap = parse("train_eval/acc - test/acc")
    assert (gap.kind, gap.bases) == (DIFFERENCE, ("train_eval/acc", "test/acc"))
    assert gap.direction is None  # a gap may be better smaller or larger: the study says which
    assert gap.curve_key == "val/acc"  # the second term's
    assert gap.of({"train_eval/acc": 1.0, "test/acc": 0.75}) == 0.25
    assert gap.of({"train_eval/acc": 1.0}) is None


def test_epochs_to_a_target_is_the_first_epoch_that_meets_it_or_censored():
    reach = parse("epochs_to:val/acc>=0.9")
    assert (reach.kind, reach.bases, reach.target) == (EPOCHS_TO, ("val/acc",), Condition("val/acc", ">=", 0.9))
    assert reach.direction == "lower" and reach.curve_key == "val/acc"
    history = [(2, 0.93), (0, 0.5), (1, 0.9)]  # (step, value), one step per epoch from 0, in any order
    assert reach.first_epoch(history) == 2.0  # step 1 reaches 0.9: the second epoch
    assert parse("epochs_to:val/acc >= 0.92").first_epoch(history) == 3.0
    assert parse("epochs_to:val/acc>=0.99").first_epoch(history) == math.inf  # never: censored
    assert parse("epochs_to:val/loss<=0.1").first_epoch([(0, 0.3), (1, 0.05)]) == 2.0
    assert reach.of({"val/acc": 0.95}) is None  # from the history, not the final numbers


def test_a_condition_on_any_metric():
    assert condition("train_eval/acc >= 0.95") == Condition("train_eval/acc", ">=", 0.95)
    assert condition("train_eval/acc - test/acc<=1e-1") == Condition("train_eval/acc - test/acc", "<=", 0.1)
    assert condition("val/loss <= 0.5").holds(0.5) and not condition("val/loss <= 0.5").holds(0.51)
    assert condition("val/acc >= 0.5").holds(0.5) and not condition("val/acc >= 0.5").holds(0.49)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "metric is '': name a logged metric or a derived one, e.g. val/acc, "),
        ("val acc", "metric is 'val acc': name a logged metric"),
        ("train_eval/acc - ", "metric is 'train_eval/acc -': name a logged metric"),
        ("a - b - c", "metric is 'a - b - c': a difference is of two logged metrics, e.g. train_eval/acc - test/acc."),
        ("epochs_to:val/acc", "metric is 'epochs_to:val/acc': write an epochs-to target as epochs_to:val/acc>=0.9."),
        ("epochs_to:val/acc>=high", "metric is 'epochs_to:val/acc>=high': its target 'high' is not a number."),
        ("epochs_to:a - b>=1", "metric is 'epochs_to:a - b>=1': write an epochs-to target as"),
    ],
)
def test_a_malformed_expression_is_one_line_naming_it(text, message):
    with pytest.raises(ConfigError) as error:
        parse(text)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_a_malformed_expression_is_named_where_it_was_given():
    with pytest.raises(ConfigError, match=r"^condition is 'val/acc > 0.9': write it as 'metric >= value'"):
        condition("val/acc > 0.9")
    declared = {"name": "s", "factor": "f", "control": "a", "treatment": "b", "direction": "higher"}
    with pytest.raises(ConfigError, match=r"^study.metric is 'epochs_to:val/acc=0.9': write an epochs-to target"):
        Study.declared({**declared, "metric": "epochs_to:val/acc=0.9"})
    with pytest.raises(ConfigError, match=r"^study.trained is 'train_eval/acc 0.95': write it as 'metric >= value'"):
        Study.declared({**declared, "metric": "val/acc", "trained": "train_eval/acc 0.95"})
    with pytest.raises(ConfigError, match=r"^study.guards is 'test acc': name a logged metric"):
        Study.declared({**declared, "metric": "val/acc", "guards": {"test acc": 0.02}})
    with pytest.raises(ConfigError, match=r"^objective is 'val/acc - train/acc': it must be a metric each job logs"):
        Plan.from_config(config.compose(["objective=val/acc - train/acc"]))
    assert Plan.from_config(config.compose(["objective=val/acc"])).objective == "val/acc"

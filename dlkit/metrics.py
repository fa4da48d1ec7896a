"""The metric language: what `dlkit report --metric`, a study's `metric`, `guards` and `trained`, and the config's
`objective` name, parsed in one place.

- a logged metric: `val/acc`, `train_eval/loss`;
- a difference of two logged metrics: `train_eval/acc - test/acc` (the generalization gap);
- the first epoch a logged metric reaches a target: `epochs_to:val/acc>=0.9` (+inf when it never does: censored);
- a condition on a metric: `train_eval/acc >= 0.95` (a study's `trained`).

Which way a metric improves is read from its name: losses and errors are better lower, accuracies higher, epochs to
a target lower; a difference of two metrics does not say.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dlkit.errors import ConfigError

LOGGED, DIFFERENCE, EPOCHS_TO = "logged", "difference", "epochs_to"
LOWER = ("loss", "mse", "mae", "error", "perplexity")  # a logged metric whose name holds one of these: lower is better
HIGHER = ("acc", "recall", "precision", "f1", "r2", "auc")

EPOCH_STAGES = ("train/", "val/")  # the metrics a run logs every epoch; test/* and train_eval/* once, after training
BEST = "best/"  # a run that restores its best epoch (early stopping) logs that epoch's train/* and val/* under it
_NAME = r"[\w./-]+"  # a logged metric's name: val/acc, train_eval/recall_min, grad_norm/model.0
_CONDITION = re.compile(r"^(?P<metric>.+?)\s*(?P<op>>=|<=)\s*(?P<value>\S+)$")
_EXAMPLES = "val/acc, train_eval/acc - test/acc or epochs_to:val/acc>=0.9"


@dataclass(frozen=True)
class Condition:
    """`metric >= value` (or <=)."""

    metric: str
    op: str  # ">=" or "<="
    value: float

    def holds(self, x: float) -> bool:
        return x >= self.value if self.op == ">=" else x <= self.value


@dataclass(frozen=True)
class Metric:
    """A parsed metric expression; `text` is what it is stored and shown under."""

    text: str
    kind: str  # LOGGED, DIFFERENCE or EPOCHS_TO
    bases: tuple[str, ...]  # the logged metrics it is computed from: (text,) for a logged one
    target: Condition | None = None  # EPOCHS_TO's: the condition on bases[0] an epoch must meet

    @property
    def direction(self) -> str | None:
        """'higher' or 'lower': which way the metric improves; None when its name does not say."""
        if self.kind == EPOCHS_TO:
            return "lower"
        if self.kind == DIFFERENCE:
            return None
        name = self.text.rsplit("/", 1)[-1]
        if any(word in name for word in LOWER):
            return "lower"
        if any(word in name for word in HIGHER):
            return "higher"
        return None

    @property
    def curve_key(self) -> str:
        """The per-epoch metric that shows how a run got to this one: val/acc for test/acc, an epochs-to target's
        own metric, the second term's for a difference."""
        if self.kind != LOGGED:
            return parse(self.bases[-1]).curve_key
        stage, _, name = self.text.partition("/")
        return f"val/{name}" if stage in ("test", "train_eval") and name else self.text

    def of(self, logged: Mapping[str, float]) -> float | None:
        """The value from a run's logged (final) metrics; None when one is missing or it needs the history."""
        if self.kind == EPOCHS_TO or any(base not in logged for base in self.bases):
            return None
        return logged[self.text] if self.kind == LOGGED else logged[self.bases[0]] - logged[self.bases[1]]

    def first_epoch(self, history: Sequence[tuple[int, float]]) -> float:
        """EPOCHS_TO's value from its base metric's (step, value) history, one step per epoch: the first epoch
        (counted from 1) that meets the target, or +inf when none does."""
        assert self.target is not None
        reached = [step + 1 for step, value in sorted(history) if self.target.holds(value)]
        return float(reached[0]) if reached else math.inf


def run_outcome(logged: Mapping[str, float]) -> dict[str, float]:
    """A run's logged metrics as its outcome: where it restored its best epoch (early stopping), that epoch's values
    (best/val/loss) in place of the last epoch's (val/loss), as its test metrics and logged model are."""
    return {**logged, **{k[len(BEST) :]: v for k, v in logged.items() if k.startswith(BEST)}}


@functools.lru_cache(maxsize=256)
def parse(text: str, what: str = "metric") -> Metric:
    """The expression `text` names; a malformed one is a ConfigError naming `what` it was given as."""
    text = text.strip()
    if text.startswith("epochs_to:"):
        target = _condition(text[len("epochs_to:") :], what, text)
        if target is None or not re.fullmatch(_NAME, target.metric):
            raise ConfigError(f"{what} is '{text}': write an epochs-to target as epochs_to:val/acc>=0.9.")
        return Metric(text, EPOCHS_TO, (target.metric,), target)
    if " - " in text:
        bases = tuple(part.strip() for part in text.split(" - ", 1))
        if not all(re.fullmatch(_NAME, base) for base in bases):
            raise ConfigError(
                f"{what} is '{text}': a difference is of two logged metrics, e.g. train_eval/acc - test/acc."
            )
        return Metric(text, DIFFERENCE, bases)
    if not re.fullmatch(_NAME, text):
        raise ConfigError(f"{what} is '{text}': name a logged metric or a derived one, e.g. {_EXAMPLES}.")
    return Metric(text, LOGGED, (text,))


def condition(text: str, what: str = "condition") -> Condition:
    """'train_eval/acc >= 0.95' → Condition('train_eval/acc', '>=', 0.95); its metric may be any expression."""
    found = _condition(text.strip(), what, text)
    if found is None:
        raise ConfigError(f"{what} is '{text}': write it as 'metric >= value' or 'metric <= value'.")
    parse(found.metric, what)
    return found


def _condition(text: str, what: str, whole: str) -> Condition | None:
    matched = _CONDITION.match(text)
    if matched is None:
        return None
    try:
        value = float(matched["value"])
    except ValueError:
        raise ConfigError(f"{what} is '{whole}': its target '{matched['value']}' is not a number.") from None
    return Condition(matched["metric"].strip(), matched["op"], value)

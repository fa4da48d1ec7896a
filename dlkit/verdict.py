"""A study's decision: what it claims, which comparisons decide it, what a verdict needs, and the verdicts.

A study (`study:` in conf/study/*.yaml) compares each level of its factor with the control level, its declared
treatment first (the chapter's own form where the chapter defines one), at fixed levels of other swept factors
when it names them (`at`), plus the further comparisons it lists (`compare`). Each comparison gets a verdict of
its own from dlkit/stats.py, the p-values Holm-adjusted over all of them; the study's verdict is the first one.

A verdict needs more than p < 0.05 (Colas et al. 2018; Bouthillier et al. 2021):
- training went far enough: `trained: "train_eval/acc >= 0.95"`, reached by the control's mean, else
  "too short to decide";
- guard metrics the treatment must not worsen beyond a margin: `guards: {test/acc: 0.02}`. Clearly worse (its
  whole 95% interval beyond the margin) is "not supported: test/acc fell by 0.17"; possibly worse, "inconclusive";
- a quick variant (`smoke: true`) is a smoke test of the study: "smoke test, no verdict", whatever its numbers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dlkit.errors import ConfigError, unknown
from dlkit.metrics import condition, parse
from dlkit.stats import ALPHA, Comparison, compare, holm, seeds_for_power
from dlkit.tracking import tags as tag

SMOKE = "smoke test, no verdict"  # what a quick variant's numbers say about the claim
TOO_SHORT = "too short to decide"

REQUIRED = ("name", "factor", "control", "treatment", "metric", "direction")
KEYS = (*REQUIRED, "claim", "smoke", "at", "compare", "trained", "guards")

# A metric's values over the runs of one cell ({factor: level, ...}); ±inf: beyond every number (never reached,
# diverged).
Values = Callable[[str, Mapping[str, str]], list[float]]


@dataclass(frozen=True)
class Arm:
    """One comparison: the runs of one cell against those of another."""

    label: str
    treatment: Mapping[str, str]
    control: Mapping[str, str]


@dataclass(frozen=True)
class Study:
    name: str
    claim: str
    factor: str
    control: str
    treatment: str
    metric: str
    direction: str  # "higher" or "lower": which way of treatment − control supports the claim
    smoke: bool = False  # a quick variant: a smoke test of the study, whose numbers decide nothing
    at: Mapping[str, str] = field(default_factory=dict)  # other swept factors, held at these levels
    compare: tuple[Arm, ...] = ()  # further comparisons, after the factor's levels
    trained: str = ""  # "metric >= value" (or <=): the control's mean must reach it
    guards: Mapping[str, float] = field(default_factory=dict)  # metric: the most the treatment may worsen it

    @classmethod
    def declared(cls, declaration: Mapping[str, Any]) -> Study:
        """A study from its `study:` block (or its tags read back); a mistake in it is a ConfigError."""
        given = {k: v for k, v in declaration.items() if v is not None}
        for key in given:
            if key not in KEYS:
                raise unknown("study key", key, KEYS, " (see conf/study/dropout.yaml for an example)")
        missing = [k for k in REQUIRED if k not in given]
        if missing:
            raise ConfigError(
                f"study {given.get('name', '')}: missing {', '.join(missing)} (required: {', '.join(REQUIRED)})."
            )
        if given["direction"] not in ("higher", "lower"):
            raise ConfigError(
                f"study.direction is '{given['direction']}': it must be higher or lower (which way supports the claim)."
            )
        try:
            compare = tuple(
                Arm(str(a.get("label", "")), _cell(a["treatment"]), _cell(a["control"]))
                for a in given.get("compare", [])
            )
            guards = {str(m): float(margin) for m, margin in given.get("guards", {}).items()}
        except (AttributeError, KeyError, TypeError, ValueError):
            raise ConfigError(
                "study.compare is a list of {label, treatment: {factor: level, ...}, control: {...}} and study.guards"
                " a mapping of metric to margin, e.g. guards: {test/acc: 0.02}."
            ) from None
        for metric, margin in guards.items():
            if parse(metric, "study.guards").direction is None or margin < 0:
                raise ConfigError(
                    f"study.guards: {metric}: {margin:g}: a guard needs a metric whose name says which way is better"
                    " (acc, recall, loss, error, ...) and a margin of 0 or more."
                )
        parse(str(given["metric"]), "study.metric")
        trained = str(given.get("trained", ""))
        if trained:
            condition(trained, "study.trained")
        return cls(
            str(given["name"]),
            str(given.get("claim", "")),
            str(given["factor"]),
            str(given["control"]),
            str(given["treatment"]),
            str(given["metric"]),
            given["direction"],
            str(given.get("smoke", False)).lower() == "true",
            _cell(given.get("at", {})),
            compare,
            trained,
            guards,
        )

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> Study | None:
        """The study a sweep's parent run declares in its dlkit.study.* tags (written by dlkit/sweep.py)."""
        if tag.STUDY not in tags:
            return None
        prefix = tag.STUDY + "."
        declaration = {
            key[len(prefix) :]: json.loads(text) if text[:1] in "[{" else text
            for key, text in tags.items()
            if key.startswith(prefix) and text not in ("None", "")
        }
        return cls.declared({**declaration, "name": tags[tag.STUDY]})

    def check_sweep(self, jobs: Sequence[Mapping[str, str]]) -> None:
        """Every cell the study compares is one the sweep runs: its jobs' swept values ({key: value} per job)."""
        levels: dict[str, list[str]] = {}
        for job in jobs:
            for key, value in job.items():
                levels.setdefault(key, []).append(str(value))
        swept = sorted(k for k, values in levels.items() if len(set(values)) > 1)
        cells = [({self.factor: self.control}, "control"), ({self.factor: self.treatment}, "treatment")]
        cells += [(self.at, "at")] + [(c, "compare") for arm in self.compare for c in (arm.treatment, arm.control)]
        for cell, where in cells:
            for key, value in cell.items():
                if key not in levels:
                    kind = "study.factor" if key == self.factor else f"study.{where}: factor"
                    raise unknown(kind, key, swept, " A study compares levels its sweep runs (hydra.sweeper.params).")
                if value not in levels[key]:
                    raise unknown(f"study.{where}: {key} level", value, levels[key], " (the levels the sweep runs)")

    def arms(self, levels: Sequence[str]) -> list[Arm]:
        """Every level of the factor against the control (the declared treatment first), then `compare`'s."""
        where = "".join(f", {k}={v}" for k, v in self.at.items())
        ordered = [self.treatment, *(level for level in levels if level not in (self.control, self.treatment))]
        return [
            Arm(f"{level}{where}", {self.factor: level, **self.at}, {self.factor: self.control, **self.at})
            for level in ordered
        ] + [
            arm
            if arm.label
            else Arm(f"{cell_text(arm.treatment)} vs {cell_text(arm.control)}", arm.treatment, arm.control)
            for arm in self.compare
        ]


def _cell(levels: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in levels.items()}


def cell_text(cell: Mapping[str, str]) -> str:
    """{'optimizer': 'sgd', 'optimizer.lr': '0.1'} → 'optimizer=sgd, optimizer.lr=0.1'."""
    return ", ".join(f"{k}={v}" for k, v in cell.items())


@dataclass(frozen=True)
class Verdict:
    arm: Arm
    word: str  # supported, not supported, inconclusive, too short to decide, smoke test
    comparison: Comparison
    p: float  # Holm-adjusted over the study's `levels` comparisons
    levels: int
    why: str = ""  # what decided it other than the comparison: a guard, too short a training

    def line(self) -> str:
        """'supported: Δ = +0.0180 [+0.0050, +0.0310], p = 0.01, 5 vs 5 runs'; an inconclusive one says how many
        seeds would detect the difference it saw."""
        text = f"{self.word}: " + (f"{self.why}; " if self.why else "") + self.comparison.text(self.p)
        if self.word == "inconclusive" and not self.why:
            needed = seeds_for_power(self.comparison.g)
            text += f"; about {needed} seeds per level would detect a difference this size with 80% power" * bool(
                needed
            )
        return text


def decide(study: Study, levels: Sequence[str], values: Values, beyond: Callable[[str], str]) -> list[Verdict]:
    """A verdict for each of the study's comparisons (its declared treatment's first)."""
    arms = study.arms(levels)
    found = [
        compare(values(study.metric, arm.control), values(study.metric, arm.treatment), beyond=beyond(study.metric))
        for arm in arms
    ]
    adjusted = holm([c.p for c in found])
    return [_decide(study, arm, c, p, len(arms), values) for arm, c, p in zip(arms, found, adjusted)]


def _decide(study: Study, arm: Arm, c: Comparison, p: float, levels: int, values: Values) -> Verdict:
    def verdict(word: str, why: str = "") -> Verdict:
        return Verdict(arm, word, c, p, levels, why)

    if study.smoke:
        return verdict(SMOKE)
    if c.method == "too few":
        return verdict("inconclusive (fewer than 2 runs per level)")
    short = too_short(study.trained, values, arm.control)
    if short:
        return verdict(TOO_SHORT, short)
    word = "inconclusive"
    if p < ALPHA:
        word = "supported" if (c.sign > 0) == (study.direction == "higher") else "not supported"
    guarded = [g for g in (guard(m, margin, values, arm) for m, margin in study.guards.items()) if g]
    failed = [why for verdict_word, why in guarded if verdict_word == "not supported"]
    if failed:  # a guard clearly broken: the claim is not supported, whatever the deciding metric says
        return verdict("not supported", "; ".join(failed))
    if guarded and word == "supported":  # a guard perhaps broken: support is in doubt
        return verdict("inconclusive", "; ".join(why for _, why in guarded))
    return verdict(word)


def too_short(trained: str, values: Values, control: Mapping[str, str]) -> str:
    """Why training was too short to decide ('' when it went far enough): the control's mean missed `trained`."""
    if not trained:
        return ""
    reach = condition(trained, "study.trained")
    reached = [v for v in values(reach.metric, control) if math.isfinite(v)]
    if not reached:
        return f"the control logged no {reach.metric}, declared to reach {reach.op} {reach.value:g}"
    mean = sum(reached) / len(reached)
    if reach.holds(mean):
        return ""
    return f"the control's {reach.metric} is {mean:.4g}, short of the {reach.op} {reach.value:g} a verdict needs"


def guard(metric: str, margin: float, values: Values, arm: Arm) -> tuple[str, str] | None:
    """('not supported' or 'inconclusive', why) when the treatment worsens `metric` beyond `margin`, else None."""
    way = parse(metric).direction
    c = compare(values(metric, arm.control), values(metric, arm.treatment))
    worse = -1 if way == "higher" else 1  # worsening = worse · (treatment − control)
    verb = "fell" if way == "higher" else "rose"
    if c.method == "rank":  # a diverged run, worse than any number: no difference to weigh against the margin
        if c.sign != worse:
            return None
        return ("not supported" if c.p < ALPHA else "inconclusive"), f"{metric} {verb} ({c.interval()})"
    if not worse * c.diff > margin:
        return None
    least = min(worse * c.low, worse * c.high) if c.method == "welch" else worse * c.diff
    amount = f"{metric} {verb} by {abs(c.diff):.4f}"
    if least > margin:
        return "not supported", f"{amount} (more than the {margin:g} allowed)"
    return "inconclusive", f"{amount}, perhaps more than the {margin:g} allowed"

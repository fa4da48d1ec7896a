"""A study's verdicts on hand-made runs: censored and diverged outcomes, guards, too short a training, quick
variants, several comparisons. (The statistics themselves against scipy: tests/test_report.py.)"""

import math

import pytest

from dlkit.metrics import parse
from dlkit.report import Report, Run
from dlkit.stats import compare
from dlkit.verdict import Arm, Study

INF = math.inf


def runs(level: str, *outcomes, factor: str = "f", **fixed: str) -> list[Run]:
    """One run per outcome: a dict of metrics (finished), or a (status, failure) pair."""
    made = []
    for i, outcome in enumerate(outcomes):
        status, failure, metrics = ("FINISHED", "", outcome) if isinstance(outcome, dict) else (*outcome, {})
        name = f"{level}-{i}"
        made.append(Run(name, name, status, {factor: level, **fixed, "seed": str(i)}, metrics, "cpu", i, failure))
    return made


def study(**declared) -> Study:
    base = dict(name="s", claim="c", factor="f", control="a", treatment="b", metric="test/acc", direction="higher")
    return Study(**{**base, **declared})


def test_the_rank_test_is_scipys_exact_mann_whitney_when_there_are_no_ties():
    from scipy import stats

    control, treatment = [5.0, 7.0, 9.0, INF], [1.0, 2.0, 6.0, 3.0]  # one control run never reached the target
    c = compare(control, treatment, beyond="> 30")
    finite = [5.0, 7.0, 9.0, 1e9]  # the same order with a number for the censored run
    assert c.method == "rank" and c.p == pytest.approx(stats.mannwhitneyu(treatment, finite, method="exact").pvalue)
    # P(treatment > control), ties half, by hand: 6 is above 5 only → 1 of 16 pairs
    assert c.above == pytest.approx(1 / 16) and c.sign == -1
    assert c.interval() == "medians 2.5 vs 8" and "rank test" in c.text()
    tied = compare([2.0, 5.0, INF], [1.0, 3.0, INF])  # 1 vs —: 0; 3 vs 2: 1; ∞ vs 2, 5: 2, ∞ vs ∞: ½ → 3.5 of 9
    assert tied.above == pytest.approx(3.5 / 9)
    never = compare([INF] * 5, [3.0, 3.0, 4.0, 3.0, 2.0], beyond="> 30")
    assert never.interval() == "medians 3 vs > 30" and never.p == pytest.approx(2 / 252)  # the two extreme splits


def test_a_target_never_reached_is_censored_and_decides_by_ranks():
    report = Report(
        "t",
        "epochs_to:val/acc>=0.9",
        runs("a", *[{"epochs_to:val/acc>=0.9": INF}] * 5)
        + runs("b", *({"epochs_to:val/acc>=0.9": e} for e in (3, 4, 3, 2, 5))),
        ["f"],
        study(metric="epochs_to:val/acc>=0.9", direction="lower"),
        beyond={"epochs_to:val/acc>=0.9": "> 30"},
    )
    verdict = report.verdict()
    assert verdict.word == "supported" and verdict.comparison.method == "rank" and math.isfinite(verdict.p)
    assert verdict.line().startswith("supported: medians 3 vs > 30, p = 0.0079")
    assert report.cell(f="a").text() == "> 30 (0/5 reached)"
    assert report.cell(f="b").text() == "3.4000 ± 1.1402"
    some = Report("t", "m", runs("a", {"m": 2.0}, {"m": 4.0}, {"m": INF}), ["f"], beyond={"m": "> 30"})
    assert some.cell(f="a").text() == "3.0000 ± 1.4142 (2/3 reached)"  # the mean of those that reached it


def test_a_diverged_run_counts_as_the_worst_outcome_and_an_interrupted_one_is_left_out():
    control = runs("a", *({"test/acc": v} for v in (0.90, 0.91, 0.89, 0.92, 0.90)))
    collapsed = runs("b", *[{"test/acc": 0.101}] * 4, ("FAILED", "diverged"), ("KILLED", ""))
    report = Report("t", "test/acc", control + collapsed, ["f"], study(direction="lower"))
    verdict = report.verdict()
    assert verdict.comparison.n_treatment == 5  # 4 finished + the diverged one; the killed one is no outcome
    assert verdict.word == "supported" and verdict.comparison.method == "rank"
    assert report.cell(f="b").text() == "0.1010 ± 0.0000 (1/5 diverged)"
    assert [r.name for r in report.left_out()] == ["b-5"]
    # without the diverged run it would be 4 vs 5, and the same claim is weighed on one run fewer
    assert report.values("test/acc", {"f": "b"}) == [0.101] * 4 + [-INF]
    never = Report("t", "epochs_to:val/acc>=0.9", runs("a", ("FAILED", "diverged")), ["f"], beyond={})
    assert never.values("epochs_to:val/acc>=0.9", {"f": "a"}) == [INF]  # diverged before reaching it: censored
    gap = Report("t", "a - b", runs("a", ("FAILED", "diverged")), ["f"])  # which way is worse is unknown: left out
    assert gap.values("a - b", {"f": "a"}) == [] and len(gap.left_out()) == 1
    assert parse("train/loss").direction == "lower" and parse("val/acc").direction == "higher"
    assert parse("a - b").direction is None


def test_a_treatment_that_lowers_test_accuracy_while_narrowing_the_gap_is_not_supported():
    gap = "train_eval/acc - test/acc"
    control = runs("a", *({gap: 0.17 + d, "test/acc": 0.56 + d, "train_eval/acc": 1.0} for d in (0, 0.01, -0.01)))
    underfit = runs("b", *({gap: 0.04 + d, "test/acc": 0.39 + d, "train_eval/acc": 0.43} for d in (0, 0.01, -0.01)))
    declared = study(metric=gap, direction="lower", guards={"test/acc": 0.02})
    verdict = Report("t", gap, control + underfit, ["f"], declared).verdict()
    assert verdict.word == "not supported" and verdict.comparison.p < 0.05 and verdict.comparison.diff < 0
    assert verdict.line().startswith("not supported: test/acc fell by 0.1700 (more than the 0.02 allowed)")
    unguarded = Report("t", gap, control + underfit, ["f"], study(metric=gap, direction="lower")).verdict()
    assert unguarded.word == "supported"  # what the study said before it had guards
    kept = runs("b", *({gap: 0.04 + d, "test/acc": 0.555 + d} for d in (0, 0.01, -0.01)))  # within the margin
    assert Report("t", gap, control + kept, ["f"], declared).verdict().word == "supported"
    unclear = runs("b", *({gap: 0.04 + d, "test/acc": 0.53 + d} for d in (0, 0.03, -0.03)))  # 0.03 ± wide
    assert Report("t", gap, control + unclear, ["f"], declared).verdict().word == "inconclusive"
    widened = runs("b", *({gap: 0.30 + d, "test/acc": 0.53 + d} for d in (0, 0.03, -0.03)))  # the wrong way, clearly
    assert (
        Report("t", gap, control + widened, ["f"], declared).verdict().word == "not supported"
    )  # a doubt changes nothing


def test_too_short_a_training_decides_nothing_and_a_quick_variant_gives_no_verdict():
    control = runs("a", *({"test/acc": 0.50 + d, "train/acc": 0.55} for d in (0, 0.01, -0.01)))
    treated = runs("b", *({"test/acc": 0.60 + d, "train/acc": 0.65} for d in (0, 0.01, -0.01)))
    short = Report("t", "test/acc", control + treated, ["f"], study(trained="train/acc >= 0.9")).verdict()
    assert short.word == "too short to decide"
    assert "the control's train/acc is 0.55, short of the >= 0.9 a verdict needs" in short.line()
    enough = Report("t", "test/acc", control + treated, ["f"], study(trained="train/acc >= 0.5")).verdict()
    assert enough.word == "supported"
    quick = Report("t", "test/acc", control + treated, ["f"], study(trained="train/acc >= 0.5", smoke=True))
    assert quick.verdict().word == "smoke test, no verdict"


def test_every_comparison_gets_its_verdict_the_declared_treatment_first_at_its_held_levels():
    made = []
    for lr, shift in (("0.01", 0.0), ("0.1", 0.3)):
        made += runs("sgd", *({"train/loss": 2.0 - shift + d} for d in (0, 0.01, -0.01)), **{"lr": lr})
        made += runs("chapter", *({"train/loss": 2.0 - shift + d} for d in (0.005, 0.015, -0.005)), **{"lr": lr})
        made += runs("heavy", *({"train/loss": 1.7 - shift + d} for d in (0, 0.01, -0.01)), **{"lr": lr})
    matched = Arm("heavy at 0.01 vs sgd at 0.1", {"f": "heavy", "lr": "0.01"}, {"f": "sgd", "lr": "0.1"})
    declared = study(
        metric="train/loss",
        direction="lower",
        control="sgd",
        treatment="chapter",
        at={"lr": "0.01"},
        compare=(matched,),
    )
    report = Report("t", "train/loss", made, ["f", "lr"], declared)
    verdicts = report.verdicts()
    assert [v.arm.label for v in verdicts] == ["chapter, lr=0.01", "heavy, lr=0.01", "heavy at 0.01 vs sgd at 0.1"]
    assert [v.word for v in verdicts] == ["inconclusive", "supported", "inconclusive"]
    assert verdicts[2].comparison.diff == pytest.approx(0.0) and all(v.levels == 3 for v in verdicts)
    assert report.verdict().arm == verdicts[0].arm


def test_a_study_reads_back_from_its_parent_runs_tags():
    import json

    tags = {
        "dlkit.study": "m",
        "dlkit.study.factor": "optimizer",
        "dlkit.study.control": "minibatch",
        "dlkit.study.treatment": "momentum",
        "dlkit.study.metric": "train/loss",
        "dlkit.study.direction": "lower",
        "dlkit.study.smoke": "False",
        "dlkit.study.at": json.dumps({"optimizer.lr": 0.01}),
        "dlkit.study.compare": json.dumps(
            [
                {
                    "treatment": {"optimizer": "heavy_ball", "optimizer.lr": 0.01},
                    "control": {"optimizer": "minibatch", "optimizer.lr": 0.1},
                }
            ]
        ),
        "dlkit.study.guards": json.dumps({"test/acc": 0.02}),
        "dlkit.study.trained": "train/acc >= 0.9",
    }
    s = Study.from_tags(tags)
    assert s.at == {"optimizer.lr": "0.01"} and s.guards == {"test/acc": 0.02} and not s.smoke
    assert s.arms(["minibatch", "momentum", "heavy_ball"])[-1] == Arm(
        "optimizer=heavy_ball, optimizer.lr=0.01 vs optimizer=minibatch, optimizer.lr=0.1",
        {"optimizer": "heavy_ball", "optimizer.lr": "0.01"},
        {"optimizer": "minibatch", "optimizer.lr": "0.1"},
    )
    assert Study.from_tags({}) is None

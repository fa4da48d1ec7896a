"""A study's statistics (dlkit/stats.py) and the verdicts a report draws from them, on hand-made runs: Welch
against scipy, the exact permutation test, Holm, and the verdict words. Fast, and what mutation testing of
stats.py runs (see the README)."""

import dataclasses
import math
import statistics

import pytest

from dlkit.report import Cell, Report, Run
from dlkit.verdict import Study


def fake(values: dict[str, list[float]], direction: str = "higher") -> Report:
    runs = [
        Run(f"{level}{i}", level, "FINISHED", {"f": level}, {"m": v}, "cpu", i)
        for level, vs in values.items()
        for i, v in enumerate(vs)
    ]
    return Report("t", "m", runs, ["f"], Study("s", "claim", "f", "a", "b", "m", direction))


def test_verdict_weighs_the_difference_against_the_spread():
    # a: mean 1, std 0.1 (n=3); b: mean 2, std 0.1 → t = 1 / √(0.01/3 + 0.01/3) = 12.2, df = 4
    verdict = fake({"a": [0.9, 1.0, 1.1], "b": [1.9, 2.0, 2.1]}).verdict()
    assert verdict.word == "supported" and verdict.comparison.diff == pytest.approx(1.0)
    assert verdict.comparison.t == pytest.approx(1 / math.sqrt(0.02 / 3)) and verdict.comparison.df == pytest.approx(4)
    assert verdict.line().startswith("supported: Δ = +1.0000 [") and "3 vs 3 runs" in verdict.line()
    assert fake({"a": [0.9, 1.0, 1.1], "b": [1.9, 2.0, 2.1]}, direction="lower").verdict().word == "not supported"
    # the same difference of means with a wide spread: t = 1 / √(1/3 + 1/3) = 1.22 → inconclusive
    assert fake({"a": [0.0, 1.0, 2.0], "b": [1.0, 2.0, 3.0]}).verdict().word == "inconclusive"
    assert fake({"a": [1.0], "b": [2.0]}).verdict().word.startswith("inconclusive (fewer than 2 runs")
    smoke = fake({"a": [0.9, 1.0, 1.1], "b": [1.9, 2.0, 2.1]})
    smoke.study = dataclasses.replace(smoke.study, smoke=True)  # a quick variant: the same numbers, no verdict
    assert smoke.verdict().word == "smoke test, no verdict" and smoke.verdict().line().startswith(
        "smoke test, no verdict: Δ"
    )
    # |t| = 2.2 on 3 seeds each (the old rule's "supported"): p ≈ 0.09 with Welch's degrees of freedom
    assert fake({"a": [1.0, 1.1, 1.2], "b": [1.18, 1.28, 1.38]}).verdict().word == "inconclusive"
    assert Cell([1.0, 2.0, 4.0]).text() == f"{7 / 3:.4f} ± {statistics.stdev([1.0, 2.0, 4.0]):.4f}"


def test_welch_against_scipy_and_told_apart_from_the_pooled_test():
    from scipy import stats

    from dlkit.stats import compare

    control, treatment = [1.0, 1.1, 0.9, 1.05, 0.95, 1.02], [2.0, 3.1, 1.2]  # unequal sizes and spreads
    c = compare(control, treatment)
    welch = stats.ttest_ind(treatment, control, equal_var=False)
    pooled = stats.ttest_ind(treatment, control, equal_var=True)
    assert c.t == pytest.approx(welch.statistic) and c.p == pytest.approx(welch.pvalue)
    assert (c.low, c.high) == pytest.approx(tuple(welch.confidence_interval()))
    assert abs(c.p - pooled.pvalue) > 0.05  # the pooled test would say something else here
    # Welch–Satterthwaite by hand: (s1²/n1 + s2²/n2)² / ((s1²/n1)²/(n1−1) + (s2²/n2)²/(n2−1))
    v1, v2 = statistics.variance(treatment) / 3, statistics.variance(control) / 6
    assert c.df == pytest.approx((v1 + v2) ** 2 / (v1**2 / 2 + v2**2 / 5))
    # Hedges' g: the difference over the pooled standard deviation, times 1 − 3 / (4(n1 + n2) − 9)
    sp = math.sqrt((2 * statistics.variance(treatment) + 5 * statistics.variance(control)) / 7)
    assert c.g == pytest.approx((statistics.fmean(treatment) - statistics.fmean(control)) / sp * (1 - 3 / 27))
    two = compare([1.0, 2.0], [3.0, 5.0])  # n = 2 per arm still has a t distribution (df ≥ 1)
    assert two.p == pytest.approx(stats.ttest_ind([3.0, 5.0], [1.0, 2.0], equal_var=False).pvalue)


def test_no_spread_never_gives_infinity_but_an_exact_permutation_p():
    from dlkit.stats import compare

    three = compare([31.0] * 3, [3.0] * 3)  # "never reached" against "3 epochs", every seed alike
    assert three.method == "permutation" and three.diff == -28.0 and math.isfinite(three.p)
    assert three.p == pytest.approx(2 / 20)  # the 2 most extreme of C(6, 3) = 20 splits: 3 seeds cannot decide
    assert compare([31.0] * 5, [3.0] * 5).p == pytest.approx(2 / 252)  # 5 seeds can
    assert compare([2.0, 2.0], [2.0, 2.0]).p == 1.0
    assert fake({"a": [31.0] * 3, "b": [3.0] * 3}, direction="lower").verdict().word == "inconclusive"
    assert fake({"a": [31.0] * 5, "b": [3.0] * 5}, direction="lower").verdict().word == "supported"


def test_several_treatment_levels_are_holm_adjusted():
    from dlkit.stats import compare, holm

    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])  # by hand: 3·0.01, max(2·0.03, 1·0.04)
    values = {"a": [1.0, 1.1, 0.9, 1.0], "b": [1.3, 1.45, 1.2, 1.35], "c": [1.0, 1.2, 0.8, 1.1]}
    report = fake(values)
    found = {v.arm.label: v.p for v in report.verdicts()}
    raw = [compare(values["a"], values[level]).p for level in ("b", "c")]
    assert [found[level] for level in ("b", "c")] == pytest.approx(holm(raw))
    assert report.verdict().p == pytest.approx(holm(raw)[0]) and report.verdict().levels == 2


def test_too_few_runs_in_either_arm_give_the_difference_and_no_test():
    """Mutation testing's first survivors: the guard is 'either arm below 2' (not both), and the difference is
    treatment − control by hand, nan when an arm is empty or a value is beyond every number."""
    from dlkit.stats import compare

    one = compare([1.0], [2.0, 3.0])  # 2.5 − 1.0
    assert (
        one.method == "too few" and one.diff == 1.5 and math.isnan(one.p) and (one.n_control, one.n_treatment) == (1, 2)
    )
    assert compare([2.0, 3.0], [1.0]).diff == -1.5 and compare([2.0, 3.0], [1.0]).method == "too few"
    assert math.isnan(compare([], [1.0, 2.0]).diff) and math.isnan(compare([1.0], [math.inf]).diff)


def test_one_arm_without_spread_is_still_welchs_test():
    """Only when neither arm varies is the permutation test used (a mutant with 'or' survived the suite)."""
    from scipy import stats

    from dlkit.stats import compare

    c = compare([1.0, 1.0, 1.0], [2.0, 3.0, 4.0])
    assert c.method == "welch" and c.p == pytest.approx(
        stats.ttest_ind([2.0, 3.0, 4.0], [1.0] * 3, equal_var=False).pvalue
    )


def test_what_a_comparison_says_in_each_of_its_forms():
    """Mutation testing's survivors in Comparison.text and _p_text: each method's exact words."""
    from dlkit.stats import compare

    welch = compare([0.9, 1.0, 1.1], [1.9, 2.0, 2.1])
    assert welch.text() == f"Δ = +1.0000 [{welch.low:+.4f}, {welch.high:+.4f}], p < 0.001, 3 vs 3 runs"
    assert welch.text(p=0.0123) == f"Δ = +1.0000 [{welch.low:+.4f}, {welch.high:+.4f}], p = 0.012, 3 vs 3 runs"
    assert welch.text(p=0.001).endswith("p = 0.001, 3 vs 3 runs") and "p < 0.001" in welch.text(p=0.000999)
    flat = compare([31.0] * 3, [3.0] * 3)
    assert flat.text() == "Δ = -28.0000, p = 0.1, no spread in either arm (exact permutation test), 3 vs 3 runs"
    few = compare([1.0, 2.0], [2.5])
    assert few.text() == "Δ = +1.0000, p = –, 1 vs 2 runs" and math.isnan(few.low) and math.isnan(few.high)
    never = compare([math.inf] * 3, [1.0, 2.0, 3.0])  # how ∞ reads unless told ("> 30" for epochs)
    assert never.text() == "medians 2 vs ∞, p = 0.1 (rank test, P(treatment > control) = 0.00), 3 vs 3 runs"
    assert compare([1.0], [math.inf], beyond="> 30").beyond == "> 30"
    from dlkit.stats import p_cell

    assert (p_cell(0.01234), p_cell(0.5), p_cell(math.nan)) == ("0.012", "0.5", "–")  # a table's p column


def test_the_exact_permutation_test_counts_every_split_by_hand():
    from dlkit.stats import compare

    # pooled 1, 1, 3, 3, 3, 3: of the C(6, 4) = 15 ways to pick the treatment's 4, only the four 3s give Δ >= 2;
    # two-sided: twice that share (the other side, Δ <= -1 at most, has no split as far)
    c = compare([1.0, 1.0], [3.0, 3.0, 3.0, 3.0])
    assert c.method == "permutation" and c.p == pytest.approx(2 / 15)
    assert (c.diff, c.low, c.high, c.n_control, c.n_treatment) == (2.0, 2.0, 2.0, 2, 4)
    assert compare([1.0] * 3, [2.0] * 3).p == pytest.approx(2 / 20)  # a difference of exactly 1 is tested too
    # 8 vs 8: all C(16, 8) = 12,870 splits, not a sample of them
    assert compare([1.0] * 8, [2.0] * 8).p == pytest.approx(2 / 12870, rel=1e-9)
    same = compare([2.0] * 3, [2.0] * 2)
    assert (same.diff, same.low, same.high, same.p, same.n_control, same.n_treatment, same.method) == (
        0.0,
        0.0,
        0.0,
        1.0,
        3,
        2,
        "permutation",
    )


def test_the_rank_test_gives_the_medians_difference_and_samples_splits_beyond_twenty_thousand():
    from scipy import stats

    from dlkit.stats import compare

    c = compare([5.0, 7.0, 9.0, math.inf], [1.0, 2.0, 6.0])  # medians 2 vs 8
    assert c.method == "rank" and c.diff == -6.0 and math.isnan(c.low) and math.isnan(c.high)
    assert (c.n_control, c.n_treatment) == (4, 3) and c.above == pytest.approx(1 / 12)
    assert math.isnan(compare([math.inf] * 3, [1.0, 2.0, 3.0]).diff)  # a median beyond every number: no difference
    assert compare([1.0, math.inf], [1.0, math.inf]).p == 1.0
    # 10 vs 10: C(20, 10) = 184,756 splits, so 20,000 random ones (seeded: the same p every time), near the exact p
    control, treatment = [float(v) for v in range(5, 14)] + [math.inf], [float(v) for v in range(10)]
    sampled = compare(control, treatment)
    exact = stats.mannwhitneyu(treatment, [*control[:-1], 1e9], method="exact").pvalue
    assert sampled.p == compare(control, treatment).p and sampled.p == pytest.approx(exact, abs=0.002)
    assert round(sampled.p * 20_001) == pytest.approx(sampled.p * 20_001, abs=1e-6)  # (hits + 1) / (20,000 + 1)


def test_holm_never_adjusts_past_one_and_seeds_for_power_matches_cohens_table():
    from dlkit.stats import holm, seeds_for_power

    assert holm([0.6, 0.7]) == [1.0, 1.0] and math.isnan(holm([math.nan, 0.2])[0])
    # Cohen (1988), two-sided α = 0.05, power 0.8: 64 runs per arm for d = 0.5, 26 for 0.8, 17 for 1.0
    assert [seeds_for_power(g) for g in (0.5, 0.8, -0.8, 1.0)] == [64, 26, 26, 17]
    assert seeds_for_power(0.0) is None and seeds_for_power(math.nan) is None and seeds_for_power(math.inf) is None
    assert seeds_for_power(0.05) is None and seeds_for_power(0.05, most=10_000) > 1000  # beyond `most`: None
    assert seeds_for_power(0.8, power=0.9) > 26 and seeds_for_power(0.8, alpha=0.01) > 26
    assert seeds_for_power(0.8, most=26) == 26 and seeds_for_power(0.8, most=25) is None
    assert seeds_for_power(6.0) == 2 and seeds_for_power(0.0, power=0.01) is None  # no difference: never a number


def test_seeds_for_power_agrees_with_simulated_t_tests():
    """An independent check of the noncentral t: 20,000 simulated experiments per size, d = 2, Student's t-test.
    5 runs per arm detect it 79% of the time (short of 80%), 6 runs 88%: seeds_for_power says 6."""
    import numpy as np
    from scipy import stats

    from dlkit.stats import seeds_for_power

    rng = np.random.default_rng(0)

    def simulated_power(n: int) -> float:
        control, treatment = rng.normal(0, 1, (20_000, n)), rng.normal(2.0, 1, (20_000, n))
        return float((stats.ttest_ind(treatment, control, axis=1).pvalue < 0.05).mean())

    assert simulated_power(5) < 0.8 < simulated_power(6) and seeds_for_power(2.0) == 6

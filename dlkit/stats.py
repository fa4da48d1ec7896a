"""The statistics behind a study's verdict: treatment against control over seeds, as careful work decides it.

Welch's t-test with its Welch–Satterthwaite degrees of freedom and a two-sided p-value; a 95% confidence
interval on treatment − control; Hedges' g as the effect size; Holm's correction when several treatment levels
are compared with one control. When neither arm varies at all, Welch's t is undefined (a zero spread would give
±∞): the comparison is an exact permutation test of the difference in means instead, whose two-sided p-value is
twice the share of the ways to split the pooled runs that give a difference at least as far in the observed
direction (at most 1).

An outcome beyond every number a run could report is ±∞: a target never reached within max_epochs is +∞
epochs (censored: all such runs stopped at the same epoch, so they are tied above every run that reached it),
a diverged run's accuracy −∞. Means and t are meaningless there; such comparisons are a rank test instead
(Mann–Whitney's: the probability that a treatment run is above a control run, ties counted half, its p-value by
an exact permutation test), with the medians as the difference. Distributions come from scipy.stats, not from
code of our own.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

ALPHA = 0.05  # a difference decides a claim when its (Holm-adjusted) two-sided p-value is below this


@dataclass(frozen=True)
class Comparison:
    """treatment − control, over the runs of each."""

    diff: float
    low: float  # the 95% confidence interval of diff
    high: float
    p: float  # two-sided
    n_control: int
    n_treatment: int
    t: float = math.nan  # Welch's t and its degrees of freedom (nan for the permutation test)
    df: float = math.nan
    g: float = math.nan  # Hedges' g: diff over the pooled standard deviation, corrected for small samples
    method: str = "welch"  # or "permutation" (neither arm varies), "rank" (an arm has ±∞), "too few" (< 2 runs)
    above: float = math.nan  # rank test: P(a treatment run > a control run), ties counted half
    medians: tuple[float, float] = (math.nan, math.nan)  # rank test: treatment's, control's
    beyond: str = "∞"  # how an infinite value reads: "> 30" (epochs, never reached), "diverged"

    @property
    def sign(self) -> int:
        """Which way treatment − control goes: +1, −1, or 0."""
        lean = self.above - 0.5 if self.method == "rank" else self.diff
        return (lean > 0) - (lean < 0)

    def text(self, p: float | None = None) -> str:
        """'Δ = −0.0180 [−0.0310, −0.0050], p = 0.01, 5 vs 5 seeds' (p: an adjusted p-value to show instead)."""
        shown = self.p if p is None else p
        how = {
            "permutation": ", no spread in either arm (exact permutation test)",
            "rank": f" (rank test, P(treatment > control) = {self.above:.2f})",
        }.get(self.method, "")
        shown_diff = self.interval() if self.method == "rank" else f"Δ = {self.interval()}"
        return f"{shown_diff}, p {_p_text(shown)}{how}, {self.n_treatment} vs {self.n_control} runs"

    def interval(self) -> str:
        """'+0.0050 [-0.0015, +0.0116]': the difference and its 95% interval (the difference alone without one)."""
        if self.method == "rank":
            treatment, control = (f"{m:.4g}" if math.isfinite(m) else self.beyond for m in self.medians)
            return f"medians {treatment} vs {control}"
        bounds = f" [{self.low:+.4f}, {self.high:+.4f}]" if self.method == "welch" else ""
        return f"{self.diff:+.4f}{bounds}"


def p_cell(p: float) -> str:
    """A p-value in a table: two significant digits, '–' when there is none (fewer than 2 runs in an arm)."""
    return f"{p:.2g}" if math.isfinite(p) else "–"


def _p_text(p: float) -> str:
    return "= –" if math.isnan(p) else f"= {p:.2g}" if p >= 0.001 else "< 0.001"


def compare(
    control: Sequence[float], treatment: Sequence[float], confidence: float = 0.95, beyond: str = "∞"
) -> Comparison:
    """treatment − control by Welch's test (the exact permutation test when neither arm varies; the rank test when
    a value is ±∞, which `beyond` names)."""
    from scipy import stats

    a, b = [float(v) for v in control], [float(v) for v in treatment]
    n_a, n_b = len(a), len(b)
    finite = all(math.isfinite(v) for v in a + b)
    if n_a < 2 or n_b < 2:
        diff = statistics.fmean(b) - statistics.fmean(a) if a and b and finite else math.nan
        return Comparison(diff, math.nan, math.nan, math.nan, n_a, n_b, method="too few", beyond=beyond)
    if not finite:
        return _ranks(a, b, beyond)
    diff = statistics.fmean(b) - statistics.fmean(a)
    var_a, var_b = statistics.variance(a), statistics.variance(b)
    if var_a == 0 and var_b == 0:
        return _permutation(a, b, diff)
    se = math.sqrt(var_a / n_a + var_b / n_b)
    df = (var_a / n_a + var_b / n_b) ** 2 / ((var_a / n_a) ** 2 / (n_a - 1) + (var_b / n_b) ** 2 / (n_b - 1))
    t = diff / se
    p = 2 * stats.t.sf(abs(t), df)
    half = stats.t.ppf(0.5 + confidence / 2, df) * se
    pooled = math.sqrt(((n_a - 1) * var_a + (n_b - 1) * var_b) / (n_a + n_b - 2))
    correction = 1 - 3 / (4 * (n_a + n_b) - 9)
    g = diff / pooled * correction  # pooled > 0: some arm varies (else the permutation test above)
    return Comparison(diff, diff - half, diff + half, float(p), n_a, n_b, t, df, g)


def _permutation(a: list[float], b: list[float], diff: float) -> Comparison:
    """Exact: every way of splitting the pooled runs into groups of these sizes, counted."""
    from scipy import stats

    if diff == 0:
        return Comparison(0.0, 0.0, 0.0, 1.0, len(a), len(b), method="permutation")

    def mean_difference(x, y):
        return statistics.fmean(x) - statistics.fmean(y)

    result = stats.permutation_test(
        (b, a), mean_difference, permutation_type="independent", alternative="two-sided", n_resamples=math.inf
    )
    return Comparison(diff, diff, diff, float(result.pvalue), len(a), len(b), method="permutation")


def _ranks(a: list[float], b: list[float], beyond: str) -> Comparison:
    """Mann–Whitney's P(treatment > control), its two-sided p by exact permutation (every split of the pooled runs
    when there are at most 20,000, else 20,000 random ones), and the medians."""
    from scipy import stats

    def above(x, y):
        return sum((u > v) + 0.5 * (u == v) for u in x for v in y) / (len(x) * len(y))

    result = stats.permutation_test(
        (b, a),
        above,  # the two-sided p is the same for any shift of the statistic
        permutation_type="independent",
        alternative="two-sided",
        n_resamples=20_000,  # scipy counts every split instead when there are no more than this
        rng=0,
    )
    medians = (statistics.median(b), statistics.median(a))
    diff = medians[0] - medians[1] if all(math.isfinite(m) for m in medians) else math.nan
    return Comparison(
        diff,
        math.nan,
        math.nan,
        float(result.pvalue),  # scipy's two-sided p is at most 1
        len(a),
        len(b),
        method="rank",
        above=above(b, a),
        medians=medians,
        beyond=beyond,
    )


def seeds_for_power(g: float, alpha: float = ALPHA, power: float = 0.8, most: int = 1000) -> int | None:
    """Runs per arm a two-sided t-test needs to detect a standardized difference g with this power (equal arms;
    the noncentral t distribution). None when g is 0, undefined, or needs more than `most`."""
    from scipy import stats

    if not math.isfinite(g) or g == 0:
        return None
    for n in range(2, most + 1):
        df = 2 * n - 2
        critical = stats.t.ppf(1 - alpha / 2, df)
        shift = abs(g) * math.sqrt(n / 2)
        if stats.nct.sf(critical, df, shift) + stats.nct.cdf(-critical, df, shift) >= power:
            return n
    return None


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of p-values for comparing several treatments with one control (nan stays nan)."""
    order = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p))
        adjusted[i] = running
    return adjusted

"""The budget rule (unitprune.accuracy_budget): exact p-values, the level of the test, coverage on simulated
classifier pairs, and the legacy rule at confidence 0."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from unitprune.accuracy_budget import (PairedOutcome, assess, drop_upper_bound, p_value, paired_outcome,
                              select_operating_point, validate_confidence)
from unitprune.experiments.pareto import max_skipped_within_drop


def brute_force_p_value(n: int, losses: int, gains: int, budget: float, grid: np.ndarray) -> float:
    """sup over the disagreement rate of P(Z <= Z_obs), every trinomial outcome summed explicitly."""

    def z(k10, k01):
        c = n - k10 - k01
        beta = k10 * (1 - budget) + k01 * (1 - 3 * budget) - 2 * c * budget
        p01 = (beta + math.sqrt(beta * beta + 8 * n * k01 * budget * (1 - budget))) / (4 * n)
        p01 = min(max(p01, 0.0), (1 - budget) / 2)
        numerator = k10 - k01 - n * budget
        variance = n * (2 * p01 + budget - budget * budget)
        if numerator == 0:
            return 0.0
        return numerator / math.sqrt(variance) if variance > 0 else math.copysign(math.inf, numerator)

    observed = z(losses, gains)
    worst = 0.0
    for d in grid:
        p10, p01 = (d + budget) / 2, (d - budget) / 2
        total = 0.0
        for k10 in range(n + 1):
            for k01 in range(n + 1 - k10):
                if z(k10, k01) <= observed + 1e-12:
                    total += stats.multinomial.pmf([k10, k01, n - k10 - k01], n, [p10, p01, 1 - p10 - p01])
        worst = max(worst, total)
    return worst


@pytest.mark.parametrize("losses, gains", [(0, 0), (2, 0), (3, 2), (1, 4), (5, 1)])
def test_p_value_is_the_exact_sup_over_the_disagreement_rate(losses, gains):
    n, budget = 14, 0.1
    grid = np.geomspace(budget, 1.0, 60)
    expected = brute_force_p_value(n, losses, gains, budget, grid)
    got = p_value(PairedOutcome(n, losses, gains), 100 * budget)
    # the module refines its grid around the maximum: at least the coarse grid's sup, and close to it
    assert got >= expected - 1e-9
    assert got <= expected + 0.02


def test_the_test_has_its_level_for_every_disagreement_rate():
    """P(admitted | true drop >= budget) <= 1 - confidence, summed over every outcome, for d up to 1."""
    n, budget_points, confidence = 80, 2.5, 0.9
    b = budget_points / 100
    admitted = [(k10, k01) for k10 in range(n + 1) for k01 in range(n + 1 - k10)
                if assess(PairedOutcome(n, k10, k01), budget_points, confidence, bound=False).admissible]
    assert admitted  # the test can pass at all (e.g. many gains, no losses)
    k10, k01 = np.array(admitted).T
    for delta in (b, 2 * b, 4 * b):  # the boundary, and true drops beyond the budget
        for d in np.geomspace(delta, 1.0, 120):
            p10, p01 = (d + delta) / 2, (d - delta) / 2
            size = stats.multinomial.pmf(np.stack([k10, k01, n - k10 - k01], axis=1), n, [p10, p01, 1 - d]).sum()
            assert size <= 1 - confidence + 1e-9, (delta, d, size)


def test_plugging_in_the_disagreement_rate_would_not_have_the_level():
    """The conditional Clopper-Pearson bound with d = m / n (module docs) admits a model that truly loses
    the budget far more often than 10 % when it rarely disagrees: the reason the rule maximises over d."""
    n, b, alpha = 400, 0.01, 0.1

    def plug_in_admits(k10, k01):
        m = k10 + k01
        if m == 0:
            return True
        q_upper = 1.0 if k10 == m else stats.beta.ppf(1 - alpha, k10 + 1, m - k10)
        return m / n * (2 * q_upper - 1) <= b

    d = b  # every disagreement a loss: m ~ Binomial(n, b), k10 = m
    plug_in = sum(stats.binom.pmf(m, n, d) for m in range(n + 1) if plug_in_admits(m, 0))
    exact = sum(stats.binom.pmf(m, n, d) for m in range(n + 1)
                if assess(PairedOutcome(n, m, 0), 1.0, 1 - alpha, bound=False).admissible)
    assert plug_in > 0.5
    assert exact <= alpha


def test_bound_is_where_the_test_starts_passing():
    outcome = PairedOutcome(400, 6, 3)
    bound = drop_upper_bound(outcome, 0.9)
    assert bound > outcome.drop_points
    assert p_value(outcome, bound) <= 0.1 < p_value(outcome, bound - 0.02)
    assert drop_upper_bound(outcome, 0.0) == outcome.drop_points
    assert drop_upper_bound(outcome, 0.95) >= bound  # more confidence, wider bound
    # a clear improvement is bounded at 0
    assert drop_upper_bound(PairedOutcome(400, 0, 12), 0.9) == 0.0


def test_assessment_is_consistent_with_the_bound():
    for losses, gains in [(0, 0), (1, 0), (2, 2), (4, 0), (3, 6)]:
        a = assess(PairedOutcome(400, losses, gains), 1.0, 0.9)
        assert a.admissible == (a.bound_points <= 1.0), a


def test_paired_outcome_counts():
    reference = np.array([1, 1, 0, 0, 1, 1], dtype=bool)
    candidate = np.array([1, 0, 1, 0, 0, 1], dtype=bool)
    assert paired_outcome(reference, candidate) == PairedOutcome(6, 2, 1)
    with pytest.raises(ValueError, match="equally long"):
        paired_outcome(reference, candidate[:3])
    with pytest.raises(ValueError, match="confidence must be in"):
        validate_confidence(1.0)


def _simulated_selections(confidence: float, draws: int, seed: int) -> tuple[int, int]:
    """(selections whose true drop exceeds the budget, selections made) over simulated classifier pairs.

    Each draw: a reference with error rate in [1, 6] %, eight knobs whose true drops are drawn in
    [-0.25, 2.5] points (sorted: more aggressive, more damage), each with its own rate of samples it
    alone gets right; paired outcomes on n = 400 validation samples drawn from the trinomial law.
    """
    rng = np.random.default_rng(seed)
    n, budget = 400, 1.0
    over = made = 0
    for _ in range(draws):
        error = rng.uniform(0.01, 0.06)
        drops = np.sort(rng.uniform(-0.25, 2.5, size=8)) / 100
        p01 = rng.uniform(0.0, error, size=8) * rng.uniform(0.0, 0.5)
        p01 = np.maximum(p01, np.maximum(-drops, 0.0))
        p10 = p01 + drops
        outcomes = []
        for a, b in zip(p10, p01):
            k10, k01, _ = rng.multinomial(n, [a, b, 1 - a - b])
            outcomes.append(PairedOutcome(n, int(k10), int(k01)))
        selection = select_operating_point(outcomes, budget, confidence, fallback_to_mildest=False, bounds=False)
        if selection.index is not None:
            made += 1
            over += bool(100 * drops[selection.index] > budget + 1e-12)
    return over, made


def test_coverage_on_simulated_classifier_pairs():
    """With confidence 0.9 at most ~10 % of the selections exceed the true budget; the optimistic rule
    (confidence 0) exceeds the same limit. The limit: the 1 - 1e-4 quantile of Binomial(selections, 0.1)."""
    draws = 240
    over, made = _simulated_selections(0.9, draws, seed=0)
    limit = stats.binom.ppf(1 - 1e-4, made, 0.1)
    assert made >= draws // 2  # the rule does select something most of the time
    assert over <= limit, (over, made, limit)
    over0, made0 = _simulated_selections(0.0, draws, seed=0)
    assert over0 > stats.binom.ppf(1 - 1e-4, made0, 0.1), (over0, made0)


def _legacy_largest_within(drops, budget):
    """The rule before issue 25 (methods, domain shift, mcu-bench): largest knob within, else the smallest."""
    within = [i for i, d in enumerate(drops) if d <= budget + 1e-9]
    return within[-1] if within else 0


def test_confidence_zero_is_the_legacy_rule():
    rng = np.random.default_rng(1)
    n, budget = 400, 1.0
    for _ in range(300):
        k = int(rng.integers(1, 9))
        losses = rng.integers(0, 12, size=k)
        gains = rng.integers(0, 6, size=k)
        outcomes = [PairedOutcome(n, int(a), int(b)) for a, b in zip(losses, gains)]
        drops = [100.0 * (a - b) / n for a, b in zip(losses, gains)]  # non-monotone curves included
        skipped = list(rng.uniform(0, 1, size=k))
        chosen = select_operating_point(outcomes, budget, 0.0)
        assert chosen.index == _legacy_largest_within(drops, budget)
        summary = select_operating_point(outcomes, budget, 0.0, score=skipped, fallback_to_mildest=False)
        assert summary.index == max_skipped_within_drop(drops, skipped, budget)


def test_scan_stops_at_the_first_inadmissible_knob():
    n = 400
    good, bad = PairedOutcome(n, 0, 8), PairedOutcome(n, 12, 0)
    selection = select_operating_point([good, good, bad, good], 1.0, 0.9)
    assert selection.index == 1 and selection.admitted == [0, 1]
    assert selection.assessments[3] is None  # never tested
    # at confidence 0 the later knob back within the budget is taken (legacy rule)
    assert select_operating_point([good, good, bad, good], 1.0, 0.0).index == 3
    # none admitted: the mildest, flagged
    fallback = select_operating_point([bad, good], 1.0, 0.9)
    assert fallback.index == 0 and fallback.fallback
    assert select_operating_point([bad, good], 1.0, 0.9, fallback_to_mildest=False).index is None

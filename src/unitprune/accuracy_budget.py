"""Operating points within an accuracy budget, with a stated confidence (docs/experiments.md, "The budget rule").

Every harness that picks "the most aggressive setting within ``budget`` points of the unpruned
model" (the sweep, the autotuner, domain shift, ``mcu-bench``) picks it here, from the
*paired* outcomes on the validation samples: for the reference model and a candidate,

* ``losses`` = samples the reference classifies correctly and the candidate does not (n10),
* ``gains`` = samples the candidate gets right and the reference does not (n01),

out of ``n`` samples. The true drop on unseen data from the same distribution is
``delta = p10 - p01``; the observed drop is ``(losses - gains) / n``.

**Admissible.** With ``confidence = c > 0`` a candidate is admissible when the one-sided exact
test of ``H0: delta >= budget`` rejects at level ``alpha = 1 - c``, i.e. when the exact
upper ``c``-confidence bound of ``delta`` is within the budget. The test (an exact unconditional
test in Barnard's sense, for matched pairs):

* statistic: the score statistic ``Z = (losses - gains - n*B) / sqrt(n * (p10~ + p01~ - B^2))``
  with ``(p10~, p01~)`` the maximum-likelihood estimate under ``p10 - p01 = B``
  (closed form, :func:`_z_table`);
* p-value: ``sup`` over the nuisance parameter (the disagreement rate ``d = p10 + p01``, from
  ``B`` to 1) of ``P(Z <= Z_observed)`` under the trinomial law with ``p10 - p01 = B``, computed
  exactly (sum over every outcome) on a grid of ``d`` refined around its maximum.

Conditioning on the disagreements alone (``losses ~ Binomial(losses + gains, q)``, a
Clopper-Pearson bound on ``q``) is exact for the *share* of losses among disagreements, but the
drop is ``d * (2q - 1)`` and ``d`` is estimated from the same data: plugging in ``d = (losses +
gains) / n`` does not keep the level when the candidate disagrees rarely and always loses (few
disagreements cap the plug-in bound at ``(losses + gains) / n``; docs/experiments.md); the nuisance
has to be maximised over, as here.

**Selection** (:func:`select_operating_point`) over candidates ordered from the mildest to the most
aggressive: with ``c > 0`` the scan walks that order and stops at the first candidate that is not
admissible (fixed-sequence testing); the chosen candidate is the best-scoring one of the admitted
ones (default: the last). Choosing a candidate whose true drop exceeds the budget then needs the
first such candidate in the order to pass its test, which happens with probability at most
``alpha``, whatever the shape of the curve: P(chosen drop <= budget) >= c. On a non-monotone
validation curve (a later knob back within the budget) the scan does not go past the failure:
taking the later knob would be a second chance to pass a bad candidate. With ``c = 0`` the rule
is the legacy one exactly: every candidate whose observed drop is within the budget
(1e-9 tolerance) is admitted, non-monotone or not, and no confidence is claimed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
from scipy import special

__all__ = ["DEFAULT_CONFIDENCE", "PairedOutcome", "Assessment", "Selection", "paired_outcome", "assess",
           "drop_upper_bound", "p_value", "select_operating_point", "validate_confidence"]

#: Default confidence of the rule (``--confidence``).
DEFAULT_CONFIDENCE = 0.9
#: Tolerance of the legacy rule's comparison (accuracies computed from counts).
_TOLERANCE = 1e-9
#: Grid of the disagreement rate ``d`` (geometric from the budget to 1) and its refinement.
_GRID_POINTS = 96
_REFINE_POINTS = 24


def validate_confidence(confidence: float, where: str = "confidence") -> float:
    """``confidence`` as a float in ``[0, 1)``; ValueError naming ``where`` otherwise."""
    value = float(confidence)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{where} must be in [0, 1) (0: the observed drop, no confidence), got {confidence!r}")
    return value


@dataclass(frozen=True)
class PairedOutcome:
    """Paired outcome of a candidate against the reference on the same ``n`` samples."""

    n: int
    losses: int  # reference right, candidate wrong
    gains: int  # reference wrong, candidate right

    def __post_init__(self) -> None:
        if self.n < 1 or self.losses < 0 or self.gains < 0 or self.losses + self.gains > self.n:
            raise ValueError(f"invalid paired outcome: n={self.n}, losses={self.losses}, gains={self.gains}")

    @property
    def drop_points(self) -> float:
        return 100.0 * (self.losses - self.gains) / self.n


def paired_outcome(reference_correct, candidate_correct) -> PairedOutcome:
    """Counts from two per-sample correctness vectors (bool arrays or tensors of equal length)."""
    reference = np.asarray(reference_correct, dtype=bool).ravel()
    candidate = np.asarray(candidate_correct, dtype=bool).ravel()
    if reference.shape != candidate.shape or reference.size == 0:
        raise ValueError(f"paired_outcome: need equally long non-empty correctness vectors, got {reference.size} "
                         f"and {candidate.size} samples")
    return PairedOutcome(int(reference.size), int(np.sum(reference & ~candidate)), int(np.sum(~reference & candidate)))


@lru_cache(maxsize=8)  # (n+1)^2 floats each: 11.5 MB at n = 1,200
def _z_table(n: int, budget: float) -> tuple[np.ndarray, bool]:
    """``Z[m, k]`` for ``m`` disagreements of which ``k`` are losses (``+inf`` where ``k > m``), ``budget``
    a fraction; and whether every row increases with ``k`` (then ``Z <= z`` is a prefix of each row)."""
    m = np.arange(n + 1, dtype=np.float64)[:, None]
    k10 = np.arange(n + 1, dtype=np.float64)[None, :]
    k01 = m - k10
    b = budget
    # restricted MLE of p01 under p10 = p01 + b: the root of 2n p^2 - beta p - k01 b (1 - b) = 0
    beta = k10 * (1 - b) + k01 * (1 - 3 * b) - 2 * (n - m) * b
    with np.errstate(invalid="ignore", divide="ignore"):
        p01 = np.clip((beta + np.sqrt(np.maximum(beta * beta + 8 * n * k01 * b * (1 - b), 0.0))) / (4 * n),
                      0.0, (1 - b) / 2)
        variance = n * (2 * p01 + b - b * b)
        numerator = k10 - k01 - n * b
        z = np.where(variance > 0, numerator / np.sqrt(np.where(variance > 0, variance, 1.0)),
                     np.sign(numerator) * np.inf)
    z = np.where(numerator == 0, 0.0, z)
    z[np.broadcast_to(k10 > m, z.shape)] = np.inf
    finite = np.where(np.isfinite(z), z, np.nanmax(np.where(np.isfinite(z), z, np.nan)) + 1.0)
    steps = np.diff(finite, axis=1)  # +inf beyond k = m counts as above every finite value
    monotone = bool((steps > 0)[np.broadcast_to(k10[:, 1:] <= m, steps.shape)].all())
    z.setflags(write=False)
    return z, monotone


@lru_cache(maxsize=8)
def _log_choose(n: int) -> np.ndarray:
    m = np.arange(n + 1, dtype=np.float64)
    return special.gammaln(n + 1) - special.gammaln(m + 1) - special.gammaln(n - m + 1)


def _probabilities(n: int, budget: float, mask: np.ndarray, monotone: bool, d: np.ndarray) -> np.ndarray:
    """``P(outcome in mask)`` under ``p10 - p01 = budget`` for every disagreement rate in ``d``."""
    m = np.arange(n + 1)
    q = np.clip((d + budget) / (2 * d), 0.0, 1.0)  # share of losses among disagreements
    with np.errstate(divide="ignore", invalid="ignore"):
        log_p = _log_choose(n)[None, :] + special.xlogy(m[None, :], d[:, None]) \
            + special.xlog1py(n - m[None, :], -d[:, None])
    p_m = np.exp(log_p)  # (G, n+1): P(m disagreements)
    counts = mask.sum(axis=1)
    inside = np.zeros((len(d), n + 1))
    if monotone:  # the outcomes in the mask are k = 0 .. counts - 1: a binomial cdf
        g, i = np.nonzero((p_m > 1e-18) & (counts > 0)[None, :])  # cells below 1e-18 add nothing visible
        inside[g, i] = special.bdtr(counts[i] - 1, i, q[g])
    else:
        for i in np.flatnonzero(counts):
            k = np.flatnonzero(mask[i, :i + 1]).astype(np.float64)
            log_k = (special.gammaln(i + 1) - special.gammaln(k + 1) - special.gammaln(i - k + 1))[None, :] \
                + special.xlogy(k[None, :], q[:, None]) + special.xlog1py(i - k[None, :], -q[:, None])
            inside[:, i] = np.exp(log_k).sum(axis=1)
    return (p_m * inside).sum(axis=1)


def p_value(outcome: PairedOutcome, budget_points: float) -> float:
    """Exact p-value of ``H0: delta >= budget_points`` (points) for ``outcome`` (module docs)."""
    return _p_value(outcome.n, outcome.losses, outcome.gains, float(budget_points))


@lru_cache(maxsize=4096)
def _p_value(n: int, losses: int, gains: int, budget_points: float) -> float:
    budget = budget_points / 100.0
    if not 0.0 <= budget < 1.0:
        raise ValueError(f"budget must be in [0, 100) points, got {budget_points!r}")
    z, monotone = _z_table(n, budget)
    mask = z <= z[losses + gains, losses] + 1e-12
    grid = np.geomspace(max(budget, 1e-9), 1.0, _GRID_POINTS)
    values = _probabilities(n, budget, mask, monotone, grid)
    best = int(np.argmax(values))
    fine = np.linspace(grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)], _REFINE_POINTS)
    return float(min(1.0, max(values.max(), _probabilities(n, budget, mask, monotone, fine).max())))


def drop_upper_bound(outcome: PairedOutcome, confidence: float) -> float:
    """Upper ``confidence`` bound of the true drop, in points: the smallest budget the test passes.

    ``confidence == 0``: the observed drop. Bounds are reported from 0 up (a bound of 0.0 means
    the candidate is no worse than the reference at this confidence) and to 0.01 points.
    """
    confidence = validate_confidence(confidence)
    if confidence == 0.0:
        return outcome.drop_points
    alpha = 1.0 - confidence
    if p_value(outcome, 0.0) <= alpha:
        return 0.0
    spread = 100.0 * (3.0 * math.sqrt(outcome.losses + outcome.gains + 1) + 1) / outcome.n
    low, high = max(0.0, outcome.drop_points - spread), min(99.99, max(0.0, outcome.drop_points) + spread)
    if p_value(outcome, low) <= alpha:
        low = 0.0
    while p_value(outcome, high) > alpha and high < 99.99:
        low, high = high, min(99.99, 2 * high)
    while high - low > 0.005:  # the p-value does not increase with the budget
        middle = (low + high) / 2
        if p_value(outcome, middle) <= alpha:
            high = middle
        else:
            low = middle
    return math.ceil(high * 100) / 100


@dataclass(frozen=True)
class Assessment:
    """One candidate under the rule (drops in points)."""

    n: int
    losses: int
    gains: int
    drop_points: float
    bound_points: float
    admissible: bool

    def to_dict(self) -> dict:
        return asdict(self)


def assess(outcome: PairedOutcome, budget_points: float, confidence: float, *, bound: bool = True) -> Assessment:
    """Whether ``outcome`` is within ``budget_points`` at ``confidence`` (module docs); with ``bound``
    also its upper confidence bound (else ``bound_points`` is NaN: the decision needs one p-value)."""
    confidence = validate_confidence(confidence)
    if confidence == 0.0:
        admissible = outcome.drop_points <= budget_points + _TOLERANCE
        upper = outcome.drop_points
    else:
        admissible = p_value(outcome, budget_points) <= 1.0 - confidence
        upper = drop_upper_bound(outcome, confidence) if bound else math.nan
        if admissible and bound:  # the budget itself is then a valid bound (the bisection stops 0.01 wide)
            upper = min(upper, float(budget_points))
    return Assessment(outcome.n, outcome.losses, outcome.gains, outcome.drop_points, upper, admissible)


@dataclass(frozen=True)
class Selection:
    """Outcome of :func:`select_operating_point`.

    Attributes:
        index: chosen candidate (``None`` when none is admissible and there is no fallback).
        assessments: one per candidate, in the given order (``None`` past where the scan stopped).
        admitted: indices of the admitted candidates.
        fallback: the chosen candidate is the mildest one because none was admissible.
    """

    index: int | None
    assessments: list[Assessment | None]
    admitted: list[int]
    fallback: bool = False


def select_operating_point(outcomes: Sequence[PairedOutcome], budget_points: float, confidence: float, *,
                           score: Sequence[float] | None = None, fallback_to_mildest: bool = True,
                           also_within: Callable[[int], bool] | None = None, bounds: bool = True) -> Selection:
    """Choose among ``outcomes`` ordered from the mildest to the most aggressive candidate.

    ``confidence > 0``: fixed-sequence scan, stopping at the first inadmissible candidate;
    ``confidence == 0``: every candidate whose observed drop is within the budget is admitted (the
    legacy rule). Among the admitted, the highest ``score`` is chosen (ties: smaller observed drop,
    then the earlier candidate); without ``score`` the last admitted. ``also_within(i)``: an extra
    condition a candidate must meet to be admitted (e.g. the budget on another metric). None
    admitted: the mildest candidate with ``fallback=True`` (``fallback_to_mildest``), else ``index=None``.
    ``bounds=False``: decide without computing the reported bounds (NaN).
    """
    if not outcomes:
        raise ValueError("select_operating_point: no candidates")
    if score is not None and len(score) != len(outcomes):
        raise ValueError(f"select_operating_point: {len(score)} scores for {len(outcomes)} candidates")
    confidence = validate_confidence(confidence)
    assessments: list[Assessment | None] = [None] * len(outcomes)
    admitted = []
    for i, outcome in enumerate(outcomes):
        assessments[i] = assess(outcome, budget_points, confidence, bound=bounds)
        ok = assessments[i].admissible and (also_within is None or also_within(i))
        if ok:
            admitted.append(i)
        elif confidence > 0.0:
            break
    if not admitted:
        return Selection(0 if fallback_to_mildest else None, assessments, admitted, fallback=fallback_to_mildest)
    if score is None:
        return Selection(admitted[-1], assessments, admitted)
    best = admitted[0]
    for i in admitted[1:]:
        if (score[i], -assessments[i].drop_points) > (score[best], -assessments[best].drop_points):
            best = i
    return Selection(best, assessments, admitted)

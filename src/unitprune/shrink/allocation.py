"""Channel counts of the differentiable method: ranked masks, the budget projection, the final fit.

Each prunable channel group ``g`` has a continuous channel count ``k_g`` (``1 <= k_g <= width``).
Its channels are ranked by salience (rank 0: the most salient) and the channel of rank ``r``
gets the mask value ``clamp(k_g - r, 0, 1)`` (:func:`ranked_mask`): the ``floor(k_g)`` most
salient channels are open, one channel is partly open, the rest are masked but still in the
model, so a masked channel whose salience rises above an open one's reopens.

The counts follow the scheduled budget through the resource model evaluated on the continuous
counts (:func:`project_counts`): whenever ``R(k)`` exceeds the budget, the counts move along
``-dR/dk_g / v_g`` (the resource terms' gradient over each group's marginal value ``v_g``, the
salience of its least salient open channel, :func:`marginal_value`) until ``R(k)`` is back at the
budget. So the multiplier of the resource term in ``CE + lambda * R`` is the one that keeps the
model exactly at the scheduled budget at every step; groups whose marginal channel is cheap (low
salience) and costly (high resource gradient) shrink first, and the counts cannot lag behind or
overshoot the schedule.

:func:`fit_counts` turns the continuous counts into integer ones that meet the budget exactly by
the resource model and keep the most salience, never below ``floor(k_g)`` when that fits: it
removes the channels of least salience per unit of resource while the model is over the budget,
adds back, one channel at a time, the channel with the most salience per unit of resource that
still fits, until no group can take one more channel, then exchanges channels between groups
while that keeps more salience.
"""

from __future__ import annotations

import math
from typing import Mapping

import torch

from .budget import MCUBudget, over_budget
from .resources import ResourceGraph

__all__ = ["ranked_mask", "marginal_value", "project_counts", "fit_counts", "salience_ranks"]

#: relative tolerance of the continuous projection (float rounding of the resource terms)
_TOLERANCE = 1e-6


def salience_ranks(salience: torch.Tensor) -> torch.Tensor:
    """Rank of every channel, 0 for the most salient (ties: the lower index first)."""
    order = torch.argsort(-salience, stable=True)
    ranks = torch.empty_like(order)
    ranks[order] = torch.arange(salience.numel())
    return ranks


def ranked_mask(count: float, salience: torch.Tensor) -> torch.Tensor:
    """Mask values ``clamp(count - rank, 0, 1)`` for the channels ranked by ``salience``."""
    return (count - salience_ranks(salience).to(torch.float32)).clamp(0.0, 1.0)


def marginal_value(count: float, salience: torch.Tensor) -> float:
    """Salience of the least salient channel the mask of ``count`` keeps (partly) open."""
    ordered = torch.sort(salience, descending=True).values
    index = min(max(0, math.ceil(count - 1e-9) - 1), salience.numel() - 1)
    return float(ordered[index])


def _relative(values: Mapping[str, object], limits: Mapping[str, float]) -> dict[str, float]:
    return {k: float(torch.as_tensor(values[k]).detach()) / v for k, v in limits.items()}


def _evaluate(graph: ResourceGraph, counts, budget: MCUBudget) -> dict:
    return graph.evaluate(counts, **budget.resource_options())


def project_counts(graph: ResourceGraph, counts: Mapping[int, float], values: Mapping[int, float],
                   limits: Mapping[str, float], budget: MCUBudget, max_iterations: int = 64) -> dict[int, float]:
    """Lower the continuous ``counts`` until the resource model fits ``limits`` (see the module docstring).

    Each iteration takes the gradient ``c_g`` of ``sum R_k / B_k`` over the resources above their
    limit and moves along ``d_g = c_g / v_g`` by the step that removes the excess to first order
    (the terms are piecewise linear in one group's count, so a few iterations suffice; a maximum
    over ops moves its gradient to the next op). Counts never go below 1 or above their input.
    """
    widths = dict(counts)
    current = {g: float(v) for g, v in counts.items()}
    scale = max([float(v) for v in values.values()] + [0.0])
    floor_value = 1e-3 * scale if scale > 0 else 1.0
    for _ in range(max_iterations):
        params = {g: torch.tensor(v, requires_grad=True) for g, v in current.items()}
        terms = _evaluate(graph, params, budget)
        relative = _relative(terms, limits)
        over = [k for k, r in relative.items() if r > 1.0 + _TOLERANCE]
        if not over:
            break
        excess_total = sum(relative[k] - 1.0 for k in over)
        usage = sum(terms[k] / limits[k] for k in over)
        groups = [g for g in params if current[g] > 1.0]
        grads = torch.autograd.grad(usage, [params[g] for g in groups], allow_unused=True)
        direction, slope = {}, 0.0
        for g, grad in zip(groups, grads):
            c = float(grad) if grad is not None else 0.0
            if c > 0:
                direction[g] = c / max(float(values.get(g, 0.0)), floor_value)
                slope += c * direction[g]
        if slope <= 0:
            break  # every group that costs anything is at one channel (check_feasible refuses that budget)
        step = excess_total / slope * (1.0 + 1e-4)
        for g, d in direction.items():
            current[g] = min(widths[g], max(1.0, current[g] - step * d))
    return current


def fit_counts(graph: ResourceGraph, counts: Mapping[int, float], salience: Mapping[int, torch.Tensor],
               budget: MCUBudget) -> dict[int, int]:
    """Integer counts from continuous ``counts`` that fit ``budget`` and keep the most salience.

    The objective is the kept salience (the saliences of the channels that stay, summed), the
    constraint the budget by the exact resource model. The continuous counts are the allocation
    training converged to, so when ``floor(k)`` fits, no group goes below ``floor(k_g)``: the fit
    rounds that allocation instead of re-allocating (at mnist-wide's 10x budget, 1.9 conv1 and 4.9
    conv2 channels must not become 1 and 7: the one conv1 channel dropped carried half of conv2's
    input); otherwise the lower bound is one channel. Start at ``ceil(k_g)``; while over the
    budget, remove the channel (of a group above its lower bound) with the lowest salience per
    unit of relative usage ``sum_k R_k / B_k`` it frees. Then fill: while some group can take one
    more channel and still fit, add the channel with the highest salience per unit of added
    relative usage (a channel that costs nothing first). Then exchange: take one or two channels
    out of a group (not below its lower bound) and fill again; keep the result when it keeps more
    salience, until no such exchange does (a local optimum of the integer problem; a budget that is
    a maximum over ops, such as peak SRAM, makes the fill alone stop early where a channel of one
    group at the peak is worth less than one of another group at the same peak). Widths are
    ``salience[g].numel()``.
    """
    limits = budget.limits()
    widths = {g: int(s.numel()) for g, s in salience.items()}
    ordered = {g: torch.sort(s, descending=True).values for g, s in salience.items()}
    cumulative = {g: torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(o.double(), 0)])
                  for g, o in ordered.items()}
    ints = {g: min(widths[g], max(1, math.ceil(float(k) - 1e-9))) for g, k in counts.items()}

    def usage(c) -> tuple[dict, float]:
        values = graph.exact(c, **budget.resource_options()).as_dict()
        return values, sum(float(values[k]) / v for k, v in limits.items())

    def kept(c) -> float:
        return sum(float(cumulative[g][n]) for g, n in c.items())

    def fill(c: dict[int, int]) -> dict[int, int]:
        c = dict(c)
        _, total = usage(c)
        while True:
            best = None
            for g in c:
                if c[g] >= widths[g]:
                    continue
                trial = {**c, g: c[g] + 1}
                trial_values, trial_total = usage(trial)
                if over_budget(trial_values, limits):
                    continue
                cost = trial_total - total
                score = (cost <= 0, float(ordered[g][c[g]]) / max(cost, 1e-12))
                if best is None or score > best[0]:
                    best = (score, g, trial_total)
            if best is None:
                return c
            c[best[1]] += 1
            total = best[2]

    floor = {g: min(widths[g], max(1, math.floor(float(k) + 1e-9))) for g, k in counts.items()}
    lower = floor if not over_budget(usage(floor)[0], limits) else {g: 1 for g in ints}
    values, total = usage(ints)
    while over_budget(values, limits):
        best = None
        for g in ints:
            if ints[g] <= lower[g]:
                continue
            trial = {**ints, g: ints[g] - 1}
            trial_values, trial_total = usage(trial)
            freed = total - trial_total
            score = (freed > 0, -float(ordered[g][ints[g] - 1]) / max(freed, 1e-12))
            if best is None or score > best[0]:
                best = (score, g, trial_values, trial_total)
        if best is None:
            break
        ints[best[1]] -= 1
        values, total = best[2], best[3]
    if over_budget(values, limits):
        return ints  # one channel per group does not fit (check_feasible refuses such a budget first)
    ints = fill(ints)
    value = kept(ints)
    improved = True
    while improved:
        improved = False
        for g in sorted(ints, key=lambda h: float(ordered[h][ints[h] - 1])):
            for out in (1, 2):
                if ints[g] - out < lower[g]:
                    continue
                trial = fill({**ints, g: ints[g] - out})
                trial_value = kept(trial)
                if trial_value > value * (1 + 1e-9) + 1e-12:
                    ints, value, improved = trial, trial_value, True
                    break
            if improved:
                break
    return ints

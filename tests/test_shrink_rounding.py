"""The end of the differentiable method's pruning phase: continuous channel counts to integer ones.

The continuous counts are the allocation that training converged to; the integer fit rounds them
(no group below ``floor(k)`` when ``floor(k)`` fits) and keeps the most salience. Oracle: exhaustive
search over the count vectors with the exact resource model."""

from __future__ import annotations

import math

import torch

from unitprune.models import build_model
from unitprune.shrink import MCUBudget
from unitprune.shrink.allocation import fit_counts
from unitprune.shrink.resources import trace_resources


def _kept(salience, counts):
    return sum(float(torch.sort(salience[g], descending=True).values[:n].sum()) for g, n in counts.items())


def test_fit_counts_keeps_a_salient_partly_open_conv1_channel_at_the_10x_budget():
    """mnist-wide at 3,234 B (10x less than its base): the counts 1.895 / 4.948 / 63.65 that the
    method's projection left, conv1's second channel far more salient than conv2's fifth. The
    result keeps as much salience as the best of every count vector that fits with every group at
    or above floor(k) (a hand-checked case: 2 conv1 channels and 4 conv2 channels, not one conv1
    channel traded for three conv2 channels)."""
    model = build_model("mnist-wide", seed=0)
    graph = trace_resources(model, (1, 28, 28))
    g1, g2, g3 = graph.prunable_groups()
    budget = MCUBudget(sram_bytes=3234, flash_bytes=245760)
    counts = {g1: 1.895, g2: 4.948, g3: 63.65}
    salience = {g1: torch.cat([torch.tensor([5.0, 10.0]), torch.full((30,), 0.01)]),
                g2: torch.linspace(1.0, 0.01, 64),
                g3: torch.linspace(0.02, 0.001, 128)}

    def fits(c):
        exact = graph.exact(c, **budget.resource_options())
        return exact.sram_bytes <= budget.sram_bytes and exact.flash_bytes <= budget.flash_bytes

    best, best_counts = -1.0, None
    floor = {g: max(1, math.floor(k)) for g, k in counts.items()}
    for c1 in range(floor[g1], 33):
        for c2 in range(floor[g2], 65):
            if not fits({g1: c1, g2: c2, g3: floor[g3]}):
                continue
            lo, hi = floor[g3], 128  # the widest fc1 that fits (usage grows with the count)
            while lo < hi:
                mid = (lo + hi + 1) // 2
                lo, hi = (mid, hi) if fits({g1: c1, g2: c2, g3: mid}) else (lo, mid - 1)
            candidate = {g1: c1, g2: c2, g3: lo}
            if _kept(salience, candidate) > best:
                best, best_counts = _kept(salience, candidate), candidate
    ints = fit_counts(graph, counts, salience, budget)
    assert fits(ints)
    assert all(ints[g] >= floor[g] for g in counts), ints
    assert (ints[g1], ints[g2]) == (2, 4) == (best_counts[g1], best_counts[g2])
    assert _kept(salience, ints) == best

"""Pareto frontier of (accuracy, skipped MACs) points: both are to be maximised."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["pareto_frontier", "max_skipped_within_drop"]


def pareto_frontier(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated points, sorted by increasing skipped fraction.

    Args:
        points: ``(accuracy, skipped_fraction)`` pairs; higher is better for both.

    A point is dominated when another point is at least as good in both coordinates and strictly
    better in one. Exact duplicates do not dominate each other: the first of them is kept, the
    others are dropped (one representative per distinct frontier point).
    """
    frontier: list[int] = []
    seen: set[tuple[float, float]] = set()
    for i, (accuracy, skipped) in enumerate(points):
        if (accuracy, skipped) in seen:
            continue
        dominated = any(
            other_acc >= accuracy and other_skip >= skipped and (other_acc > accuracy or other_skip > skipped)
            for j, (other_acc, other_skip) in enumerate(points) if j != i
        )
        if not dominated:
            frontier.append(i)
            seen.add((accuracy, skipped))
    return sorted(frontier, key=lambda i: (points[i][1], -points[i][0]))


def max_skipped_within_drop(drops: Sequence[float], skipped: Sequence[float], max_drop: float
                            ) -> int | None:
    """Index of the point skipping the most MACs with ``drop <= max_drop`` (ties: smaller drop,
    then earlier point); ``None`` if no point qualifies. Drops are in points; a tolerance of
    1e-9 absorbs float rounding of accuracies computed from counts."""
    best = None
    for i, (drop, skip) in enumerate(zip(drops, skipped)):
        if drop <= max_drop + 1e-9 and (best is None or (skip, -drop) > (skipped[best], -drops[best])):
            best = i
    return best

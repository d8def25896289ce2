"""MCU-resource-aware structured pruning: make a model *fit* the microcontroller, then run UnIT on it.

The second method of the project (Liberis & Lane, "Differentiable Network Pruning for
Microcontrollers", arXiv 2110.08350; docs/shrink.md tells the story end to end). This subpackage
holds:

* :mod:`.resources`: the int8 resource model (flash, peak SRAM, MACs), exact and differentiable.
* :mod:`.budget`: chip budgets and presets, the cubic budget schedule, the feasibility check.
* :mod:`.gates`: per-channel gates, the relaxed channel counts.
* :mod:`.removal`: physical channel removal (Torch-Pruning's DependencyGraph) with optimizer state.
* :mod:`.method`: the training loop, :func:`shrink`.

Typical use::

    from unitprune.shrink import PRESETS, shrink
    result = shrink(model, splits.train, splits.val, budget=PRESETS["atmega2560"])
    result.model, result.before, result.after

The experiment harness around the method (baselines, MCU measurements, reports) lives in
:mod:`unitprune.experiments.shrink_study`.
"""

from .budget import PRESETS, BudgetError, MCUBudget, cubic_budget, parse_count, parse_size
from .resources import RESOURCE_NAMES, ResourceGraph, Resources, resources, trace_resources

#: Names of :mod:`.method`, imported on first use: the method pulls in the training loop and
#: Torch-Pruning (the ``shrink`` extra), which ``import unitprune`` must not need.
_LAZY = {"ShrinkConfig", "ShrinkResult", "shrink"}

__all__ = ["PRESETS", "BudgetError", "MCUBudget", "cubic_budget", "parse_count", "parse_size", "ShrinkConfig",
           "ShrinkResult", "shrink", "RESOURCE_NAMES", "ResourceGraph", "Resources", "resources",
           "trace_resources"]


def __getattr__(name: str):
    if name in _LAZY:
        from . import method

        return getattr(method, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

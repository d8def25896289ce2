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
from .method import ShrinkConfig, ShrinkResult, shrink
from .resources import RESOURCE_NAMES, ResourceGraph, Resources, resources, trace_resources

__all__ = ["PRESETS", "BudgetError", "MCUBudget", "cubic_budget", "parse_count", "parse_size", "ShrinkConfig",
           "ShrinkResult", "shrink", "RESOURCE_NAMES", "ResourceGraph", "Resources", "resources",
           "trace_resources"]

"""MCU-resource-aware structured pruning: make a model *fit* the microcontroller, then run UnIT on it.

The second method of the project (Liberis & Lane, "Differentiable Network Pruning for
Microcontrollers", arXiv 2110.08350; see docs/shrink.md). This subpackage holds:

* :mod:`.resources`: the int8 resource model (flash, peak SRAM, MACs), exact and differentiable.
"""

from .resources import RESOURCE_NAMES, ResourceGraph, Resources, resources, trace_resources

__all__ = ["RESOURCE_NAMES", "ResourceGraph", "Resources", "resources", "trace_resources"]

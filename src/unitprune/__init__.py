"""unitprune: UnIT, unstructured inference-time pruning for microcontrollers.

Typical use::

    model = unitprune.convert(trained_model, unitprune.UnITConfig(approx="bitshift"))
    unitprune.calibrate(model, validation_inputs, percentile=20)
    print(unitprune.mac_report(model, test_inputs))
"""

from .calibrate import calibrate, reset_mac_counts, set_thresholds
from .config import UnITConfig
from .convert import convert, unit_layers
from .counts import MacCounts
from .layers import UnITConv1d, UnITConv2d, UnITLinear
from .report import MacReport, mac_report
from . import shrink  # the subpackage; callable: unitprune.shrink(model, ...) runs the method
from .shrink import MCUBudget, Resources, ShrinkConfig, resources

__version__ = "0.1.0"

__all__ = [
    "UnITConfig",
    "UnITConv1d",
    "UnITConv2d",
    "UnITLinear",
    "MacCounts",
    "MacReport",
    "calibrate",
    "convert",
    "mac_report",
    "reset_mac_counts",
    "resources",
    "Resources",
    "shrink",
    "MCUBudget",
    "ShrinkConfig",
    "set_thresholds",
    "unit_layers",
]

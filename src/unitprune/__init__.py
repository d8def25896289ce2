"""unitprune: UnIT, unstructured inference-time pruning for microcontrollers.

Typical use::

    model = unitprune.convert(trained_model, unitprune.UnITConfig(approx="bitshift"))
    unitprune.calibrate(model, validation_inputs, percentile=20)
    print(unitprune.mac_report(model, test_inputs))
    dense = unitprune.strip(model)  # the plain torch model, for torch.export / ONNX / jit
"""

from ._version import __version__
from .calibrate import calibrate, reset_mac_counts, set_thresholds
from .config import RuntimeConfig, UnITConfig
from .convert import convert, strip, unit_layers
from .counts import MacCounts
from .layers import UnITConv1d, UnITConv2d, UnITLinear
from .mcu.export import export_c
from .mcu.host_runner import run_exported
from .mcu.quantize import quantize
from .report import MacReport, mac_report
from . import shrink  # the subpackage: unitprune.shrink.shrink(model, ...) runs the method
from .shrink import MCUBudget, Resources, ShrinkConfig, resources


__all__ = [
    "RuntimeConfig",
    "UnITConfig",
    "UnITConv1d",
    "UnITConv2d",
    "UnITLinear",
    "MacCounts",
    "MacReport",
    "calibrate",
    "convert",
    "export_c",
    "mac_report",
    "quantize",
    "reset_mac_counts",
    "resources",
    "Resources",
    "shrink",
    "MCUBudget",
    "ShrinkConfig",
    "run_exported",
    "set_thresholds",
    "strip",
    "unit_layers",
]

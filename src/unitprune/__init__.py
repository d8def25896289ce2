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
from .mcu.export import export_c
from .mcu.host import run_exported
from .mcu.quantize import quantize
from .report import MacReport, mac_report

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
    "export_c",
    "mac_report",
    "quantize",
    "reset_mac_counts",
    "run_exported",
    "set_thresholds",
    "unit_layers",
]

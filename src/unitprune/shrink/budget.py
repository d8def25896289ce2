"""MCU budgets, their presets, the cubic budget schedule and the feasibility check.

A budget limits any of the three resources of :mod:`.resources` (``None``: unconstrained).
``BudgetError`` is raised when a budget cannot be met; its message names the resource, the best
value reachable and by how much it exceeds the budget.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..mcu.export.memory_plan import parse_conv_block_rows
from ..mcu.targets.specs import FLASH_CODE_RESERVE, FLASH_CODE_RESERVE_RV32EC, LAYOUTS, STACK_RESERVE
from .resources import RESOURCE_NAMES, ResourceGraph

#: The executions a budget counts SRAM for (the export's ``execution``; ``auto`` is the export's choice).
EXECUTIONS = ("layers", "fused")

__all__ = ["EXECUTIONS", "MCUBudget", "BudgetError", "PRESETS", "parse_size", "parse_count", "cubic_budget",
           "check_feasible", "over_budget"]


class BudgetError(ValueError):
    """The budget cannot be met (the message says which resource and by how much)."""


@dataclass(frozen=True)
class MCUBudget:
    """Resource limits of a target chip.

    Attributes:
        sram_bytes: peak activation + scratch RAM (the network input counted).
        flash_bytes: constants in flash (int8 weights, int32 biases, requantization, tau tables).
        macs: dense multiply-accumulates per inference (a latency proxy).
        name: shown in reports.
        unit_tables: count UnIT's conv tau tables (one byte per conv weight) in flash.
        target: the exporter target whose descriptor layout SRAM counts (avr, msp430, host).
        conv_block_rows: the exporter's ``conv_block_rows`` the SRAM is counted for (None or
            "plane": whole output planes of conv accumulators, the default; "min": 1 row; an int).
        execution: the exporter's ``execution`` the SRAM is counted for: ``"layers"`` (layer by
            layer, the default) or ``"fused"`` (row-streamed, one output row per conv step, the
            input read row by row: ``unitprune.resources(..., execution="fused")``; the model must
            be a chain the fused plan streams).
    """

    sram_bytes: int | None = None
    flash_bytes: int | None = None
    macs: int | None = None
    name: str = "custom"
    unit_tables: bool = False
    target: str = "avr"
    conv_block_rows: int | str | None = None
    execution: str = "layers"

    def __post_init__(self) -> None:
        for key in RESOURCE_NAMES:
            value = getattr(self, key)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"MCUBudget.{key} must be a positive integer or None, got {value!r}")
        if not self.limits():
            raise ValueError("MCUBudget: set at least one of sram_bytes, flash_bytes, macs")
        if self.target not in LAYOUTS:
            raise ValueError(f"MCUBudget.target must be one of {', '.join(LAYOUTS)}, got {self.target!r}")
        if self.execution not in EXECUTIONS:
            raise ValueError(f"MCUBudget.execution must be one of {', '.join(EXECUTIONS)}, got {self.execution!r}")
        try:
            parse_conv_block_rows(self.conv_block_rows)
        except ValueError as error:
            raise ValueError(f"MCUBudget.{error}") from None

    def limits(self) -> dict[str, int]:
        """The constrained resources and their limits."""
        return {k: getattr(self, k) for k in RESOURCE_NAMES if getattr(self, k) is not None}

    def resource_options(self) -> dict:
        """The options of :meth:`ResourceGraph.evaluate` / ``exact`` this budget counts resources with."""
        return {"unit_tables": self.unit_tables, "target": self.target, "conv_block_rows": self.conv_block_rows,
                "execution": self.execution}

    def with_(self, **changes) -> "MCUBudget":
        values = {k: getattr(self, k) for k in self.__dataclass_fields__}
        values.update({k: v for k, v in changes.items() if v is not None})
        return MCUBudget(**values)


#: Chip presets: 8 KB SRAM and 256 KB flash (ATmega2560) / FRAM (MSP430FR5994); 32 KB SRAM and
#: 256 KB flash (Microchip SAMD21J18A, Cortex-M0+ without SIMD or DSP instructions, the largest
#: SAMD21: the KWS setting of docs/shrink.md); 264 KB SRAM / 2 MB flash (RP2040, Cortex-M0+);
#: 2 KB SRAM / 16 KB flash (CH32V003, RV32EC). The SRAM limit is the chip's SRAM less the
#: exporter's stack reserve, the test the exporter itself applies; the flash limit (constant tables:
#: what the resource model counts) is the chip's flash less the firmware's code
#: (:data:`~unitprune.mcu.targets.specs.FLASH_CODE_RESERVE`, 9 KB on the CH32V003).
PRESETS = {
    "atmega2560": MCUBudget(sram_bytes=8 * 1024 - STACK_RESERVE, flash_bytes=256 * 1024 - FLASH_CODE_RESERVE, name="ATmega2560",
                            target="avr"),
    "msp430fr5994": MCUBudget(sram_bytes=8 * 1024 - STACK_RESERVE, flash_bytes=256 * 1024 - FLASH_CODE_RESERVE, name="MSP430FR5994",
                              target="msp430"),
    "samd21": MCUBudget(sram_bytes=32 * 1024 - STACK_RESERVE, flash_bytes=256 * 1024 - FLASH_CODE_RESERVE, name="SAMD21",
                        target="cortex-m"),
    # RP2040 (Raspberry Pi Pico): two Cortex-M0+, 264 KB SRAM, the Pico's 2 MB QSPI flash
    "rp2040": MCUBudget(sram_bytes=264 * 1024 - STACK_RESERVE, flash_bytes=2 * 1024 * 1024 - FLASH_CODE_RESERVE, name="RP2040",
                        target="m0plus"),
    # WCH CH32V003: RV32EC (no multiply instruction), 2 KB SRAM, 16 KB flash
    "ch32v003": MCUBudget(sram_bytes=2 * 1024 - STACK_RESERVE, flash_bytes=16 * 1024 - FLASH_CODE_RESERVE_RV32EC, name="CH32V003",
                          target="rv32ec"),
}

_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kKmM]?)(i?[bB])?\s*$")


def parse_size(text: str | int) -> int:
    """Bytes from ``"8KB"``, ``"8 KiB"``, ``"256k"``, ``"1.5MB"`` or ``"8192"`` (K = 1024, M = 1024**2)."""
    if isinstance(text, int):
        return text
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"cannot read a size from {text!r} (examples: 8KB, 256KB, 8192)")
    number, prefix = float(match.group(1)), match.group(2).lower()
    value = number * {"": 1, "k": 1024, "m": 1024 ** 2}[prefix]
    if value < 1 or value != int(value):
        raise ValueError(f"size {text!r} is not a positive whole number of bytes")
    return int(value)


def parse_count(text: str | int) -> int:
    """A count from ``"500k"``, ``"1.2M"`` or ``"500000"`` (k = 1000, M = 10**6)."""
    if isinstance(text, int):
        return text
    match = re.match(r"^\s*([0-9]*\.?[0-9]+)\s*([kKmM]?)\s*$", text)
    if not match:
        raise ValueError(f"cannot read a count from {text!r} (examples: 500k, 1.2M, 250000)")
    value = float(match.group(1)) * {"": 1, "k": 1000, "m": 10 ** 6}[match.group(2).lower()]
    if value < 1 or value != int(value):
        raise ValueError(f"count {text!r} is not a positive whole number")
    return int(value)


def cubic_budget(initial: float, target: float, step: int, total_steps: int) -> float:
    """Budget at ``step``: ``target + (initial - target) * (1 - step / total_steps) ** 3``, then ``target``.

    The cubic schedule of Zhu & Gupta (2017), used by DPF and uNAS: it tightens fast while the
    model is large and redundant and slowly near the target, where each removed channel costs
    more accuracy. Never below ``target``, never above ``initial`` (``initial <= target``: constant).
    """
    if initial <= target or total_steps <= 0 or step >= total_steps:
        return float(target)
    fraction = 1.0 - max(step, 0) / total_steps
    return float(target + (initial - target) * fraction ** 3)


def over_budget(values: dict, limits: dict[str, int]) -> dict[str, float]:
    """The resources above their limit: ``{name: value - limit}``."""
    return {k: float(values[k]) - v for k, v in limits.items() if float(values[k]) > v}


def check_feasible(graph: ResourceGraph, budget: MCUBudget) -> None:
    """Raise :class:`BudgetError` if even one channel per prunable group exceeds the budget."""
    smallest = graph.exact({g: 1 for g in graph.prunable_groups()}, **budget.resource_options())
    excess = over_budget(smallest.as_dict(), budget.limits())
    if excess:
        parts = [f"{k} {getattr(smallest, k):,} at the smallest model (1 channel per prunable layer) "
                 f"> budget {budget.limits()[k]:,} by {int(v):,} ({100 * v / budget.limits()[k]:.1f}%)"
                 for k, v in excess.items()]
        raise BudgetError(f"budget {budget.name} cannot be met: " + "; ".join(parts)
                          + f" (activation arena peak at op {smallest.peak_op})")

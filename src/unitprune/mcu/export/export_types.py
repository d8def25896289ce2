"""What the export pipeline hands back and raises: :class:`ExportError`, :class:`ExportResult`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..qmodel import QConv, QLinear, QuantizedModel
from .memory_plan import MemoryPlan

__all__ = ["ExportError", "ExportResult", "FAR_DEFINES", "LayerFlash", "layer_names"]


class ExportError(ValueError):
    """The model cannot be exported as asked (the message names the layer or the file)."""


class SamplesTooLarge(ExportError):
    """The model's tables fit the target's flash, but not beside the embedded samples: embed fewer.
    (The kernels and tables are chosen without the samples, so a firmware is the same with any
    number of them.)"""


@dataclass(frozen=True)
class LayerFlash:
    """Bytes of constant tables of one layer, in flash."""

    name: str
    tables: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.tables.values())


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_c` wrote."""

    out_dir: Path
    target: str
    variant: str
    linear_quotient: str
    files: list[str]  # relative to out_dir
    memory: MemoryPlan
    flash: list[LayerFlash]
    layers: list[str]  # conv/linear layer names, in counter order
    input_size: int
    output_size: int
    samples: int  # test samples embedded (MCU targets) or written to samples.bin (host)
    build_commands: list[str] = field(default_factory=list)
    conv_block_rows: int = 0  # the kernels' block_rows of every conv (0: the whole output plane)
    far_tables: bool = False  # AVR: the tables beyond 64 KB, read through __memx pointers (UNIT_FAR_TABLES)
    execution: str = "layers"  # "layers" or "fused" (row-streamed, unitprune.mcu.export.fused_plan)
    fused_axis: str | None = None  # fused: "height" (rows) or "width" (columns, unitprune.mcu.export.fused_axis)
    fused_rows: int | None = None  # fused: output rows per conv step (the one chosen for fused_rows="auto")

    @property
    def flash_table_bytes(self) -> int:
        """Bytes of the model's constant tables (without code and embedded samples)."""
        return sum(layer.total for layer in self.flash)


#: Compiler defines of every file of a far-tables export (unit_types.h), given to the build.
FAR_DEFINES = {"UNIT_FAR_TABLES": 1}


def layer_names(qmodel: QuantizedModel) -> list[str]:
    """Names of the conv/linear ops (the layers with MAC counters), in op order."""
    return [op.name for op in qmodel.ops if isinstance(op, (QConv, QLinear))]

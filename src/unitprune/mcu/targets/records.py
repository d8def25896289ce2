"""What a firmware build and a firmware run give back: :class:`Firmware`, :class:`Region`,
:class:`RunResult`, and the recorder that turns marker events (unit_mcu.h) into regions."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from .energy import energy_uj_estimate


@dataclass(frozen=True)
class Firmware:
    """A built firmware. Sizes come from the ELF section headers (None on the host):
    ``flash_bytes`` = text + rodata + data (the initial values of .data are stored in flash),
    ``sram_static_bytes`` = data + bss (the stack comes on top: ``RunResult.stack_bytes``)."""

    target: str
    elf: Path
    build_dir: Path
    sections: dict[str, int] | None
    flash_bytes: int | None
    sram_static_bytes: int | None
    symbols: dict[str, int] = field(default_factory=dict, repr=False)
    commands: list[list[str]] = field(default_factory=list, repr=False)
    compiler: str = ""


@dataclass(frozen=True)
class Region:
    """One labelled record: cycles from UNIT_MCU_START (included) to UNIT_MCU_STOP (excluded),
    None if the record has no start/stop pair or the target does not count cycles (host);
    ``data``: the bytes unit_mcu_emit() sent after the label; ``instructions``: instructions
    executed in the region (the emulated Cortex-M0+ / RV32 targets; None elsewhere)."""

    label: str
    cycles: int | None
    data: bytes
    instructions: int | None = None

    def with_instructions(self, instructions: int | None) -> Region:
        return replace(self, instructions=instructions)


@dataclass(frozen=True)
class RunResult:
    """The records of one run. ``total_cycles``: from reset to the done marker (None on the
    host); ``stack_bytes``: the stack high-water mark measured from the painted SRAM (None on the
    host). ``instructions``: instructions from reset to the done marker and ``cycle_source``: where
    the cycles come from (the emulated Cortex-M0+ / RV32 targets; RV32 cycles are a MODEL)."""

    target: str
    regions: list[Region]
    total_cycles: int | None
    stack_bytes: int | None
    output: str = field(default="", repr=False)  # the simulator's / program's other output
    instructions: int | None = None
    cycle_source: str = ""

    def region(self, label: str) -> Region:
        """The first region with this label; KeyError naming the labels that exist."""
        for region in self.regions:
            if region.label == label:
                return region
        raise KeyError(f"no region labelled {label!r} in the {self.target} run (labels: "
                       f"{[r.label for r in self.regions]})")

    def cycles(self) -> dict[str, int | None]:
        return {region.label: region.cycles for region in self.regions}

    def energy_uj_estimate(self, label: str) -> float | None:
        """Estimated energy (datasheet current, see unitprune.mcu.targets.energy) of a region."""
        return energy_uj_estimate(self.target, self.region(label).cycles)


class Recorder:
    """Marker events -> regions, as unit_mcu.h defines them: label characters accumulate; a
    label after a stopped region starts the next record; emitted bytes join the current record."""

    def __init__(self) -> None:
        self.regions: list[Region] = []
        self.finished = False  # the done marker was seen
        self.done_at: int | None = None
        self._reset()

    def _reset(self) -> None:
        self._label: list[str] = []
        self._start: int | None = None
        self._started = self._stopped = False
        self._cycles: int | None = None
        self._data = bytearray()

    def flush(self) -> None:
        if self._label or self._started or self._data:
            self.regions.append(Region("".join(self._label), self._cycles if self._stopped else None, bytes(self._data)))
        self._reset()

    def label(self, text: str) -> None:
        if self._stopped:
            self.flush()
        self._label.append(text)

    def start(self, cycle: int | None) -> None:
        self._start, self._started = cycle, True

    def stop(self, cycle: int | None) -> None:
        if self._started and cycle is not None and self._start is not None:
            self._cycles = cycle - self._start
        self._stopped = True

    def data(self, chunk: bytes) -> None:
        self._data.extend(chunk)

    def done(self, cycle: int | None) -> None:
        self.finished = True
        self.done_at = cycle
        self.flush()

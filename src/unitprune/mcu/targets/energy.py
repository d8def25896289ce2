"""Energy per cycle of each MCU target: ESTIMATES from datasheet supply currents, not measurements.

energy = cycles x active supply current x supply voltage / clock frequency. The simulators count
cycles exactly; the energy figure is only as good as the datasheet's typical current (it ignores
memory wait states, peripherals, and the data-dependence of real current draw). Every report
that shows it must call it an estimate.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EnergyModel:
    """Active-mode supply of one MCU at one operating point, with its source."""

    mcu: str
    clock_hz: float
    current_a: float  # active supply current at clock_hz
    voltage_v: float
    citation: str

    @property
    def nj_per_cycle(self) -> float:
        return self.current_a * self.voltage_v / self.clock_hz * 1e9

    def energy_uj(self, cycles: int) -> float:
        """Estimated energy of ``cycles`` CPU cycles, in microjoules."""
        return cycles * self.nj_per_cycle * 1e-3


_MSP430FR5994 = EnergyModel(
    mcu="MSP430FR5994", clock_hz=1e6, current_a=118e-6, voltage_v=3.0,
    citation="TI MSP430FR5994 datasheet (SLASE54), active mode supply current, FRAM, typical "
             "118 uA/MHz at 3.0 V: about 0.35 nJ/cycle (estimate)")
_ATMEGA2560 = EnergyModel(
    mcu="ATmega2560", clock_hz=4e6, current_a=3.2e-3, voltage_v=3.0,
    citation="Microchip ATmega640/1280/1281/2560/2561 datasheet, DC characteristics, active supply "
             "current at 4 MHz, VCC = 3 V, typical 3.2 mA: about 2.4 nJ/cycle (estimate)")

ENERGY_MODELS: dict[str, EnergyModel] = {"avr": _ATMEGA2560, "msp430": _MSP430FR5994, "msp430-hwmult": _MSP430FR5994}


def energy_uj_estimate(target: str, cycles: int | None) -> float | None:
    """Estimated energy in uJ of ``cycles`` on ``target``; None for the host or unknown cycles."""
    model = ENERGY_MODELS.get(target)
    if model is None or cycles is None:
        return None
    return model.energy_uj(cycles)

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

# The Cortex-M0+ and RV32 figures below are typical active currents as the vendors' datasheets give them
# in their current-consumption tables; they were not re-read from the PDFs when entered (no network):
# check them against the cited table before relying on them.
_SAMD21 = EnergyModel(
    mcu="SAMD21G18", clock_hz=48e6, current_a=3.5e-3, voltage_v=3.3,
    citation="Microchip SAM D21/DA1 family datasheet (DS40001882), electrical characteristics, current "
             "consumption, ACTIVE mode, CPU running from flash at 48 MHz, VDD 3.3 V, typical about 3.5 mA: "
             "about 0.24 nJ/cycle (estimate; figure not re-verified against the PDF)")
_CH32V003 = EnergyModel(
    mcu="CH32V003", clock_hz=48e6, current_a=4.3e-3, voltage_v=3.3,
    citation="WCH CH32V003 datasheet, electrical characteristics, run-mode supply current at 48 MHz (HSI + PLL), "
             "peripherals off, typical about 4.3 mA at 3.3 V: about 0.30 nJ/cycle (estimate; the RV32 cycles are "
             "themselves a model; figure not re-verified against the PDF)")
_ESP32C3 = EnergyModel(
    mcu="ESP32-C3", clock_hz=160e6, current_a=23e-3, voltage_v=3.3,
    citation="Espressif ESP32-C3 datasheet, current consumption in active mode with the RF off, CPU at 160 MHz, "
             "typical about 23 mA at 3.3 V: about 0.47 nJ/cycle (estimate; the RV32 cycles are a model; figure "
             "not re-verified against the PDF)")

ENERGY_MODELS: dict[str, EnergyModel] = {"avr": _ATMEGA2560, "msp430": _MSP430FR5994, "msp430-hwmult": _MSP430FR5994,
                                         "m0plus": _SAMD21, "m0plus-smallmul": _SAMD21, "rv32ec": _CH32V003,
                                         "rv32imc": _ESP32C3}


def energy_uj_estimate(target: str, cycles: int | None) -> float | None:
    """Estimated energy in uJ of ``cycles`` on ``target``; None for the host or unknown cycles."""
    model = ENERGY_MODELS.get(target)
    if model is None or cycles is None:
        return None
    return model.energy_uj(cycles)

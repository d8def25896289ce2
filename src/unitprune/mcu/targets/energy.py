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

# The Cortex-M0+ and RV32 figures below were checked against the datasheet tables named in each
# citation (through stored copies of the documents; see docs/mcu.md, "Energy"). The CH32V003 figure
# comes from a third-party extraction of WCH's datasheet table, the PDF itself was not read here.
_SAMD21 = EnergyModel(
    mcu="SAMD21G18", clock_hz=48e6, current_a=3.37e-3, voltage_v=3.3,
    citation="Microchip SAM D21/DA1 family datasheet (DS40001882), section 37.7 Power Consumption (electrical "
             "characteristics at 85 C), current consumption table, ACTIVE, CPU running a While(1) algorithm, "
             "DFLL48M at 48 MHz, VDDIN 3.3 V, 1 flash wait state, 25 C: typical 3.37 mA (min 3.11, max 3.64): "
             "about 0.23 nJ/cycle (estimate; a compute loop draws more: the same document's 125 C section, "
             "40.7, gives 4.6 mA typical for a Fibonacci algorithm at 25 C)")
_CH32V003 = EnergyModel(
    mcu="CH32V003", clock_hz=48e6, current_a=4.0e-3, voltage_v=3.3,
    citation="WCH CH32V003 datasheet (CH32V003DS0 V1.8), section 3.3.4, Table 3-6-1 run-mode supply current, "
             "48 MHz from the HSI, 3.3 V, peripherals off: typical 4.0 mA (6.4 mA with all peripherals on), as "
             "extracted in kristofferkoch/oparroy datasheets/CH32V003/notes/facts.md (the PDF was not read "
             "here): about 0.28 nJ/cycle (estimate; the RV32 cycles are themselves a model)")
_ESP32C3 = EnergyModel(
    mcu="ESP32-C3", clock_hz=160e6, current_a=23e-3, voltage_v=3.3,
    citation="Espressif ESP32-C3 Series Datasheet v2.4, section 5.6.2, Table 5-8 Current Consumption in "
             "Modem-sleep Mode (Wi-Fi clock-gated), CPU at 160 MHz, CPU running, all peripheral clocks "
             "disabled: typical 23 mA (28 mA with all enabled; flash access may add up to 10 mA, note 3), "
             "3.3 V supply: about 0.47 nJ/cycle (estimate; the RV32 cycles are a model)")

ENERGY_MODELS: dict[str, EnergyModel] = {"avr": _ATMEGA2560, "msp430": _MSP430FR5994, "msp430-hwmult": _MSP430FR5994,
                                         "m0plus": _SAMD21, "m0plus-smallmul": _SAMD21, "rv32ec": _CH32V003,
                                         "rv32imc": _ESP32C3}


def energy_uj_estimate(target: str, cycles: int | None) -> float | None:
    """Estimated energy in uJ of ``cycles`` on ``target``; None for the host or unknown cycles."""
    model = ENERGY_MODELS.get(target)
    if model is None or cycles is None:
        return None
    return model.energy_uj(cycles)

"""The MCU division benchmark (benchmarks/division_mcu.py) on a small N, on AVR (simavr) and MSP430
(mspdebug sim): every variant's results equal unitprune.approx / Python integers bit for bit
(checked inside measure(), which raises on a mismatch), and the cycle counts are identical across
two runs."""

from __future__ import annotations


import pytest

from tests.mcu_tools import load_benchmark, require_target





division_mcu = load_benchmark("division_mcu")


@pytest.mark.parametrize("target,opt", [("avr", "Os"), ("msp430", "O2")])
def test_division_bit_exact_and_deterministic(target, opt, tmp_path):
    require_target(target)
    first = division_mcu.measure(n=16, target=target, opts=(opt,), build_dir=tmp_path / "first")
    second = division_mcu.measure(n=16, target=target, opts=(opt,), build_dir=tmp_path / "second")
    cycles = first["builds"][opt]["loop_cycles"]
    assert cycles == second["builds"][opt]["loop_cycles"]
    expected = division_mcu.expected_results(division_mcu.make_operands(16), division_mcu.SOFT_FLOAT[target])
    assert set(cycles) == set(expected)
    assert all(value > 0 for value in cycles.values())
    # Every approximation does more work than the empty loop it is measured against.
    assert all(value > 0 for value in first["builds"][opt]["cycles_per_quotient"].values())


def test_mismatch_is_detected():
    """check_results must reject a single wrong bit (a benchmark that checks nothing is not trusted)."""
    ops = division_mcu.make_operands(4)
    expected = division_mcu.expected_results(ops)
    records = []
    for label, values in expected.items():
        width = 2 if label.startswith("u16") else 4
        data = b"".join(int(v).to_bytes(width, "little") for v in values)
        records.append({"label": label, "cycles": 1, "data": data.hex()})
    division_mcu.check_results(records, expected)  # the correct stream passes
    bad = bytearray.fromhex(records[3]["data"])
    bad[0] ^= 1
    records[3]["data"] = bad.hex()
    with pytest.raises(RuntimeError, match="results differ"):
        division_mcu.check_results(records, expected)

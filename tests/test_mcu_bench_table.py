"""benchmarks/mcu_bench_table.py on a hand-written ``mcu.json``: a row that does not fit one target is
shown as such in that target's column (the other target's cells measured) and listed with its reason."""

from __future__ import annotations

import json

from tests.mcu_tools import load_benchmark


def _row(method: str, target: str, cycles: int, energy: float) -> dict:
    return {"method": method, "target": target, "knob": None if method == "dense" else 20.0,
            "quantized_accuracy": 0.9, "macs_skipped_fraction": 0.25, "cycles": cycles, "bit_exact": True,
            "energy_uj_estimate": energy, "cycles_per_layer": {}}


def _document() -> dict:
    rows = [_row("dense", "avr", 4_000_000, 9_600.0), _row("dense", "msp430", 3_000_000, 1_050.0),
            _row("ttp", "avr", 2_000_000, 4_800.0)]
    return {"model": "kws", "dataset": "synth_speech", "seconds": 12.0,
            "config": {"targets": ["avr", "msp430"], "samples": 10, "budget_points": 1.0},
            "rows": rows, "details": [{"method": r["method"], "target": r["target"], "checks": {}} for r in rows],
            "not_fitted": [{"method": "ttp", "target": "msp430", "why": "flash: 70,000 B > 65,000 B"}]}


def test_a_row_that_does_not_fit_one_target_is_shown_and_listed(tmp_path):
    table = load_benchmark("mcu_bench_table")
    lines = table.tables(_document(), kernels=None).splitlines()
    ttp = next(line for line in lines if line.startswith("| ttp |"))
    cells = [c.strip() for c in ttp.strip("|").split("|")]
    # method, knob, acc, skipped, avr cycles, msp430 cycles, avr uJ, msp430 uJ, kernels
    assert cells[4] == "2.00 (2.00x)" and cells[5] == "does not fit"
    assert cells[6] == "4,800" and cells[7] == ""
    assert "* ttp on msp430: flash: 70,000 B > 65,000 B" in lines
    assert "ttp faster than ttp" not in "\n".join(lines)

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "mcu.json").write_text(json.dumps(_document()))
    output = tmp_path / "docs" / "kws.md"
    table.main([str(run_dir), "--output", str(output), "--kernels", str(tmp_path / "none.json"),
                "--bench-options", "--task kws --samples 10"])
    text = output.read_text()
    assert "`unitprune mcu-bench -v --task kws --samples 10 --run-dir" in text
    assert f"mcu_bench_table.py {run_dir} --output {output} --bench-options '--task kws --samples 10'`" in text
    assert "does not fit" in text and json.loads(output.with_suffix(".json").read_text())["not_fitted"]

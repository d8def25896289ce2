"""Issue 9's MCU targets, checked on a ``unitprune mcu-bench`` run, plus the UnIT kernel's cost when it skips nothing.

1. From ``RUN_DIR/mcu.json`` (and the host runner of each row's export, for the per-layer skipped
   fractions on exactly the samples the MCU ran):
   * MSP430 without multiplier, per conv layer with >= 50 % skipped: cycles(UnIT) / cycles(dense)
     against kept fraction + 0.15;
   * MSP430, whole model: dense / UnIT >= 2.5x, and UnIT faster than TTP;
   * AVR: UnIT faster than the zero-skipping dense kernel at the calibrated point.
2. UnIT at 0 % skipped against dense (AVR target <= 1.05x): one conv layer of the MNIST model's
   largest geometry (conv2: 6x12x12 -> 16, 5x5) with random non-zero int8 weights and inputs and
   ``T_q = 0`` (``tau = 0``: nothing is skipped), kernels dense / zeroskip / unit, on every target,
   outputs checked against the integer reference.

Usage: ``PYTHONPATH=src python benchmarks/mcu_bench_targets.py runs/mcu-bench``; writes
``benchmarks/results/mcu_targets.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests.qmodels builds the synthetic layer

from tests import qmodels  # noqa: E402
from unitprune.mcu import targets  # noqa: E402
from unitprune.experiments.mcu_bench.bench import _build  # noqa: E402
from unitprune.mcu.export import export_c  # noqa: E402
from unitprune.mcu.host_runner import run_exported  # noqa: E402
from unitprune.mcu.qmodel import QuantizedModel  # noqa: E402
from unitprune.mcu.reference import run_reference  # noqa: E402

UNIT_METHODS = ("unit-bitshift", "unit-bintree", "ttp+unit")


def _samples(export: Path) -> np.ndarray:
    """The int8 samples embedded in an MCU export's samples.h."""
    manifest = json.loads((export / "memory_plan.json").read_text())
    text = (export / "samples.h").read_text()
    body = text[text.index("unit_model_samples["):]
    values = [int(v) for v in re.findall(r"-?\d+", body[body.index("{"):body.index("}")])]
    return np.array(values, dtype=np.int8).reshape(-1, manifest["input_size"])


def layer_skipped(run_dir: Path, method: str, target: str) -> dict[str, float]:
    export = run_dir / "work" / f"{method}-{target}" / "export"
    _, counts = run_exported(export, _samples(export))
    return {layer: c.skipped_fraction for layer, c in counts.items()}


def check_run(run_dir: Path) -> dict:
    document = json.loads((run_dir / "mcu.json").read_text())
    rows = {(r["method"], r["target"]): r for r in document["rows"]}
    out: dict = {"per_layer_msp430": [], "whole_msp430": [], "avr_vs_zeroskip": []}
    dense = rows.get(("dense", "msp430"))
    for method in UNIT_METHODS:
        row = rows.get((method, "msp430"))
        if row and dense:
            skipped = layer_skipped(run_dir, method, "msp430")
            for layer, fraction in skipped.items():
                if not layer.startswith("conv"):
                    continue
                ratio = row["cycles_per_layer"][layer] / dense["cycles_per_layer"][layer]
                out["per_layer_msp430"].append({
                    "method": method, "layer": layer, "skipped": fraction, "cycle_ratio": ratio,
                    "bound": 1 - fraction + 0.15, "applies": fraction >= 0.5, "met": ratio <= 1 - fraction + 0.15})
            ttp = rows.get(("ttp", "msp430"))
            out["whole_msp430"].append({
                "method": method, "speedup_vs_dense": dense["cycles"] / row["cycles"],
                "met_2_5x": dense["cycles"] / row["cycles"] >= 2.5,
                "vs_ttp": None if ttp is None else ttp["cycles"] / row["cycles"],
                "faster_than_ttp": None if ttp is None else row["cycles"] < ttp["cycles"],
                "accuracy": row["quantized_accuracy"], "ttp_accuracy": None if ttp is None else ttp["quantized_accuracy"]})
    zeroskip = rows.get(("zeroskip", "avr"))
    for method in UNIT_METHODS:
        row = rows.get((method, "avr"))
        if row and zeroskip:
            out["avr_vs_zeroskip"].append({"method": method, "zeroskip_over_unit": zeroskip["cycles"] / row["cycles"],
                                           "met": row["cycles"] < zeroskip["cycles"]})
    return out


def no_skip_overhead(target_list: list[str]) -> list[dict]:
    """Dense, zeroskip and UnIT kernels on one conv layer where nothing can be skipped."""
    rng = np.random.default_rng(0)
    conv = qmodels.conv(rng, "conv", (6, 12, 12), 16, (5, 5), sparsity=0.0, threshold_q=0)
    weight = np.where(conv.weight == 0, np.int8(1), conv.weight)  # no zero weight either
    conv = dataclasses.replace(conv, weight=weight, tau=np.zeros_like(conv.tau))  # tau = approx(0, |w|) = 0
    x = rng.integers(1, 128, (3, 6, 12, 12)) * rng.choice([-1, 1], (3, 6, 12, 12))
    x = x.astype(np.int8)
    rows = []
    for target in target_list:
        cycles = {}
        for variant in ("dense", "zeroskip", "unit"):
            qmodel = QuantizedModel(ops=[conv], input_shape=(6, 12, 12), input_scale=0.05, output_scale=0.05,
                                    variant=variant, linear_quotient="bitshift", source={"model": "no-skip conv"})
            expected, counts = run_reference(qmodel, x)
            assert sum(c.dense - c.executed for c in counts.values()) == 0, "something was skipped"
            with tempfile.TemporaryDirectory() as work:
                export_c(qmodel, Path(work) / "export", target="avr" if target == "avr" else "msp430", samples=x)
                run = targets.run(_build(target, Path(work) / "export", Path(work) / "build", markers=False))
            got = np.stack([np.frombuffer(bytes(r.data), np.int8) for r in run.regions if r.data])
            assert np.array_equal(got, expected.reshape(len(x), -1)), f"{target} {variant}: not bit-exact"
            cycles[variant] = int(np.median([r.cycles for r in run.regions if r.label == "inference"]))
        rows.append({"target": target, "macs": int(counts["conv"].dense // len(x)), **cycles,
                     "unit_over_dense": cycles["unit"] / cycles["dense"],
                     "zeroskip_over_dense": cycles["zeroskip"] / cycles["dense"],
                     "dense_cycles_per_mac": cycles["dense"] / (counts["conv"].dense / len(x)),
                     "unit_cycles_per_mac": cycles["unit"] / (counts["conv"].dense / len(x))})
    return rows


def markdown(result: dict) -> str:
    lines = [f"# Issue 9 targets on {result['run_dir']}", "", "## MSP430 (no multiplier), per conv layer", "",
             "| method | layer | skipped | cycles / dense | kept + 0.15 | >= 50 % skipped | met |", "|---|---|---|---|---|---|---|"]
    for r in result["checks"]["per_layer_msp430"]:
        lines.append(f"| {r['method']} | {r['layer']} | {100 * r['skipped']:.1f}% | {r['cycle_ratio']:.3f} | "
                     f"{r['bound']:.3f} | {'yes' if r['applies'] else 'no'} | {'yes' if r['met'] else 'NO'} |")
    lines += ["", "## MSP430 (no multiplier), whole model", "",
              "| method | speed-up vs dense | >= 2.5x | TTP / UnIT cycles | faster than TTP | int8 acc. (TTP) |",
              "|---|---|---|---|---|---|"]
    for r in result["checks"]["whole_msp430"]:
        lines.append(f"| {r['method']} | {r['speedup_vs_dense']:.2f}x | {'yes' if r['met_2_5x'] else 'NO'} | "
                     f"{r['vs_ttp']:.2f} | {'yes' if r['faster_than_ttp'] else 'NO'} | "
                     f"{100 * r['accuracy']:.2f}% ({100 * r['ttp_accuracy']:.2f}%) |")
    lines += ["", "## AVR: UnIT against the zero-skipping dense kernel at the calibrated point", "",
              "| method | zeroskip / UnIT cycles | UnIT faster |", "|---|---|---|"]
    for r in result["checks"]["avr_vs_zeroskip"]:
        lines.append(f"| {r['method']} | {r['zeroskip_over_unit']:.2f} | {'yes' if r['met'] else 'NO'} |")
    lines += ["", "## Nothing skipped: one conv layer (6x12x12 -> 16, 5x5), non-zero weights and inputs, T_q = 0", "",
              "| target | dense cycles | zeroskip | unit | unit / dense | zeroskip / dense | dense cyc/MAC | unit cyc/MAC |",
              "|---|---|---|---|---|---|---|---|"]
    for r in result["no_skip"]:
        lines.append(f"| {r['target']} | {r['dense']:,} | {r['zeroskip']:,} | {r['unit']:,} | {r['unit_over_dense']:.3f} "
                     f"| {r['zeroskip_over_dense']:.3f} | {r['dense_cycles_per_mac']:.1f} | "
                     f"{r['unit_cycles_per_mac']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--targets", default="avr,msp430,msp430-hwmult")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "mcu_targets")
    args = parser.parse_args(argv)
    result = {"run_dir": str(args.run_dir), "checks": check_run(args.run_dir),
              "no_skip": no_skip_overhead(args.targets.split(","))}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()

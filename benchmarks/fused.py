"""The fused, row-streamed export against layer by layer: peak SRAM, cycles and bit-exactness.

For each model (random weights under ``build_model(name, seed=s)``, UnIT-calibrated and quantized
on synthetic Gaussian inputs: no checkpoint is needed, and the figures are about memory and cycles,
not accuracy) and seed:

* ``kws`` (Table 1, input 1x80x124): the fused export for the ATmega2560 (far tables: the 91 KB
  Linear), its peak SRAM (memory plan; firmware static SRAM + measured stack), one inference per
  sample in simavr, outputs compared with the integer reference; layer by layer is refused by the
  exporter (its message is recorded);
* ``mnist`` (Table 1): layer by layer and fused with ``fused_rows`` 1, 2, 4 and 8 (output rows per
  conv step) on AVR (simavr) and MSP430 (mspdebug, software multiply; ``msp430-hwmult``: the same
  export built with the 16-bit hardware multiplier), cycles per inference (median over the
  samples), bit-exact against the reference;
* ``ds-cnn``: peak SRAM of layer by layer, fused by rows, and fused along the axis ``auto`` picks
  (host exports: the memory plans), and the fused host build bit-exact against the reference
  (outputs and counters).

Writes ``benchmarks/results/fused.json`` and ``docs/results/fused.md``:

    PYTHONPATH=src OMP_NUM_THREADS=1 nice -n 10 python benchmarks/fused.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import unitprune
from unitprune.mcu import targets
from unitprune.mcu.export import ExportError, export_c
from unitprune.mcu.reference import quantize_input, run_reference
from unitprune.mcu.targets.common import firmware_from_elf
from unitprune.models import MODEL_INPUT_SHAPES, build_model

from conv_block_rows import _machine
from results_io import write_results

SHAPES = {name: MODEL_INPUT_SHAPES[name] for name in ("kws", "mnist", "ds-cnn")}
AVR_SRAM_TARGET = 7936
#: fused_rows of the MNIST cycle comparison (output rows per conv step)
FUSED_ROWS = (1, 2, 4, 8)
#: the MNIST cycle comparison's targets (msp430-hwmult: the msp430 export, built with the multiplier)
MNIST_TARGETS = ("avr", "msp430", "msp430-hwmult")


def _quantized(name: str, seed: int, variant: str, calibration: int = 16):
    model = build_model(name, seed=seed).eval()
    generator = torch.Generator().manual_seed(1000 + seed)
    x = torch.randn(calibration + 4, *SHAPES[name], generator=generator)
    unit_model = unitprune.convert(model, unitprune.UnITConfig(approx="bitshift", percentile=20.0))
    unitprune.calibrate(unit_model, x[:calibration], percentile=20.0)
    qmodel = unitprune.quantize(unit_model, x[:calibration], variant=variant)
    return qmodel, quantize_input(qmodel, x[calibration:])


def _firmware_run(qmodel, target: str, x_q: np.ndarray, out_dir: Path, execution: str, fused_rows: int = 1) -> dict:
    hwmult = target == "msp430-hwmult"
    result = export_c(qmodel, out_dir, target="msp430" if hwmult else target, samples=x_q, execution=execution,
                      fused_rows=fused_rows)
    if hwmult:  # the export's sources built for the multiplier (the Makefile builds the software-multiply one)
        manifest = json.loads((out_dir / "memory_plan.json").read_text())
        firmware = targets.build(target, [out_dir / source for source in manifest["sources"]],
                                 include_dirs=[out_dir, out_dir / "kernels"],
                                 defines={"UNIT_SKIP_BRANCH": 1, "UNIT_S8_COUNTS": 0, "UNIT_MODEL_MARKERS": 0,
                                          **manifest.get("defines", {})},
                                 build_dir=out_dir / "build-hwmult", name="model")
    else:
        made = subprocess.run(["make", "-s", "model.elf"], cwd=out_dir, capture_output=True, text=True)
        if made.returncode != 0:
            raise RuntimeError(made.stderr)
        firmware = firmware_from_elf(target, out_dir / "model.elf", out_dir, [], "")
    run = targets.run(firmware, max_cycles=2_000_000_000)
    inferences = [region for region in run.regions if region.label == "inference"]
    emitted = np.stack([np.frombuffer(bytes(region.data), np.int8) for region in inferences])
    expected, _ = run_reference(qmodel, x_q)
    return {"execution": result.execution, "fused_rows": result.fused_rows, "fused_axis": result.fused_axis,
            "cycles": [region.cycles for region in inferences],
            "cycles_median": statistics.median(region.cycles for region in inferences),
            "model_sram_bytes": result.memory.peak_sram_bytes,
            "plan_sram_with_io_bytes": result.memory.peak_sram_with_io_bytes,
            "firmware_static_sram_bytes": firmware.sram_static_bytes, "stack_bytes": run.stack_bytes,
            "firmware_sram_bytes": firmware.sram_static_bytes + run.stack_bytes,
            "far_tables": result.far_tables, "flash_bytes": firmware.flash_bytes,
            "bit_exact": bool(np.array_equal(emitted, expected.reshape(len(x_q), -1))), "samples": len(x_q)}


def _host_plans(qmodel, x_q: np.ndarray, out_dir: Path) -> dict:
    layers = export_c(qmodel, out_dir / "layers").memory
    rows_only = export_c(qmodel, out_dir / "fused-height", execution="fused", fused_axis="height").memory
    fused = export_c(qmodel, out_dir / "fused", execution="fused").memory
    outputs, counts = unitprune.run_exported(out_dir / "fused", x_q)
    expected, expected_counts = run_reference(qmodel, x_q)
    return {"layers_model_sram_bytes": layers.peak_sram_bytes, "layers_sram_with_io_bytes": layers.peak_sram_with_io_bytes,
            "fused_model_sram_bytes": fused.peak_sram_bytes, "fused_sram_with_io_bytes": fused.peak_sram_with_io_bytes,
            "fused_buffers": fused.buffers, "fused_axis": fused.axis,
            "fused_height_model_sram_bytes": rows_only.peak_sram_bytes,
            "fused_height_sram_with_io_bytes": rows_only.peak_sram_with_io_bytes,
            "host_bit_exact": bool(np.array_equal(outputs, expected.reshape(len(x_q), -1)) and counts == expected_counts)}


def _kws(seed: int, work: Path, args) -> list[dict]:
    """KWS, fused, on the ATmega2560 (layer by layer is refused: its message is recorded)."""
    qmodel, x_q = _quantized("kws", seed, "unit")
    row = {"model": "kws", "seed": seed, "variant": "unit", "target": "avr"}
    try:
        export_c(qmodel, work / "layers", target="avr", samples=x_q[:1])
    except ExportError as error:
        row["layers_refused"] = str(error)
    row.update(_firmware_run(qmodel, "avr", x_q[:args.kws_samples], work / "fused", "fused"))
    row["auto"] = _firmware_run(qmodel, "avr", x_q[:args.kws_samples], work / "fused-auto", "fused", "auto")
    row.update(_host_plans(qmodel, x_q[:2], work / "host"))
    return [row]


def _mnist(seed: int, work: Path, args) -> list[dict]:
    """MNIST, both executions, AVR and MSP430 (software and hardware multiply), dense and unit."""
    rows = []
    for variant in ("dense", "unit"):
        qmodel, x_q = _quantized("mnist", seed, variant)
        for target in MNIST_TARGETS:
            row = {"model": "mnist", "seed": seed, "variant": variant, "target": target}
            row["layers"] = _firmware_run(qmodel, target, x_q[:args.mnist_samples], work / f"{variant}-{target}-layers",
                                          "layers")
            row["fused"] = {}
            for rows_per_step in FUSED_ROWS:
                row["fused"][str(rows_per_step)] = _firmware_run(
                    qmodel, target, x_q[:args.mnist_samples], work / f"{variant}-{target}-fused-{rows_per_step}",
                    "fused", rows_per_step)
            row["cycle_ratio"] = {b: run["cycles_median"] / row["layers"]["cycles_median"]
                                  for b, run in row["fused"].items()}
            rows.append(row)
    return rows


def _ds_cnn(seed: int, work: Path, args) -> list[dict]:
    """DS-CNN: the two memory plans, and the fused host build bit-exact."""
    qmodel, x_q = _quantized("ds-cnn", seed, "unit")
    row = {"model": "ds-cnn", "seed": seed, "variant": "unit", "target": "host"}
    row.update(_host_plans(qmodel, x_q[:2], work))
    return [row]


MEASURES = {"kws": _kws, "mnist": _mnist, "ds-cnn": _ds_cnn}


def _brief(row: dict) -> dict:
    """A row without its long lists, for the progress lines."""
    return {k: v for k, v in row.items() if k not in ("fused_buffers", "fused", "layers")}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--kws-samples", type=int, default=1)
    parser.add_argument("--mnist-samples", type=int, default=3)
    parser.add_argument("--models", default="kws,mnist,ds-cnn")
    parser.add_argument("--output-dir", default="benchmarks/results")
    parser.add_argument("--docs", default="docs/results/fused.md")
    parser.add_argument("--render", metavar="JSON", help="only rewrite --docs from a results JSON of this script")
    args = parser.parse_args(argv)
    if args.render:
        Path(args.docs).write_text(markdown(json.loads(Path(args.render).read_text())))
        return
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows: list[dict] = []
    t0 = time.perf_counter()
    models = args.models.split(",")
    with tempfile.TemporaryDirectory(prefix="unitprune-fused-") as work:
        for seed in seeds:
            for name in models:
                for row in MEASURES[name](seed, Path(work) / f"{name}-{seed}", args):
                    rows.append(row)
                    print(json.dumps(_brief(row)), flush=True)
    document = {"benchmark": "fused", "seeds": seeds, "rows": rows, "seconds": time.perf_counter() - t0,
                "machine": _machine(),
                "command": "PYTHONPATH=src OMP_NUM_THREADS=1 nice -n 10 python benchmarks/fused.py"}
    write_results(Path(args.output_dir), "fused", document)
    Path(args.docs).parent.mkdir(parents=True, exist_ok=True)
    Path(args.docs).write_text(markdown(document))
    print(markdown(document))


def _spread(values) -> str:
    values = list(values)
    if min(values) == max(values):
        return f"{values[0]:,}" if isinstance(values[0], int) else f"{values[0]:.3f}"
    if isinstance(values[0], int):
        return f"{statistics.median(values):,.0f} ({min(values):,}-{max(values):,})"
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def markdown(document: dict) -> str:
    rows = document["rows"]
    machine = document["machine"]
    lines = ["# Fused (row-streamed) execution against layer by layer", "",
             f"Regenerate: `{document['command']}` (seeds {', '.join(map(str, document['seeds']))}; "
             "random weights `build_model(name, seed=s)`, UnIT-calibrated and quantized on synthetic Gaussian "
             "inputs: no checkpoint; the figures are memory and cycles, not accuracy). Machine: "
             f"{machine['cpu']}; Python {machine['python']}, torch {machine['torch']}, unitprune "
             f"{machine['unitprune']}; {machine['avr-gcc']}; simavr {machine['simavr']}; {machine['clang-14']}; "
             f"mspdebug {machine['mspdebug']}. Spreads: median (min-max) over the seeds.", "",
             "## Peak SRAM", "",
             "Memory plans of host exports (descriptors sized for 64-bit pointers), and for KWS the fused "
             "ATmega2560 export and its firmware (simavr).", "",
             "| model | layer by layer: model SRAM (B) | fused by rows (height): model SRAM (B) | fused, axis "
             "auto: model SRAM (B) | axis | fused + I/O (B) | fused on AVR: plan + I/O (B) | fused firmware on "
             "AVR: static + stack (B) | bit-exact |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name in ("kws", "ds-cnn"):
        sel = [r for r in rows if r["model"] == name]
        if not sel:
            continue
        ran = "firmware_sram_bytes" in sel[0]
        firmware = _spread([r["firmware_sram_bytes"] for r in sel]) if ran else "not run"
        avr_plan = _spread([r["plan_sram_with_io_bytes"] for r in sel]) if ran else "-"
        exact = all(r.get("bit_exact", True) and r["host_bit_exact"] for r in sel)
        lines.append(f"| {name} | {_spread([r['layers_model_sram_bytes'] for r in sel])} | "
                     f"{_spread([r['fused_height_model_sram_bytes'] for r in sel])} | "
                     f"{_spread([r['fused_model_sram_bytes'] for r in sel])} | {sel[0]['fused_axis']} | "
                     f"{_spread([r['fused_sram_with_io_bytes'] for r in sel])} | {avr_plan} | {firmware} | "
                     f"{'yes' if exact else 'NO'} |")
    kws = [r for r in rows if r["model"] == "kws"]
    if kws:
        lines += ["", f"KWS fused on the ATmega2560 (far tables: {kws[0]['far_tables']}, streamed along the "
                  f"{kws[0]['fused_axis']}): cycles per inference "
                  f"{_spread([r['cycles_median'] for r in kws])}; AVR SRAM target {AVR_SRAM_TARGET:,} B. "
                  + (f"With `fused_rows=\"auto\"` (the most rows per step that fit: B="
                     f"{', '.join(sorted({str(r['auto']['fused_rows']) for r in kws}))}): cycles per inference "
                     f"{_spread([r['auto']['cycles_median'] for r in kws])}, firmware static + stack "
                     f"{_spread([r['auto']['firmware_sram_bytes'] for r in kws])} B, bit-exact "
                     f"{'yes' if all(r['auto']['bit_exact'] for r in kws) else 'NO'}. " if "auto" in kws[0] else "")
                  + f"Layer by layer the exporter refuses it: \"{kws[0].get('layers_refused', '')[:240]}...\""]
    if not any(r["model"] == "mnist" for r in rows):
        return "\n".join(lines + ["", "## Targets", ""] + _targets(rows) + [""])
    lines += ["", "## Cycles, MNIST (Table 1), both plans fit", "",
              "`fused_rows` B: output rows each conv computes per step (windows of K + (B - 1) * stride rows, "
              "a B-row output block). Dense: in both plans each conv takes its 2x2 max-pool on the int32 "
              "accumulators (`unit_conv2d_dense_pool_s8`; fused, from B=2: the steps are whole pool rows). "
              "msp430-hwmult: the msp430 export built with the 16-bit hardware multiplier. Cycles per "
              "inference, median over the samples; spreads over the seeds.", "",
              "| variant | target | layer by layer (cycles) | "
              + " | ".join(f"fused B={b} (cycles) | B={b} / layers" for b in FUSED_ROWS)
              + " | model SRAM (B): layers, " + ", ".join(f"B={b}" for b in FUSED_ROWS) + " | bit-exact |",
              "|---|---|---|" + "---|---|" * len(FUSED_ROWS) + "---|---|"]
    for variant in ("dense", "unit"):
        for target in MNIST_TARGETS:
            sel = [r for r in rows if r["model"] == "mnist" and r["variant"] == variant and r["target"] == target]
            if not sel:
                continue
            exact = all(r["layers"]["bit_exact"] and all(f["bit_exact"] for f in r["fused"].values()) for r in sel)
            cells = " | ".join(f"{_spread([int(r['fused'][str(b)]['cycles_median']) for r in sel])} | "
                               f"{_spread([r['cycle_ratio'][str(b)] for r in sel])}" for b in FUSED_ROWS)
            sram = ", ".join(f"{sel[0]['fused'][str(b)]['model_sram_bytes']:,}" for b in FUSED_ROWS)
            lines.append(f"| {variant} | {target} | {_spread([int(r['layers']['cycles_median']) for r in sel])} | "
                         f"{cells} | {sel[0]['layers']['model_sram_bytes']:,}, {sram} | {'yes' if exact else 'NO'} |")
    lines += ["", "## Targets", ""] + _targets(rows) + [""]
    return "\n".join(lines)


def _targets(rows: list[dict]) -> list[str]:
    """The issue's targets against the measurements, and what limits a missed one."""
    lines = []
    kws = [r for r in rows if r["model"] == "kws"]
    if kws:
        worst = max(r["firmware_sram_bytes"] for r in kws)
        lines.append(f"* KWS fused peak SRAM <= {AVR_SRAM_TARGET:,} B on the ATmega2560, input streamed from flash, "
                     f"bit-exact in simavr: **{'met' if worst <= AVR_SRAM_TARGET else 'missed'}** (firmware static "
                     f"SRAM + measured stack {worst:,} B at most; bit-exact "
                     f"{'yes' if all(r['bit_exact'] for r in kws) else 'NO'}). Random weights, not the KWS "
                     "checkpoint (none on a fresh machine).")
    mnist = [r for r in rows if r["model"] == "mnist"]
    if mnist:
        parts = []
        for variant in ("dense", "unit"):
            sel = [r for r in mnist if r["variant"] == variant]
            if not sel:
                continue
            # per variant: the dense convs hold one output row of scratch, UnIT's their plane
            layers_sram = max(r["layers"]["model_sram_bytes"] for r in sel)
            sram = {b: max(r["fused"][str(b)]["model_sram_bytes"] for r in sel) for b in FUSED_ROWS}
            worst = {b: max(r["cycle_ratio"][str(b)] for r in sel) for b in FUSED_ROWS}
            met = [b for b in FUSED_ROWS if worst[b] <= 1.05]
            parts.append(f"{variant}: " + (f"**met** with fused_rows={met[0]} ({worst[met[0]]:.3f}x at most over the "
                                           f"targets and seeds, model SRAM {sram[met[0]]:,} B = "
                                           f"{sram[met[0]] / layers_sram:.0%} of layer by layer's {layers_sram:,} B)"
                                           if met else "**missed**")
                         + "; the worst ratio per B: " + ", ".join(f"B={b}: {worst[b]:.3f}x" for b in FUSED_ROWS))
        lines.append("* MNIST fused cycles <= 1.05x layer by layer: " + "; ".join(parts) + ". What the fused plan "
                     "adds: each conv step is one call of the whole-layer kernel on a window, so the kernel's "
                     "per-call set-up (argument checks, geometry; per output channel the output stage's constants; "
                     "the UnIT kernel's per channel and tap valid ranges, the larger) is paid per step, and the rows "
                     "a stage passes on are copied into the next stage's window; B rows per step share the set-up, "
                     "and a 2x2 pool after a conv of even B pools the conv's block in place (no window, no copy); "
                     "after a dense conv the conv step takes it on its accumulators, as layer by layer does "
                     "(unit_conv2d_dense_pool_s8: one requantization per pooled output, no conv block). "
                     "On MSP430 the fused convs take the output stage's threshold tables as layer by layer does.")
    ds = [r for r in rows if r["model"] == "ds-cnn"]
    if ds:
        r = ds[0]
        ratio = r["fused_sram_with_io_bytes"] / r["layers_sram_with_io_bytes"]
        rows_ratio = r["fused_height_sram_with_io_bytes"] / r["layers_sram_with_io_bytes"]
        lines.append(f"* DS-CNN fused SRAM <= 1/4 of layer by layer: **{'met' if ratio <= 0.25 else 'missed'}** "
                     f"({r['fused_sram_with_io_bytes']:,} / {r['layers_sram_with_io_bytes']:,} B = {ratio:.3f}, "
                     f"host plans, streamed along the {r['fused_axis']}; by rows {rows_ratio:.3f}). The depthwise "
                     "windows hold 3 columns of 64 x 20 (along the time axis) instead of 3 rows of 64 x 31, the "
                     "pointwise convs read their input row in place (two row buffers, no window), and the global "
                     "average pool keeps only its int32 sums.")
    return lines


if __name__ == "__main__":
    main()

"""The cost of row-blocked conv accumulators (``conv_block_rows``), measured side by side in one run.

For each model, variant (dense, unit) and block size (``plane``, a middle value, ``1``), the model
is exported (``unitprune.export_c(..., conv_block_rows=B)``), built and run in simavr (AVR) and
mspdebug (MSP430, software multiply) by :func:`unitprune.experiments.mcu_bench.bench.measure_target`: the host build
is checked against the integer reference (outputs and every MAC counter), the firmware's outputs
against the host build. Reported: median cycles per inference and per layer, the memory plan's
scratch and model SRAM, the firmware's static SRAM + measured stack, and ``bit_exact``. Writes
JSON (default ``benchmarks/results/conv_block_rows.json``) and prints a Markdown table.

    PYTHONPATH=src nice python benchmarks/conv_block_rows.py --weights runs/demo/train/model.pt \\
        --wide /work/keep/shrink_runs_prev/shrink-s0/differentiable.pt \\
        --wide /work/keep/shrink_runs_prev/shrink-s0/tp-magnitude.pt

``--weights``: the demo's MNIST Table-1 checkpoint (input normalisation folded, as the demo
measures it; ``--weights ''`` leaves it out). ``--wide``: whole modules written by ``unitprune shrink`` (mnist-wide shrunk); a
model whose tables do not fit a target's flash is recorded as not measured there, with the
exporter's message.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import unitprune
from unitprune.experiments.folding import fold_input_normalization
from unitprune.experiments.inputs import load_data, load_model
from unitprune.experiments.mcu_bench.bench import measure_target
from unitprune.mcu.export import ExportError
from unitprune.mcu.reference import quantize_input
from unitprune.mcu.targets import FirmwareError


def _tool_version(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "missing"
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0] if text else "?"


def _machine() -> dict[str, str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {"cpu": cpu, "python": platform.python_version(), "torch": torch.__version__,
            "unitprune": unitprune.__version__, "avr-gcc": _tool_version(["avr-gcc", "--version"]),
            "clang-14": _tool_version(["clang-14", "--version"]),
            "simavr": _tool_version(["dpkg-query", "-W", "-f=${Version}", "simavr"]),
            "mspdebug": _tool_version(["dpkg-query", "-W", "-f=${Version}", "mspdebug"])}


def _quantized(model: torch.nn.Module, splits, percentile: float):
    unit_model = unitprune.convert(model, unitprune.UnITConfig(approx="bitshift", percentile=percentile))
    unitprune.calibrate(unit_model, splits.val.tensors[0], percentile=percentile)
    return unitprune.quantize(unit_model, splits.val.tensors[0])


def _block_value(text: str):
    return text if text in ("plane", "min") else int(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="runs/demo/train/model.pt", help="state_dict of the mnist model")
    parser.add_argument("--wide", action="append", default=[], help="a shrunk mnist-wide module (.pt, whole model)")
    parser.add_argument("--blocks", default="plane,4,1", help="conv_block_rows values, comma-separated")
    parser.add_argument("--variants", default="dense,unit")
    parser.add_argument("--targets", default="avr,msp430")
    parser.add_argument("--samples", type=int, default=3, help="test samples per firmware run")
    parser.add_argument("--layer-samples", type=int, default=1, help="samples of the per-layer firmware")
    parser.add_argument("--percentile", type=float, default=20.0)
    parser.add_argument("--output", default="benchmarks/results/conv_block_rows.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    splits = load_data("mnist", None, seed=0)
    models = []
    if args.weights:  # --weights '' leaves the MNIST Table-1 model out
        mnist, _ = load_model("mnist", args.weights, None, num_classes=10)
        models.append(("mnist (Table 1)", *fold_input_normalization(mnist, splits)))
    for path in args.wide:
        name = f"mnist-wide shrunk ({Path(path).parent.name}/{Path(path).stem})"
        models.append((name, torch.load(path, weights_only=False).eval(), splits))
    blocks = [_block_value(b) for b in args.blocks.split(",")]
    rows = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="unitprune-blocks-") as work:
        for model_name, model, model_splits in models:
            qmodel = _quantized(model, model_splits, args.percentile)
            x_q = quantize_input(qmodel, model_splits.test.tensors[0][:args.samples])
            for variant in args.variants.split(","):
                q = dataclasses.replace(qmodel, variant=variant)
                for target in args.targets.split(","):
                    for block in blocks:
                        row = {"model": model_name, "variant": variant, "target": target, "conv_block_rows": block}
                        work_dir = Path(work) / f"{len(rows)}"
                        try:
                            measured = measure_target(q, target, x_q, work_dir, args.layer_samples,
                                                      conv_block_rows=block)
                        except (ExportError, FirmwareError) as error:
                            row["not_measured"] = str(error)
                            print(json.dumps(row), flush=True)
                            rows.append(row)
                            continue
                        plan = json.loads((work_dir / "export" / "memory_plan.json").read_text())["memory"]
                        row.update({key: measured[key] for key in ("cycles", "cycles_per_layer", "flash_bytes",
                                                                    "sram_bytes", "bit_exact", "samples_checked")})
                        row.update(scratch_bytes=plan["scratch_bytes"], model_sram_bytes=plan["peak_sram_bytes"],
                                   model_sram_with_io_bytes=plan["peak_sram_with_io_bytes"],
                                   stack_bytes=measured["checks"]["stack_bytes"])
                        print(json.dumps(row), flush=True)
                        rows.append(row)
    seconds = time.perf_counter() - t0
    document = {"command": "PYTHONPATH=src python benchmarks/conv_block_rows.py " + " ".join(argv or []),
                "machine": _machine(), "seconds": round(seconds, 1), "samples": args.samples,
                "percentile": args.percentile, "rows": rows}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(document, indent=2) + "\n")
    print(_table(rows))
    print(f"{seconds:.0f} s; written {args.output}")


def _table(rows: list[dict]) -> str:
    """Markdown: one line per (model, variant, target, block), cycles relative to the plane's."""
    lines = ["| model | variant | target | conv_block_rows | cycles | vs plane | scratch B | model SRAM B | "
             "firmware SRAM B | bit-exact |", "|---|---|---|---|---|---|---|---|---|---|"]
    plane = {(r["model"], r["variant"], r["target"]): r.get("cycles") for r in rows if r["conv_block_rows"] == "plane"}
    for r in rows:
        key = (r["model"], r["variant"], r["target"])
        if "not_measured" in r:
            lines.append(f"| {r['model']} | {r['variant']} | {r['target']} | {r['conv_block_rows']} | not measured: "
                         f"{r['not_measured'][:80]} | | | | | |")
            continue
        ratio = f"{r['cycles'] / plane[key]:.3f}" if plane.get(key) else ""
        lines.append(f"| {r['model']} | {r['variant']} | {r['target']} | {r['conv_block_rows']} | {r['cycles']:,} | "
                     f"{ratio} | {r['scratch_bytes']:,} | {r['model_sram_bytes']:,} | {r['sram_bytes']:,} | "
                     f"{'yes' if r['bit_exact'] else 'NO'} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()

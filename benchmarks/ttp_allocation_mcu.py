"""TTP's layer allocation (``TTPConfig.allocation``: ``global`` |w| over the weights, the default,
against ``macs``: |w| per MAC saved over the MACs) on the demo MNIST model, on the MCUs.

Per fine-tuning seed and allocation: the sweep's TTP schedule (``SweepConfig.ttp_sparsities``,
fine-tuning epochs and learning rate; the seed is the fine-tuning data order, the data splits are
the demo's, seed 0), every step quantized (``zeroskip``: the static-sparse kernels), the operating
point chosen as ``unitprune mcu-bench`` chooses it (:func:`choose_candidate`: the most aggressive
step whose int8 validation drop against the int8 dense model is within 1 point at confidence 0.9),
its int8 test accuracy, its kept MACs (nonzero int8 weights times the positions each runs at) per
layer, and its cycles per inference on each target (the zero-activation kernel plan mcu-bench uses,
``samples`` test digits, every output bit-exact against the host build and the integer reference,
:func:`measure_target`). The dense model runs on the dense kernels once per target.

The bound on any TTP model: per target and layer, the cycles of the measured TTP points are fitted
as ``fixed + per_kept_mac * kept MACs`` (least squares over the points; the fixed part is the
output stage, the runs' set-up and the zero-activation scan), the layers without MACs (pools,
ReLU) are added as measured; ``ceiling`` = dense cycles / the fixed parts (a TTP model with no MAC
left), ``kept MACs for 3x`` = what the fit allows at a third of the dense cycles.

Usage::

    PYTHONPATH=src OMP_NUM_THREADS=1 nice -n 10 python benchmarks/ttp_allocation_mcu.py \\
        [--weights runs/demo/train/model.pt] [--seeds 0 1 2] [--allocations global macs] [--samples 5]

Writes ``docs/results/ttp_allocation/ttp_allocation_mcu.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import unitprune
from unitprune.baselines import TTPConfig, iterative_magnitude_pruning
from unitprune.experiments.folding import fold_input_normalization
from unitprune.experiments.inputs import load_data, load_model
from unitprune.experiments.mcu_bench.bench import (DEFAULT_SWEEP, METHODS, BenchConfig, OperatingPoint,
                                                     choose_candidate, int8_correct, int8_test, measure_target,
                                                     record_test)
from unitprune.experiments.mcu_bench.bench_plan import planned_for_target
from unitprune.experiments.evaluation import dataset_tensors
from unitprune.mcu import targets
from unitprune.mcu.qmodel import QConv, QLinear
from unitprune.mcu.quantize import quantize
from unitprune.mcu.reference import quantize_input

logger = logging.getLogger("ttp_allocation_mcu")
RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results" / "ttp_allocation"
TARGETS = ("avr", "msp430", "msp430-hwmult")


def kept_macs(qmodel) -> dict[str, int]:
    """Per conv/linear op: nonzero int8 weights times the positions each runs at (a conv weight:
    its output channel's OH*OW, a linear weight: 1)."""
    kept = {}
    for op in qmodel.ops:
        if isinstance(op, QConv):
            kept[op.name] = int(np.count_nonzero(op.weight)) * op.out_height * op.out_width
        elif isinstance(op, QLinear):
            kept[op.name] = int(np.count_nonzero(op.weight))
    return kept


def quantized_point(model, knob, splits, float_val) -> OperatingPoint:
    """A TTP step's int8 model (static-sparse kernels) measured on validation, as mcu-bench's candidates."""
    x_val, _ = dataset_tensors(splits.val)
    qmodel = quantize(model, x_val, variant=METHODS["ttp"].variant)
    correct, _ = int8_correct(qmodel, splits.val)
    return OperatingPoint(METHODS["ttp"], knob, qmodel, float(np.mean(correct)), float("nan"), float("nan"),
                          float_val, {}, correct)


def cycles(qmodel, target: str, splits, samples: int, work: Path) -> dict:
    planned, _, _ = planned_for_target(qmodel, target, splits)
    x_q = quantize_input(planned, splits.test.tensors[0][:samples])
    measured = measure_target(planned, target, x_q, work, layer_samples=1)
    if not measured["bit_exact"]:
        raise RuntimeError(f"{target}: the firmware's outputs differ from the host build / integer reference")
    return {key: measured[key] for key in ("cycles", "cycles_per_layer", "flash_bytes", "sram_bytes",
                                           "samples_checked")}


def fit(points: list[dict], dense: dict, target: str) -> dict:
    """Per MAC layer: cycles = fixed + per_kept_mac * kept MACs (least squares over the TTP points);
    the ceiling of any TTP model on ``target`` and the kept MACs a 3x speed-up allows."""
    layers = list(points[0]["kept_macs"])
    result = {"layers": {}}
    fixed_total = 0.0
    per_mac = []
    for layer in layers:
        kept = np.array([p["kept_macs"][layer] for p in points], float)
        measured = np.array([p["targets"][target]["cycles_per_layer"][layer] for p in points], float)
        if len(set(kept)) > 1:
            slope, intercept = np.polyfit(kept, measured, 1)
        else:  # one kept count: no slope to fit
            slope, intercept = float("nan"), float(measured.mean())
        result["layers"][layer] = {"fixed_cycles": float(intercept), "cycles_per_kept_mac": float(slope)}
        fixed_total += max(float(intercept), 0.0)
        if layer != layers[-1] and np.isfinite(slope):
            per_mac.append(slope)
    other = np.mean([sum(v for k, v in p["targets"][target]["cycles_per_layer"].items() if k not in layers)
                     for p in points])
    floor = fixed_total + float(other)
    result.update(other_layers_cycles=float(other), fixed_cycles=floor, dense_cycles=dense["cycles"],
                  ceiling_speedup=dense["cycles"] / floor)
    if per_mac:
        result["kept_macs_for_3x"] = max(0.0, (dense["cycles"] / 3 - floor) / float(np.mean(per_mac)))
    return result


def markdown(document: dict) -> str:
    lines = ["# TTP layer allocation on the MCUs: global |w| against |w| per MAC", "",
             f"Regenerated by `{document['command']}` ({document['seconds']:.0f} s wall on a shared machine). "
             f"Machine: {document['machine']['cpu']}, Python {document['machine']['python']}, torch "
             f"{document['machine']['torch']}; toolchains: " +
             "; ".join(f"{t}: {', '.join(f'{k} {v}' for k, v in tools.items())}"
                       for t, tools in document["tools"].items()) + ". Cycle counts are exact (simulators); "
             f"median over {document['samples']} test digits, every output bit-exact.", "",
             "Operating point per seed: the most aggressive schedule step whose int8 validation drop is "
             "within 1 point at confidence 0.9 (as `unitprune mcu-bench`); knob = the schedule's fraction "
             "(of the weights for `global`, of the dense MACs for `macs`).", "",
             "| allocation | seed | knob | int8 val drop (bound) | int8 test acc. | kept MACs (conv1 / conv2 / fc) | "
             + " | ".join(f"{t} M cycles (vs dense)" for t in document["targets"]) + " |",
             "|---|---|---|---|---|---|" + "---|" * len(document["targets"])]
    dense = document["dense"]
    for row in document["rows"]:
        kept = row["kept_macs"]
        lines.append(
            f"| {row['allocation']} | {row['seed']} | {row['knob']} | {row['val_drop']:+.2f} ({row['val_drop_bound']:+.2f}) "
            f"| {100 * row['test_accuracy']:.1f} % | {sum(kept.values()):,} ({' / '.join(f'{v:,}' for v in kept.values())}) | "
            + " | ".join(f"{row['targets'][t]['cycles'] / 1e6:.2f} ({dense[t]['cycles'] / row['targets'][t]['cycles']:.2f}x)"
                         for t in document["targets"]) + " |")
    lines.append(f"| dense | | | | {100 * document['dense_test_accuracy']:.1f} % | {sum(document['dense_macs'].values()):,} | "
                 + " | ".join(f"{dense[t]['cycles'] / 1e6:.2f}" for t in document["targets"]) + " |")
    lines += ["", "Speed-up over dense per allocation (mean, min-max over the seeds):", "",
              "| allocation | " + " | ".join(document["targets"]) + " |", "|---|" + "---|" * len(document["targets"])]
    for allocation, summary in document["summary"].items():
        lines.append(f"| {allocation} | " + " | ".join(
            f"{s['mean']:.2f}x ({s['min']:.2f}-{s['max']:.2f})" for s in summary.values()) + " |")
    lines += ["", "The bound on any TTP model with these kernels (per layer `cycles = fixed + per kept MAC x kept "
              "MACs`, fitted over the TTP points above; the pools and ReLUs as measured):", "",
              "| target | dense M cycles | fixed M cycles (no MAC left) | ceiling | cycles per kept MAC (conv1 / conv2) "
              "| kept MACs for 3x |", "|---|---|---|---|---|---|"]
    for target, bound in document["bound"].items():
        per_mac = " / ".join(f"{bound['layers'][k]['cycles_per_kept_mac']:.1f}" for k in list(bound["layers"])[:2])
        lines.append(f"| {target} | {bound['dense_cycles'] / 1e6:.2f} | {bound['fixed_cycles'] / 1e6:.2f} | "
                     f"{bound['ceiling_speedup']:.2f}x | {per_mac} | {bound.get('kept_macs_for_3x', float('nan')):,.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="runs/demo/train/model.pt")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--allocations", nargs="+", default=["global", "macs"])
    parser.add_argument("--targets", nargs="+", default=list(TARGETS))
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--output", type=Path, default=RESULTS / "ttp_allocation_mcu.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)
    started = time.perf_counter()
    splits = load_data("mnist", None, seed=0)
    model, _ = load_model("mnist", args.weights, None, num_classes=10)
    model, splits = fold_input_normalization(model, splits)
    config = BenchConfig(targets=tuple(args.targets), methods=("dense", "ttp"))
    sweep = DEFAULT_SWEEP
    x_val, _ = dataset_tensors(splits.val)
    dense_q = quantize(model, x_val, variant="dense")
    correct, _ = int8_correct(dense_q, splits.val)
    reference = OperatingPoint(METHODS["dense"], None, dense_q, float(np.mean(correct)), float("nan"), float("nan"),
                               None, {}, correct)
    reference.quantized_accuracy, _ = int8_test(dense_q, splits)
    rows = []
    with tempfile.TemporaryDirectory(prefix="ttp_allocation_") as temporary:
        work = Path(temporary)
        dense = {t: cycles(dense_q, t, splits, args.samples, work / f"dense-{t}") for t in args.targets}
        for allocation in args.allocations:
            for seed in args.seeds:
                steps = iterative_magnitude_pruning(model, splits, TTPConfig(
                    schedule=sweep.ttp_sparsities, finetune_epochs=sweep.ttp_finetune_epochs, lr=sweep.ttp_lr,
                    seed=seed, allocation=allocation))
                candidates = [quantized_point(s.model, s.target_sparsity, splits, s.val_accuracy) for s in steps]
                point = choose_candidate(reference, candidates, config)
                record_test(point, reference, int8_test(point.qmodel, splits))
                selection = point.details["selection"]
                row = {"allocation": allocation, "seed": seed, "knob": point.knob,
                       "val_drop": selection["val_drop"], "val_drop_bound": selection["val_drop_bound"],
                       "fallback": selection["fallback"], "test_accuracy": point.quantized_accuracy,
                       "test_drop": selection["test_drop"], "kept_macs": kept_macs(point.qmodel),
                       "tried": point.details["tried"], "targets": {}}
                for target in args.targets:
                    row["targets"][target] = cycles(point.qmodel, target, splits, args.samples,
                                                    work / f"{allocation}-{seed}-{target}")
                    row["targets"][target]["speedup_over_dense"] = dense[target]["cycles"] / row["targets"][target]["cycles"]
                logger.info("%s seed %d: knob %s, test %.4f, kept MACs %s, %s", allocation, seed, point.knob,
                            point.quantized_accuracy, row["kept_macs"],
                            {t: round(v["speedup_over_dense"], 2) for t, v in row["targets"].items()})
                rows.append(row)
    summary = {}
    for allocation in args.allocations:
        chosen = [r for r in rows if r["allocation"] == allocation]
        summary[allocation] = {}
        for target in args.targets:
            values = [r["targets"][target]["speedup_over_dense"] for r in chosen]
            summary[allocation][target] = {"mean": float(np.mean(values)), "min": float(min(values)),
                                           "max": float(max(values))}
    document = {
        "command": " ".join(["PYTHONPATH=src python benchmarks/ttp_allocation_mcu.py", *(sys.argv[1:] if argv is None else argv)]),
        "machine": {"cpu": next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                                 if line.startswith("model name")), platform.machine()),
                    "python": platform.python_version(), "torch": torch.__version__, "unitprune": unitprune.__version__},
        "tools": {t: targets.check_tools(t) for t in args.targets}, "samples": args.samples, "targets": args.targets,
        "schedule": list(sweep.ttp_sparsities), "finetune_epochs": sweep.ttp_finetune_epochs, "lr": sweep.ttp_lr,
        "dense": dense, "dense_test_accuracy": reference.quantized_accuracy, "dense_macs": _dense_macs(dense_q),
        "rows": rows, "summary": summary,
        "bound": {t: fit(rows, dense[t], t) for t in args.targets}, "seconds": time.perf_counter() - started}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=1) + "\n")
    args.output.with_suffix(".md").write_text(markdown(document))
    print(markdown(document))
    print(f"wrote {args.output} and {args.output.with_suffix('.md')}")


def _dense_macs(qmodel) -> dict[str, int]:
    dense = {}
    for op in qmodel.ops:
        if isinstance(op, QConv):
            dense[op.name] = int(op.weight.size) * op.out_height * op.out_width
        elif isinstance(op, QLinear):
            dense[op.name] = int(op.weight.size)
    return dense


if __name__ == "__main__":
    main()

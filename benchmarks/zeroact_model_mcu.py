"""What the zero-activation static-sparse convolution (``unit_conv2d_sparse_zeroact_s8``) buys on the
MNIST demo model: per conv layer and per inference, exact simulator cycles of each ``zeroskip``
method's int8 model (``zeroskip``, ``ttp``, ``fatrelu`` of ``unitprune mcu-bench``, at the operating
points mcu-bench chooses) exported three ways, on AVR, MSP430 and MSP430 + hardware multiplier:

* ``sparse``: every static-sparse conv on ``unit_conv2d_sparse_s8`` (zero activations multiplied);
* ``zeroact``: every one on ``unit_conv2d_sparse_zeroact_s8``;
* ``auto``: the per-layer choice of :func:`unitprune.mcu.zeroact_plan.plan_zero_activation` on the
  validation inputs (what mcu-bench and ``unitprune export`` use).

Each firmware runs the first ``--samples`` test digits and is checked bit for bit (mcu-bench's
:func:`~unitprune.experiments.mcu_bench.bench.measure_target`: simulator against the host build,
the host build against the integer reference, outputs and counters); a mismatch raises. Beside the
measured layer cycles, the cycle model's predictions on the same test inputs
(:func:`unitprune.mcu.zeroact_plan.predict` of :func:`~unitprune.mcu.zeroact_plan.zeroact_work`, per
sample, the median as the measured per-layer figure is) and their error.

    PYTHONPATH=src python benchmarks/zeroact_model_mcu.py [--samples 5] [--methods zeroskip,ttp,fatrelu]

needs the demo checkpoint (``make demo``); the operating points are chosen as mcu-bench chooses them
(TTP fine-tunes: several minutes). Writes docs/results/zeroact_model/zeroact_model_mcu.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

logger = logging.getLogger("zeroact_model_mcu")
HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent / "docs" / "results" / "zeroact_model"
CHECKPOINT = Path("runs/demo/train/model.pt")
TARGETS = ("avr", "msp430", "msp430-hwmult")
METHODS = ("zeroskip", "ttp", "fatrelu")
PLANS = ("sparse", "zeroact", "auto")


def load_demo(checkpoint: Path, seed: int = 0):
    """The demo MNIST model and splits, input normalisation folded as mcu-bench measures them."""
    import torch

    from unitprune.data import load_dataset
    from unitprune.experiments.folding import fold_input_normalization
    from unitprune.models import build_model

    if not checkpoint.is_file():
        raise FileNotFoundError(f"no demo checkpoint at {checkpoint}: run `make demo` first")
    splits = load_dataset("mnist", seed=seed)
    model = build_model("mnist", seed=seed, num_classes=splits.num_classes)
    model.load_state_dict(torch.load(checkpoint, weights_only=True))
    return fold_input_normalization(model.eval(), splits)


def operating_points(model, splits, methods) -> dict:
    """mcu-bench's operating point of each method (its budget rule on the int8 validation accuracy)."""
    from unitprune.experiments.mcu_bench.bench import BenchConfig, select_operating_points

    config = BenchConfig(methods=("dense", *methods), progress=False)
    return {m: p for m, p in select_operating_points(model, splits, config).items() if m in methods}


def layer_inputs(qmodel, x_q: np.ndarray) -> dict[str, np.ndarray]:
    """Each conv layer's int8 input on ``x_q`` (the integer reference's)."""
    from unitprune.mcu.qmodel import QConv
    from unitprune.mcu.reference import run_reference

    inputs: dict[str, np.ndarray] = {}
    run_reference(qmodel, x_q, capture=lambda op, x: inputs.__setitem__(op.name, x) if isinstance(op, QConv) else None)
    return inputs


def predictions(qmodel, x_q: np.ndarray, target: str) -> dict[str, dict[str, float]]:
    """Per conv layer and kernel, the cycle model's median prediction over the samples of ``x_q``."""
    from unitprune.mcu.zeroact_plan import predict, zeroact_work

    found = {}
    for name, x in layer_inputs(qmodel, x_q).items():
        op = next(o for o in qmodel.ops if o.name == name)
        per_sample = [predict(zeroact_work(op, x[i:i + 1]), target) for i in range(len(x))]
        found[name] = {k: float(statistics.median(p[k] for p in per_sample)) for k in per_sample[0]}
    return found


def measure(points: dict, splits, target_names=TARGETS, samples: int = 5, work: Path | None = None) -> dict:
    """Per method and target: each plan's kernels, inference and layer cycles, and the predictions."""
    from unitprune.experiments.evaluation import dataset_tensors
    from unitprune.experiments.mcu_bench.bench import measure_target
    from unitprune.mcu.reference import quantize_input
    from unitprune.mcu.zeroact_plan import plan_zero_activation

    x_val, _ = dataset_tensors(splits.val)
    x_test, _ = dataset_tensors(splits.test)
    result = {"samples": samples, "methods": {}}
    with tempfile.TemporaryDirectory(prefix="zeroact_model_") as temporary:
        root = Path(work or temporary)
        for method, point in points.items():
            qmodel = point.qmodel
            x_val_q, x_q = quantize_input(qmodel, x_val), quantize_input(qmodel, x_test[:samples])
            entry = {"knob": point.knob, "quantized_accuracy": point.quantized_accuracy,
                     "input_zero_fraction": {name: float(np.mean(x == 0)) for name, x in layer_inputs(qmodel, x_q).items()},
                     "targets": {}}
            for target in target_names:
                plans = {}
                for plan in PLANS:
                    planned = plan_zero_activation(qmodel, x_val_q, target, plan)
                    chosen = {name: layer["kernel"] for name, layer in planned.source["zeroact_plan"]["layers"].items()}
                    same = next((p for p, m in plans.items() if m["plan"] == chosen), None)
                    if same is not None:  # the same kernels: the same firmware
                        plans[plan] = dict(plans[same], same_as=same)
                        continue
                    measured = measure_target(planned, target, x_q, root / f"{method}-{target}-{plan}", samples)
                    if not measured["bit_exact"]:
                        raise RuntimeError(f"{method} {target} plan {plan}: not bit-exact ({measured['checks']})")
                    export = json.loads((root / f"{method}-{target}-{plan}" / "export" / "memory_plan.json").read_text())
                    cycles = measured["checks"]["inference_cycles"]
                    plans[plan] = {"plan": chosen, "cycles": measured["cycles"], "cycles_min": min(cycles),
                                   "cycles_max": max(cycles), "cycles_per_layer": measured["cycles_per_layer"],
                                   "kernels": {n: k["kernel"] for n, k in export["kernels"]["layers"].items()},
                                   "flash_bytes": measured["flash_bytes"], "sram_bytes": measured["sram_bytes"]}
                    logger.info("%s %s %s: %s cycles (%s)", method, target, plan, f"{measured['cycles']:,}", chosen)
                entry["targets"][target] = {"plans": plans, "predicted": predictions(qmodel, x_q, target)}
            result["methods"][method] = entry
    return result


def layer_rows(result: dict) -> list[dict]:
    """One row per method, target and conv layer on the zero-activation kernel in the ``zeroact`` plan:
    measured and predicted cycles of both kernels, the auto plan's choice."""
    rows = []
    for method, entry in result["methods"].items():
        for target, found in entry["targets"].items():
            plans = found["plans"]
            for name, kernel in plans["zeroact"]["kernels"].items():
                if kernel != "unit_conv2d_sparse_zeroact_s8":
                    continue
                measured = {p: plans[p]["cycles_per_layer"][name] for p in ("sparse", "zeroact")}
                predicted = found["predicted"][name]
                rows.append({"method": method, "target": target, "layer": name,
                             "input_zeros": entry["input_zero_fraction"][name], "measured": measured,
                             "predicted": predicted, "auto": plans["auto"]["plan"][name],
                             "error": {k: predicted[k] / measured[k] - 1 for k in measured}})
    return rows


def render_markdown(result: dict, command: str) -> str:
    lines = ["# The zero-activation static-sparse convolution on the MNIST demo model", "",
             f"Generated by `{command}` ({result['seconds']:.0f} s wall, machine load-dependent). "
             f"Environment: {json.dumps(result['environment'])}. Tools: {json.dumps(result['tools'])}. "
             f"Exact simulator cycles, median over the first {result['samples']} test digits (per layer: the "
             "per-layer firmware's regions), every firmware bit-exact (outputs and counters). Plans: `sparse` every "
             "static-sparse conv on unit_conv2d_sparse_s8, `zeroact` on unit_conv2d_sparse_zeroact_s8, `auto` the "
             "cost model's per-layer choice on the validation inputs.", "",
             "## Per inference (cycles; speed-up against `sparse`; min-max over the digits)", "",
             "| method | knob | target | sparse | zeroact | auto (layers on zeroact) |", "|---" * 6 + "|"]
    for method, entry in result["methods"].items():
        for target, found in entry["targets"].items():
            plans = found["plans"]
            base = plans["sparse"]["cycles"]
            cells = []
            for plan in ("sparse", "zeroact", "auto"):
                p = plans[plan]
                cell = f"{p['cycles']:,} ({base / p['cycles']:.2f}x; {p['cycles_min']:,}-{p['cycles_max']:,})"
                if plan == "auto":
                    layers = [n for n, k in p["plan"].items() if k == "zeroact"]
                    cell += f" [{', '.join(layers) or 'none'}]"
                # other layers whose kernel the plan changed (the MSP430's code room: kernel_choice)
                moved = [f"{n} on {k}" for n, k in p["kernels"].items()
                         if n not in p["plan"] and k != plans["sparse"]["kernels"].get(n)]
                if moved:
                    cell += f" ({', '.join(moved)})"
                cells.append(cell)
            knob = "" if entry["knob"] is None else entry["knob"]
            lines.append(f"| {method} | {knob} | {target} | " + " | ".join(cells) + " |")
    lines += ["", "## Per conv layer (cycles: measured / predicted by the cycle model, its error)", "",
              "| method | target | layer | input zeros | sparse | zeroact | speed-up | auto |", "|---" * 8 + "|"]
    for row in layer_rows(result):
        m, p, e = row["measured"], row["predicted"], row["error"]
        lines.append(f"| {row['method']} | {row['target']} | {row['layer']} | {row['input_zeros']:.0%} | "
                     f"{m['sparse']:,} / {p['sparse']:,.0f} ({e['sparse']:+.1%}) | "
                     f"{m['zeroact']:,} / {p['zeroact']:,.0f} ({e['zeroact']:+.1%}) | "
                     f"{m['sparse'] / m['zeroact']:.2f}x | {row['auto']} |")
    errors = [abs(v) for row in layer_rows(result) for v in row["error"].values()]
    if errors:
        lines += ["", f"Largest prediction error: {max(errors):.1%} of the measured layer cycles."]
    return "\n".join(lines) + "\n"


def write(result: dict, out: Path, command: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "zeroact_model_mcu.json").write_text(json.dumps(result, indent=1, default=float) + "\n")
    (out / "zeroact_model_mcu.md").write_text(render_markdown(result, command))


def main(argv: list[str] | None = None) -> None:
    import torch

    from unitprune.experiments.provenance import environment_record
    from unitprune.mcu import targets

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--checkpoint", type=Path, default=CHECKPOINT)
    parser.add_argument("--work", type=Path, help="keep the exports and builds here (a new folder)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)
    target_names = tuple(args.targets.split(","))
    start = time.perf_counter()
    model, splits = load_demo(args.checkpoint)
    points = operating_points(model, splits, tuple(args.methods.split(",")))
    result = measure(points, splits, target_names, args.samples, args.work)
    result["seconds"] = time.perf_counter() - start
    result["environment"] = {k: v for k, v in environment_record().items() if k in ("python", "cpu_model", "packages")}
    result["tools"] = {t: targets.check_tools(t) for t in target_names}
    result["layers"] = layer_rows(result)
    command = "PYTHONPATH=src python benchmarks/zeroact_model_mcu.py " + " ".join(
        argv if argv is not None else sys.argv[1:])
    result["command"] = command.strip()
    write(result, args.out, result["command"])
    print((args.out / "zeroact_model_mcu.md").read_text())


if __name__ == "__main__":
    main()

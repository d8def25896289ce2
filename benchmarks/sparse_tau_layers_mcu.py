"""Whole exported layers on ``unit_conv2d_sparse_tau_s8`` (UnIT on static-sparse weights, tau in each
record) against the static-sparse ``unit_conv2d_sparse_s8`` on MSP430 and MSP430 + hardware
multiplier (mspdebug, exact cycles, every firmware bit-exact against the host build and the integer
reference), and the fit of :data:`unitprune.mcu.unit_cost.SPARSE_TAU_DELTA`: the tau kernel's cycles
are the static kernel's plus, per stored product kept or skipped by the test, the runs' measured
differences (benchmarks/sparse_tau_mcu.py), plus per stored product of a field the padding clips and
per input (the scan for negatives), fitted by non-negative least squares here.

Layers: the MNIST-like model with 80 % of its weights zero at two UnIT threshold scales (conv1
1x28x28 -> 6x24x24, conv2 6x12x12 -> 16x8x8, 5x5) and a two-conv model (conv2, and a padded 16x4x4
3x3 conv3) with 70 % zero weights; non-negative inputs (the assembly run's condition).

    PYTHONPATH=src python benchmarks/sparse_tau_layers_mcu.py [--targets msp430,msp430-hwmult]

writes docs/results/sparse_tau/sparse_tau_layers_mcu.json and prints the fitted coefficients.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy.optimize import nnls

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests' model builders (tests/qmodels.py)

from tests import qmodels  # noqa: E402
from unitprune.experiments.mcu_bench.bench import measure_target  # noqa: E402
from unitprune.mcu import unit_cost, zeroact_plan  # noqa: E402
from unitprune.mcu.qmodel import QConv, QFlatten, QLinear, QuantizedModel  # noqa: E402
from unitprune.mcu.reference import run_reference  # noqa: E402
from unitprune.mcu.unit_plan import with_unit_kernels  # noqa: E402

RESULTS = ROOT / "docs" / "results" / "sparse_tau"
TARGETS = ("msp430", "msp430-hwmult")
#: The runs' cycles per stored product kept / skipped minus the plain run's (benchmarks/sparse_tau_mcu.py).
RUN_DELTA = {"msp430": (28.1 - 25.0, 15.0 - 25.0), "msp430-hwmult": (23.3 - 18.8, 15.3 - 18.8)}


def _pruned(qmodel: QuantizedModel, rng, sparsity: float, threshold_scale: float = 1.0) -> QuantizedModel:
    ops = []
    for op in qmodel.ops:
        if isinstance(op, (QConv, QLinear)):
            weight = np.where(rng.random(op.weight.shape) < sparsity, 0, op.weight).astype(np.int8)
            op = replace(op, weight=weight)
            if isinstance(op, QConv):
                tau = np.where(weight != 0, np.minimum(op.tau.astype(np.int64) * threshold_scale, 255), 255)
                op = replace(op, tau=tau.astype(np.uint8))
        ops.append(op)
    return replace(qmodel, ops=ops)


def models() -> list[tuple[str, QuantizedModel, np.ndarray]]:
    found = []
    for seed, scale in ((11, 0.3), (12, 1.0)):
        rng = np.random.default_rng(seed)
        qmodel = _pruned(qmodels.mnist_like(rng), rng, 0.8, scale)
        x = qmodels.random_input(rng, 2, qmodel.input_shape, zero_fraction=0.6)
        found.append((f"mnist_tau{scale}", qmodel, np.maximum(x, 0).astype(np.int8)))
    rng = np.random.default_rng(3)
    conv2 = qmodels.conv(rng, "conv2", (6, 12, 12), 16, (5, 5), sparsity=0.3)
    pool = qmodels.maxpool("pool", qmodels.output_shape(conv2))
    conv3 = qmodels.conv(rng, "conv3", qmodels.output_shape(pool), 8, (3, 3), padding=(1, 1, 1, 1))
    two = QuantizedModel(ops=[conv2, pool, conv3, QFlatten("flatten", 128), qmodels.linear(rng, "fc", 128, 10)],
                         input_shape=(6, 12, 12), input_scale=1.0, output_scale=1.0)
    two = _pruned(two, rng, 0.7)
    x = qmodels.random_input(rng, 2, two.input_shape, zero_fraction=0.4)
    found.append(("two_conv", two, np.abs(x.astype(np.int64)).clip(0, 127).astype(np.int8)))
    return found


def measure(target_names=TARGETS, build_dir: Path | None = None) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="sparse_tau_layers_") as temporary:
        root = Path(build_dir or temporary)
        for target in target_names:
            for name, qmodel, x in models():
                convs = [op.name for op in qmodel.ops if isinstance(op, QConv)]
                cycles = {}
                for kernel in ("static", "sparse_tau"):
                    row = measure_target(with_unit_kernels(qmodel, {c: kernel for c in convs}), target, x,
                                         root / f"{target}-{name}-{kernel}", layer_samples=len(x))
                    if not row["bit_exact"]:
                        raise RuntimeError(f"{target} {name} {kernel}: not bit-exact: {row['checks']}")
                    cycles[kernel] = row["cycles_per_layer"]
                inputs = {}
                run_reference(qmodel, x, capture=lambda op, v: inputs.setdefault(op.name, v))
                for op in qmodel.ops:
                    if isinstance(op, QConv):
                        work = unit_cost.conv_work(op, inputs[op.name])
                        static_work = zeroact_plan.zeroact_work(op, inputs[op.name])
                        rows.append({"target": target, "model": name, "layer": op.name,
                                     "static": cycles["static"][op.name], "sparse_tau": cycles["sparse_tau"][op.name],
                                     "static_predicted": zeroact_plan.predict(static_work, target)["sparse"],
                                     "stored_products": work.compares, "kept": work.kept, "inputs": work.inputs,
                                     "clipped_pairs": static_work["sparse"]["clipped_pairs"]})
                        print(rows[-1], flush=True)
    return rows


def fit(rows: list[dict]) -> dict[str, dict[str, float]]:
    """SPARSE_TAU_DELTA per target: the runs' deltas, the clipped-pair and input coefficients by NNLS."""
    table = {}
    for target in sorted({row["target"] for row in rows}):
        kept, skipped = RUN_DELTA[target]
        points = [row for row in rows if row["target"] == target]
        rest = np.array([row["sparse_tau"] - row["static"] - kept * row["kept"]
                         - skipped * (row["stored_products"] - row["kept"]) for row in points], float)
        matrix = np.array([[row["clipped_pairs"], row["inputs"]] for row in points], float)
        solution, _ = nnls(matrix, rest)
        table[target] = {"kept": round(kept, 2), "skipped": round(skipped, 2),
                         "clipped_pairs": round(float(solution[0]), 2), "inputs": round(float(solution[1]), 2)}
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--build-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    targets = tuple(args.targets.split(","))
    unknown = [t for t in targets if t not in RUN_DELTA]
    if unknown:  # the fit needs the runs' deltas, measured on the MSP430s only (the AVR's: benchmarks/sparse_tau_mcu.py)
        parser.error(f"--targets {','.join(unknown)}: the fit has run deltas for {', '.join(RUN_DELTA)} only")
    rows = measure(targets, args.build_dir)
    coefficients = fit(rows)
    for row in rows:
        delta = coefficients[row["target"]]
        row["sparse_tau_predicted_from_measured_static"] = row["static"] + (
            delta["kept"] * row["kept"] + delta["skipped"] * (row["stored_products"] - row["kept"])
            + delta["clipped_pairs"] * row["clipped_pairs"] + delta["inputs"] * row["inputs"])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sparse_tau_layers_mcu.json").write_text(json.dumps({"rows": rows, "coefficients": coefficients},
                                                                    indent=1))
    print("SPARSE_TAU_DELTA = " + json.dumps(coefficients, indent=4))


if __name__ == "__main__":
    main()

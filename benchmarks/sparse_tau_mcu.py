"""Does UnIT's test pay on top of static sparsity? Cycle-exact runs of the static-sparse convolution's
inner loop (the *run*: csrc/unit_internal_sparse_s8.h) with and without a per-record UnIT test, on
AVR (simavr), MSP430 and MSP430 + hardware multiplier (mspdebug).

With static weights each nonzero weight's activation threshold tau_w (``T >> bit_length(|w|)``, the
bit-shift quotient) is an export-time constant, so a record of the static-sparse tables can carry it
and the run can test ``x <= tau_w`` (one compare and branch) before the multiply-accumulate. The
plain runs are the library's (``unit__sparse_run_s8_avr``, ``__unit_sparse_run_s8``); the tested
runs are, on MSP430, the library's (``__unit_sparse_tau_run_s8`` of ``unit_conv2d_sparse_tau_s8``) and,
on AVR, the prototype ``benchmarks/mcu/sparse_tau_run_avr.S`` (the library's run, its record loop
given the test: the test does not pay there, so the library's AVR build runs the C loop); inputs ``x >= 0``, as after a ReLU: one unsigned compare. Per threshold T both run every output row of every channel of
the MNIST conv2 shape (6x12x12 -> 16x8x8, 5x5, 80 % zero weights, ReLU-like inputs), every output
checked against NumPy (RuntimeError on a mismatch). The report gives the cycles, the fraction of
stored products skipped and the cycles per stored product.

    PYTHONPATH=src python benchmarks/sparse_tau_mcu.py [--targets avr,msp430,msp430-hwmult]

writes docs/results/sparse_tau/sparse_tau_mcu.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import tempfile
from pathlib import Path

import numpy as np

import unitprune
from unitprune.mcu import targets
from unitprune.mcu.codegen import c_array

logger = logging.getLogger("sparse_tau_mcu")
HERE = Path(__file__).resolve().parent
CSRC = Path(unitprune.__file__).resolve().parent / "csrc"
RESULTS = HERE.parent / "docs" / "results" / "sparse_tau"
TARGETS = ("avr", "msp430", "msp430-hwmult")
#: The MNIST conv2 shape and the TTP+UnIT operating point's character: 80 % zero weights, ReLU maps.
C, H, W, O, K = 6, 12, 12, 16, 5
OH, OW = H - K + 1, W - K + 1
WEIGHT_ZEROS, INPUT_ZEROS = 0.8, 0.3
#: Threshold scales T (tau = min(T >> bit_length(|w|), 255)): from nothing skipped but zeros to most.
SCALES = (0, 500, 1000, 2000, 4000, 8000)


def layer(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Weights [O, C, K, K] int8 (80 % zero) and a ReLU-like input [C, H, W] int8 in [0, 127]."""
    rng = np.random.default_rng(seed)
    weight = rng.integers(-127, 128, size=(O, C, K, K))
    weight[rng.random(weight.shape) < WEIGHT_ZEROS] = 0
    weight.reshape(-1)[:2] = (127, -127)
    x = rng.integers(1, 128, size=(C, H, W))
    x[rng.random(x.shape) < INPUT_ZEROS] = 0
    x.reshape(-1)[:1] = 127
    return weight.astype(np.int8), x.astype(np.int8)


def tau_of(weight: np.ndarray, scale: int) -> np.ndarray:
    magnitude = np.abs(weight.astype(np.int64))
    bits = np.floor(np.log2(np.maximum(magnitude, 1))).astype(np.int64) + 1
    return np.minimum(np.where(magnitude > 0, scale >> bits, 255), 255)


def records(weight: np.ndarray):
    """Per channel the stored (offset, weight) of its nonzero weights, as the sparse tables order them."""
    flat = weight.reshape(O, -1)
    c, ky, kx = np.meshgrid(np.arange(C), np.arange(K), np.arange(K), indexing="ij")
    offsets = (c * H * W + ky * W + kx).reshape(-1)
    return [(offsets[np.nonzero(row)[0]], row[np.nonzero(row)[0]].astype(np.int64)) for row in flat]


def expected(weight: np.ndarray, x: np.ndarray, scale: int | None, target: str) -> np.ndarray:
    """out[o][oy][ox] as the run stores it: the sum of the kept products (all, ``scale`` None), on
    AVR in its convention -(sum over every record of (p + 32768)) modulo 2**32."""
    flat_x = x.reshape(-1).astype(np.int64)
    tau = None if scale is None else tau_of(weight, scale).reshape(O, -1)
    out = np.zeros((O, OH, OW), np.int64)
    for o, (offsets, weights) in enumerate(records(weight)):
        taus = None if tau is None else tau[o][np.nonzero(weight.reshape(O, -1)[o])[0]]
        for oy in range(OH):
            for ox in range(OW):
                values = flat_x[oy * W + ox + offsets]
                products = values * weights
                if taus is not None:
                    products = np.where(values > taus, products, 0)
                out[o, oy, ox] = (-(products + 32768).sum() if target == "avr" else products.sum())
    return (out & 0xFFFFFFFF).astype(np.uint32).view(np.int32)


def kept_fraction(weight: np.ndarray, x: np.ndarray, scale: int) -> tuple[int, int]:
    """(stored products, kept products) over the layer."""
    flat_x = x.reshape(-1).astype(np.int64)
    tau = tau_of(weight, scale).reshape(O, -1)
    pairs = kept = 0
    for o, (offsets, _) in enumerate(records(weight)):
        taus = tau[o][np.nonzero(weight.reshape(O, -1)[o])[0]]
        for oy in range(OH):
            for ox in range(OW):
                values = flat_x[oy * W + ox + offsets]
                pairs += values.size
                kept += int((values > taus).sum())
    return pairs, kept


def firmware(weight: np.ndarray, x: np.ndarray, scales) -> str:
    """main(): the plain run's region, then one tested run's region per scale; each emits out[]."""
    stored = records(weight)
    nnz = [len(offsets) for offsets, _ in stored]
    parts = ['#include <stdint.h>\n#include "unit_mcu.h"\n#include "unit_kernels_s8.h"\n',
             "#if defined(__AVR__)\n"
             "void unit__sparse_run_s8_avr(int32_t *out, const int8_t *x, const int16_t *records, uint16_t nnz, "
             "uint8_t count);\n"
             "void proto_sparse_tau_run_avr(int32_t *out, const int8_t *x, const int16_t *records, uint16_t nnz, "
             "uint8_t count);\n#else\n"
             "void __unit_sparse_run_s8(int32_t *out, const int8_t *x, const int16_t *records, const int16_t *run);\n"
             "void __unit_sparse_tau_run_s8(int32_t *out, const int8_t *x, const int16_t *records, "
             "const int16_t *run);\n#endif\n",
             c_array("int8_t", "x", x), f"static int32_t out[{O * OH * OW}];\n",
             c_array("uint16_t", "nnz", np.array(nnz)),
             c_array("int16_t", "plain", np.concatenate([np.stack([off, w], 1).reshape(-1) for off, w in stored])
                     .astype(np.uint16).view(np.int16), flash=True)]
    flat = weight.reshape(O, -1)
    for scale in scales:
        tau = tau_of(weight, scale).reshape(O, -1)
        avr, msp = [], []
        for o, (offsets, weights) in enumerate(stored):
            taus = tau[o][np.nonzero(flat[o])[0]]
            for offset, w, t in zip(offsets, weights, taus):
                avr += [offset, (int(w) & 0xFF) | (int(t) << 8)]
                msp += [offset, int(t) + 1, int(w)]  # unit_conv2d_sparse_tau_s8's records
        to16 = lambda values: np.array(values, np.int64).astype(np.uint16).view(np.int16)  # noqa: E731
        parts += ["#if defined(__AVR__)\n", c_array("int16_t", f"tau{scale}", to16(avr), flash=True),
                  "#else\n", c_array("int16_t", f"tau{scale}", to16(msp), flash=True), "#endif\n"]
    body = []
    for label, table in [("plain", "plain")] + [(f"tau{s}", f"tau{s}") for s in scales]:
        avr_call = "unit__sparse_run_s8_avr" if label == "plain" else "proto_sparse_tau_run_avr"
        msp_call = "__unit_sparse_run_s8" if label == "plain" else "__unit_sparse_tau_run_s8"
        msp_width = "2" if label == "plain" else "3"
        body.append(f"""
    {{
        const int16_t *records = {table};
        uint8_t o, oy;
        unit_mcu_label("{label}");
        UNIT_MCU_START();
        for (o = 0; o < {O}; o++) {{
            for (oy = 0; oy < {OH}; oy++) {{
#if defined(__AVR__)
                {avr_call}(out + (o * {OH} + oy) * {OW}, x + oy * {W}, records, nnz[o], {OW});
#else
                int16_t run[3];
                run[0] = (int16_t)nnz[o];
                run[1] = {OW};
                run[2] = 1;
                {msp_call}(out + (o * {OH} + oy) * {OW}, x + oy * {W}, records, run);
#endif
            }}
#if defined(__AVR__)
            records += 2 * nnz[o];
#else
            records += {msp_width} * nnz[o];
#endif
        }}
        UNIT_MCU_STOP();
        unit_mcu_emit(out, sizeof out);
    }}""")
    parts.append("int main(void) {" + "".join(body) + "\n    unit_mcu_done();\n    return 0;\n}\n")
    return "\n".join(parts)


def measure(target_names=TARGETS, scales=SCALES, seed: int = 0, build_dir: Path | None = None) -> dict:
    weight, x = layer(seed)
    result = {"machine": platform.machine(), "python": platform.python_version(), "seed": seed,
              "layer": {"shape": [C, H, W, O, K], "weight_zeros": WEIGHT_ZEROS, "input_zeros": INPUT_ZEROS,
                        "stored": int(np.count_nonzero(weight))}, "builds": {}}
    with tempfile.TemporaryDirectory(prefix="sparse_tau_mcu_") as temporary:
        root = Path(build_dir or temporary)
        root.mkdir(parents=True, exist_ok=True)
        source = root / "sparse_tau.c"
        source.write_text(firmware(weight, x, scales))
        for target in target_names:
            # on AVR the prototype brings the library's runs with it (it includes unit_conv2d_sparse_s8_avr.S)
            extra = [HERE / "mcu" / "sparse_tau_run_avr.S"] if target == "avr" else []
            fw = targets.build(target, [source, *extra], include_dirs=[CSRC], build_dir=root / target,
                               name="sparse_tau")
            regions = {region.label: region for region in targets.run(fw, max_cycles=200_000_000).regions}
            points = []
            plain_cycles = regions["plain"].cycles
            for label, scale in [("plain", None)] + [(f"tau{s}", s) for s in scales]:
                data = np.frombuffer(regions[label].data, np.int32).reshape(O, OH, OW)
                want = expected(weight, x, scale, target)
                if not np.array_equal(data, want):
                    raise RuntimeError(f"{target}: {label} differs from NumPy ({int((data != want).sum())} outputs)")
                if scale is None:
                    continue
                pairs, kept = kept_fraction(weight, x, scale)
                cycles = regions[label].cycles
                points.append({"scale": scale, "stored_products": pairs, "skipped_fraction": 1 - kept / pairs,
                               "plain_cycles": plain_cycles, "tested_cycles": cycles,
                               "plain_cycles_per_product": plain_cycles / pairs,
                               "tested_cycles_per_product": cycles / pairs, "speedup": plain_cycles / cycles})
                logger.info("%s T=%d skipped %.3f: plain %d, tested %d (%.2fx)", target, scale,
                            points[-1]["skipped_fraction"], plain_cycles, cycles, plain_cycles / cycles)
            # per stored product: cycles = a + kept * k + skipped * s (least squares over the scales)
            matrix = np.array([[1.0, p["stored_products"] * (1 - p["skipped_fraction"]),
                                p["stored_products"] * p["skipped_fraction"]] for p in points])
            fit, *_ = np.linalg.lstsq(matrix, np.array([p["tested_cycles"] for p in points], float), rcond=None)
            pairs = points[0]["stored_products"]
            plain_per = (plain_cycles - fit[0]) / pairs
            breakeven = (fit[1] - plain_per) / (fit[1] - fit[2]) if fit[1] != fit[2] else None
            result["builds"][target] = {"compiler": fw.compiler, "points": points,
                                        "per_product": {"plain": plain_per, "tested_kept": float(fit[1]),
                                                        "tested_skipped": float(fit[2])},
                                        "breakeven_skipped_fraction": breakeven}
    return result


def markdown(result: dict, command: str) -> str:
    lines = ["# UnIT's test on top of static sparsity: the sparse run with and without it", "",
             f"Generated by `{command}` (exact simulator cycles; machine {result['machine']}, Python "
             f"{result['python']}). Every output checked against NumPy. The MNIST conv2 shape, "
             f"{result['layer']['stored']} stored weights (80 % zero), ReLU-like inputs (30 % zero); "
             "`skipped` = stored products with x <= tau (zeros included) over all stored products.", ""]
    for target, build in result["builds"].items():
        per = build["per_product"]
        lines += [f"## {target}", "", "| T | skipped | plain cycles | tested cycles | speed-up |", "|---|---|---|---|---|"]
        for p in build["points"]:
            lines.append(f"| {p['scale']} | {p['skipped_fraction']:.3f} | {p['plain_cycles']:,} | "
                         f"{p['tested_cycles']:,} | {p['speedup']:.2f}x |")
        breakeven = build["breakeven_skipped_fraction"]
        lines += ["", f"Cycles per stored product (least squares over the T): plain {per['plain']:.1f}; tested "
                  f"{per['tested_kept']:.1f} kept, {per['tested_skipped']:.1f} skipped; the test pays above "
                  + (f"{breakeven:.2f} skipped." if breakeven is not None else "never."), ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--build-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    result = measure(tuple(args.targets.split(",")), build_dir=args.build_dir)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sparse_tau_mcu.json").write_text(json.dumps(result, indent=1))
    command = "PYTHONPATH=src python benchmarks/sparse_tau_mcu.py"
    (args.out / "sparse_tau_mcu.md").write_text(markdown(result, command))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

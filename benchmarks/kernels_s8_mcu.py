"""Cycle-exact cost of the int8 kernels on AVR and MSP430: dense vs zero-skipping vs UnIT.

1. draws one convolution and one linear layer in the integer format of docs/fixed_point.md
   (ReLU-like int8 activations with zeros, int8 weights with a pruned fraction, UnIT threshold
   T_q = the 20th percentile of the layer's nonzero |x_q * w_q|, as calibration does), and writes
   the constants as flash tables (UNIT_FLASH) into ``kernels_s8_data.h``;
2. runs every variant on the host library (``unitprune.kernels.s8``, tested bit for bit against
   the integer oracle of tests/test_kernels_s8.py) for the expected outputs and the MAC counters;
3. builds ``benchmarks/mcu/kernels_s8.c`` with the library's own int8 sources (the csrc files with
   ``_s8`` in their name; no counters: the MCU build) by ``unitprune.mcu.targets.build`` for each
   target (AVR: simavr; MSP430: mspdebug sim, without and with the hardware multiplier), runs it,
   and checks every output byte against the host; a mismatch is an error;
4. writes ``benchmarks/results/kernels_s8_mcu.json`` and ``.md``: cycles per variant and the
   speed-up over the dense loop.

Usage: ``PYTHONPATH=src python benchmarks/kernels_s8_mcu.py [--targets avr msp430 msp430-hwmult] [--seed 0]``
Needs: ``apt-get install gcc-avr avr-libc binutils-avr simavr libsimavr-dev libelf-dev pkg-config``
(AVR) and ``clang-14 lld-14 mspdebug`` (MSP430).
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import unitprune
from unitprune.approx import BinTree
from unitprune.kernels import s8
from unitprune.mcu import targets
from unitprune.mcu.codegen import c_array
from unitprune.mcu.qmodel import Requant
from unitprune.mcu.quantize import quantize_multiplier
from unitprune.mcu.targets import ToolMissing
from unitprune.torch_reference import ConvGeometry

logger = logging.getLogger("kernels_s8_mcu")

CONV = dict(n=1, c=4, h=12, w=12, o=8, k=3, pad=1)
LINEAR = dict(inputs=128, outputs=32)
PERCENTILE = 20
REQUANTIZE_N = 64
HERE = Path(__file__).resolve().parent
FIRMWARE = HERE / "mcu" / "kernels_s8.c"
CSRC = Path(unitprune.__file__).resolve().parent / "csrc"
RESULTS = HERE / "results"
DEFAULT_OPTS = {"avr": ("O2", "Os"), "msp430": ("O2",), "msp430-hwmult": ("O2",)}


def relu_like(rng, shape, zero_fraction: float) -> np.ndarray:
    values = np.minimum(np.abs(rng.normal(0, 40, size=shape)), 127).astype(np.int64)
    values[rng.random(shape) < zero_fraction] = 0
    return values.astype(np.int8)


def weights(rng, shape, zero_fraction: float) -> np.ndarray:
    values = np.clip(np.round(rng.normal(0, 40, size=shape)), -127, 127).astype(np.int64)
    values[rng.random(shape) < zero_fraction] = 0
    return values.astype(np.int8)


def threshold_q(products: np.ndarray) -> int:
    nonzero = np.abs(products[products != 0])
    return int(np.percentile(nonzero, PERCENTILE, method="inverted_cdf")) if nonzero.size else 0


def requant_for(acc: np.ndarray, out: int, relu: bool, rng) -> Requant:
    multiplier, shift = quantize_multiplier(127.0 / max(float(np.abs(acc).max()), 1.0))
    bias = rng.integers(-200, 200, size=out).astype(np.int32)
    return Requant(bias, np.full(out, multiplier, np.int32), np.full(out, shift, np.int8), 0 if relu else -128, 127)


def make_layers(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    c = CONV
    x = relu_like(rng, (c["n"], c["c"], c["h"], c["w"]), 0.5)
    w = weights(rng, (c["o"], c["c"], c["k"], c["k"]), 0.3)
    geometry = ConvGeometry((c["k"], c["k"]), (1, 1), (1, 1), (c["pad"],) * 4, 1)
    acc = F.conv2d(torch.from_numpy(x.astype(np.float64)), torch.from_numpy(w.astype(np.float64)), padding=c["pad"])
    patches = F.unfold(torch.from_numpy(x.astype(np.float64)), c["k"], padding=c["pad"])[0]  # [C*K*K, L]
    products = (w.reshape(c["o"], -1).astype(np.float64)[:, :, None] * patches.numpy()[None]).astype(np.int64)
    t_conv = threshold_q(products)
    magnitude = np.abs(w.astype(np.int64))
    tau = np.where(w != 0, np.minimum(t_conv >> np.array([int(v).bit_length() for v in magnitude.reshape(-1)])
                                      .reshape(w.shape), 255), 255).astype(np.uint8)
    xl = relu_like(rng, (1, LINEAR["inputs"]), 0.5)
    wl = weights(rng, (LINEAR["outputs"], LINEAR["inputs"]), 0.3)
    t_lin = threshold_q(wl.astype(np.int64) * xl.astype(np.int64))
    nonzero_x = np.abs(xl[xl != 0]).astype(np.int64)
    tree = BinTree.from_samples(nonzero_x, 1, 8)
    quotient = [min(t_lin >> leaf, 255) if left < 0 else 0 for leaf, left in zip(tree.leaf, tree.left)]
    table = [0] + [min(t_lin >> a.bit_length(), 255) for a in range(1, 129)]
    # Requantization of conv-sized accumulators with the shifts quantization produces (right shifts).
    req_shift = rng.integers(-12, 1, size=REQUANTIZE_N)
    req = dict(acc=rng.integers(-2**20, 2**20, size=REQUANTIZE_N), shift=req_shift.astype(np.int8),
               multiplier=rng.integers(2**30, 2**31 - 1, size=REQUANTIZE_N))
    return dict(
        requantize=req,
        conv=dict(x=x, w=w, tau=tau, geometry=geometry, t_q=t_conv,
                  requant=requant_for(acc.numpy(), c["o"], True, rng)),
        linear=dict(x=xl, w=wl, t_q=t_lin, requant=requant_for(xl.astype(np.int64) @ wl.T.astype(np.int64),
                                                                 LINEAR["outputs"], False, rng),
                    tree=s8.QuotientTree(np.array(tree.split, np.int8), np.array(tree.left, np.int8),
                                         np.array(tree.right, np.int8), np.array(quotient, np.uint8)),
                    table=np.array(table, np.uint8)))


def host_results(layers: dict) -> dict[str, tuple[np.ndarray, dict]]:
    conv, linear = layers["conv"], layers["linear"]
    results = {}
    for variant in s8.CONV_VARIANTS:
        y, counts = s8.conv2d(variant, conv["x"], conv["w"], conv["requant"], conv["geometry"], tau=conv["tau"])
        results[f"conv_{variant}"] = (y, counts.to_dict())
    for variant in s8.LINEAR_VARIANTS:
        y, counts = s8.linear(variant, linear["x"], linear["w"], linear["requant"], threshold_q=linear["t_q"],
                              shift_start=0, tree=linear["tree"], quotient_table=linear["table"])
        results[f"linear_{variant}"] = (y, counts.to_dict())
    return results


def write_data_header(path: Path, layers: dict) -> None:
    conv, linear = layers["conv"], layers["linear"]
    c = CONV
    out_h, out_w = c["h"] + 2 * c["pad"] - c["k"] + 1, c["w"] + 2 * c["pad"] - c["k"] + 1
    tree, req = linear["tree"], layers["requantize"]

    def ram(ctype, name, values):  # activations and inputs: mutable RAM
        return c_array(ctype, name, values, const=False)

    def flash(ctype, name, values):  # layer constants: flash (UNIT_FLASH)
        return c_array(ctype, name, values, flash=True)

    parts = [
        "/* Generated by benchmarks/kernels_s8_mcu.py. Do not edit. */\n#include <stdint.h>\n",
        '#include "unit_types.h"\n',
        "".join(f"#define CONV_{k.upper()} {v}\n" for k, v in c.items()),
        f"#define CONV_OH {out_h}\n#define CONV_OW {out_w}\n",
        f"#define LIN_IN {LINEAR['inputs']}\n#define LIN_OUT {LINEAR['outputs']}\n",
        f"#define LIN_TQ {linear['t_q']}L\n#define LIN_SHIFT_START 0\n#define LIN_TREE_NODES {tree.split.size}\n",
        f"#define SCRATCH_WORDS {max(out_h * out_w, LINEAR['outputs'])}\n",
        f"#define REQ_N {req['acc'].size}\n",
        ram("int8_t", "conv_x", conv["x"]),
        flash("int8_t", "conv_w", conv["w"]), flash("uint8_t", "conv_tau", conv["tau"]),
        flash("int32_t", "conv_bias", conv["requant"].bias),
        flash("int32_t", "conv_multiplier", conv["requant"].multiplier),
        flash("int8_t", "conv_shift", conv["requant"].shift),
        ram("int8_t", "lin_x", linear["x"]),
        flash("int8_t", "lin_wt", np.ascontiguousarray(linear["w"].T)),
        flash("int32_t", "lin_bias", linear["requant"].bias),
        flash("int32_t", "lin_multiplier", linear["requant"].multiplier),
        flash("int8_t", "lin_shift", linear["requant"].shift),
        flash("int8_t", "lin_tree_split", tree.split), flash("int8_t", "lin_tree_left", tree.left),
        flash("int8_t", "lin_tree_right", tree.right), flash("uint8_t", "lin_tree_quotient", tree.quotient),
        flash("uint8_t", "lin_table", linear["table"]),
        ram("int32_t", "req_acc", req["acc"]), ram("int32_t", "req_multiplier", req["multiplier"]),
        ram("int8_t", "req_shift", req["shift"]),
    ]
    path.write_text("\n".join(parts))


def check_record(record: dict, layers: dict, expected: dict, opt: str) -> None:
    """Raises unless a firmware region's streamed bytes equal the host library's results."""
    label = record["label"]
    if label == "requantize":
        got = np.frombuffer(bytes.fromhex(record["data"]), dtype="<i4")
        req = layers["requantize"]
        if not np.array_equal(got, s8.requantize(req["acc"], req["multiplier"], req["shift"])):
            raise RuntimeError(f"requantize -{opt}: the AVR results differ from the host library")
        return
    if label not in expected:
        raise RuntimeError(f"unexpected firmware region {label!r}")
    data = np.frombuffer(bytes.fromhex(record["data"]), dtype=np.int8)
    want = expected[label][0].reshape(-1)
    if data.size != want.size + 1 or data[0] != 0 or not np.array_equal(data[1:], want):
        bad = np.count_nonzero(data[1:] != want) if data.size == want.size + 1 else "all"
        raise RuntimeError(f"{label} -{opt}: the AVR output differs from the host library "
                           f"(status {data[0] if data.size else None}, {bad} bytes differ)")



def measure(target_names: tuple[str, ...], seed: int, build_dir: Path | None = None,
            opts: dict[str, tuple[str, ...]] | None = None, cflags: tuple[str, ...] = ()) -> dict:
    """Builds, runs and checks every kernel on every target; raises on any mismatch."""
    opts = opts or DEFAULT_OPTS
    tools = {target: targets.check_tools(target) for target in target_names}
    layers = make_layers(seed)
    expected = host_results(layers)
    sources = [FIRMWARE, *sorted(CSRC.glob("*_s8*.c"))]
    builds = {}
    with tempfile.TemporaryDirectory(prefix="kernels_s8_mcu_") as temporary:
        root = Path(build_dir or temporary)
        root.mkdir(parents=True, exist_ok=True)
        write_data_header(root / "kernels_s8_data.h", layers)
        for target in target_names:
            for opt in opts[target]:
                key = f"{target} -{opt}"
                firmware = targets.build(target, sources, include_dirs=[CSRC, root],
                                         build_dir=root / f"{target}-{opt}", opt=opt, name="kernels_s8",
                                         cflags=cflags)
                result = targets.run(firmware, max_cycles=400_000_000)
                build = {"target": target, "opt": opt, "compiler": firmware.compiler,
                         "flash_bytes": firmware.flash_bytes, "cycles": {}}
                for region in result.regions:
                    record = {"label": region.label, "data": region.data.hex(), "cycles": region.cycles}
                    check_record(record, layers, expected, key)
                    if region.label == "requantize":
                        build["requantize_cycles"] = region.cycles / REQUANTIZE_N
                    else:
                        build["cycles"][region.label] = region.cycles
                if sorted(build["cycles"]) != sorted(expected):
                    raise RuntimeError(f"{key}: firmware regions {sorted(build['cycles'])} differ from "
                                       f"{sorted(expected)}")
                builds[key] = build
                logger.info("%s: %d kernels checked bit-exactly against the host", key, len(build["cycles"]))
    return {"settings": {"seed": seed, "conv": CONV, "linear": LINEAR, "percentile": PERCENTILE,
                         "conv_threshold_q": layers["conv"]["t_q"], "linear_threshold_q": layers["linear"]["t_q"],
                         "tools": tools},
            "counts": {label: counts for label, (_, counts) in expected.items()}, "builds": builds}


def render_markdown(result: dict) -> str:
    settings, builds, counts = result["settings"], result["builds"], result["counts"]
    c, lin = settings["conv"], settings["linear"]
    keys = list(builds)
    lines = [f"# int8 kernels on MCUs, cycle-exact ({time.strftime('%Y-%m-%d %H:%M')})", "",
             "Constants in flash (UNIT_FLASH), no counters (the MCU build); every output checked byte for byte "
             f"against the host library. Conv {c['c']}->{c['o']} channels, {c['h']}x{c['w']}, {c['k']}x{c['k']}, "
             f"padding {c['pad']}; linear {lin['inputs']}->{lin['outputs']}; activations ReLU-like with 50 % zeros, "
             f"30 % of the weights zero, T_q = {settings['percentile']}th percentile of the nonzero |x*w| "
             f"(conv {settings['conv_threshold_q']}, linear {settings['linear_threshold_q']}); seed {settings['seed']}. "
             "Cycles (speed-up over the dense kernel of the same layer and build).", "",
             "| kernel | dense MACs | executed | " + " | ".join(keys) + " |", "|---" * (len(keys) + 3) + "|"]
    for label, count in counts.items():
        cells = []
        for key in keys:
            cycles = builds[key]["cycles"][label]
            dense = builds[key]["cycles"][label.split("_")[0] + "_dense"]
            cells.append(f"{cycles} ({dense / cycles:.2f}x)")
        lines.append(f"| {label} | {count['dense']} | {count['executed']} | " + " | ".join(cells) + " |")
    lines.append("| requantize (one call) | | | " + " | ".join(f"{builds[k]['requantize_cycles']:.0f}" for k in keys)
                 + " |")
    outputs = counts["conv_dense"]["dense"] // (c["c"] * c["k"] ** 2)
    lines += ["", f"Every variant includes its output stage, one requantization per output (the conv has {outputs} "
              f"outputs, the linear layer {lin['outputs']}).",
              "Compilers: " + "; ".join(f"{k}: {builds[k]['compiler']}" for k in keys) + "."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--targets", nargs="+", default=["avr", "msp430", "msp430-hwmult"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--cflags", nargs="*", default=[], help="extra compiler flags (experiments)")
    parser.add_argument("--opts", nargs="*", default=None, help="optimisation levels, e.g. O2 (default: per target)")
    parser.add_argument("--build-dir", type=Path, default=None, help="keep the build here (default: temporary)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        opts = {t: tuple(args.opts) for t in args.targets} if args.opts else None
        result = measure(tuple(args.targets), args.seed, args.build_dir, opts, tuple(args.cflags))
    except ToolMissing as error:
        raise SystemExit(f"kernels_s8_mcu: {error}")
    text = render_markdown(result)
    print(text)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "kernels_s8_mcu.json").write_text(json.dumps(result, indent=1))
    (args.output / "kernels_s8_mcu.md").write_text(text)
    print(f"wrote {args.output / 'kernels_s8_mcu.json'} and {args.output / 'kernels_s8_mcu.md'}")


if __name__ == "__main__":
    main()

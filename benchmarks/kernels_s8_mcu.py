"""Cycle-exact cost of the int8 kernels on AVR (simavr): dense vs zero-skipping vs UnIT.

1. draws one convolution and one linear layer in the integer format of docs/fixed_point.md
   (ReLU-like int8 activations with zeros, int8 weights with a pruned fraction, UnIT threshold
   T_q = the 20th percentile of the layer's nonzero |x_q * w_q|, as calibration does), and writes
   the constants as flash tables (UNIT_FLASH) into ``kernels_s8_data.h``;
2. runs every variant on the host library (``unitprune.kernels.s8``, tested bit for bit against
   the integer oracle of tests/test_kernels_s8.py) for the expected outputs and the MAC counters;
3. builds ``benchmarks/mcu/kernels_s8_avr.c`` with the library's own ``src/unitprune/csrc/*_s8.c``
   (no counters: the MCU build) and the simavr harness of ``benchmarks/division_mcu.py``, runs it,
   and checks every output byte against the host; a mismatch is an error;
4. writes ``benchmarks/results/kernels_s8_avr.json`` and ``.md``: cycles per variant, per dense
   MAC, and the speed-up over the dense loop.

Usage: ``python benchmarks/kernels_s8_mcu.py [--mcu atmega2560] [--opt O2 Os] [--seed 0]``
Needs: ``apt-get install gcc-avr avr-libc binutils-avr simavr libsimavr-dev libelf-dev pkg-config``.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from division_mcu import CSRC, MCU_DIR, RESULTS, ToolMissing, _c_array, build_harness, check_tools, run_firmware
from unitprune.approx import BinTree
from unitprune.kernels import s8
from unitprune.reference import ConvGeometry

logger = logging.getLogger("kernels_s8_mcu")

CONV = dict(n=1, c=4, h=12, w=12, o=8, k=3, pad=1)
LINEAR = dict(inputs=128, outputs=32)
PERCENTILE = 20
REQUANTIZE_N = 64
FIRMWARE_FLAGS = ["-std=c99", "-Wall", "-Wextra"]


class Requant:
    """The attributes of unitprune.mcu.qmodel.Requant."""

    def __init__(self, bias, multiplier, shift, act_min, act_max):
        self.bias, self.multiplier, self.shift, self.act_min, self.act_max = bias, multiplier, shift, act_min, act_max


def quantize_multiplier(m: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplier (docs/fixed_point.md)."""
    frac, exponent = np.frexp(m)
    q = int(np.floor(frac * 2**31 + 0.5))
    if q == 2**31:
        q, exponent = q // 2, exponent + 1
    return q, int(exponent)


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
    flash = lambda ctype: f"const {ctype} UNIT_FLASH"  # noqa: E731
    tree = linear["tree"]
    parts = [
        "/* Generated by benchmarks/kernels_s8_mcu.py. Do not edit. */\n#include <stdint.h>\n",
        '#include "unit_types.h"\n',
        "".join(f"#define CONV_{k.upper()} {v}\n" for k, v in c.items()),
        f"#define CONV_OH {out_h}\n#define CONV_OW {out_w}\n",
        f"#define LIN_IN {LINEAR['inputs']}\n#define LIN_OUT {LINEAR['outputs']}\n",
        f"#define LIN_TQ {linear['t_q']}L\n#define LIN_SHIFT_START 0\n#define LIN_TREE_NODES {tree.split.size}\n",
        f"#define SCRATCH_WORDS {max(out_h * out_w, LINEAR['outputs'])}\n",
        _c_array("int8_t", "conv_x", conv["x"].reshape(-1)),  # activations: RAM
        _c_array(flash("int8_t"), "conv_w", conv["w"].reshape(-1)),
        _c_array(flash("uint8_t"), "conv_tau", conv["tau"].reshape(-1)),
        _c_array(flash("int32_t"), "conv_bias", conv["requant"].bias, "L"),
        _c_array(flash("int32_t"), "conv_multiplier", conv["requant"].multiplier, "L"),
        _c_array(flash("int8_t"), "conv_shift", conv["requant"].shift),
        _c_array("int8_t", "lin_x", linear["x"].reshape(-1)),
        _c_array(flash("int8_t"), "lin_wt", np.ascontiguousarray(linear["w"].T).reshape(-1)),
        _c_array(flash("int32_t"), "lin_bias", linear["requant"].bias, "L"),
        _c_array(flash("int32_t"), "lin_multiplier", linear["requant"].multiplier, "L"),
        _c_array(flash("int8_t"), "lin_shift", linear["requant"].shift),
        _c_array(flash("int8_t"), "lin_tree_split", tree.split), _c_array(flash("int8_t"), "lin_tree_left", tree.left),
        _c_array(flash("int8_t"), "lin_tree_right", tree.right),
        _c_array(flash("uint8_t"), "lin_tree_quotient", tree.quotient),
        _c_array(flash("uint8_t"), "lin_table", linear["table"]),
        f"#define REQ_N {layers['requantize']['acc'].size}\n",
        _c_array("int32_t", "req_acc", layers["requantize"]["acc"], "L"),
        _c_array("int32_t", "req_multiplier", layers["requantize"]["multiplier"], "L"),
        _c_array("int8_t", "req_shift", layers["requantize"]["shift"]),
    ]
    path.write_text("".join(parts))


def build_firmware(build: Path, mcu: str, opt: str) -> tuple[Path, list[str]]:
    elf = build / f"kernels_s8_{mcu}_{opt}.elf"
    flags = [f"-mmcu={mcu}", f"-{opt}", *FIRMWARE_FLAGS]
    sources = sorted(str(p) for p in CSRC.glob("unit_*_s8.c"))
    process = subprocess.run(["avr-gcc", *flags, "-I", str(CSRC), "-I", str(MCU_DIR), "-I", str(build),
                              str(MCU_DIR / "kernels_s8_avr.c"), *sources, "-o", str(elf)],
                             capture_output=True, text=True)
    if process.returncode != 0:
        raise RuntimeError(f"avr-gcc failed for {elf.name}:\n{process.stderr.strip()}")
    return elf, flags


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


def measure(mcu: str, opts: tuple[str, ...], seed: int, build_dir: Path | None) -> dict:
    tools = check_tools()
    layers = make_layers(seed)
    expected = host_results(layers)
    builds = {}
    with tempfile.TemporaryDirectory(prefix="kernels_s8_mcu_") as temporary:
        build = Path(build_dir or temporary)
        build.mkdir(parents=True, exist_ok=True)
        write_data_header(build / "kernels_s8_data.h", layers)
        harness = build_harness(build, tools["simavr_flags"])
        for opt in opts:
            builds[opt] = {}
            elf, flags = build_firmware(build, mcu, opt)
            records = run_firmware(harness, elf, mcu)
            cycles = {}
            for record in records:
                label = record["label"]
                check_record(record, layers, expected, opt)
                if label == "requantize":
                    builds[opt]["requantize_cycles"] = record["cycles"] / REQUANTIZE_N
                else:
                    cycles[label] = record["cycles"]
            if sorted(cycles) != sorted(expected):
                raise RuntimeError(f"firmware regions {sorted(cycles)} differ from {sorted(expected)}")
            builds[opt].update({"flags": flags, "cycles": cycles})
            logger.info("%s -%s: %d kernels checked bit-exactly against the host", mcu, opt, len(cycles))
    return {"settings": {"mcu": mcu, "seed": seed, "conv": CONV, "linear": LINEAR, "percentile": PERCENTILE,
                         "conv_threshold_q": layers["conv"]["t_q"], "linear_threshold_q": layers["linear"]["t_q"],
                         "compiler": tools["avr_gcc_version"], "simulator": "simavr (libsimavr)"},
            "counts": {label: counts for label, (_, counts) in expected.items()}, "builds": builds}


def render_markdown(result: dict) -> str:
    settings, builds, counts = result["settings"], result["builds"], result["counts"]
    opts = list(builds)
    c, lin = settings["conv"], settings["linear"]
    lines = [f"# int8 kernels on AVR, cycle-exact ({time.strftime('%Y-%m-%d %H:%M')})", "",
             f"MCU {settings['mcu']} in {settings['simulator']}, {settings['compiler']}; constants in flash "
             "(PROGMEM), no counters (the MCU build); every output checked byte for byte against the host library. "
             f"Conv {c['c']}->{c['o']} channels, {c['h']}x{c['w']}, {c['k']}x{c['k']}, padding {c['pad']}; "
             f"linear {lin['inputs']}->{lin['outputs']}; activations ReLU-like with 50 % zeros, 30 % of the "
             f"weights zero, T_q = {settings['percentile']}th percentile of the nonzero |x*w| "
             f"(conv {settings['conv_threshold_q']}, linear {settings['linear_threshold_q']}); seed {settings['seed']}.",
             "", "| kernel | dense MACs | executed | " + " | ".join(f"cycles -{o} | per dense MAC | speed-up"
                                                            for o in opts) + " |",
             "|---|---|---|" + "---|---|---|" * len(opts)]
    for label, count in counts.items():
        cells = []
        for o in opts:
            cycles = builds[o]["cycles"][label]
            dense = builds[o]["cycles"][label.split("_")[0] + "_dense"]
            cells.append(f"{cycles} | {cycles / count['dense']:.1f} | {dense / cycles:.2f}x")
        lines.append(f"| {label} | {count['dense']} | {count['executed']} | " + " | ".join(cells) + " |")
    lines += ["", "Speed-up = cycles of the dense kernel / cycles of the variant (same layer, same build). "
              "Every variant includes the output stage: one requantization per output (" + ", ".join(
                  f"-{o}: {builds[o]['requantize_cycles']:.0f} cycles each, measured over {REQUANTIZE_N} calls"
                  for o in opts) + f"; the conv has {counts['conv_dense']['dense'] // (c['c'] * c['k'] ** 2)} outputs, "
              f"the linear layer {lin['outputs']})."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mcu", default="atmega2560")
    parser.add_argument("--opt", nargs="+", default=["O2", "Os"], help="avr-gcc optimisation levels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--build-dir", type=Path, default=None, help="keep the build here (default: temporary)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        result = measure(args.mcu, tuple(args.opt), args.seed, args.build_dir)
    except ToolMissing as error:
        raise SystemExit(f"kernels_s8_mcu: {error}")
    text = render_markdown(result)
    print(text)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "kernels_s8_avr.json").write_text(json.dumps(result, indent=1))
    (args.output / "kernels_s8_avr.md").write_text(text)
    print(f"wrote {args.output / 'kernels_s8_avr.json'} and {args.output / 'kernels_s8_avr.md'}")


if __name__ == "__main__":
    main()

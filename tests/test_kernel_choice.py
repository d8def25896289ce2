"""Per-layer kernel paths of an export (unitprune.mcu.kernel_choice) and ``--kernels portable``:
the assembly-run condition and the AVR 24-bit accumulator proof from the field size, the recorded
choice in the manifest, and an AVR firmware built both ways, bit-exact against the integer
reference, the portable one without the assembly routines."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

import unitprune
from unitprune.mcu import kernel_choice, targets
from unitprune.experiments.mcu_bench.bench import _build, _emitted
from unitprune.mcu.export import ExportError, export_c
from unitprune.mcu.qmodel import QConv, Requant
from unitprune.mcu.reference import quantize_input, run_reference
from tests.mcu_tools import require_target


def conv(name, channels, kernel, dilation=(1, 1), groups=1):
    shape = (4, channels // groups, *kernel)
    requant = Requant(np.zeros(4, np.int32), np.full(4, 2**30, np.int32), np.zeros(4, np.int8), -128, 127)
    return QConv(name, channels, 20, 20, 4, *kernel, (1, 1), dilation, (0, 0, 0, 0), groups, 10, 10,
                 np.ones(shape, np.int8), requant, np.zeros(4, np.int64), np.full(shape, 255, np.uint8), 1.0, 1.0,
                 np.ones(4))


def test_the_avr_accumulator_is_24_bit_exactly_up_to_341_macs():
    # biased products x*w + 32768 of int8 operands lie in [16512, 49152]
    products = np.arange(-128, 128)[:, None] * np.arange(-128, 128)[None, :] + 32768
    assert (products.min(), products.max()) == (kernel_choice.BIASED_MIN, kernel_choice.BIASED_MAX)
    assert kernel_choice.AVR_NARROW_MACS == 341
    assert kernel_choice.avr_accumulator_bits(341) == 24 and kernel_choice.avr_accumulator_bits(342) == 32
    assert 341 * 49152 < 2**24 <= 342 * 49152


def test_each_layer_records_its_path():
    ops = [conv("c325", 13, (5, 5)), conv("c350", 14, (5, 5)), conv("dil", 2, (3, 3), dilation=(1, 2)),
           conv("wide", 300, (1, 1))]
    avr = kernel_choice.choose(ops, "avr", "dense")
    assert [(avr[n].run, avr[n].accumulator_bits) for n in ("c325", "c350", "dil", "wide")] == [
        ("assembly", 24), ("assembly", 32), ("portable", None), ("portable", None)]
    assert all(c.output_stage == "assembly" for c in avr.values())
    msp = kernel_choice.choose(ops, "msp430", "dense")
    assert msp["c325"].run == "assembly" and msp["c325"].accumulator_bits is None
    for chosen in (kernel_choice.choose(ops, "avr", "dense", "portable"), kernel_choice.choose(ops, "host", "dense"),
                   kernel_choice.choose(ops, "avr", "dense", far_tables=True)):
        assert all(c.run == "portable" for c in chosen.values())
    assert kernel_choice.choose(ops, "avr", "zeroskip")["c325"].run == "portable"
    with pytest.raises(ValueError, match="kernels must be one of"):
        kernel_choice.choose(ops, "avr", "dense", "fast")


def _tiny_qmodel():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 3, (3, 5)), nn.ReLU(),
                          nn.Flatten(), nn.Linear(3 * 6 * 4, 5)).eval()
    x = torch.randn(6, 2, 8, 8)
    return unitprune.quantize(model, x[:4], variant="dense"), x[4:]


def test_an_unknown_kernel_set_is_refused(tmp_path):
    qmodel, _ = _tiny_qmodel()
    with pytest.raises(ExportError, match="unknown kernel set 'fast'"):
        export_c(qmodel, tmp_path / "e", target="host", kernels="fast")
    assert not (tmp_path / "e").exists() or not any((tmp_path / "e").iterdir())


def test_avr_firmware_auto_and_portable_are_bit_exact(tmp_path):
    require_target("avr")
    qmodel, x = _tiny_qmodel()
    x_q = quantize_input(qmodel, x)
    expected = run_reference(qmodel, x_q)[0].reshape(len(x_q), -1)
    cycles = {}
    for kernels in ("auto", "portable"):
        out = tmp_path / kernels
        export_c(qmodel, out, target="avr", samples=x_q, kernels=kernels)
        manifest = json.loads((out / "memory_plan.json").read_text())
        assert manifest["kernels"]["set"] == kernels
        run_path = manifest["kernels"]["layers"]
        assert {layer["run"] for layer in run_path.values() if layer["kernel"].startswith("unit_conv2d")} == {
            "assembly" if kernels == "auto" else "portable"}
        assert ("-DUNIT_PORTABLE_KERNELS=1" in (out / "Makefile").read_text()) == (kernels == "portable")
        firmware = _build("avr", out, tmp_path / f"build-{kernels}", markers=False)
        assert ("unit__dot_run_s8_avr" in firmware.symbols) == (kernels == "auto")
        run = targets.run(firmware)
        np.testing.assert_array_equal(_emitted(run, expected.shape[1]), expected)
        cycles[kernels] = run.total_cycles
    assert cycles["auto"] < cycles["portable"]

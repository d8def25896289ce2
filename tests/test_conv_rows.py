"""Each conv of a layer-by-layer export reserves the int32 accumulator rows its kernel holds
(unitprune.mcu.export.conv_rows): one output row for the output-stationary dense and static-sparse
kernels, two for the Cortex-M0+/RV32 dense kernel, the export's block for the weight-stationary
zeroskip/UnIT ones; the resource model counts the same, and the firmware runs bit-exact with it."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
import torch
from torch import nn

from tests import qmodels
from unitprune.mcu.export import export_c
from unitprune.mcu.qmodel import QFlatten, QuantizedModel
from unitprune.mcu.quantize import quantize
from unitprune.mcu.reference import quantize_input, run_reference
from unitprune.shrink.resources import resources

# conv 1->6 k3 on 12x12 (output 10x10), flatten, linear 600->5: the conv's plane of int32
# accumulators (400 bytes) is ten times one of its output rows (40 bytes); the linear needs 4 x 5
ROW, PLANE, LINEAR = 4 * 10, 4 * 10 * 10, 4 * 5


def one_conv_model(rng: np.random.Generator) -> QuantizedModel:
    conv = qmodels.conv(rng, "conv", (1, 12, 12), 6, (3, 3))
    return QuantizedModel(ops=[conv, QFlatten("flatten", 600), qmodels.linear(rng, "fc", 600, 5)],
                          input_shape=(1, 12, 12), input_scale=1.0, output_scale=1.0)


def _params_rows(out_dir) -> int:
    """unit_conv2d_params.block_rows of the conv in the export's model.c (its last field)."""
    text = (out_dir / "model.c").read_text()
    line = next(l for l in text.splitlines() if "unit_conv2d_params conv_params = {" in l)
    return int(line.split("{")[1].split("}")[0].split(",")[-1])


@pytest.mark.parametrize("variant, block_rows, kernel, rows", [
    ("dense", None, "unit_conv2d_dense_s8", 1), ("dense", 3, "unit_conv2d_dense_s8", 1),
    ("dense", "min", "unit_conv2d_dense_s8", 1),
    ("zeroskip", None, "unit_conv2d_sparse_s8", 1),  # static-sparse tables (host: no flash limit)
    ("unit", None, "unit_conv2d_unit_s8", 10), ("unit", 3, "unit_conv2d_unit_s8", 3),
])
def test_each_conv_reserves_the_rows_its_kernel_holds(tmp_path, variant, block_rows, kernel, rows):
    qmodel = one_conv_model(np.random.default_rng(0))
    out = tmp_path / "export"
    result = export_c(qmodel, out, variant=variant, conv_block_rows=block_rows)
    manifest = json.loads((out / "memory_plan.json").read_text())
    assert manifest["kernels"]["layers"]["conv"]["kernel"] == kernel
    conv_plan = manifest["memory"]["ops"][0]
    assert conv_plan["name"] == "conv" and conv_plan["scratch_bytes"] == 4 * rows * 10
    assert result.memory.scratch_bytes == max(4 * rows * 10, LINEAR)
    # the params field the kernel's own size function reads (0: the whole plane)
    assert _params_rows(out) == (0 if variant == "unit" and block_rows is None else rows)
    # the option is reported as given
    assert manifest["conv_block_rows"] == {None: "plane", "min": 1}.get(block_rows, block_rows)


def test_core_targets_reserve_a_channel_pairs_rows(tmp_path):
    """unit_conv2d_dense_s8_mcu32 holds the rows of two output channels (its fast path): 2 x 4 x 10."""
    rng = np.random.default_rng(0)
    qmodel = one_conv_model(rng)
    x_q = qmodels.random_input(rng, 1, qmodel.input_shape)
    for target in ("m0plus", "rv32ec"):
        result = export_c(qmodel, tmp_path / target, target=target, variant="dense", samples=x_q)
        assert result.memory.ops[0].scratch_bytes == 2 * ROW and _params_rows(tmp_path / target) == 2
    one = export_c(qmodel, tmp_path / "min", target="m0plus", variant="dense", conv_block_rows="min", samples=x_q)
    assert one.memory.ops[0].scratch_bytes == ROW and _params_rows(tmp_path / "min") == 1


def _elf_symbol_size(elf, name: str) -> int:
    from tests.mcu_tools import require_program

    nm = require_program("avr-nm", "binutils-avr")
    table = subprocess.run([nm, "-S", str(elf)], capture_output=True, text=True, check=True).stdout
    sizes = [int(words[1], 16) for words in map(str.split, table.splitlines()) if len(words) == 4 and words[3] == name]
    assert len(sizes) == 1, f"{name} not in {elf}"
    return sizes[0]


@pytest.mark.parametrize("target", ["avr", "msp430"])
def test_dense_firmware_with_one_row_of_scratch_runs_bit_exact(tmp_path, target):
    """A torch model quantized dense: the export's scratch is the conv's one output row (40 bytes, not
    its 400-byte plane), the resource model counts the same, the AVR ELF's unit_model_scratch has that
    size, and the firmware (whose unit_model_check compares the buffer with the kernels' own size
    functions at start-up) gives the integer reference's outputs in the simulator."""
    from tests.mcu_tools import require_program, require_target
    from unitprune.mcu import targets
    from unitprune.mcu.targets.common import firmware_from_elf

    require_target(target)
    require_program("make", "make")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 6, 3), nn.ReLU(), nn.Flatten(), nn.Linear(600, 5)).eval()
    x = torch.randn(8, 1, 12, 12)
    qmodel = quantize(model, x[:6], variant="dense")
    x_q = quantize_input(qmodel, x[6:])
    result = export_c(qmodel, tmp_path, target=target, samples=x_q)
    r = resources(model, (1, 12, 12), target=target)
    assert result.memory.scratch_bytes == r.scratch_bytes == ROW
    assert result.memory.peak_sram_with_io_bytes == r.sram_bytes
    assert resources(model, (1, 12, 12), target=target, unit_tables=True).scratch_bytes == PLANE
    made = subprocess.run(["make", "-s", "model.elf"], cwd=tmp_path, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    if target == "avr":
        assert _elf_symbol_size(tmp_path / "model.elf", "unit_model_scratch") == ROW
    expected, _ = run_reference(qmodel, x_q)
    run = targets.run(firmware_from_elf(target, tmp_path / "model.elf", tmp_path, [], ""))
    emitted = [region.data for region in run.regions if region.data]
    assert [region.label for region in run.regions] == ["inference"] * len(x_q)
    assert np.array_equal(np.stack([np.frombuffer(bytes(d), np.int8) for d in emitted]),
                          expected.reshape(len(x_q), -1))


def test_cortex_m0plus_dense_conv_keeps_its_fast_path_with_two_rows(tmp_path):
    """With its two rows the mcu32 convolution takes its Thumb-1 fast path (fewer cycles than with one
    row, where it calls the portable kernel), and both firmwares are bit-exact."""
    from tests.mcu_tools import require_target
    from unitprune.experiments.mcu_bench.bench import _build
    from unitprune.mcu import targets

    require_target("m0plus")
    rng = np.random.default_rng(1)
    qmodel = one_conv_model(rng)
    x_q = qmodels.random_input(rng, 1, qmodel.input_shape)
    expected, _ = run_reference(qmodel, x_q, variant="dense")
    cycles = {}
    for option in (None, "min"):
        work = tmp_path / str(option)
        export_c(qmodel, work / "export", target="m0plus", variant="dense", samples=x_q, conv_block_rows=option)
        run = targets.run(_build("m0plus", work / "export", work / "build", markers=False))
        (region,) = [r for r in run.regions if r.data]
        assert np.array_equal(np.frombuffer(region.data, np.int8), expected.reshape(-1)), option
        cycles[option] = region.cycles
    assert cycles[None] < cycles["min"]

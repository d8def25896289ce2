"""The fused plan's dense convs take their max-pool on the int32 accumulators
(``unit_conv2d_dense_pool_s8`` on each step's window, :func:`unitprune.mcu.export.fused_plan.with_pooled_convs`):
outputs and MAC counters equal the integer reference's on the host, AVR and MSP430 (software and
hardware multiplier), with a shorter last step; a pool whose window is not its stride keeps the
in-place pool kernel; the memory plan equals the firmware's RAM and the resource model's count."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from unitprune import run_exported
from unitprune.mcu.export import export_c
from unitprune.mcu.export.fused_plan import fused_chain, with_fused_rows
from unitprune.mcu.qmodel import QFlatten, QuantizedModel
from unitprune.mcu.reference import run_reference

from . import qmodels
from .mcu_tools import require_program, require_target
from .test_fused import _model_ram_symbols


def _model(rng: np.random.Generator) -> QuantizedModel:
    """conv1 3x3 (1x12x11 -> 3x10x9, ReLU), pool1 2x2 (drops the last column), conv2 2x2 padded
    (-> 4x6x5, no ReLU: negative outputs), pool2 window 2x2 stride (2, 1) (window != stride: not
    taken on the accumulators), flatten, linear; dense. With 4 rows per step both convs end with a
    shorter step of 2 rows (whole pool rows: both pools read the conv's block in place)."""
    conv1 = qmodels.conv(rng, "conv1", (1, 12, 11), 3, (3, 3))
    pool1 = qmodels.maxpool("pool1", qmodels.output_shape(conv1))
    conv2 = qmodels.conv(rng, "conv2", qmodels.output_shape(pool1), 4, (2, 2), padding=(1, 1, 1, 1), relu=False)
    pool2 = qmodels.maxpool("pool2", qmodels.output_shape(conv2), kernel=(2, 2), stride=(2, 1))
    flat = int(np.prod((pool2.channels, pool2.out_height, pool2.out_width)))
    ops = [conv1, pool1, conv2, pool2, QFlatten("flatten", flat), qmodels.linear(rng, "fc", flat, 5)]
    return QuantizedModel(ops=ops, input_shape=(1, 12, 11), input_scale=1.0, output_scale=1.0, variant="dense")


def _last_pool_model(rng: np.random.Generator) -> QuantizedModel:
    """conv 3x3 padded on every side (2x10x9 -> 3x10x9: clipped fields at the left and right edges,
    zero padding rows in the windows), then a 2x2 max-pool (drops the last column) whose rows are the
    network's output (no Linear: the sink stores them); dense."""
    conv = qmodels.conv(rng, "conv", (2, 10, 9), 3, (3, 3), padding=(1, 1, 1, 1))
    pool = qmodels.maxpool("pool", qmodels.output_shape(conv))
    return QuantizedModel(ops=[conv, pool], input_shape=(2, 10, 9), input_scale=1.0, output_scale=1.0,
                          variant="dense")


MODELS = {"chain": _model, "last-pool": _last_pool_model}
POOLED = {"chain": {"conv1"}, "last-pool": {"conv"}}


def _pooled(out_dir) -> dict:
    return json.loads((out_dir / "memory_plan.json").read_text()).get("pooled_convs", {})


def test_the_chain_pools_only_qualifying_in_place_max_pools(tmp_path):
    """4 rows per step: conv1 (steps 4, 4, 2) takes pool1; pool2 (window 2x2, stride (2, 1)) reads
    conv2's block in place with the max-pool kernel; 3 rows per step: no pool in place, none taken.
    The Cortex-M0+/RV32 targets (their own dense conv) and UnIT exports keep the separate pools."""
    rng = np.random.default_rng(40)
    qmodel = _model(rng)
    chain = with_fused_rows(fused_chain(qmodel), 4)
    assert [(s.name, s.block_rows, s.in_place) for s in chain.stages] == [
        ("conv1", 4, False), ("pool1", 2, True), ("conv2", 4, False), ("pool2", 2, True)]
    result = export_c(qmodel, tmp_path / "b4", execution="fused", fused_rows=4, fused_axis="height")
    assert _pooled(tmp_path / "b4") == {"conv1": {"pool": "pool1", "kernel": [2, 2],
                                                  "function": "unit_conv2d_dense_pool_s8"}}
    model_c = (tmp_path / "b4" / "model.c").read_text()
    assert model_c.count("unit_conv2d_dense_pool_s8(&conv1_") == 2  # the full steps and the shorter last one
    assert "unit_maxpool2d_s8(source" in model_c and "unit_conv2d_dense_s8(&conv2_" in model_c
    # the arena: the windows (conv1 1 x 6 x 11, conv2 3 x 5 x 4), pool1's rows 3 x 2 x 4 (no conv1
    # block), conv2's block 4 x 4 x 5 and pool2's rows 4 x 2 x 4, the row buffer 3 x 9, the counters
    assert [b["name"] for b in result.memory.buffers] == [
        "window of conv1", "window of conv2", "rows of pool1", "rows of conv2", "rows of pool2", "row"]
    assert result.memory.arena_bytes == 6 * 11 + 3 * 5 * 4 + 3 * 2 * 4 + 4 * 4 * 5 + 4 * 2 * 4 + 3 * 9 + 8 * 4
    # the scratch: conv1's two accumulator rows (4 x 2 x 9), conv2's block (4 x 4 x 5), the sums
    assert result.memory.conv_scratch_bytes == max(4 * 2 * 9, 4 * 4 * 5)
    export_c(qmodel, tmp_path / "b3", execution="fused", fused_rows=3, fused_axis="height")
    assert _pooled(tmp_path / "b3") == {}
    x = qmodels.random_input(rng, 1, qmodel.input_shape)
    export_c(qmodel, tmp_path / "rv32", target="rv32imc", samples=x, execution="fused", fused_rows=4)
    assert _pooled(tmp_path / "rv32") == {} and "dense_pool" not in (tmp_path / "rv32" / "model.c").read_text()
    export_c(qmodels.mnist_like(rng, variant="unit"), tmp_path / "unit", execution="fused", fused_rows=4)
    assert _pooled(tmp_path / "unit") == {}


@pytest.mark.parametrize("which,fused_rows,fused_axis", [
    ("chain", 4, "height"), ("chain", 2, "height"), ("chain", 8, "height"), ("mnist", 4, "width"),
    ("last-pool", 4, "height"), ("last-pool", 2, "height")])
def test_fused_pooled_convs_are_bit_exact_on_the_host(tmp_path, which, fused_rows, fused_axis):
    """Host build: outputs and counters by cause equal the reference's (2 rows per step: one pooled
    row per step, written into the row buffer; 8: one step per conv; streamed along the width, the
    MNIST-like model: the transposed model's convs take their pools; the pool's rows stored as the
    output)."""
    rng = np.random.default_rng(41)
    qmodel = qmodels.mnist_like(rng, variant="dense") if which == "mnist" else MODELS[which](rng)
    x = qmodels.random_input(rng, 2, qmodel.input_shape)
    export_c(qmodel, tmp_path, execution="fused", fused_rows=fused_rows, fused_axis=fused_axis)
    assert set(_pooled(tmp_path)) == POOLED.get(which, {"conv1", "conv2"})
    outputs, counts = run_exported(tmp_path, x)
    expected, expected_counts = run_reference(qmodel, x)
    np.testing.assert_array_equal(outputs, expected.reshape(len(x), -1))
    assert counts == expected_counts


def _counted_fused_run(tmp_path, qmodel, x, target: str, fused_rows: int):
    """Export fused for ``target`` (``msp430-hwmult``: the msp430 export) with the counters, build,
    run: (the export, the outputs [n, out], the counters {layer: [7 values]}, the ELF)."""
    from unitprune.mcu import targets

    out = tmp_path / "export"
    result = export_c(qmodel, out, target={"msp430-hwmult": "msp430"}.get(target, target), samples=x, counters=True,
                      execution="fused", fused_rows=fused_rows, fused_axis="height")
    manifest = json.loads((out / "memory_plan.json").read_text())
    firmware = targets.build(target, [out / source for source in manifest["sources"]],
                             include_dirs=[out, out / "kernels"],
                             defines={"UNIT_S8_COUNTS": 1, **manifest.get("defines", {})},
                             build_dir=tmp_path / "build", name="model")
    run = targets.run(firmware, max_cycles=10**8)
    counts = np.frombuffer(bytes(run.region("counts").data), "<i8").reshape(len(result.layers), 7)
    emitted = np.stack([np.frombuffer(bytes(region.data), np.int8) for region in run.regions
                        if region.label == "inference"])
    return result, emitted, {name: list(row) for name, row in zip(result.layers, counts.tolist())}


@pytest.mark.parametrize("which", ["chain", "last-pool"])
@pytest.mark.parametrize("target", ["avr", "msp430", "msp430-hwmult"])
def test_fused_pooled_convs_are_bit_exact_on_the_mcus_with_their_counters(tmp_path, target, which):
    """AVR and MSP430 (the pooled kernel's assembly runs and 2x2 windows' best, the clipped edge
    fields; the MSP430 threshold tables), 4 rows per step with the shorter last steps: outputs and
    counters equal the reference's."""
    require_target(target)
    rng = np.random.default_rng(42)
    qmodel = MODELS[which](rng)
    x = qmodels.random_input(rng, 2, qmodel.input_shape)
    _, emitted, counts = _counted_fused_run(tmp_path, qmodel, x, target, 4)
    assert set(_pooled(tmp_path / "export")) == POOLED[which]
    expected, expected_counts = run_reference(qmodel, x)
    np.testing.assert_array_equal(emitted, expected.reshape(len(x), -1))
    assert counts == {name: list(value.to_dict().values()) for name, value in expected_counts.items()}


@pytest.mark.parametrize("fused_rows", [2, 4])
def test_the_fused_pooled_plan_is_the_firmware_ram_on_avr(tmp_path, fused_rows):
    """The model's RAM symbols of the AVR firmware (avr-nm: arena, row counters, scratch, sums,
    descriptors) add up to the memory plan's peak SRAM, the pooled conv's smaller scratch and the
    missing conv block included; the run is bit-exact."""
    from unitprune.mcu import targets
    from unitprune.mcu.targets.common import firmware_from_elf

    require_target("avr")
    require_program("make", "make")
    rng = np.random.default_rng(43)
    qmodel = _model(rng)
    x = qmodels.random_input(rng, 1, qmodel.input_shape)
    result = export_c(qmodel, tmp_path, target="avr", samples=x, execution="fused", fused_rows=fused_rows,
                      fused_axis="height")
    assert "conv1" in _pooled(tmp_path)
    made = subprocess.run(["make", "-s", "model.elf"], cwd=tmp_path, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    # the layers' symbols, their shorter last steps' descriptors (<layer>_tail_params) included
    ram = _model_ram_symbols(tmp_path / "model.elf", [*result.layers, *(f"{name}_tail" for name in result.layers)])
    assert ("conv1_tail_params" in ram) == (fused_rows == 4)
    assert sum(ram.values()) == result.memory.peak_sram_bytes, ram
    run = targets.run(firmware_from_elf("avr", tmp_path / "model.elf", tmp_path, [], ""))
    (region,) = [region for region in run.regions if region.label == "inference"]
    expected, _ = run_reference(qmodel, x)
    np.testing.assert_array_equal(np.frombuffer(bytes(region.data), np.int8), expected.reshape(-1))


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("target", ["avr", "msp430", "host", "rv32ec"])
def test_resources_count_the_fused_pooled_plan(tmp_path, target):
    """unitprune.resources(..., execution="fused") of the dense MNIST model equals the fused export's
    memory plan term by term for 2, 3, 4 and 8 rows per step (the pools taken on the accumulators
    from 2 rows, not with 3; none on rv32ec) and for "auto"."""
    import torch

    import unitprune
    from unitprune.mcu.reference import quantize_input
    from unitprune.models import build_model
    from unitprune.shrink.resources import resources

    model = build_model("mnist", seed=0).eval()
    x = torch.randn(18, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    qmodel = unitprune.quantize(model, x[:16], variant="dense")
    samples = {} if target == "host" else {"samples": quantize_input(qmodel, x[16:])}
    for rows in (2, 3, 4, 8, "auto"):
        out = tmp_path / f"rows-{rows}"
        result = export_c(qmodel, out, target=target, execution="fused", fused_rows=rows, **samples)
        assert bool(_pooled(out)) == (target != "rv32ec" and result.fused_rows in (2, 4, 8, 24)), rows
        plan = result.memory
        r = resources(model, (1, 28, 28), target=target, execution="fused", fused_rows=rows)
        assert (r.arena_bytes, r.scratch_bytes, r.descriptor_bytes, r.output_bytes, r.sram_bytes) == (
            plan.arena_bytes, plan.scratch_bytes, plan.descriptor_bytes, plan.output_bytes,
            plan.peak_sram_with_io_bytes), (rows, r, plan)

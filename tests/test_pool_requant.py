"""Max-pool before the output stage (unit_conv2d_dense_pool_s8, unitprune.mcu.pool_requant): a dense
conv followed by a max-pool whose window equals its stride, computed as the output stage of each
window's largest int32 accumulator, bit-exact against the NumPy integer reference
(unitprune.mcu.reference: the convolution, its requantization and clamp, then the max-pool, as
separate steps) on the host for hypothesis-drawn geometries and requantization constants, and in the
simulators (AVR, MSP430, MSP430 + hardware multiplier) on the MNIST shapes through the export."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from unitprune.kernels import s8, sparse_s8
from unitprune.mcu.qmodel import QConv, QFlatten, QuantizedModel, Requant
from unitprune.mcu.reference import run_reference
from unitprune.torch_reference import ConvGeometry

from . import qmodels

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _reference(op: QConv, pool: tuple[int, int], x: np.ndarray) -> np.ndarray:
    """conv -> requantize -> clamp, then the max-pool: the integer reference's separate steps."""
    model = QuantizedModel(ops=[op, qmodels.maxpool("pool", qmodels.output_shape(op), pool)],
                           input_shape=(op.in_channels, op.in_height, op.in_width), input_scale=1.0,
                           output_scale=1.0, variant="dense")
    return run_reference(model, x)[0].reshape(len(x), op.out_channels, op.out_height // pool[0],
                                               op.out_width // pool[1])


def _geometry(op: QConv) -> ConvGeometry:
    return ConvGeometry((op.kernel_height, op.kernel_width), op.stride, op.dilation, op.padding, op.groups)


@st.composite
def pooled_convs(draw):
    """A conv (any geometry the kernels take) with a pool window inside its output, random constants
    with zero, the largest and shifted multipliers, and inputs at -128/127."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    groups = draw(st.sampled_from([1, 1, 2]))
    channels, out = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = tuple(draw(st.integers(0, 2)) for _ in range(4))
    height = draw(st.integers(max(1, dilation[0] * (kernel[0] - 1) + 1 - padding[0] - padding[1]), 13))
    width = draw(st.integers(max(1, dilation[1] * (kernel[1] - 1) + 1 - padding[2] - padding[3]), 13))
    op = qmodels.conv(rng, "conv", (channels, height, width), out, kernel, stride, dilation, padding, groups,
                      relu=draw(st.booleans()), sparsity=draw(st.sampled_from([0.0, 0.3, 1.0])))
    pool = (draw(st.integers(1, min(3, op.out_height))), draw(st.integers(1, min(3, op.out_width))))
    multipliers = [draw(st.sampled_from([0, 2**30, 2**31 - 1, int(rng.integers(2**30, 2**31))])) for _ in range(out)]
    shifts = [draw(st.integers(-31, 1)) for _ in range(out)]
    act_min = draw(st.sampled_from([-128, 0, -5]))
    requant = Requant(bias=rng.integers(-3000, 3000, out).astype(np.int32),
                      multiplier=np.array(multipliers, dtype=np.int32), shift=np.array(shifts, dtype=np.int8),
                      act_min=act_min, act_max=draw(st.sampled_from([127, 100])))
    op = dataclasses.replace(op, requant=requant)
    x = qmodels.random_input(rng, 2, (channels, height, width), zero_fraction=0.2)
    x.reshape(-1)[rng.random(x.size) < 0.3] = rng.choice([-128, 127], 1)[0]
    return op, pool, x


@FAST
@given(pooled_convs())
def test_pooled_conv_equals_conv_then_pool_on_the_host(case):
    op, pool, x = case
    try:
        expected = _reference(op, pool, x)
    except OverflowError:  # acc * 2**shift leaves int32: no valid model has it
        assume(False)
    geometry = _geometry(op)
    for block_rows in (0, pool[0]):  # the whole plane's scratch, or the pool's rows only
        y, counts = s8.conv2d("dense", x, op.weight, op.requant, geometry, block_rows=block_rows, pool=pool)
        np.testing.assert_array_equal(y, expected)
    _, dense_counts = s8.conv2d("dense", x, op.weight, op.requant, geometry)
    assert counts == dense_counts  # the layer's MACs, as the dense kernel counts them
    # the static-sparse kernel (only the nonzero weights): the same outputs, its own counters
    for block_rows in (0, pool[0]):
        y, counts = sparse_s8.conv2d_sparse(x, op.weight, op.requant, geometry, block_rows=block_rows, pool=pool)
        np.testing.assert_array_equal(y, expected)
    assert counts == sparse_s8.conv2d_sparse(x, op.weight, op.requant, geometry)[1]


def test_the_pooled_conv_refuses_a_window_outside_the_output_or_a_short_scratch():
    rng = np.random.default_rng(0)
    op = qmodels.conv(rng, "conv", (1, 6, 6), 2, (3, 3))  # output 4x4
    x = qmodels.random_input(rng, 1, (1, 6, 6))
    for pool, block_rows in (((5, 1), 0), ((1, 5), 0), ((0, 2), 0), ((3, 3), 2)):
        with pytest.raises(ValueError, match="unit_conv2d_dense_pool_s8"):
            s8.conv2d("dense", x, op.weight, op.requant, _geometry(op), block_rows=block_rows, pool=pool)
        with pytest.raises(ValueError, match="unit_conv2d_sparse_pool_s8"):
            sparse_s8.conv2d_sparse(x, op.weight, op.requant, _geometry(op), block_rows=block_rows, pool=pool)


# ----------------------------------------------------------------------------------------------
# the export: which convs pool on their accumulators, and the firmware in the simulators
# ----------------------------------------------------------------------------------------------

def _measure(monkeypatch, qmodel, target: str, x: np.ndarray, work_dir, pooled: bool) -> dict:
    """mcu-bench's measurement of one export (host vs reference, firmware vs host, per-layer cycles);
    ``pooled=False``: the export as before this kernel (every conv requantizes its whole plane, then
    the separate max-pool)."""
    from unitprune.experiments.mcu_bench import bench
    from unitprune.mcu.export import pipeline

    original = pipeline.pooled_convs
    if not pooled:
        pipeline.pooled_convs = lambda *args, **kwargs: {}
    try:
        return bench.measure_target(qmodel, target, x, work_dir, layer_samples=1, execution="layers",
                                    fused_rows=1)
    finally:
        pipeline.pooled_convs = original


@pytest.mark.parametrize("variant, kernel", [("dense", "dense"), ("zeroskip", "sparse")])
@pytest.mark.parametrize("target", ["avr", "msp430", "msp430-hwmult"])
def test_the_mnist_convs_pool_on_their_accumulators_bit_exact_and_faster(monkeypatch, tmp_path, target, variant,
                                                                         kernel):
    """The MNIST shapes (conv1 1x28x28 -> 6x24x24, pool 2; conv2 6x12x12 -> 16x8x8, pool 2; random
    weights, 10 % and 30 % zeros): dense, both convs call unit_conv2d_dense_pool_s8; static-sparse
    (zeroskip, the TTP kernels), unit_conv2d_sparse_pool_s8. The firmware's outputs equal the integer
    reference's (conv, requantize, pool as separate steps), the pools cost only their empty region,
    and each conv with its pool takes fewer cycles than the conv and the separate pool of the export
    without the pooled kernels (exact simulator cycles)."""
    from tests.mcu_tools import require_target

    require_target(target)
    rng = np.random.default_rng(5)
    qmodel = qmodels.mnist_like(rng, variant=variant)
    x = qmodels.random_input(rng, 1, qmodel.input_shape, zero_fraction=0.5)
    x.reshape(-1)[:40] = np.tile([-128, 127], 20)
    new = _measure(monkeypatch, qmodel, target, x, tmp_path / "new", pooled=True)
    old = _measure(monkeypatch, qmodel, target, x, tmp_path / "old", pooled=False)
    assert new["bit_exact"] and old["bit_exact"], (new["checks"], old["checks"])
    assert new["checks"]["kernels"]["conv1"] == new["checks"]["kernels"]["conv2"] == f"unit_conv2d_{kernel}_pool_s8"
    assert old["checks"]["kernels"]["conv1"] == f"unit_conv2d_{kernel}_s8"
    before, after = old["cycles_per_layer"], new["cycles_per_layer"]
    for conv, pool in (("conv1", "pool1"), ("conv2", "pool2")):
        assert after[pool] < 20  # the empty region: the pool is done by the conv
        assert after[conv] + after[pool] < before[conv] + before[pool], (conv, before, after)
    assert new["cycles"] < old["cycles"]
    assert new["sram_bytes"] < old["sram_bytes"]


def _chain_model(ops, variant: str = "dense") -> QuantizedModel:
    first = ops[0]
    return QuantizedModel(ops=list(ops), input_shape=(first.in_channels, first.in_height, first.in_width),
                          input_scale=1.0, output_scale=1.0, variant=variant)


def test_only_a_dense_conv_whose_output_a_tiling_max_pool_alone_reads_is_pooled(tmp_path):
    """pooled_convs: conv -> max-pool 2x2 (and 3x2 windows) is pooled; a conv before a standalone
    ReLU, an overlapping max-pool (kernel 3, stride 2), an average pool, a conv with a negative
    multiplier (the output stage would be non-increasing), the zeroskip kernel, the zero-activation
    static-sparse kernel, the UnIT kernels and the Cortex-M0+/RV32 targets keep the separate pool; a
    UnIT plan's dense and static-sparse convs are pooled; every such export stays bit-exact on the
    host build."""
    from unitprune.mcu.export import export_c
    from unitprune.mcu.export.pooled_conv import pooled_convs
    from unitprune.mcu.host_runner import run_exported
    from unitprune.mcu.qmodel import QAvgPool

    rng = np.random.default_rng(2)
    conv = qmodels.conv(rng, "conv", (2, 11, 12), 3, (3, 3), padding=(1, 0, 1, 1))  # output 10x12
    shape = qmodels.output_shape(conv)
    pooled = [conv, qmodels.maxpool("pool", shape)]
    assert set(pooled_convs(pooled, "dense", "avr")) == {"conv"}
    assert pooled_convs([conv, qmodels.maxpool("pool", shape, (3, 2))], "dense", "msp430")["conv"].kernel == (3, 2)
    negative = dataclasses.replace(conv, requant=dataclasses.replace(conv.requant, multiplier=-conv.requant.multiplier))
    avg = QAvgPool(name="avg", channels=3, in_height=10, in_width=12, kernel=(2, 2), stride=(2, 2), out_height=5,
                   out_width=6)
    for ops, variant, target in [([conv, qmodels.relu("relu", 360), qmodels.maxpool("pool", shape)], "dense", "avr"),
                                 ([conv, qmodels.maxpool("pool", shape, (3, 3), (2, 2))], "dense", "avr"),
                                 ([conv, avg], "dense", "avr"), ([negative, pooled[1]], "dense", "avr"),
                                 (pooled, "unit", "avr"), (pooled, "dense", "m0plus"), (pooled, "dense", "rv32imc"),
                                 (pooled, "zeroskip", "avr")]:  # zeroskip: the weight-stationary kernel
        assert pooled_convs(ops, variant, target) == {}, (ops[1].name, variant, target)
    # zeroskip's static-sparse layers: the sparse pooled kernel, unless they also skip zero activations
    assert pooled_convs(pooled, "zeroskip", "avr", sparse={"conv"})["conv"].function == "unit_conv2d_sparse_pool_s8"
    assert pooled_convs(pooled, "zeroskip", "avr", sparse={"conv"}, zeroact={"conv"}) == {}
    # a UnIT plan's layers (unit_plan): dense and static (its tables or not) pooled, the UnIT kernels not
    for kernel, sparse, function in [("dense", (), "unit_conv2d_dense_pool_s8"),
                                     ("static", {"conv"}, "unit_conv2d_sparse_pool_s8"),
                                     ("static", (), "unit_conv2d_dense_pool_s8"), ("skipfree", (), None),
                                     ("sparse", (), None), ("sparse_tau", (), None), ("unit", (), None)]:
        planned = [dataclasses.replace(conv, unit_kernel=kernel), pooled[1]]
        chosen = pooled_convs(planned, "unit", "avr", sparse=sparse)
        assert (chosen["conv"].function if chosen else None) == function, kernel
    assert pooled_convs([dataclasses.replace(conv, unit_kernel="static"), pooled[1]], "unit", "avr", sparse={"conv"},
                        zeroact={"conv"}) == {}
    assert pooled_convs(pooled, "dense", "avr", sparse={"conv"}) == {}
    x = qmodels.random_input(rng, 3, (2, 11, 12), zero_fraction=0.2)
    for index, ops in enumerate([pooled, [conv, qmodels.relu("relu", 360), qmodels.maxpool("pool", shape)],
                                 [conv, qmodels.maxpool("pool", shape, (3, 3), (2, 2))],
                                 [conv, qmodels.maxpool("pool", shape, (3, 2))]]):
        model = _chain_model(ops)
        result = export_c(model, tmp_path / str(index), target="host", samples=x)
        plan = json.loads((tmp_path / str(index) / "memory_plan.json").read_text())
        outputs, _ = run_exported(tmp_path / str(index), x)
        np.testing.assert_array_equal(outputs, run_reference(model, x)[0].reshape(len(x), -1))
        is_pooled = index in (0, 3)
        assert ("pooled_convs" in plan) == is_pooled
        assert (plan["kernels"]["layers"]["conv"]["kernel"] == "unit_conv2d_dense_pool_s8") == is_pooled
        window = ops[-1].kernel[0]
        # the pooled conv's scratch: the pool's rows of int32 accumulators; one row otherwise (conv_rows.py)
        assert result.memory.scratch_bytes == 4 * (window if is_pooled else 1) * 12


def test_the_pooled_export_sram_equals_the_elf_and_the_resource_model(tmp_path):
    """The demo architecture (Table 1 MNIST CNN, trained weights not needed) exported dense for AVR:
    both convs pooled (manifest), the memory plan's arena and scratch are the ELF's objects, and
    unitprune.resources counts the same SRAM as the plan."""
    import subprocess

    import torch

    from tests.mcu_tools import require_program, require_target
    from tests.test_shrink import _elf_objects
    from unitprune.mcu.export import export_c
    from unitprune.mcu.quantize import quantize
    from unitprune.models import build_model
    from unitprune.shrink.resources import resources

    require_target("avr")
    require_program("make", "make")
    model = build_model("mnist", seed=0).eval()
    calibration = torch.rand(8, 1, 28, 28)
    qmodel = quantize(model, calibration, variant="dense")
    x = qmodels.random_input(np.random.default_rng(0), 1, qmodel.input_shape)
    result = export_c(qmodel, tmp_path, target="avr", samples=x)
    plan = json.loads((tmp_path / "memory_plan.json").read_text())
    assert len(plan["pooled_convs"]) == 2 and all(entry["kernel"] == [2, 2] for entry in plan["pooled_convs"].values())
    made = subprocess.run(["make", "-s", "model.elf"], cwd=tmp_path, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    sizes = {name: size for _, name, size in _elf_objects(tmp_path / "model.elf")}
    assert sizes["unit_model_arena"] == result.memory.arena_bytes == 6 * 12 * 12 + 16 * 4 * 4
    assert sizes["unit_model_scratch"] == result.memory.scratch_bytes == 4 * 2 * 24
    r = resources(model, (1, 28, 28), target="avr")
    assert (r.arena_bytes, r.scratch_bytes, r.sram_bytes - r.input_bytes - r.output_bytes) == (
        result.memory.arena_bytes, result.memory.scratch_bytes, result.memory.peak_sram_bytes)


@pytest.mark.parametrize("target", ["avr", "msp430", "msp430-hwmult"])
def test_padded_convs_and_other_windows_pool_bit_exact_on_the_mcu(monkeypatch, tmp_path, target):
    """The clipped fields (padding on three sides: the AVR's stored words rewritten to the interior's
    domain), a 3x2 window (the C loop of the windows' best) after a stride-2 conv, and a 2x2 window
    on a conv whose rows are not all whole: pooled and bit-exact in the simulators, with -128/127
    inputs."""
    from tests.mcu_tools import require_target

    require_target(target)
    rng = np.random.default_rng(9)
    conv1 = qmodels.conv(rng, "conv1", (2, 11, 12), 4, (3, 3), padding=(1, 0, 1, 1), relu=False)  # 10x12
    pool1 = qmodels.maxpool("pool1", qmodels.output_shape(conv1), (3, 2))  # 3x6
    conv2 = qmodels.conv(rng, "conv2", qmodels.output_shape(pool1), 3, (2, 3), stride=(1, 2), padding=(1, 1, 0, 1))
    pool2 = qmodels.maxpool("pool2", qmodels.output_shape(conv2))
    shape = qmodels.output_shape(pool2)
    model = _chain_model([conv1, pool1, conv2, pool2, QFlatten("flatten", int(np.prod(shape))),
                          qmodels.linear(rng, "fc", int(np.prod(shape)), 5)])
    x = qmodels.random_input(rng, 2, model.input_shape, zero_fraction=0.1)
    x.reshape(-1)[::3] = 127
    x.reshape(-1)[1::5] = -128
    measured = _measure(monkeypatch, model, target, x, tmp_path, pooled=True)
    assert measured["bit_exact"], measured["checks"]
    assert measured["checks"]["kernels"]["conv1"] == measured["checks"]["kernels"]["conv2"] == \
        "unit_conv2d_dense_pool_s8"

"""The fused plan with a tail: a model whose head is an MLP (mnist-wide: ... -> fc1 -> ReLU -> fc2)
exports fused, the chain streamed into fc1 and the layers after it run layer by layer on its
vector (unitprune.mcu.export.fused_tail). Bit-exact against the layer-by-layer integer reference
(outputs and MAC counters by cause) for every variant, linear quotient, UnIT kernel plan and the
static-sparse / zero-activation convs, on the host, AVR (simavr, counters compiled in) and MSP430
(mspdebug); the memory plan against a hand count (the tail's vectors over the windows) and the
firmware's RAM symbols (``unitprune.resources(..., execution="fused")`` of a small mnist-wide
equal to the plan: tests/test_fused.py)."""

from __future__ import annotations

import dataclasses
import json
import subprocess

import numpy as np
import pytest

import unitprune
from unitprune.mcu import zeroact_plan
from unitprune.mcu.export import export_c
from unitprune.mcu.qmodel import QFlatten, QThresholdReLU, QuantizedModel
from unitprune.mcu.reference import run_reference
from unitprune.mcu.unit_plan import with_unit_kernels

from . import qmodels
from .test_export import needs_cc
from .test_export_sparse import _symbols
from .test_fused_kernels import expected_fused_counts
from .test_sparse_zeroact_s8 import blob_input

LAYERS = ("conv1", "conv2", "fc1", "fc2", "fc3")


def head_model(rng: np.random.Generator, variant: str = "unit", sparsity: float = 0.3) -> QuantizedModel:
    """conv 1->4 (3x3, padding 1), max-pool, conv 4->5 (3x3, vertical padding 1), flatten, then an MLP
    head: fc1 (ReLU in its requantization) -> FATReLU -> fc2 -> ReLU -> fc3. The tail after the
    streamed fc1 has two Linears, so its vectors take both places (offset 0 and the end)."""
    conv1 = qmodels.conv(rng, "conv1", (1, 10, 8), 4, (3, 3), padding=(1, 1, 1, 1), sparsity=sparsity)
    pool = qmodels.maxpool("pool", qmodels.output_shape(conv1))
    conv2 = qmodels.conv(rng, "conv2", qmodels.output_shape(pool), 5, (3, 3), padding=(1, 1, 0, 0),
                         sparsity=sparsity)
    flat = int(np.prod(qmodels.output_shape(conv2)))
    fc1 = qmodels.linear(rng, "fc1", flat, 12, relu=True, shift_start=1, tree_magnitudes=rng.integers(0, 40, 300))
    fc2 = qmodels.linear(rng, "fc2", 12, 7, relu=False, sparsity=sparsity, shift_start=0)
    fc3 = qmodels.linear(rng, "fc3", 7, 4, sparsity=sparsity, threshold_q=200)
    ops = [conv1, pool, conv2, QFlatten("flatten", flat), qmodels.boundary_weights(rng, fc1),
           QThresholdReLU("act1", 12, 5), qmodels.boundary_weights(rng, fc2), qmodels.relu("act2", 7), fc3]
    return QuantizedModel(ops=ops, input_shape=(1, 10, 8), input_scale=1.0, output_scale=1.0, variant=variant)


def _inputs(rng: np.random.Generator, qmodel: QuantizedModel, n: int = 3) -> np.ndarray:
    return qmodels.random_input(rng, n, qmodel.input_shape, zero_fraction=0.4, boundary=np.unique(qmodel.ops[0].tau))


def _check_host(qmodel: QuantizedModel, out_dir, x: np.ndarray, variant: str, quotient: str, rows: int, axis: str,
                expected_counts=None):
    result = export_c(qmodel, out_dir, variant=variant, linear_quotient=quotient, execution="fused", fused_rows=rows,
                      fused_axis=axis)
    assert result.execution == "fused" and (result.fused_axis == axis or axis == "auto")
    outputs, counts = unitprune.run_exported(out_dir, x)
    expected, reference_counts = run_reference(dataclasses.replace(qmodel, linear_quotient=quotient), x,
                                               variant=variant)
    np.testing.assert_array_equal(outputs, expected.reshape(len(x), -1))
    assert counts == (expected_counts if expected_counts is not None else reference_counts)
    return result


@needs_cc
@pytest.mark.parametrize("variant,quotient,rows,axis", [
    ("dense", "bitshift", 1, "height"), ("zeroskip", "bitshift", 2, "width"), ("unit", "bitshift", 1, "height"),
    ("unit", "bintree", 3, "height"), ("unit", "table", 2, "width")])
def test_mlp_head_runs_fused_bit_exact_on_the_host(tmp_path, variant, quotient, rows, axis):
    """Every variant and linear quotient, by rows and by columns, 1-3 rows per step: outputs and every
    counter equal the layer-by-layer reference's; the tail's Linears call the layer-by-layer kernels."""
    rng = np.random.default_rng(31)
    qmodel = head_model(rng)
    result = _check_host(qmodel, tmp_path, _inputs(rng, qmodel), variant, quotient, rows, axis)
    text = (tmp_path / "model.c").read_text()
    kernel = f"unit_linear_{variant}{'_' + quotient if variant == 'unit' else ''}_s8("
    assert text.count(kernel) == 2  # fc2 and fc3, layer by layer
    assert f"unit_linear_accumulate_{variant}" in text  # fc1, streamed
    assert result.layers == list(LAYERS) and result.memory.output_bytes == 4


@needs_cc
@pytest.mark.parametrize("kernels,rows,quotient", [
    ({"conv1": "skipfree", "conv2": "sparse", "fc1": "sorted", "fc2": "sorted", "fc3": "sorted"}, 2, "bitshift"),
    ({"conv1": "sparse", "conv2": "dense", "fc1": "unit", "fc2": "sorted", "fc3": "unit"}, 1, "table"),
    ({"conv1": "skipfree", "conv2": "skipfree", "fc1": "sorted", "fc2": "unit", "fc3": "sorted"}, 3, "bintree")])
def test_mlp_head_with_unit_kernel_plans_runs_fused_bit_exact(tmp_path, kernels, rows, quotient):
    """UnIT kernel plans: the convs on their list kernels, the early-exit Linear streamed or in the
    tail (``unit_linear_unit_sorted_*_s8`` there, as layer by layer); counters by cause equal the
    reference's, the skip-free ``compares`` a hand count of its window visits."""
    rng = np.random.default_rng(32)
    qmodel = dataclasses.replace(with_unit_kernels(head_model(rng), kernels), linear_quotient=quotient)
    x = _inputs(rng, qmodel)
    _check_host(qmodel, tmp_path, x, "unit", quotient, rows, "height", expected_fused_counts(qmodel, x, rows))
    text = (tmp_path / "model.c").read_text()
    sorted_tail = sum(kernels[name] == "sorted" for name in ("fc2", "fc3"))
    assert text.count(f"unit_linear_unit_sorted_{quotient}_s8(") == sorted_tail


@needs_cc
@pytest.mark.parametrize("plan,rows", [("sparse", 1), ("zeroact", 4)])
def test_mlp_head_with_static_sparse_convs_runs_fused_bit_exact(tmp_path, plan, rows):
    """A zeroskip (TTP-like) model: the static-sparse and zero-activation convs on their windows, the
    tail's Linears on ``unit_linear_zeroskip_s8``: outputs and counters equal the reference's."""
    rng = np.random.default_rng(33)
    qmodel = head_model(rng, variant="zeroskip", sparsity=0.6)
    x = blob_input(rng, qmodels.random_input(rng, 3, qmodel.input_shape, zero_fraction=0.3))
    qmodel = zeroact_plan.plan_zero_activation(qmodel, x, None, plan=plan)
    _check_host(qmodel, tmp_path, x, "zeroskip", "bitshift", rows, "height")
    kernels = json.loads((tmp_path / "memory_plan.json").read_text())["kernels"]["layers"]
    expected = {"sparse": "unit_conv2d_sparse_s8", "zeroact": "unit_conv2d_sparse_zeroact_s8"}[plan]
    assert kernels["conv1"]["kernel"] == kernels["conv2"]["kernel"] == expected
    assert (tmp_path / "model.c").read_text().count("unit_linear_zeroskip_s8(") == 2


@needs_cc
def test_tail_vectors_larger_than_the_stream_set_the_arena_hand_count(tmp_path):
    """conv 1->2 (3x3) on 1x4x4, flatten, fc1 8->40 -> fc2 40->30 -> fc3 30->3: the stream needs a
    3-row window (12 B) and the row (max(4, 2 * 2) = 4 B); the tail fc2 reads 40 B and writes 30 B
    (70 B: vector 0 at offset 0, vector 1 at 70 - 30 = 40), fc3 reads 30 B and writes the output; so
    the arena is 70 + 8 (one stage's counters); the scratch is max(conv 4 * 2, tail 4 * 30) + fc1's
    sums 4 * 40; the output 3 B. Bit-exact on the host."""
    rng = np.random.default_rng(34)
    conv = qmodels.conv(rng, "conv1", (1, 4, 4), 2, (3, 3))
    ops = [conv, QFlatten("flatten", 8), qmodels.linear(rng, "fc1", 8, 40, relu=True),
           qmodels.linear(rng, "fc2", 40, 30, relu=True), qmodels.linear(rng, "fc3", 30, 3)]
    qmodel = QuantizedModel(ops=ops, input_shape=(1, 4, 4), input_scale=1.0, output_scale=1.0)
    plan = _check_host(qmodel, tmp_path, _inputs(rng, qmodel), "unit", "bitshift", 1, "height").memory
    assert (plan.arena_bytes, plan.tail_bytes, plan.state_bytes) == (70 + 8, 70, 8)
    assert (plan.scratch_bytes, plan.tail_scratch_bytes, plan.conv_scratch_bytes) == (120 + 160, 120, 8)
    tail = [(b["offset"], b["bytes"]) for b in plan.buffers if b["name"].startswith("tail vector")]
    assert tail == [(0, 40), (40, 30)] and plan.output_bytes == 3 and plan.input_bytes == 16


def mcu_model(rng):
    """The head model with a skip-free conv1 and an early-exit fc2 in the tail, and 2 inputs."""
    qmodel = with_unit_kernels(head_model(rng), {"conv1": "skipfree", "fc2": "sorted"})
    return qmodel, _inputs(rng, qmodel, 2)


def test_mlp_head_fused_on_avr_counts_its_tables_and_ram_and_is_bit_exact(tmp_path):
    """On the ATmega2560 with the counters compiled in (2 rows per step): outputs and counters by cause
    equal the reference's (skip-free visits by hand), every flash table of every layer (the tail's
    too) equals its ELF symbol, and the model's RAM symbols add up to the plan's peak SRAM."""
    from tests.mcu_tools import require_program, require_target
    from unitprune.mcu import targets
    from unitprune.mcu.targets.common import firmware_from_elf

    require_target("avr")
    require_program("make", "make")
    qmodel, x = mcu_model(np.random.default_rng(36))
    result = export_c(qmodel, tmp_path, target="avr", samples=x, counters=True, execution="fused", fused_rows=2)
    plan = json.loads((tmp_path / "memory_plan.json").read_text())
    made = subprocess.run(["make", "-s", "model.elf"], cwd=tmp_path, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    symbols = _symbols(tmp_path / "model.elf", tuple(f"{name}_" for name in LAYERS) + ("unit_model_",))
    for layer, tables in plan["flash"]["per_layer"].items():
        for table, size in tables.items():
            name = f"{layer}_{table}" if f"{layer}_{table}" in symbols else f"{layer}_{table}_t"  # a tail's [in][out]
            assert symbols[name][1] == size, (layer, table)
    assert set(plan["flash"]["per_layer"]) == set(LAYERS)
    ram = {name: size for name, (kind, size) in symbols.items() if kind in "bBdD"
           and name not in ("unit_model_counts", "unit_model_call")}
    assert sum(ram.values()) == result.memory.peak_sram_bytes, ram
    run = targets.run(firmware_from_elf("avr", tmp_path / "model.elf", tmp_path, [], ""))
    emitted = [region.data for region in run.regions if region.label == "inference"]
    expected, _ = run_reference(qmodel, x)
    assert np.array_equal(np.stack([np.frombuffer(bytes(d), np.int8) for d in emitted]), expected.reshape(len(x), -1))
    counts = np.frombuffer(bytes(run.region("counts").data), "<i8").reshape(len(result.layers), 7)
    expected_counts = expected_fused_counts(qmodel, x, 2)
    for name, row in zip(result.layers, counts.tolist()):
        assert row == list(expected_counts[name].to_dict().values()), name


def test_mlp_head_fused_on_msp430_is_bit_exact(tmp_path):
    from tests.mcu_tools import require_program, require_target
    from unitprune.mcu import targets
    from unitprune.mcu.targets.common import firmware_from_elf

    require_target("msp430")
    require_program("make", "make")
    qmodel, x = mcu_model(np.random.default_rng(37))
    for variant in ("unit", "dense"):
        out = tmp_path / variant
        export_c(qmodel, out, target="msp430", samples=x, execution="fused", variant=variant)
        made = subprocess.run(["make", "-s", "model.elf"], cwd=out, capture_output=True, text=True)
        assert made.returncode == 0, made.stderr
        run = targets.run(firmware_from_elf("msp430", out / "model.elf", out, [], ""))
        emitted = [region.data for region in run.regions if region.label == "inference"]
        expected, _ = run_reference(qmodel, x, variant=variant)
        assert np.array_equal(np.stack([np.frombuffer(bytes(d), np.int8) for d in emitted]),
                              expected.reshape(len(x), -1)), variant


def small_mnist_wide():
    """mnist-wide's shape, small: conv, conv, max-pool, flatten, fc1 + ReLU + dropout, fc2 (input 1x14x14);
    tests/test_fused.py checks its resources(execution="fused") against the fused plan."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 6, 3), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(6 * 5 * 5, 16), nn.ReLU(), nn.Dropout(0.25),
                         nn.Linear(16, 10)).eval()

"""Every conv kernel under the fused, row-streamed plan (unitprune.mcu.export.fused_kernels): the
static-sparse and zero-activation sparse convolutions (tables built for the windows' geometry, a
shorter last step with its own records), the skip-free and UnIT sparse convolutions of a UnIT kernel
plan and the early-exit linear accumulated per row run bit-exact against the integer reference
(outputs and counters by cause; ``compares`` against a hand count of what each kernel visits) on the
host, and on AVR (counters compiled in; flash tables and RAM equal to the ELF's symbols) and MSP430."""

from __future__ import annotations

import dataclasses
import json
import subprocess

import numpy as np
import pytest

import unitprune
from unitprune.geometry import ConvGeometry
from unitprune.mcu import zeroact_plan
from unitprune.mcu.export import export_c
from unitprune.mcu.qmodel import QConv, QFlatten, QuantizedModel
from unitprune.mcu.reference import run_reference
from unitprune.mcu.unit_plan import with_unit_kernels

from . import qmodels
from .test_export import needs_cc
from .test_export_sparse import check_avr_export
from .test_sparse_zeroact_s8 import blob_input
from .test_unit_fast_s8 import skipfree_visits

KERNEL = {"sparse": "unit_conv2d_sparse_s8", "zeroact": "unit_conv2d_sparse_zeroact_s8",
          "skipfree": "unit_conv2d_unit_skipfree_s8", "unit_sparse": "unit_conv2d_unit_sparse_s8",
          "dense": "unit_conv2d_dense_s8", "unit": "unit_conv2d_unit_s8"}


def sparse_chain(rng: np.random.Generator) -> QuantizedModel:
    """A TTP-like zeroskip chain: conv 1->4 (padding 1, 60 % zero weights), conv 4->6 (padding 1, 70 %),
    max-pool, flatten, linear. With 4 output rows per step both convs have a shorter last step
    (9 = 2 * 4 + 1 rows); conv2 reads 4 channels, so its last step has its own records."""
    conv1 = qmodels.conv(rng, "conv1", (1, 9, 8), 4, (3, 3), padding=(1, 1, 1, 1), sparsity=0.6)
    conv2 = qmodels.conv(rng, "conv2", qmodels.output_shape(conv1), 6, (3, 3), padding=(1, 1, 1, 1), sparsity=0.7)
    pool = qmodels.maxpool("pool", qmodels.output_shape(conv2))
    flat = int(np.prod(qmodels.output_shape(pool)))
    return QuantizedModel(ops=[conv1, conv2, pool, QFlatten("flatten", flat), qmodels.linear(rng, "fc", flat, 5)],
                          input_shape=(1, 9, 8), input_scale=1.0, output_scale=1.0, variant="zeroskip")


def unit_chain(rng: np.random.Generator, kernels: dict[str, str]) -> QuantizedModel:
    """conv 1->4 (padding 1), max-pool, conv 4->6 (vertical padding 1), flatten, linear 72->6, UnIT,
    with the given kernel plan (unit_plan.with_unit_kernels)."""
    conv1 = qmodels.conv(rng, "conv1", (1, 10, 8), 4, (3, 3), padding=(1, 1, 1, 1), sparsity=0.2)
    pool = qmodels.maxpool("pool", qmodels.output_shape(conv1))
    conv2 = qmodels.conv(rng, "conv2", qmodels.output_shape(pool), 6, (3, 3), padding=(1, 1, 0, 0), sparsity=0.3)
    flat = int(np.prod(qmodels.output_shape(conv2)))
    fc = qmodels.linear(rng, "fc", flat, 6, shift_start=1, tree_magnitudes=rng.integers(0, 40, 300))
    qmodel = QuantizedModel(ops=[conv1, pool, conv2, QFlatten("flatten", flat), qmodels.boundary_weights(rng, fc)],
                            input_shape=(1, 10, 8), input_scale=1.0, output_scale=1.0, variant="unit")
    return with_unit_kernels(qmodel, kernels)


def window_skipfree_visits(x4: np.ndarray, op: QConv, rows: int) -> int:
    """The skip-free kernel's visits under the fused plan: it sorts each step's window (``K + (nb - 1)
    * stride_y`` rows of the input with its vertical padding as zero rows) and visits, per output
    channel and tap, the window's activations above tau (:func:`skipfree_visits` of each window)."""
    top, bottom = op.padding[:2]
    padded = np.pad(x4, ((0, 0), (0, 0), (top, bottom), (0, 0)))
    span = op.dilation[0] * (op.kernel_height - 1) + 1
    geometry = ConvGeometry((op.kernel_height, op.kernel_width), op.stride, op.dilation, (0, 0, *op.padding[2:]),
                            op.groups)
    visits = 0
    for first in range(0, op.out_height, rows):
        nb = min(rows, op.out_height - first)
        start = first * op.stride[0]
        visits += skipfree_visits(padded[:, :, start:start + span + (nb - 1) * op.stride[0]], op.weight, op.tau,
                                  geometry)
    return visits


def _layer_inputs(qmodel: QuantizedModel, x: np.ndarray) -> dict[str, np.ndarray]:
    inputs = {}
    run_reference(qmodel, x, capture=lambda op, v: inputs.setdefault(op.name, v))
    return inputs


def expected_fused_counts(qmodel: QuantizedModel, x: np.ndarray, rows: int) -> dict:
    """The reference's counters, the skip-free layers' ``compares`` replaced by their window visits."""
    _, counts = run_reference(qmodel, x)
    inputs = _layer_inputs(qmodel, x)
    for op in qmodel.ops:
        if isinstance(op, QConv) and op.unit_kernel == "skipfree":
            x4 = inputs[op.name].reshape(len(x), op.in_channels, op.in_height, op.in_width)
            counts[op.name] = dataclasses.replace(counts[op.name], compares=window_skipfree_visits(x4, op, rows))
    return counts


def _kernels(out_dir) -> dict[str, str]:
    manifest = json.loads((out_dir / "memory_plan.json").read_text())
    return {name: layer["kernel"] for name, layer in manifest["kernels"]["layers"].items()}


@needs_cc
@pytest.mark.parametrize("plan", ["sparse", "zeroact"])
@pytest.mark.parametrize("rows,axis", [(1, "height"), (4, "height"), (2, "width")])
def test_static_sparse_convs_run_fused_on_their_windows(tmp_path, plan, rows, axis):
    """A zeroskip (TTP) model exported fused calls the static-sparse kernels (and, where the
    zero-activation plan puts the layers, the zero-activation kernel) on its windows: outputs and
    counters equal the reference's and the layer-by-layer export's; a shorter last step of a conv
    reading several channels has its own records."""
    rng = np.random.default_rng(21)
    qmodel = sparse_chain(rng)
    x = blob_input(rng, qmodels.random_input(rng, 3, qmodel.input_shape, zero_fraction=0.3))
    qmodel = zeroact_plan.plan_zero_activation(qmodel, x, None, plan=plan)
    result = export_c(qmodel, tmp_path / "fused", execution="fused", fused_rows=rows, fused_axis=axis)
    assert result.execution == "fused" and result.fused_axis == axis
    assert _kernels(tmp_path / "fused") == {"conv1": KERNEL[plan], "conv2": KERNEL[plan],
                                            "fc": "unit_linear_zeroskip_s8"}
    outputs, counts = unitprune.run_exported(tmp_path / "fused", x)
    expected, expected_counts = run_reference(qmodel, x)
    np.testing.assert_array_equal(outputs, expected.reshape(len(x), -1))
    assert counts == expected_counts
    export_c(qmodel, tmp_path / "layers")
    assert unitprune.run_exported(tmp_path / "layers", x)[1] == counts
    flash = json.loads((tmp_path / "fused" / "memory_plan.json").read_text())["flash"]["per_layer"]
    assert "records_tail" not in flash["conv1"]  # one input channel: the offsets do not depend on the rows
    assert ("records_tail" in flash["conv2"]) == (rows == 4 and axis == "height")
    if "records_tail" in flash["conv2"]:
        assert flash["conv2"]["records_tail"] == flash["conv2"]["records"]


@needs_cc
@pytest.mark.parametrize("kernels,rows,quotient", [
    ({"conv1": "skipfree", "conv2": "sparse", "fc": "sorted"}, 1, "bitshift"),
    ({"conv1": "skipfree", "conv2": "sparse", "fc": "sorted"}, 3, "bintree"),
    ({"conv1": "sparse", "conv2": "skipfree", "fc": "sorted"}, 2, "table"),
    ({"conv1": "dense", "conv2": "skipfree", "fc": "unit"}, 4, "bitshift")])
def test_unit_kernel_plans_run_fused(tmp_path, kernels, rows, quotient):
    """A UnIT kernel plan exported fused: each conv on its planned kernel, the early-exit Linear
    accumulated per row (unit_linear_accumulate_unit_sorted_*_s8); outputs and counters by cause
    equal the reference's; compares: the UnIT sparse row lists and the early exit visit what they
    visit layer by layer, the skip-free lists each window's activations (a hand count)."""
    rng = np.random.default_rng(22)
    qmodel = dataclasses.replace(unit_chain(rng, kernels), linear_quotient=quotient)
    x = qmodels.random_input(rng, 3, qmodel.input_shape, zero_fraction=0.4, boundary=np.unique(qmodel.ops[0].tau))
    result = export_c(qmodel, tmp_path, execution="fused", fused_rows=rows, fused_axis="height")
    assert result.execution == "fused"
    chosen = _kernels(tmp_path)
    planned = {name: KERNEL["unit_sparse" if kernels[name] == "sparse" else kernels[name]] for name in ("conv1", "conv2")}
    if kernels["conv1"] == "dense" and rows % 2 == 0:  # conv1's steps hold whole 2x2 pool windows: pooled on
        planned["conv1"] = "unit_conv2d_dense_pool_s8"  # its accumulators, as layer by layer (pooled_conv.py)
    assert {name: chosen[name] for name in ("conv1", "conv2")} == planned
    sorted_fc = f"unit_linear_accumulate_unit_sorted_{quotient}_s8("
    assert (sorted_fc in (tmp_path / "model.c").read_text()) == (kernels["fc"] == "sorted")
    outputs, counts = unitprune.run_exported(tmp_path, x)
    expected, _ = run_reference(qmodel, x)
    np.testing.assert_array_equal(outputs, expected.reshape(len(x), -1))
    assert counts == expected_fused_counts(qmodel, x, rows)


def test_fused_scratch_is_the_kernels_size_on_the_window(tmp_path):
    """The fused plan's conv scratch is the largest step's size function on its window: the skip-free
    lists (4*OH*OW + 256*C + 2*KH*H + 2*KW*W + 3*C*H*W), the UnIT sparse lists (4*B*OW + 2*KW*W + 130 +
    C*H*levels + 2*C*H*W), the zero-activation kernel's (15*OW + 1 + 4*C*H + 4*G + O), H the window's rows."""
    rng = np.random.default_rng(23)
    qmodel = unit_chain(rng, {"conv1": "skipfree", "conv2": "sparse"})
    plan = export_c(qmodel, tmp_path / "unit", execution="fused", fused_rows=2).memory
    conv1, conv2 = (op for op in qmodel.ops if isinstance(op, QConv))
    h1 = 3 + 1  # K + (B - 1) * stride
    skipfree = (4 * 2 * 8 + 256 * 1 + 2 * 3 * h1 + 2 * 3 * 8 + 3 * 1 * h1 * 8 + 3) // 4 * 4
    levels = np.unique(conv2.tau[(conv2.weight != 0) & (conv2.tau < 128)]).size
    h2 = 3 + 1
    usparse = (4 * 2 * conv2.out_width + 2 * 3 * conv2.in_width + 130 + 4 * h2 * levels + 2 * 4 * h2 * conv2.in_width
               + 3) // 4 * 4
    assert plan.conv_scratch_bytes == max(skipfree, usparse)
    assert plan.scratch_bytes == plan.conv_scratch_bytes + 4 * 6
    za = zeroact_plan.plan_zero_activation(sparse_chain(rng), qmodels.random_input(rng, 2, (1, 9, 8)), None,
                                           plan="zeroact")
    zplan = export_c(za, tmp_path / "zeroact", execution="fused", fused_rows=1).memory
    # 1 output row per step on windows of 3 rows: conv1 1 channel, conv2 4 channels, G = C*KH, 8 columns
    assert zplan.conv_scratch_bytes == max((15 * 8 + 1 + 4 * c * 3 + 4 * c * 3 + o + 3) // 4 * 4
                                           for c, o in ((1, 4), (4, 6)))


ZEROACT_OPTIONS = {"fused_rows": 4, "fused_axis": "height"}
UNIT_KERNELS = {"conv1": "skipfree", "conv2": "sparse", "fc": "sorted"}


def mcu_cases(rng: np.random.Generator):
    """(the zero-activation TTP model, its inputs, the UnIT plan, its inputs): two samples each."""
    ttp = sparse_chain(rng)
    x = blob_input(rng, qmodels.random_input(rng, 2, ttp.input_shape, zero_fraction=0.3))
    qmodel = unit_chain(rng, UNIT_KERNELS)
    xu = qmodels.random_input(rng, 2, qmodel.input_shape, zero_fraction=0.4, boundary=np.unique(qmodel.ops[0].tau))
    return zeroact_plan.plan_zero_activation(ttp, x, None, plan="zeroact"), x, qmodel, xu


def test_fused_kernels_on_avr_count_their_tables_and_ram_and_are_bit_exact(tmp_path):
    """On the ATmega2560 with the counters compiled in: the zero-activation TTP model (4 rows per step,
    conv2's last step with its own records) and the UnIT plan (skip-free, UnIT sparse, early exit; 2
    rows per step) run fused bit-exact (outputs, counters by cause, visits), and their flash tables
    and RAM (windows, the kernels' scratch, the descriptors of every step) equal the ELF's symbols."""
    from tests.mcu_tools import require_program, require_target

    require_target("avr")
    require_program("make", "make")
    ttp, x, qmodel, xu = mcu_cases(np.random.default_rng(24))
    result = export_c(ttp, tmp_path / "ttp", target="avr", samples=x, counters=True, execution="fused",
                      **ZEROACT_OPTIONS)
    plan = json.loads((tmp_path / "ttp" / "memory_plan.json").read_text())
    assert "records_tail" in plan["flash"]["per_layer"]["conv2"]
    expected, expected_counts = run_reference(ttp, x)
    check_avr_export(tmp_path / "ttp", plan, result, expected.reshape(len(x), -1), expected_counts)
    result = export_c(qmodel, tmp_path / "unit", target="avr", samples=xu, counters=True, execution="fused",
                      fused_rows=2)
    plan = json.loads((tmp_path / "unit" / "memory_plan.json").read_text())
    expected, _ = run_reference(qmodel, xu)
    check_avr_export(tmp_path / "unit", plan, result, expected.reshape(len(xu), -1),
                     expected_fused_counts(qmodel, xu, 2))


def test_fused_kernels_on_msp430_are_bit_exact(tmp_path):
    """The same two models on the MSP430 (its assembly runs of the sparse, skip-free and row-list
    kernels): outputs equal the reference's."""
    from tests.mcu_tools import require_program, require_target
    from unitprune.mcu import targets
    from unitprune.mcu.targets.common import firmware_from_elf

    require_target("msp430")
    require_program("make", "make")
    ttp, x, qmodel, xu = mcu_cases(np.random.default_rng(25))
    for name, model, inputs, options in (("ttp", ttp, x, ZEROACT_OPTIONS), ("unit", qmodel, xu, {"fused_rows": 2})):
        out = tmp_path / name
        export_c(model, out, target="msp430", samples=inputs, execution="fused", **options)
        made = subprocess.run(["make", "-s", "model.elf"], cwd=out, capture_output=True, text=True)
        assert made.returncode == 0, made.stderr
        run = targets.run(firmware_from_elf("msp430", out / "model.elf", out, [], ""))
        emitted = [region.data for region in run.regions if region.label == "inference"]
        expected, _ = run_reference(model, inputs)
        assert np.array_equal(np.stack([np.frombuffer(bytes(d), np.int8) for d in emitted]),
                              expected.reshape(len(inputs), -1)), name


def test_a_plan_too_big_layer_by_layer_keeps_its_lists_when_they_fit_fused(tmp_path):
    """conv 1->8 (3x3, padding 1) on 1x40x40: 12,800 bytes of output do not fit the ATmega2560 layer
    by layer with or without lists, so execution="auto" exports it fused; the UnIT sparse lists on
    its 3-row windows fit there, so unit_plan.sram_fits keeps them and the export runs them fused
    (the MNIST model, which fits layer by layer without lists, still gives its conv1 lists up:
    tests/test_unit_plan.py)."""
    from unitprune.mcu.unit_plan import sram_fits

    rng = np.random.default_rng(26)
    conv = qmodels.conv(rng, "conv", (1, 40, 40), 8, (3, 3), padding=(1, 1, 1, 1), sparsity=0.5)
    pool = qmodels.maxpool("pool", qmodels.output_shape(conv), kernel=(4, 4))
    big = QuantizedModel(ops=[conv, pool, QFlatten("flatten", 800), qmodels.linear(rng, "fc", 800, 4)],
                         input_shape=(1, 40, 40), input_scale=1.0, output_scale=1.0, variant="unit")
    planned = with_unit_kernels(big, {"conv": "sparse"})
    assert sram_fits(planned, "avr")
    x = qmodels.random_input(rng, 1, big.input_shape, boundary=np.unique(conv.tau))
    result = export_c(planned, tmp_path, target="avr", samples=x, execution="auto")
    assert result.execution == "fused" and _kernels(tmp_path)["conv"] == KERNEL["unit_sparse"]


def test_the_auto_plan_of_a_model_exported_fused_keeps_the_per_position_kernel():
    """plan_unit_kernels(plan="auto") for a model beyond the ATmega2560's SRAM layer by layer (so
    exported fused): its cost model predicts whole-layer calls, so the convs keep the per-position
    kernel (the reason recorded); the MNIST model, which fits layer by layer, takes the predicted
    fastest kernels."""
    from unitprune.mcu.unit_plan import FUSED_REASON, exports_fused, plan_unit_kernels

    rng = np.random.default_rng(27)
    conv = qmodels.conv(rng, "conv", (1, 40, 40), 8, (3, 3), padding=(1, 1, 1, 1), sparsity=0.5)
    pool = qmodels.maxpool("pool", qmodels.output_shape(conv), kernel=(4, 4))
    big = QuantizedModel(ops=[conv, pool, QFlatten("flatten", 800), qmodels.linear(rng, "fc", 800, 4)],
                         input_shape=(1, 40, 40), input_scale=1.0, output_scale=1.0, variant="unit")
    x = qmodels.random_input(rng, 4, big.input_shape, zero_fraction=0.5, boundary=np.unique(conv.tau))
    mnist = qmodels.mnist_like(rng)
    assert exports_fused(big, "avr") and not exports_fused(mnist, "avr")
    on_avr = plan_unit_kernels(big, x, "avr")
    layer = on_avr.source["unit_kernel_plan"]["layers"]["conv"]
    assert on_avr.ops[0].unit_kernel == "unit" and layer["reason"] == FUSED_REASON
    assert min(layer["predicted_cycles"], key=layer["predicted_cycles"].get) != "unit"  # the prediction said otherwise
    xm = qmodels.random_input(rng, 4, mnist.input_shape, zero_fraction=0.5, boundary=np.unique(mnist.ops[0].tau))
    layers = plan_unit_kernels(mnist, xm, "avr").source["unit_kernel_plan"]["layers"]
    assert FUSED_REASON not in {layer["reason"] for layer in layers.values()}


@pytest.mark.parametrize("target", ["host", "avr", "msp430"])
def test_fused_kernel_code_compiles_warning_free(tmp_path, target):
    """model.c of the fused exports above (static-sparse tables with a last step's own records, zero
    activation row starts, skip-free and UnIT sparse steps, the early-exit sink's tables) compiles
    with -Wconversion -Wsign-conversion -Werror for the host and both MCUs."""
    from tests.mcu_tools import require_program
    from tests.test_export import CC, MCU_COMPILERS, STRICT

    if target == "host":
        compiler, flags = CC or "cc", ["-O2"]
    else:
        (compiler, package), flags = MCU_COMPILERS[target]
        require_program(compiler, package)
    extra = ["-isystem", "msp430/include"] if target == "msp430" else []
    ttp, x, qmodel, xu = mcu_cases(np.random.default_rng(28))
    for name, model, inputs, options in (("ttp", ttp, x, ZEROACT_OPTIONS), ("unit", qmodel, xu, {"fused_rows": 2})):
        out = tmp_path / name
        export_c(model, out, target=target, samples=None if target == "host" else inputs, execution="fused",
                 **options)
        done = subprocess.run([compiler, *flags, *STRICT, *extra, "-I.", "-Ikernels", "-DUNIT_S8_COUNTS=1", "-c",
                               "model.c", "-o", "/dev/null"], cwd=out, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr

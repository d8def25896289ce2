"""The fused, row-streamed export (``export_c(..., execution="fused")``): bit-exact against the
layer-by-layer integer reference (outputs and MAC counters by cause) on the host for random
chains and on AVR / MSP430 for a small model; its memory plan against a hand count and against
the firmware's own RAM symbols; ``auto`` and the refusals."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import unitprune
from unitprune.mcu.export import ExportError, export_c
from unitprune.mcu.export.fused_c import permuted_linear_weight
from unitprune.mcu.qmodel import LINEAR_QUOTIENTS, VARIANTS, QAvgPool, QFlatten, QThresholdReLU, QuantizedModel
from unitprune.mcu.reference import run_reference

from . import qmodels

CC = shutil.which("cc") or shutil.which("gcc")
needs_cc = pytest.mark.skipif(CC is None, reason="no host C compiler (apt-get install gcc)")


def check_fused_bit_exact(qmodel: QuantizedModel, out_dir, x: np.ndarray, variant: str, linear_quotient: str,
                          fused_rows: int = 1, fused_axis: str = "auto"):
    """Export fused, build and run on the host; outputs and counters equal the layer-by-layer reference's."""
    result = export_c(qmodel, out_dir, variant=variant, linear_quotient=linear_quotient, execution="fused",
                      fused_rows=fused_rows, fused_axis=fused_axis)
    assert result.execution == "fused"
    outputs, counts = unitprune.run_exported(out_dir, x)
    expected, expected_counts = run_reference(dataclasses.replace(qmodel, linear_quotient=linear_quotient), x,
                                              variant=variant)
    np.testing.assert_array_equal(outputs, expected.reshape(len(x), -1))
    assert counts == expected_counts
    return result


def _pool(rng, draw, name: str, shape):
    c, h, w = shape
    kh, kw = draw(st.integers(1, min(3, h))), draw(st.integers(1, min(3, w)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    out = ((h - kh) // stride[0] + 1, (w - kw) // stride[1] + 1)
    if draw(st.booleans()):
        return QAvgPool(name, c, h, w, (kh, kw), stride, *out)
    return qmodels.maxpool(name, shape, kernel=(kh, kw), stride=stride)


def _conv(rng, draw, name: str, shape, conv1d: bool):
    channels, height, width = shape
    groups = draw(st.sampled_from([g for g in (1, 2, 3) if channels % g == 0]))
    kh = 1 if conv1d else draw(st.integers(1, 3))
    kw = draw(st.integers(1, 3))
    stride = (1 if conv1d else draw(st.integers(1, 3)), draw(st.integers(1, 2)))
    dilation = (1 if conv1d else draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pad_y = (0, 0) if conv1d else (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    padding = (*pad_y, draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    if height + sum(pad_y) < dilation[0] * (kh - 1) + 1 or width + sum(padding[2:]) < dilation[1] * (kw - 1) + 1:
        kh, kw, dilation = 1, 1, (1, 1)
    return qmodels.conv(rng, name, shape, groups * draw(st.integers(1, 3)), (kh, kw), stride, dilation, padding,
                        groups, relu=draw(st.booleans()), sparsity=draw(st.sampled_from([0.0, 0.3, 0.7])),
                        conv1d=conv1d)


def _elementwise(rng, draw, name: str, size: int):
    if draw(st.booleans()):
        return qmodels.relu(name, size)
    return QThresholdReLU(name, size, int(draw(st.integers(0, 20))))


@st.composite
def fused_chains(draw):
    """A random streamable chain: optional ReLU/FATReLU on the input, one or two convs (1d or 2d;
    stride, padding larger than the kernel, dilation, groups) each optionally followed by a
    ReLU/FATReLU and a max or average pool, then either flatten + Linear (+ ReLU) or nothing (the
    last rows are the output)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    conv1d = draw(st.booleans())
    shape = (draw(st.sampled_from([1, 2, 3, 6])), 1 if conv1d else draw(st.integers(1, 9)), draw(st.integers(3, 10)))
    input_shape = (shape[0], shape[2]) if conv1d else shape
    ops = []
    if draw(st.booleans()):
        ops.append(_elementwise(rng, draw, "in_act", int(np.prod(shape))))
    for k in range(draw(st.integers(1, 2))):
        conv = _conv(rng, draw, f"conv{k}", shape, conv1d)
        ops.append(conv)
        shape = (conv.out_channels, conv.out_height, conv.out_width)
        if draw(st.booleans()):
            ops.append(_elementwise(rng, draw, f"act{k}", int(np.prod(shape))))
        if not conv1d and draw(st.booleans()):
            pool = _pool(rng, draw, f"pool{k}", shape)
            ops.append(pool)
            shape = (pool.channels, pool.out_height, pool.out_width)
    if draw(st.booleans()):
        flat = int(np.prod(shape))
        ops.append(QFlatten("flatten", flat))
        fc = qmodels.linear(rng, "fc", flat, draw(st.integers(1, 12)), shift_start=draw(st.integers(0, 3)),
                            threshold_q=draw(st.sampled_from([None, 0, 200, 40000])))
        ops.append(qmodels.boundary_weights(rng, fc))
        if draw(st.booleans()):
            ops.append(_elementwise(rng, draw, "out_act", fc.out_features))
    qmodel = QuantizedModel(ops=ops, input_shape=input_shape, input_scale=1.0, output_scale=1.0)
    first = next(op for op in ops if hasattr(op, "tau"))
    x = qmodels.random_input(rng, 3, input_shape, zero_fraction=0.4, boundary=np.unique(first.tau))
    return qmodel, x


@needs_cc
@given(case=fused_chains(), variant=st.sampled_from(VARIANTS), linear_quotient=st.sampled_from(LINEAR_QUOTIENTS))
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_random_chains_fused_bit_exact(tmp_path_factory, case, variant, linear_quotient):
    qmodel, x = case
    check_fused_bit_exact(qmodel, tmp_path_factory.mktemp("fused"), x, variant, linear_quotient)


@needs_cc
@given(case=fused_chains(), variant=st.sampled_from(VARIANTS), fused_rows=st.sampled_from([1, 2, 4]))
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_random_chains_streamed_along_the_width_bit_exact(tmp_path_factory, case, variant, fused_rows):
    """The chain streamed column by column (the transposed model, the input read and an output
    stored by columns): the same outputs and counters."""
    qmodel, x = case
    result = check_fused_bit_exact(qmodel, tmp_path_factory.mktemp("fused"), x, variant, "bitshift", fused_rows,
                                   fused_axis="width")
    assert result.fused_axis == "width" and result.memory.to_dict()["stream_axis"] == "width"


@needs_cc
@given(case=fused_chains(), variant=st.sampled_from(VARIANTS), fused_rows=st.sampled_from([2, 3, 5]))
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_random_chains_fused_rows_bit_exact(tmp_path_factory, case, variant, fused_rows):
    """Several output rows per step (windows of K + (B - 1) * stride rows, a last shorter step when
    B does not divide the output height): the same outputs and counters."""
    qmodel, x = case
    result = check_fused_bit_exact(qmodel, tmp_path_factory.mktemp("fused"), x, variant, "bitshift", fused_rows,
                                   fused_axis="height")
    convs = [op for op in qmodel.ops if hasattr(op, "kernel_height")]
    for op in convs:
        rows = min(fused_rows, op.out_height)
        span = op.dilation[0] * (op.kernel_height - 1) + 1 + (rows - 1) * op.stride[0]
        window = [(b["rows"], b["bytes"]) for b in result.memory.buffers if b["name"] == f"window of {op.name}"]
        if not window:  # a one-row conv reading its input row in place
            assert span == 1 and op.padding[:2] == (0, 0) and op.stride[0] == 1
            assert any(b["name"] == "second row" for b in result.memory.buffers)
            continue
        assert window == [(span, op.in_channels * span * op.in_width)]
        block = [b["bytes"] for b in result.memory.buffers if b["name"] == f"rows of {op.name}"]
        assert block == ([op.out_channels * rows * op.out_width] if rows > 1 else [])


@needs_cc
@pytest.mark.parametrize("fused_rows", [1, 2])
@pytest.mark.parametrize("pad_y", [(0, 1), (1, 2)])
def test_conv_padded_below_after_a_global_pool_gets_its_padding_rows(tmp_path, pad_y, fused_rows):
    """A global average pool (over the whole height: int32 sums, one output row) before a conv with
    bottom padding: the pool passes its row on and then the conv's zero padding rows, so every
    output row of the conv is computed (outputs and counters equal the reference's)."""
    rng = np.random.default_rng(11)
    conv0 = qmodels.conv(rng, "conv0", (2, 3, 5), 3, (2, 1), (1, 1), (1, 1), (0, 0, 0, 0), 1, relu=True)
    pool = QAvgPool("pool0", 3, conv0.out_height, 5, (conv0.out_height, 1), (1, 1), 1, 5)
    conv1 = qmodels.conv(rng, "conv1", (3, 1, 5), 2, (1, 3), (1, 1), (1, 1), (*pad_y, 1, 1), 1, relu=False)
    assert conv1.out_height == 1 + sum(pad_y)
    qmodel = QuantizedModel(ops=[conv0, pool, conv1], input_shape=(2, 3, 5), input_scale=1.0, output_scale=1.0)
    x = qmodels.random_input(rng, 3, (2, 3, 5))
    check_fused_bit_exact(qmodel, tmp_path, x, "dense", "bitshift", fused_rows, fused_axis="height")


@needs_cc
@pytest.mark.parametrize("variant,linear_quotient", [("dense", "bitshift"), ("zeroskip", "bitshift"),
                                                     ("unit", "bitshift"), ("unit", "bintree"), ("unit", "table")])
def test_mnist_model_fused_bit_exact_for_every_variant(tmp_path, variant, linear_quotient):
    rng = np.random.default_rng(5)
    qmodel = qmodels.mnist_like(rng)
    x = qmodels.random_input(rng, 2, qmodel.input_shape, boundary=np.unique(qmodel.ops[0].tau))
    check_fused_bit_exact(qmodel, tmp_path, x, variant, linear_quotient)


def test_fused_memory_plan_of_the_mnist_model_matches_a_hand_count(tmp_path):
    """conv1 5x1x28, pool1 2x6x24, conv2 5x6x12, pool2 2x16x8; row buffer = the widest row (conv1:
    6 x 24); conv scratch one row of conv1 (4 x 24); the Linear's 10 sums; 2 counters per stage."""
    qmodel = qmodels.mnist_like(np.random.default_rng(0))
    result = export_c(qmodel, tmp_path, execution="fused")
    plan = result.memory
    windows = 5 * 28 + 2 * 6 * 24 + 5 * 6 * 12 + 2 * 16 * 8
    assert [b["bytes"] for b in plan.buffers] == [5 * 28, 2 * 6 * 24, 5 * 6 * 12, 2 * 16 * 8, 6 * 24]
    assert plan.arena_bytes == windows + 6 * 24 + 4 * 2 * 4
    assert plan.scratch_bytes == 4 * 24 + 4 * 10
    layers = export_c(qmodel, tmp_path / "layers").memory
    assert plan.descriptor_bytes == layers.descriptor_bytes
    assert plan.peak_sram_bytes == plan.arena_bytes + plan.scratch_bytes + plan.descriptor_bytes
    assert plan.peak_sram_bytes < layers.peak_sram_bytes / 3
    manifest = json.loads((tmp_path / "memory_plan.json").read_text())
    assert manifest["execution"] == "fused" and manifest["memory"]["execution"] == "fused"
    assert manifest["memory"]["peak_sram_bytes"] == plan.peak_sram_bytes
    assert manifest["memory"]["input_streamed"] is True


def test_linear_weight_permuted_to_arrival_order():
    """Row h of a [C][H][W] input arrives as [C][W]: its weight rows are those of c*H*W + h*W + w."""
    rng = np.random.default_rng(1)
    op = qmodels.linear(rng, "fc", 2 * 3 * 4, 5)
    permuted = permuted_linear_weight(op, (2, 3, 4))
    for h in range(3):
        for c in range(2):
            for w in range(4):
                np.testing.assert_array_equal(permuted[h, c, w], op.weight[:, c * 12 + h * 4 + w])


def test_auto_chooses_fused_only_when_layers_do_not_fit(tmp_path):
    from tests.test_export import tiny_model

    rng = np.random.default_rng(3)
    small = tiny_model(rng)
    x = qmodels.random_input(rng, 1, small.input_shape)
    assert export_c(small, tmp_path / "small", target="avr", samples=x, execution="auto").execution == "layers"
    # conv 1->8 k3 on 1x40x40 (12,800 bytes of output) then pool and a Linear: too big layer by layer
    conv = qmodels.conv(rng, "conv", (1, 40, 40), 8, (3, 3), padding=(1, 1, 1, 1))
    pool = qmodels.maxpool("pool", qmodels.output_shape(conv), kernel=(4, 4))
    big = QuantizedModel(ops=[conv, pool, QFlatten("flatten", 800), qmodels.linear(rng, "fc", 800, 4)],
                         input_shape=(1, 40, 40), input_scale=1.0, output_scale=1.0)
    xb = qmodels.random_input(rng, 1, big.input_shape)
    with pytest.raises(ExportError, match="SRAM"):
        export_c(big, tmp_path / "layers", target="avr", samples=xb)
    result = export_c(big, tmp_path / "auto", target="avr", samples=xb, execution="auto")
    assert result.execution == "fused"
    # windows: conv 3 rows x 40, pool 4 rows x 8 channels x 40; row buffer 8 x 40; 2 counters per stage
    assert result.memory.arena_bytes == 3 * 40 + 4 * 8 * 40 + 8 * 40 + 4 * 2 * 2
    assert result.memory.peak_sram_with_io_bytes == result.memory.peak_sram_bytes + 4  # the input is not in SRAM


def test_fused_refusals_name_the_op(tmp_path):
    rng = np.random.default_rng(4)
    conv = qmodels.conv(rng, "conv", (1, 6, 6), 2, (3, 3))
    mlp = QuantizedModel(ops=[conv, QFlatten("flatten", 32), qmodels.linear(rng, "fc1", 32, 8, relu=True),
                              qmodels.linear(rng, "fc2", 8, 3)], input_shape=(1, 6, 6), input_scale=1.0,
                         output_scale=1.0)
    late = QuantizedModel(ops=[conv, QFlatten("flatten", 32), qmodels.linear(rng, "fc1", 32, 16),
                               qmodels.conv(rng, "late", (1, 4, 4), 1, (3, 3))], input_shape=(1, 6, 6),
                          input_scale=1.0, output_scale=1.0)
    with pytest.raises(ExportError, match="late"):  # a spatial op after the Linear (an MLP head is a tail)
        export_c(late, tmp_path / "a", execution="fused")
    assert export_c(mlp, tmp_path / "b", execution="auto").execution == "layers"
    with pytest.raises(ExportError, match="execution"):
        export_c(mlp, tmp_path / "c", execution="depth-first")
    chain = QuantizedModel(ops=[conv], input_shape=(1, 6, 6), input_scale=1.0, output_scale=1.0)
    with pytest.raises(ExportError, match="fused_rows"):
        export_c(chain, tmp_path / "d", execution="fused", fused_rows=0)
    with pytest.raises(ExportError, match="fused_axis"):
        export_c(chain, tmp_path / "e", execution="auto", fused_axis="diagonal")
    with pytest.raises(ExportError, match="execution='fused' or 'auto'"):
        export_c(chain, tmp_path / "f", fused_rows=4)
    one_d = QuantizedModel(ops=[qmodels.linear(rng, "fc", 6, 2)], input_shape=(6,), input_scale=1.0, output_scale=1.0)
    with pytest.raises(ExportError, match="no width"):
        export_c(one_d, tmp_path / "g", execution="fused", fused_axis="width")


def test_cli_export_execution(tmp_path):
    import torch

    from unitprune.cli import main
    from unitprune.models import build_model

    torch.save(build_model("digits", seed=0).state_dict(), tmp_path / "weights.pt")
    assert main(["export", "--model", "digits", "--weights", str(tmp_path / "weights.pt"), "--data", "digits",
                 "--out-dir", str(tmp_path / "out"), "--execution", "fused", "--fused-rows", "2",
                 "--fused-axis", "width"]) == 0
    summary = json.loads((tmp_path / "out" / "host_check.json").read_text())
    plan = json.loads((tmp_path / "out" / "memory_plan.json").read_text())
    assert summary["bit_exact"] and summary["execution"] == plan["execution"] == "fused"
    assert summary["fused_axis"] == plan["fused_axis"] == "width" and plan["fused_rows"] == 2
    assert summary["model_sram_bytes"] == plan["memory"]["peak_sram_bytes"]


def _model_ram_symbols(elf, names: list[str]) -> dict[str, int]:
    """Sizes of the RAM symbols (data/bss) of the firmware defined in model.c (avr-nm -S)."""
    listing = subprocess.run(["avr-nm", "-S", str(elf)], capture_output=True, text=True, check=True).stdout
    sizes = {}
    for line in listing.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2] in "bBdD" and (parts[3].startswith("unit_model_") or
                                                        parts[3].rsplit("_", 1)[0] in names):
            sizes[parts[3]] = int(parts[1], 16)
    return sizes


@pytest.mark.parametrize("target", ["avr", "msp430"])
@pytest.mark.parametrize("options", [{}, {"fused_rows": 2, "fused_axis": "width", "variant": "dense"}],
                         ids=["rows-unit", "columns-by-2-dense"])
def test_fused_firmware_runs_bit_exact_on_the_simulator(tmp_path, target, options):
    """A fused export (conv with padding, ReLU, pool, conv, a pointwise conv read in place, Linear)
    built by its own Makefile runs bit-exactly in the simulator, the samples read row by row (or
    column by column, two output columns per conv step) from flash; on AVR the model's RAM symbols
    add up to the plan's peak SRAM, and the counters equal the reference's."""
    from tests.mcu_tools import require_program, require_target
    from unitprune.mcu import targets
    from unitprune.mcu.targets.common import firmware_from_elf

    require_target(target)
    require_program("make", "make")
    rng = np.random.default_rng(8)
    conv1 = qmodels.conv(rng, "conv1", (1, 10, 8), 4, (3, 3), padding=(1, 1, 1, 1))
    pool = qmodels.maxpool("pool", qmodels.output_shape(conv1))
    conv2 = qmodels.conv(rng, "conv2", qmodels.output_shape(pool), 6, (3, 3), stride=(2, 1), padding=(2, 1, 0, 0))
    conv3 = qmodels.conv(rng, "conv3", qmodels.output_shape(conv2), 4, (1, 1))
    flat = int(np.prod(qmodels.output_shape(conv3)))
    qmodel = QuantizedModel(ops=[conv1, pool, conv2, conv3, QFlatten("flatten", flat),
                                 qmodels.linear(rng, "fc", flat, 5)],
                            input_shape=(1, 10, 8), input_scale=1.0, output_scale=1.0)
    x = qmodels.random_input(rng, 3, qmodel.input_shape, boundary=np.unique(conv1.tau))
    expected, expected_counts = run_reference(qmodel, x, variant=options.get("variant", "unit"))
    counters = target == "avr"
    result = export_c(qmodel, tmp_path, target=target, samples=x, execution="fused", counters=counters, **options)
    assert result.fused_axis == options.get("fused_axis", result.fused_axis)
    made = subprocess.run(["make", "-s", "model.elf"], cwd=tmp_path, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    firmware = firmware_from_elf(target, tmp_path / "model.elf", tmp_path, [], "")
    run = targets.run(firmware)
    emitted = [region.data for region in run.regions if region.label == "inference"]
    assert np.array_equal(np.stack([np.frombuffer(bytes(d), np.int8) for d in emitted]), expected.reshape(len(x), -1))
    assert "main.c" in result.files and "unit_model_run_rows" in (tmp_path / "main.c").read_text()
    if target == "avr":
        counts = np.frombuffer(bytes(run.region("counts").data), "<i8").reshape(len(result.layers), 7)
        for name, row in zip(result.layers, counts.tolist()):
            assert row == list(expected_counts[name].to_dict().values()), name
        # the model's own RAM, without the counters (counted builds only), is the plan's peak SRAM
        ram = _model_ram_symbols(tmp_path / "model.elf", result.layers)
        ram = {k: v for k, v in ram.items() if k not in ("unit_model_counts", "unit_model_call")}
        assert sum(ram.values()) == result.memory.peak_sram_bytes, ram
    assert firmware.sram_static_bytes + run.stack_bytes < 8192


@needs_cc
@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("which", ["mnist", "ds-cnn-like", "mlp-head"])
@pytest.mark.parametrize("fused_rows,fused_axis", [(1, "auto"), (3, "width")])
def test_resources_fused_equal_the_fused_memory_plan_and_run_bit_exact(tmp_path, which, fused_rows, fused_axis):
    """unitprune.resources(..., execution="fused") gives the fused export's peak SRAM (with the
    output, without the streamed input), term by term, for a conv/pool chain and for depthwise/
    pointwise blocks with BatchNorm and a global average pool, and for an MLP head (the tail), with
    the export's fused_rows and fused_axis; all run bit-exact fused."""
    import torch

    from tests.test_export import _ds_cnn_like
    from unitprune.mcu.reference import quantize_input
    from unitprune.models import build_model
    from unitprune.shrink.resources import resources

    if which == "mnist":
        model, shape = build_model("mnist", seed=0).eval(), (1, 28, 28)
    elif which == "mlp-head":  # the fused plan's tail: fc1 -> ReLU -> fc2 after the streamed fc1
        from tests.test_fused_head import small_mnist_wide

        model, shape = small_mnist_wide(), (1, 14, 14)
    else:
        model, shape = _ds_cnn_like(2), (1, 12, 10)
    x = torch.randn(20, *shape)
    qmodel = unitprune.quantize(model, x[:16], variant="unit")
    x_q = quantize_input(qmodel, x[16:])
    result = check_fused_bit_exact(qmodel, tmp_path / "fused", x_q, "unit", "bitshift", fused_rows, fused_axis)
    plan = result.memory
    r = resources(model, shape, unit_tables=True, target="host", execution="fused", fused_rows=fused_rows,
                  fused_axis=fused_axis)
    assert (r.arena_bytes, r.scratch_bytes, r.descriptor_bytes, r.input_bytes, r.output_bytes) == \
        (plan.arena_bytes, plan.scratch_bytes, plan.descriptor_bytes, 0, plan.output_bytes)
    assert r.sram_bytes == plan.peak_sram_with_io_bytes and r.flash_bytes == result.flash_table_bytes
    layers = resources(model, shape, unit_tables=True, target="host")
    assert r.macs == layers.macs and (r.sram_bytes < layers.sram_bytes or fused_rows > 1)


def test_fused_far_tables_bit_exact_on_avr(tmp_path):
    """A fused export whose Linear table (76,800 bytes) lies beyond the AVR's 64 KB: the per-row
    weight offsets (up to 67,200) and the sample offsets pass 32,767, which avr-gcc would add to a
    far pointer in 16 bits (unit_table_offset_s8); outputs and counters equal the reference's."""
    from tests.test_export import run_counted_avr_firmware

    rng = np.random.default_rng(10)
    conv = qmodels.conv(rng, "conv", (1, 8, 8), 4, (3, 3), padding=(1, 1, 1, 1))
    qmodel = QuantizedModel(ops=[conv, QFlatten("flatten", 256), qmodels.linear(rng, "wide", 256, 300)],
                            input_shape=(1, 8, 8), input_scale=1.0, output_scale=1.0)
    x = qmodels.random_input(rng, 2, qmodel.input_shape, boundary=np.unique(conv.tau))
    result, emitted, counts = run_counted_avr_firmware(tmp_path, qmodel, x, execution="fused")
    outputs, expected = run_reference(qmodel, x)
    assert result.far_tables and result.execution == "fused"
    assert np.array_equal(emitted, outputs.reshape(len(x), -1))
    assert counts == {name: list(expected[name].to_dict().values()) for name in result.layers}


@pytest.mark.parametrize("target", ["host", "avr", "msp430"])
def test_fused_code_compiles_warning_free(tmp_path, target):
    """model.c and main.c of a fused export (convs, pools, a global average pool, every kind of
    sink, an MLP head's tail) compile with -Wconversion -Wsign-conversion -Werror for the host and both MCUs."""
    from tests.mcu_tools import require_program
    from tests.test_export import MCU_COMPILERS, STRICT, tiny_avgpool_model
    from tests.test_fused_head import mcu_model  # an MLP head: the tail after the streamed Linear

    if target == "host":
        compiler, flags = CC or "cc", ["-O2"]
    else:
        (compiler, package), flags = MCU_COMPILERS[target]
        require_program(compiler, package)
    extra = ["-isystem", "msp430/include"] if target == "msp430" else []
    rng = np.random.default_rng(6)
    blocks = {"fused_rows": 3, "fused_axis": "width"}
    for k, (qmodel, variant, quotient, options) in enumerate([(qmodels.mnist_like(rng), "unit", "bintree", {}),
                                                              (tiny_avgpool_model(rng), "zeroskip", "bitshift", {}),
                                                              (qmodels.mnist_like(rng), "dense", "bitshift", blocks),
                                                              (tiny_avgpool_model(rng), "unit", "table", blocks),
                                                              (mcu_model(rng)[0], "unit", "bitshift", {})]):
        out = tmp_path / str(k)
        x = qmodels.random_input(rng, 1, qmodel.input_shape)
        export_c(qmodel, out, target=target, variant=variant, linear_quotient=quotient, execution="fused",
                 samples=None if target == "host" else x, **options)
        for source in ("model.c", "main.c"):
            done = subprocess.run([compiler, *flags, *STRICT, *extra, "-I.", "-Ikernels", "-DUNIT_S8_COUNTS=1", "-c",
                                   source, "-o", "/dev/null"], cwd=out, capture_output=True, text=True)
            assert done.returncode == 0, done.stderr


@pytest.mark.usefixtures("one_torch_thread")
def test_fused_rows_auto_takes_the_most_rows_that_fit_and_resources_agree(tmp_path):
    """fused_rows="auto" on the ATmega2560: the first of 24, 16, 8, 4, 2, 1 rows per step (MNIST's
    conv1 has 24 output rows) whose explicit export fits its SRAM; on the host 1. The resource
    model's fused SRAM for "auto" is that export's."""
    import torch

    from unitprune.mcu.reference import quantize_input
    from unitprune.models import build_model
    from unitprune.shrink.resources import resources

    model = build_model("mnist", seed=0).eval()
    x = torch.randn(18, 1, 28, 28)
    qmodel = unitprune.quantize(model, x[:16], variant="unit")
    x_q = quantize_input(qmodel, x[16:])
    fitting = None
    for rows in (24, 16, 8, 4, 2, 1):
        try:
            export_c(qmodel, tmp_path / f"rows{rows}", target="avr", samples=x_q, execution="fused", fused_rows=rows)
        except ExportError as error:
            assert "SRAM" in str(error)
            continue
        fitting = rows
        break
    assert fitting is not None and fitting > 1
    result = export_c(qmodel, tmp_path / "auto", target="avr", samples=x_q, execution="fused", fused_rows="auto")
    assert result.fused_rows == fitting
    assert json.loads((tmp_path / "auto" / "memory_plan.json").read_text())["fused_rows"] == fitting
    r = resources(model, (1, 28, 28), unit_tables=True, target="avr", execution="fused", fused_rows="auto")
    assert r.sram_bytes == result.memory.peak_sram_with_io_bytes
    assert export_c(qmodel, tmp_path / "host", execution="fused", fused_rows="auto").fused_rows == 1

"""C export of quantized models: code generation, memory plan, host build bit-exact against the
integer reference (outputs and every MAC counter), refusals, warning-free compiles."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import unitprune
from unitprune.mcu import codegen
from unitprune.mcu.export import ExportError, export_c, scratch_sizes
from unitprune.mcu.export.memory_plan import plan_memory
from unitprune.mcu.qmodel import LINEAR_QUOTIENTS, VARIANTS, QFlatten, QuantizedModel
from unitprune.mcu.reference import run_reference

from . import qmodels

CC = shutil.which("cc") or shutil.which("gcc")
needs_cc = pytest.mark.skipif(CC is None, reason="no host C compiler (apt-get install gcc)")
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Wconversion", "-Wsign-conversion", "-Werror"]


def check_bit_exact(qmodel: QuantizedModel, out_dir, x: np.ndarray, variant: str, linear_quotient: str) -> dict:
    """Export, build and run on the host; compare with the integer reference bit for bit; return the counts."""
    export_c(qmodel, out_dir, variant=variant, linear_quotient=linear_quotient)
    outputs, counts = unitprune.run_exported(out_dir, x)
    expected, expected_counts = run_reference(dataclasses.replace(qmodel, linear_quotient=linear_quotient), x,
                                              variant=variant)
    np.testing.assert_array_equal(outputs, expected.reshape(len(x), -1))
    assert counts == expected_counts
    return counts


# ----------------------------------------------------------------------------------------------
# codegen
# ----------------------------------------------------------------------------------------------

def test_identifiers_are_valid_and_unique():
    assert codegen.c_identifier("features.0") == "features_0"
    assert codegen.c_identifier("0conv") == "l_0conv"
    assert codegen.c_identifier("int") == "l_int"
    assert codegen.c_identifier("__x__") == "x"
    assert codegen.c_identifier("...") == "l_"
    names = codegen.IdentifierSet()
    assert [names.add(n) for n in ("a.b", "a_b", "a-b")] == ["a_b", "a_b_2", "a_b_3"]


def test_array_values_range_checked_with_the_array_and_index_named():
    with pytest.raises(ValueError, match=r"array w: value 128 at index 2 is outside int8_t"):
        codegen.c_array("int8_t", "w", [1, 2, 128])
    with pytest.raises(ValueError, match="unsupported C type"):
        codegen.c_array("uint64_t", "w", [1])
    with pytest.raises(ValueError, match="no empty arrays"):
        codegen.c_array("int8_t", "w", [])
    text = codegen.c_array("int32_t", "b", np.arange(200) * 1000, flash=True, width=60)
    assert text.startswith("static const int32_t b[200] UNIT_FLASH = {")
    assert max(len(line) for line in text.splitlines()[1:-1]) <= 60


def test_flash_array_above_the_object_limit_is_assembler_data_of_the_same_bytes():
    """A table above ``asm_above`` bytes: the AVR branch's .byte data are the values' little-endian
    bytes (any type), the other branch the plain C array; at or below the limit it is c_array."""
    rng = np.random.default_rng(3)
    small = rng.integers(-100, 100, 10)
    assert codegen.flash_array("int8_t", "s", small, asm_above=10) == codegen.c_array("int8_t", "s", small, flash=True)
    values = rng.integers(-(1 << 31), (1 << 31) - 1, 40, endpoint=True)
    text = codegen.flash_array("int32_t", "big", values, asm_above=100)  # 160 bytes > 100
    asm, c_branch = text.split("#else\n")
    data = [int(v) for line in re.findall(r'"\\t\.byte ([0-9,]+)\\n"', asm) for v in line.split(",")]
    assert bytes(data) == values.astype("<i4").tobytes()
    assert "extern const int32_t big[] UNIT_FLASH;" in asm and ".size big, 160" in asm
    assert c_branch == codegen.c_array("int32_t", "big", values, flash=True) + "#endif\n"
    far = codegen.flash_array("int32_t", "big", values, asm_above=100, far=True)
    assert "extern const UNIT_TABLE int32_t big[]" in far and "static const UNIT_TABLE int32_t big[40]" in far


@needs_cc
def test_arrays_compile_to_the_same_values(tmp_path):
    """Every type's extremes survive the C compiler (the compiled program prints them back)."""
    rng = np.random.default_rng(0)
    arrays = {}
    for ctype, (low, high, _) in codegen.C_TYPES.items():
        values = np.concatenate([[low, high, 0], rng.integers(low, high, 50, endpoint=True)])
        arrays[ctype] = values
    source = ["#include <stdint.h>", "#include <stdio.h>", "#define UNIT_FLASH"]
    prints = []
    for ctype, values in arrays.items():
        name = codegen.c_identifier(ctype, "a_")
        source.append(codegen.c_array(ctype, name, values, flash=True))
        prints.append(f"for (i = 0; i < {len(values)}; i++) printf(\"%lld\\n\", (long long){name}[i]);")
    source.append("int main(void) { int i; " + " ".join(prints) + " return 0; }")
    (tmp_path / "a.c").write_text("\n".join(source))
    subprocess.run([CC, *STRICT, "a.c", "-o", "a"], cwd=tmp_path, check=True)
    printed = subprocess.run([str(tmp_path / "a")], capture_output=True, text=True, check=True).stdout.split()
    assert [int(v) for v in printed] == [int(v) for values in arrays.values() for v in values]


# ----------------------------------------------------------------------------------------------
# memory plan
# ----------------------------------------------------------------------------------------------

def test_memory_plan_of_the_mnist_model_matches_a_hand_count():
    qmodel = qmodels.mnist_like(np.random.default_rng(0))
    plan = plan_memory(qmodel, scratch_sizes(qmodel))
    # conv1 out 6x24x24 = 3456, pool1 out 6x12x12 = 864, conv2 out 16x8x8 = 1024, pool2 out 256,
    # fc out 10 (the caller's output). Live pairs: pool1 reads 3456 and writes 864.
    assert plan.arena_bytes == 3456 + 864
    assert plan.peak_op == "pool1"
    assert plan.scratch_bytes == 4 * 24 * 24  # conv1's accumulators of one output channel
    assert (plan.input_bytes, plan.output_bytes) == (784, 10)
    assert plan.peak_sram_bytes == 4320 + 2304
    kinds = [(op.source.kind, op.target.kind) for op in plan.ops]
    assert kinds == [("input", "arena"), ("arena", "arena"), ("arena", "arena"), ("arena", "arena"),
                     ("arena", "arena"), ("arena", "output")]


def test_memory_plan_follows_the_conv_block_rows():
    qmodel = qmodels.mnist_like(np.random.default_rng(0))  # conv1 out 6x24x24, conv2 16x8x8, fc 10
    for option, scratch in ((None, 4 * 24 * 24), ("plane", 4 * 24 * 24), (0, 4 * 24 * 24), ("min", 4 * 24),
                            (1, 4 * 24), (5, 4 * 5 * 24), ("7", 4 * 7 * 24), (100, 4 * 24 * 24)):
        sizes = scratch_sizes(qmodel, option)
        # conv2's block is clipped to its 8 rows; fc needs 4 * 10
        assert sizes == {"conv1": scratch, "conv2": 4 * min(scratch // 96, 8) * 8, "fc": 40}, option
        assert plan_memory(qmodel, sizes).scratch_bytes == scratch
    for bad in (-1, "rows", 2.5, True):
        with pytest.raises(ValueError, match="conv_block_rows must be"):
            scratch_sizes(qmodel, bad)


def test_memory_plan_relu_on_the_input_copies_and_flatten_only_copies_through():
    relu = QuantizedModel(ops=[qmodels.relu("r", 12), QFlatten("f", 12)], input_shape=(12,), input_scale=1.0,
                          output_scale=1.0)
    plan = plan_memory(relu)
    assert plan.ops[0].copy_first and plan.ops[0].target.kind == "output" and plan.arena_bytes == 0
    flat = QuantizedModel(ops=[QFlatten("f", 12)], input_shape=(3, 4), input_scale=1.0, output_scale=1.0)
    assert plan_memory(flat).copy_input_to_output


@given(sizes=st.lists(st.integers(1, 50), min_size=1, max_size=8), seed=st.integers(0, 1000))
@settings(max_examples=50, deadline=None)
def test_memory_plan_never_overlaps_live_buffers(sizes, seed):
    """Chains of linear layers (with in-place ReLUs): the two buffers of every op are disjoint and
    the arena is the largest live pair (the optimum of a chain)."""
    rng = np.random.default_rng(seed)
    ops, width = [], 7
    for index, size in enumerate(sizes):
        ops.append(qmodels.linear(rng, f"fc{index}", width, size))
        if index % 2:
            ops.append(qmodels.relu(f"relu{index}", size))
        width = size
    plan = plan_memory(QuantizedModel(ops=ops, input_shape=(7,), input_scale=1.0, output_scale=1.0))
    pairs = [0]
    for op in plan.ops:
        if op.source.kind == op.target.kind == "arena" and not op.in_place:
            a, b = op.source, op.target
            assert a.offset + a.size <= b.offset or b.offset + b.size <= a.offset
        assert all(0 <= s.offset and s.offset + s.size <= plan.arena_bytes for s in (op.source, op.target)
                   if s.kind == "arena")
        pairs.append(op.live_bytes)
    inner = sizes[:-1]
    assert plan.arena_bytes == max([a + b for a, b in zip(inner, inner[1:])] + inner + [0])
    assert plan.arena_bytes == max(pairs)


# ----------------------------------------------------------------------------------------------
# refusals
# ----------------------------------------------------------------------------------------------

def test_a_non_empty_folder_is_never_overwritten(tmp_path):
    qmodel = qmodels.mnist_like(np.random.default_rng(1))
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="not empty; nothing was written.*overwrite=True"):
        export_c(qmodel, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    result = export_c(qmodel, tmp_path, overwrite=True, samples=np.zeros((2, 1, 28, 28), np.int8))
    assert (tmp_path / "samples.bin").is_file() and (tmp_path / "notes.txt").read_text() == "mine"
    export_c(qmodel, tmp_path, overwrite=True)  # no samples now: the stale samples.bin goes
    assert not (tmp_path / "samples.bin").exists() and (tmp_path / "notes.txt").exists()
    assert "samples.bin" in result.files


def test_bad_models_and_targets_are_refused_naming_the_layer(tmp_path):
    rng = np.random.default_rng(2)
    qmodel = qmodels.mnist_like(rng)
    broken = dataclasses.replace(qmodel, ops=[qmodel.ops[0], qmodel.ops[2]])  # conv2 after conv1, no pool
    with pytest.raises(ExportError, match="layer conv2: takes 864 values per sample but the previous op gives 3456"):
        export_c(broken, tmp_path / "a")
    exact = dataclasses.replace(qmodel, approx="exact")
    with pytest.raises(ExportError, match="layer fc: approx='exact' quotients .* need linear_quotient='table'"):
        export_c(exact, tmp_path / "a", linear_quotient="bintree")
    with pytest.raises(ExportError, match="unknown target"):
        export_c(qmodel, tmp_path / "b", target="arm")
    with pytest.raises(ExportError, match="target avr needs samples"):
        export_c(qmodel, tmp_path / "c", target="avr")
    # 16 x 17,000 weights: beyond the 64 KB of near flash reads (far tables) and the chip's 256 KB
    big = QuantizedModel(ops=[qmodels.linear(rng, "small", 16, 16), qmodels.linear(rng, "big", 16, 17_000)],
                         input_shape=(16,), input_scale=1.0, output_scale=1.0)
    with pytest.raises(ExportError, match="layer big's constant tables end at byte .* beyond the 262144 bytes.*"
                                          "atmega2560's flash, read through far table pointers"):
        export_c(big, tmp_path / "d", target="avr", samples=np.zeros((1, 16), np.int8))
    # the simulated MSP430 reads 49,024 bytes of constants: the reason names what does not fit
    small = QuantizedModel(ops=[qmodels.linear(rng, "small", 16, 16)], input_shape=(16,), input_scale=1.0,
                           output_scale=1.0)
    with pytest.raises(ExportError, match="the 49600 bytes of embedded samples and the model's .* bytes of constant "
                                          "tables exceed the 49024 bytes.*embed fewer samples"):
        export_c(small, tmp_path / "g", target="msp430", samples=np.zeros((3100, 16), np.int8))
    wide = QuantizedModel(ops=[qmodels.linear(rng, "wide", 16, 4000)], input_shape=(16,), input_scale=1.0,
                          output_scale=1.0)  # 64,000 weights
    with pytest.raises(ExportError, match="layer wide's constant tables end at byte .* without any embedded sample, "
                                          "beyond the 49024 bytes"):
        export_c(wide, tmp_path / "h", target="msp430", samples=np.zeros((1, 16), np.int8))
    # 3,300 x 10 = 33,000 weights: one table above the 32,767 bytes avr-gcc accepts in a C array
    # ("size of array is too large"): on AVR it is assembler data (AVR builds), a C array elsewhere
    one_array = QuantizedModel(ops=[qmodels.linear(rng, "fc_big", 3300, 10)], input_shape=(3300,), input_scale=1.0,
                               output_scale=1.0)
    export_c(one_array, tmp_path / "f", target="avr", samples=np.zeros((1, 3300), np.int8))
    avr_c = (tmp_path / "f" / "model.c").read_text()
    assert avr_c.count(".section .progmem.data.fc_big_weight_t") == 1 and "fc_big_weight_t[33000]" in avr_c
    export_c(one_array, tmp_path / "g", target="msp430", samples=np.zeros((1, 3300), np.int8))
    assert "__asm__" not in (tmp_path / "g" / "model.c").read_text()  # only AVR needs it
    wide = QuantizedModel(ops=[qmodels.conv(rng, "conv1", (1, 40, 40), 8, (3, 3), padding=(1, 1, 1, 1)),
                               QFlatten("flatten", 8 * 40 * 40), qmodels.linear(rng, "fc", 8 * 40 * 40, 2)],
                          input_shape=(1, 40, 40), input_scale=1.0, output_scale=1.0)
    with pytest.raises(ExportError, match=r"8192 bytes of SRAM.*peak at layer"):
        export_c(wide, tmp_path / "e", target="avr", samples=np.zeros((1, 1, 40, 40), np.int8))
    assert not any((tmp_path / name).exists() for name in "abcde")


# ----------------------------------------------------------------------------------------------
# host build, bit-exact against the integer reference
# ----------------------------------------------------------------------------------------------

@needs_cc
@pytest.mark.parametrize("variant,linear_quotient",
                         [("dense", "bitshift"), ("zeroskip", "bitshift")]
                         + [("unit", q) for q in LINEAR_QUOTIENTS])
def test_mnist_model_bit_exact_for_every_variant(tmp_path, variant, linear_quotient):
    rng = np.random.default_rng(3)
    qmodel = qmodels.mnist_like(rng)
    qmodel.ops[-1] = qmodels.boundary_weights(rng, qmodel.ops[-1])
    x = qmodels.random_input(rng, 6, qmodel.input_shape, zero_fraction=0.5, boundary=np.unique(qmodel.ops[0].tau))
    check_bit_exact(qmodel, tmp_path / "export", x, variant, linear_quotient)


@st.composite
def chains(draw):
    """A random chain: conv (1d or 2d; stride, padding, dilation, groups), optional standalone
    ReLU and max-pool, flatten, linear (optionally a ReLU first, on the read-only input)."""
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    conv1d = draw(st.booleans())
    channels = draw(st.sampled_from([1, 2, 3, 4, 6]))
    groups = draw(st.sampled_from([g for g in (1, 2, 3) if channels % g == 0]))
    out_channels = groups * draw(st.integers(1, 3))
    height = 1 if conv1d else draw(st.integers(1, 7))
    width = draw(st.integers(3, 12))
    kh = 1 if conv1d else draw(st.integers(1, 3))
    kw = draw(st.integers(1, 3))
    stride = (1 if conv1d else draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    dilation = (1 if conv1d else draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pad_y = (0, 0) if conv1d else (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    padding = (*pad_y, draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    if height + sum(pad_y) < dilation[0] * (kh - 1) + 1 or width + sum(padding[2:]) < dilation[1] * (kw - 1) + 1:
        kh, kw, dilation = 1, 1, (1, 1)  # the drawn kernel does not fit: a 1x1 one always does
    fused = draw(st.booleans())
    ops = []
    in_size = channels * height * width
    if draw(st.booleans()):
        ops.append(qmodels.relu("relu0", in_size))
    conv = qmodels.conv(rng, "features.0", (channels, height, width), out_channels, (kh, kw), stride, dilation,
                        padding, groups, relu=fused, sparsity=draw(st.sampled_from([0.0, 0.3, 0.7])), conv1d=conv1d)
    ops.append(conv)
    shape = qmodels.output_shape(conv)
    if not fused and draw(st.booleans()):
        ops.append(qmodels.relu("relu1", int(np.prod(shape))))
    if draw(st.booleans()) and shape[1] >= (1 if conv1d else 2) and shape[2] >= 2:
        pool = qmodels.maxpool("pool", shape, kernel=(1 if conv1d else 2, 2),
                               stride=(1 if conv1d else draw(st.integers(1, 2)), draw(st.integers(1, 2))))
        ops.append(pool)
        shape = qmodels.output_shape(pool)
    flat = int(np.prod(shape))
    ops.append(QFlatten("flatten", flat))
    classifier = qmodels.linear(rng, "classifier", flat, draw(st.integers(1, 12)), shift_start=draw(st.integers(0, 3)),
                                threshold_q=draw(st.sampled_from([None, 0, 200, 40000])))
    ops.append(qmodels.boundary_weights(rng, classifier))
    input_shape = (channels, width) if conv1d else (channels, height, width)
    qmodel = QuantizedModel(ops=ops, input_shape=input_shape, input_scale=1.0, output_scale=1.0)
    x = qmodels.random_input(rng, 3, input_shape, zero_fraction=0.4, boundary=np.unique(conv.tau))
    return qmodel, x


@needs_cc
@given(case=chains(), variant=st.sampled_from(VARIANTS), linear_quotient=st.sampled_from(LINEAR_QUOTIENTS))
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_random_layers_bit_exact(tmp_path_factory, case, variant, linear_quotient):
    qmodel, x = case
    check_bit_exact(qmodel, tmp_path_factory.mktemp("chain"), x, variant, linear_quotient)


@needs_cc
@given(case=chains(), variant=st.sampled_from(VARIANTS), block_rows=st.sampled_from(["min", 2, 3, 5]))
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_random_layers_bit_exact_with_row_blocks(tmp_path_factory, case, variant, block_rows):
    """The generated C passes conv_block_rows to the kernels (scratch 4*B*OW, checked by
    unit_model_check at start-up) and stays bit-exact with the integer reference."""
    qmodel, x = case
    out_dir = tmp_path_factory.mktemp("blocks")
    result = export_c(qmodel, out_dir, variant=variant, conv_block_rows=block_rows)
    conv = qmodel.ops[1] if qmodel.ops[0].name == "relu0" else qmodel.ops[0]
    rows = 1 if block_rows == "min" else min(block_rows, conv.out_height)
    plan = json.loads((out_dir / "memory_plan.json").read_text())
    kernel = plan["kernels"]["layers"][conv.name]["kernel"]
    if kernel in ("unit_conv2d_dense_s8", "unit_conv2d_sparse_s8"):  # output-stationary: one row's sums
        rows = 1
    pooled = plan.get("pooled_convs", {}).get(conv.name)
    if pooled is not None:  # max-pooled on its accumulators: the pool's rows (unitprune.mcu.export.pooled_conv)
        rows = pooled["kernel"][0]
    assert result.memory.ops[qmodel.ops.index(conv)].scratch_bytes == 4 * rows * conv.out_width
    assert f"{conv.groups}, {rows}}};" in (out_dir / "model.c").read_text()  # unit_conv2d_params.block_rows
    outputs, counts = unitprune.run_exported(out_dir, x)
    expected, expected_counts = run_reference(qmodel, x, variant=variant)
    np.testing.assert_array_equal(outputs, expected.reshape(len(x), -1))
    assert counts == expected_counts


def test_conv_block_rows_in_the_manifest_and_bad_values_refused(tmp_path):
    qmodel = qmodels.mnist_like(np.random.default_rng(4))
    plane = export_c(qmodel, tmp_path / "plane")
    rows = export_c(qmodel, tmp_path / "min", conv_block_rows="min")
    assert json.loads((tmp_path / "plane" / "memory_plan.json").read_text())["conv_block_rows"] == "plane"
    assert json.loads((tmp_path / "min" / "memory_plan.json").read_text())["conv_block_rows"] == 1
    assert (plane.conv_block_rows, rows.conv_block_rows) == (0, 1)
    assert plane.memory.scratch_bytes - rows.memory.scratch_bytes == 4 * 24 * 24 - 4 * 24
    assert plane.memory.descriptor_bytes == rows.memory.descriptor_bytes  # block_rows is a params field
    assert plane.memory.arena_bytes == rows.memory.arena_bytes
    with pytest.raises(ExportError, match="conv_block_rows must be"):
        export_c(qmodel, tmp_path / "bad", conv_block_rows=-2)
    assert not (tmp_path / "bad").exists()


@needs_cc
def test_export_layout_and_manifest(tmp_path):
    qmodel = qmodels.mnist_like(np.random.default_rng(4))
    result = export_c(qmodel, tmp_path)
    manifest = json.loads((tmp_path / "memory_plan.json").read_text())
    assert manifest["memory"]["peak_sram_bytes"] == result.memory.peak_sram_bytes == 4320 + 2304 + \
        result.memory.descriptor_bytes
    assert manifest["memory"]["input_counted_in_peak"] is False
    assert manifest["layers"] == ["conv1", "conv2", "fc"]
    assert set(manifest["files"]) == {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()}
    assert manifest["flash"]["tables_bytes"] == result.flash_table_bytes == \
        (150 + 150 + 6 * 9) + (2400 + 2400 + 16 * 9) + (2560 + 10 * 9)
    assert "Generated by unitprune" in (tmp_path / "model.c").read_text()
    # the Makefile builds the same host runner that run_exported builds
    subprocess.run(["make", "-s", "model_host"], cwd=tmp_path, check=True, capture_output=True)
    x = qmodels.random_input(np.random.default_rng(5), 2, qmodel.input_shape)
    (tmp_path / "x.bin").write_bytes(x.tobytes())
    printed = subprocess.run(["./model_host", "x.bin", "y.bin"], cwd=tmp_path, capture_output=True, text=True,
                             check=True).stdout
    assert printed.splitlines()[0] == "samples 2"
    expected, _ = run_reference(qmodel, x)
    assert (tmp_path / "y.bin").read_bytes() == expected.astype(np.int8).tobytes()


# ----------------------------------------------------------------------------------------------
# warning-free compiles
# ----------------------------------------------------------------------------------------------

@needs_cc
def test_generated_code_compiles_warning_free_on_the_host(tmp_path):
    qmodel = qmodels.mnist_like(np.random.default_rng(6))
    for variant, quotient in [("dense", "bitshift"), ("unit", "bintree"), ("unit", "table")]:
        out = tmp_path / f"{variant}_{quotient}"
        export_c(qmodel, out, variant=variant, linear_quotient=quotient)
        for counts in ("0", "1"):
            built = subprocess.run([CC, *STRICT, "-O2", "-I.", "-Ikernels", f"-DUNIT_S8_COUNTS={counts}", "-c",
                                    "main.c", "model.c"], cwd=out, capture_output=True, text=True)
            assert built.returncode == 0 and not built.stderr, built.stderr


# ----------------------------------------------------------------------------------------------
# the command line
# ----------------------------------------------------------------------------------------------

@needs_cc
@pytest.mark.usefixtures("one_torch_thread")
def test_cli_export_on_a_model_file_and_on_weights(tmp_path, capsys):
    import torch

    from unitprune.cli import main
    from unitprune.models import build_model

    model = build_model("digits", seed=0)  # untrained: the check is bit-exactness, not accuracy
    torch.save(model, tmp_path / "user_model.pt")
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    out_dir = tmp_path / "export"
    argv = ["export", "--model-file", str(tmp_path / "user_model.pt"), "--trust-model-file", "--data", "digits",
            "--out-dir", str(out_dir), "--variant", "unit", "--linear-quotient", "bintree"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "bit-exact against the integer reference (outputs and every counter): yes" in printed
    summary = json.loads((out_dir / "host_check.json").read_text())
    assert summary["bit_exact"] and summary["test_samples"] > 100
    assert summary["model_sram_bytes"] == json.loads((out_dir / "memory_plan.json").read_text())["memory"][
        "peak_sram_bytes"]
    assert main(argv) == 2  # the folder is not empty now
    assert "not empty" in capsys.readouterr().err
    assert main(["export", "--model", "digits", "--weights", str(tmp_path / "weights.pt"), "--data", "digits",
                 "--out-dir", str(out_dir), "--overwrite", "--variant", "zeroskip"]) == 0
    assert "yes" in capsys.readouterr().out.splitlines()[-2]


def test_cli_export_conv_block_rows(tmp_path, capsys):
    import torch

    from unitprune.cli import main
    from unitprune.models import build_model

    torch.save(build_model("digits", seed=0).state_dict(), tmp_path / "weights.pt")
    common = ["export", "--model", "digits", "--weights", str(tmp_path / "weights.pt"), "--data", "digits"]
    assert main([*common, "--out-dir", str(tmp_path / "bad"), "--conv-block-rows", "0.5"]) == 2
    assert "--conv-block-rows: conv_block_rows must be" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    assert main([*common, "--out-dir", str(tmp_path / "min"), "--conv-block-rows", "min"]) == 0
    summary = json.loads((tmp_path / "min" / "host_check.json").read_text())
    plan = json.loads((tmp_path / "min" / "memory_plan.json").read_text())
    assert summary["bit_exact"] and summary["conv_block_rows"] == plan["conv_block_rows"] == 1
    convs = [op for op in plan["memory"]["ops"] if op["kind"] == "conv"]
    assert [op["scratch_bytes"] for op in convs] == [4 * 6]  # conv1's output is 6x6: one row of 6, not 4 * 36


def tiny_model(rng: np.random.Generator) -> QuantizedModel:
    """conv 1->4 k3 (padding 1), max-pool 2, flatten, linear 64->5: small enough for fast MCU runs."""
    conv = qmodels.conv(rng, "conv", (1, 8, 8), 4, (3, 3), padding=(1, 1, 1, 1))
    pool = qmodels.maxpool("pool", qmodels.output_shape(conv))
    return QuantizedModel(ops=[conv, pool, QFlatten("flatten", 64), qmodels.linear(rng, "fc", 64, 5)],
                          input_shape=(1, 8, 8), input_scale=1.0, output_scale=1.0)


MCU_COMPILERS = {
    "avr": (("avr-gcc", "gcc-avr avr-libc"), ["-mmcu=atmega2560", "-O2"]),
    "msp430": (("clang-14", "clang-14 lld-14"), ["--target=msp430", "-O2", "-ffreestanding", "-nostdlib"]),
}


@pytest.mark.parametrize("target,model", [("avr", "mnist"), ("msp430", "mnist"), ("avr", "wide-table"),
                                          ("avr", "far-tables")])
def test_generated_mcu_code_compiles_warning_free(tmp_path, target, model):
    """wide-table: a table above avr-gcc's object limit, written as assembler data; far-tables: the
    tables beyond 64 KB (GNU C's __memx; no far pointer converted to a near one)."""
    from tests.mcu_tools import require_program

    (program, packages), flags = MCU_COMPILERS[target]
    compiler = require_program(program, packages)
    rng = np.random.default_rng(7)
    make = {"mnist": qmodels.mnist_like, "wide-table": wide_table_model, "far-tables": far_table_model}[model]
    qmodel = make(rng)
    result = export_c(qmodel, tmp_path, target=target, samples=qmodels.random_input(rng, 2, qmodel.input_shape))
    assert result.far_tables == (model == "far-tables")
    far = ["-std=gnu99", "-DUNIT_FAR_TABLES=1", "-Waddr-space-convert"] if result.far_tables else []
    for defines in ([], ["-DUNIT_MODEL_MARKERS=1"], ["-DUNIT_S8_COUNTS=1"]):
        built = subprocess.run([compiler, *flags, *STRICT, *far, "-DUNIT_SKIP_BRANCH=1", "-I.", "-Ikernels", *defines,
                                "-c", "main.c", "model.c"], cwd=tmp_path, capture_output=True, text=True)
        assert built.returncode == 0 and not built.stderr, f"{target} {defines}:\n{built.stderr}"
    if far:  # built without the far tables, the kernels would read the wrong memory: it does not compile
        near = subprocess.run([compiler, *flags, *STRICT, "-I.", "-Ikernels", "-c", "model.c"], cwd=tmp_path,
                              capture_output=True, text=True)
        assert near.returncode != 0 and "needs far tables" in near.stderr


@pytest.mark.parametrize("target", ["avr", "msp430"])
def test_exported_firmware_runs_bit_exact_on_the_simulator(tmp_path, target):
    """The export's own Makefile builds the firmware (per inference and per layer), and it runs
    bit-exactly in the simulator of unitprune.mcu.targets."""
    from tests.mcu_tools import require_program, require_target
    from unitprune.mcu import targets
    from unitprune.mcu.targets.common import firmware_from_elf

    require_target(target)
    require_program("make", "make")
    rng = np.random.default_rng(8)
    qmodel = tiny_model(rng)
    x = qmodels.random_input(rng, 3, qmodel.input_shape, boundary=np.unique(qmodel.ops[0].tau))
    result = export_c(qmodel, tmp_path, target=target, samples=x)
    made = subprocess.run(["make", "-s", "model.elf", "model_layers.elf"], cwd=tmp_path, capture_output=True,
                          text=True)
    assert made.returncode == 0, made.stderr
    expected, _ = run_reference(qmodel, x)
    for elf, labels in (("model.elf", ["inference"] * 3), ("model_layers.elf", ["conv", "pool", "fc"] * 3)):
        run = targets.run(firmware_from_elf(target, tmp_path / elf, tmp_path, [], ""))
        emitted = [region for region in run.regions if region.data]
        assert np.array_equal(np.stack([np.frombuffer(bytes(r.data), np.int8) for r in emitted]),
                              expected.reshape(len(x), -1))
        assert [region.label for region in run.regions] == labels
        assert run.stack_bytes + result.memory.peak_sram_with_io_bytes < 8192


@pytest.mark.parametrize("target", ["avr", "msp430"])
def test_exported_firmware_with_one_row_blocks_runs_bit_exact_on_the_simulator(tmp_path, target):
    """conv_block_rows='min' (one output row of accumulators at a time): the firmware's outputs
    equal the integer reference's, and its scratch holds one row."""
    from tests.mcu_tools import require_program, require_target
    from unitprune.mcu import targets
    from unitprune.mcu.targets.common import firmware_from_elf

    require_target(target)
    require_program("make", "make")
    rng = np.random.default_rng(12)
    qmodel = tiny_model(rng)
    x = qmodels.random_input(rng, 3, qmodel.input_shape, boundary=np.unique(qmodel.ops[0].tau))
    result = export_c(qmodel, tmp_path, target=target, samples=x, conv_block_rows="min")
    assert result.memory.scratch_bytes == 4 * 8  # one conv output row (8 wide); fc needs 4 * 5
    made = subprocess.run(["make", "-s", "model.elf"], cwd=tmp_path, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    expected, _ = run_reference(qmodel, x)
    run = targets.run(firmware_from_elf(target, tmp_path / "model.elf", tmp_path, [], ""))
    emitted = [region for region in run.regions if region.data]
    assert np.array_equal(np.stack([np.frombuffer(bytes(r.data), np.int8) for r in emitted]),
                          expected.reshape(len(x), -1))


def wide_table_model(rng: np.random.Generator) -> QuantizedModel:
    """conv 1->4 k3 (padding 1), flatten, linear 256->150 (ReLU), linear 150->5: the 38,400-byte weight
    table of ``wide`` is above the 32,767 bytes avr-gcc allows one C object, and the kernel's offsets
    into it pass 32,767 (AVR: assembler data, read through 16-bit LPM pointers)."""
    conv = qmodels.conv(rng, "conv", (1, 8, 8), 4, (3, 3), padding=(1, 1, 1, 1))
    return QuantizedModel(ops=[conv, QFlatten("flatten", 256), qmodels.linear(rng, "wide", 256, 150, relu=True),
                               qmodels.linear(rng, "fc", 150, 5)], input_shape=(1, 8, 8), input_scale=1.0,
                          output_scale=1.0)


def far_table_model(rng: np.random.Generator) -> QuantizedModel:
    """conv 1->4 k3 (padding 1), flatten, linear 256->300 (ReLU), linear 300->5: 81,117 bytes of tables,
    beyond the 64 KB the AVR's 16-bit flash reads reach (far tables). The 76,800-byte weight table
    of ``wide`` (assembler data) crosses the 64 KB boundary, and the other tables lie above it."""
    conv = qmodels.conv(rng, "conv", (1, 8, 8), 4, (3, 3), padding=(1, 1, 1, 1))
    return QuantizedModel(ops=[conv, QFlatten("flatten", 256), qmodels.linear(rng, "wide", 256, 300, relu=True),
                               qmodels.linear(rng, "fc", 300, 5, tree_magnitudes=rng.integers(0, 40, 500))],
                          input_shape=(1, 8, 8), input_scale=1.0, output_scale=1.0)


def run_counted_avr_firmware(tmp_path, qmodel: QuantizedModel, x: np.ndarray, **options):
    """Export for AVR with the counters compiled in, build with the export's Makefile, run in simavr:
    (ExportResult, the emitted outputs [n, out], the counters {layer: [7 values]})."""
    from tests.mcu_tools import require_program, require_target
    from unitprune.mcu import targets
    from unitprune.mcu.targets.common import firmware_from_elf

    require_target("avr")
    require_program("make", "make")
    result = export_c(qmodel, tmp_path, target="avr", samples=x, counters=True, **options)
    made = subprocess.run(["make", "-s", "model.elf"], cwd=tmp_path, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    run = targets.run(firmware_from_elf("avr", tmp_path / "model.elf", tmp_path, [], ""))
    counts = np.frombuffer(bytes(run.region("counts").data), "<i8").reshape(len(result.layers), 7)
    emitted = [region.data for region in run.regions if region.label == "inference"]
    return (result, np.stack([np.frombuffer(bytes(data), np.int8) for data in emitted]),
            {name: list(row) for name, row in zip(result.layers, counts.tolist())})


@pytest.mark.parametrize("make_model", [tiny_model, wide_table_model, far_table_model],
                         ids=["tiny", "wide-table", "far-tables"])
def test_mcu_counters_equal_the_reference(tmp_path, make_model):
    """counters=True compiles the MAC counters into the AVR firmware; its last region carries them,
    and the outputs before it are the reference's. Only the model beyond 64 KB gets far tables."""
    rng = np.random.default_rng(9)
    qmodel = make_model(rng)
    x = qmodels.random_input(rng, 2, qmodel.input_shape)
    result, emitted, counts = run_counted_avr_firmware(tmp_path, qmodel, x)
    outputs, expected = run_reference(qmodel, x)
    assert np.array_equal(emitted, outputs.reshape(len(x), -1))
    assert counts == {name: list(expected[name].to_dict().values()) for name in result.layers}
    far = make_model is far_table_model
    assert result.far_tables == far and (result.flash_table_bytes > 65_024) == far
    makefile, model_c = (tmp_path / "Makefile").read_text(), (tmp_path / "model.c").read_text()
    assert ("-DUNIT_FAR_TABLES=1" in makefile) == far and ("atmega2560 -std=c99" in makefile) != far
    assert ("UNIT_TABLE" in model_c) == far and ("#define UNIT_MODEL_FAR_TABLES 1" in model_c) == far


@pytest.mark.parametrize("variant,linear_quotient", [("dense", "bitshift"), ("zeroskip", "bitshift"),
                                                     ("unit", "bintree"), ("unit", "table")])
def test_far_tables_bit_exact_for_every_kernel(tmp_path, variant, linear_quotient):
    """Beyond 64 KB of tables every kernel reads them through far pointers, bit-exact (outputs and
    counters), and the RAM descriptors hold 3-byte table pointers: the memory plan counts them so."""
    from unitprune.mcu.targets.specs import CONV_PARAMS_FIELDS

    rng = np.random.default_rng(10)
    qmodel = dataclasses.replace(far_table_model(rng), variant=variant, linear_quotient=linear_quotient)
    x = qmodels.random_input(rng, 2, qmodel.input_shape, boundary=np.unique(qmodel.ops[0].tau))
    result, emitted, counts = run_counted_avr_firmware(tmp_path, qmodel, x)
    outputs, expected = run_reference(qmodel, x)
    assert np.array_equal(emitted, outputs.reshape(len(x), -1))
    assert counts == {name: list(expected[name].to_dict().values()) for name in result.layers}
    requant, tree = 3 * 3 + 4 + 4, 4 + 4 * 3  # byte-aligned structs, 3-byte __memx pointers
    trees = 2 * tree if linear_quotient == "bintree" and variant == "unit" else 0
    assert result.far_tables and result.memory.descriptor_bytes == 4 * CONV_PARAMS_FIELDS + 3 * requant + trees


@needs_cc
@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("conv1d", [True, False], ids=["conv1d", "conv2d"])
def test_user_models_through_quantize_bit_exact(tmp_path, conv1d):
    """A torch model of the supported layers (BatchNorm folded, stride, padding, dilation, groups,
    standalone ReLU after a max-pool), converted, calibrated and quantized by unitprune, exported."""
    import torch
    import torch.nn as nn

    from unitprune.mcu.reference import quantize_input

    torch.manual_seed(0)
    if conv1d:
        model = nn.Sequential(nn.Conv1d(2, 4, 3, stride=2, padding=2, dilation=2), nn.BatchNorm1d(4), nn.ReLU(),
                              nn.Conv1d(4, 6, 3, groups=2), nn.MaxPool1d(2), nn.ReLU(), nn.Flatten(),
                              nn.Linear(6 * 4, 5))
        x = torch.randn(40, 2, 20)
    else:
        model = nn.Sequential(nn.Conv2d(2, 4, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(1, 2)),
                              nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3, groups=4), nn.MaxPool2d(2),
                              nn.ReLU(), nn.Flatten(), nn.Linear(4 * 2 * 4, 5))
        x = torch.randn(40, 2, 11, 9)
    with torch.no_grad():  # non-trivial BatchNorm statistics
        model(x)
        model[1].running_mean.uniform_(-0.5, 0.5)
        model[1].running_var.uniform_(0.5, 2.0)
    model.eval()
    unit_model = unitprune.convert(model, unitprune.UnITConfig(approx="bitshift"))
    unitprune.calibrate(unit_model, x[:20], percentile=30)
    qmodel = unitprune.quantize(unit_model, x[:20], linear_quotient="bintree")
    x_q = quantize_input(qmodel, x[20:])
    counts = check_bit_exact(qmodel, tmp_path / "export", x_q, "unit", "bintree")
    assert len(counts) == 3 and all(c.threshold > 0 for c in counts.values())  # UnIT skipped in every layer


@needs_cc
@pytest.mark.usefixtures("one_torch_thread")
def test_fatrelu_model_bit_exact_and_ships_the_threshold_kernel(tmp_path):
    """FATReLU fused after a conv (+BatchNorm) and after a linear, and standalone after a max-pool;
    UnIT calibrated on top: the exported C equals the integer reference for zeroskip and unit."""
    import torch
    import torch.nn as nn

    from unitprune.baselines.fatrelu import FATReLU, calibrate_fatrelu
    from unitprune.mcu.qmodel import QThresholdReLU
    from unitprune.mcu.reference import quantize_input

    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), FATReLU(), nn.Conv2d(4, 4, 3),
                          nn.MaxPool2d(2), FATReLU(), nn.Flatten(), nn.Linear(4 * 3 * 3, 8), FATReLU(),
                          nn.Linear(8, 5)).eval()
    x = torch.randn(40, 2, 8, 8)
    calibrate_fatrelu(model, x[:20], percentile=50)
    unit_model = unitprune.convert(model, unitprune.UnITConfig(approx="bitshift"))
    unitprune.calibrate(unit_model, x[:20], percentile=30)
    qmodel = unitprune.quantize(unit_model, x[:20])
    thresholds = [op for op in qmodel.ops if isinstance(op, QThresholdReLU)]
    assert [op.name for op in thresholds] == ["2", "5", "8"] and all(op.threshold_q > 0 for op in thresholds)
    x_q = quantize_input(qmodel, x[20:])
    for variant in ("zeroskip", "unit"):
        out_dir = tmp_path / variant
        counts = check_bit_exact(qmodel, out_dir, x_q, variant, "bitshift")
        assert sum(c.zero_activation for c in counts.values()) > 0
        model_c = (out_dir / "model.c").read_text()
        assert model_c.count("unit_threshold_relu_s8(") == 3
        assert (out_dir / "kernels" / "unit_threshold_relu_s8.c").is_file()
    # the thresholds change the result: without them (ReLU) the outputs differ
    relu_only = dataclasses.replace(qmodel, ops=[op for op in qmodel.ops if op.name not in ("2", "8")])
    relu_only.ops[relu_only.ops.index(thresholds[1])] = qmodels.relu("5", thresholds[1].size)
    assert not np.array_equal(run_reference(relu_only, x_q)[0], run_reference(qmodel, x_q)[0])


# ----------------------------------------------------------------------------------------------
# average pool (DS-CNN's global pool)
# ----------------------------------------------------------------------------------------------

def _ds_cnn_like(seed: int):
    """conv + BN + ReLU, depthwise 3x3 + BN + ReLU, pointwise + BN + ReLU, global average pool, linear."""
    import torch
    import torch.nn as nn

    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(1, 6, (4, 3), stride=2, padding=1, bias=False), nn.BatchNorm2d(6), nn.ReLU(),
                          nn.Conv2d(6, 6, 3, padding=1, groups=6, bias=False), nn.BatchNorm2d(6), nn.ReLU(),
                          nn.Conv2d(6, 8, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
    with torch.no_grad():
        for bn in (model[1], model[4], model[7]):
            bn.running_mean.uniform_(-0.3, 0.3)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.2, 0.2)
    return model.eval()


@needs_cc
@pytest.mark.usefixtures("one_torch_thread")
def test_ds_cnn_like_model_bit_exact_and_its_resources_equal_the_memory_plan(tmp_path):
    """Depthwise/pointwise blocks and a global average pool, quantized, exported for the host: bit-exact
    with the integer reference; unitprune.resources gives the exporter's memory plan and flash tables."""
    import torch

    from unitprune.mcu.qmodel import QAvgPool
    from unitprune.mcu.reference import quantize_input
    from unitprune.shrink.resources import resources

    model = _ds_cnn_like(2)
    x = torch.randn(24, 1, 12, 10)
    for variant in ("dense", "unit"):
        qmodel = unitprune.quantize(model, x[:16], variant=variant)
        pools = [op for op in qmodel.ops if isinstance(op, QAvgPool)]
        assert [(op.kernel, op.out_height, op.out_width) for op in pools] == [((6, 5), 1, 1)]
        x_q = quantize_input(qmodel, x[16:])
        check_bit_exact(qmodel, tmp_path / variant, x_q, variant, "bitshift")
        assert (tmp_path / variant / "kernels" / "unit_avgpool2d_s8.c").is_file()
        result = export_c(qmodel, tmp_path / f"{variant}-plan", target="host")
        r = resources(model, (1, 12, 10), unit_tables=variant == "unit", target="host")
        plan = result.memory
        assert [op.kind for op in plan.ops].count("avgpool") == 1
        assert (r.arena_bytes, r.scratch_bytes, r.descriptor_bytes, r.input_bytes, r.output_bytes) == \
            (plan.arena_bytes, plan.scratch_bytes, plan.descriptor_bytes, plan.input_bytes, plan.output_bytes)
        assert r.sram_bytes == plan.peak_sram_with_io_bytes and r.flash_bytes == result.flash_table_bytes


def tiny_avgpool_model(rng: np.random.Generator) -> QuantizedModel:
    """conv 1->4 k3 (padding 1, no ReLU: signed sums), average pool 3x3 stride 2, flatten, linear 36->5."""
    from unitprune.mcu.qmodel import QAvgPool

    conv = qmodels.conv(rng, "conv", (1, 8, 8), 4, (3, 3), padding=(1, 1, 1, 1), relu=False)
    pool = QAvgPool("pool", 4, 8, 8, (3, 3), (2, 2), 3, 3)
    return QuantizedModel(ops=[conv, pool, QFlatten("flatten", 36), qmodels.linear(rng, "fc", 36, 5)],
                          input_shape=(1, 8, 8), input_scale=1.0, output_scale=1.0)


@pytest.mark.parametrize("target", ["avr", "msp430"])
def test_avgpool_firmware_runs_bit_exact_on_the_simulator(tmp_path, target):
    from tests.mcu_tools import require_program, require_target
    from unitprune.mcu import targets
    from unitprune.mcu.targets.common import firmware_from_elf

    require_target(target)
    require_program("make", "make")
    rng = np.random.default_rng(9)
    qmodel = tiny_avgpool_model(rng)
    x = qmodels.random_input(rng, 3, qmodel.input_shape)
    pooled = []
    expected, _ = run_reference(qmodel, x, capture=lambda op, v: pooled.append(v) if op.name == "fc" else None)
    assert (pooled[0] < 0).any() and (pooled[0] > 0).any()  # the pool averages signed values
    export_c(qmodel, tmp_path, target=target, samples=x)
    made = subprocess.run(["make", "-s", "model.elf"], cwd=tmp_path, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    run = targets.run(firmware_from_elf(target, tmp_path / "model.elf", tmp_path, [], ""))
    emitted = [region for region in run.regions if region.data]
    assert np.array_equal(np.stack([np.frombuffer(bytes(r.data), np.int8) for r in emitted]),
                          expected.reshape(len(x), -1))


@needs_cc
@pytest.mark.usefixtures("one_torch_thread")
def test_the_ds_cnn_model_exports_bit_exact_with_the_resource_models_memory_plan(tmp_path):
    """build_model("ds-cnn") (random weights, input 1x40x62): quantized, exported for the host, bit-exact;
    its memory plan and flash tables are unitprune.resources' numbers (docs/shrink.md, "KWS base")."""
    import torch

    from unitprune.mcu.reference import quantize_input
    from unitprune.models import build_model
    from unitprune.shrink.resources import resources

    torch.manual_seed(0)
    model = build_model("ds-cnn", seed=0).eval()
    x = torch.randn(8, 1, 40, 62)
    qmodel = unitprune.quantize(model, x[:6], variant="dense")
    check_bit_exact(qmodel, tmp_path / "run", quantize_input(qmodel, x[6:]), "dense", "bitshift")
    result = export_c(qmodel, tmp_path / "plan", target="host")
    r = resources(model, (1, 40, 62), target="host")
    plan = result.memory
    # 2 x 64 x 20 x 31; the dense convs hold one output row of int32 sums (31), fc 4 x 12
    assert (plan.arena_bytes, plan.scratch_bytes, plan.peak_op) == (79360, 4 * 31, "dw1")
    assert (r.arena_bytes, r.scratch_bytes, r.descriptor_bytes, r.sram_bytes, r.flash_bytes) == \
        (plan.arena_bytes, plan.scratch_bytes, plan.descriptor_bytes, plan.peak_sram_with_io_bytes,
         result.flash_table_bytes)

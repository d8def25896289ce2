"""A zeroskip export (TTP's) calls the static-sparse kernels: each layer's choice and tables in
memory_plan.json, its flash tables and RAM descriptors equal to the AVR ELF's symbols, the
firmware bit-exact with the reference's outputs and counters (counted build), and the
weight-stationary kernel kept where the sparse tables do not fit the flash reads."""

from __future__ import annotations

import dataclasses
import json
import subprocess

import numpy as np
import pytest
from tests import qmodels
from unitprune.mcu import kernel_choice
from unitprune.mcu.export import SamplesTooLarge, export_c
from unitprune.mcu.qmodel import QFlatten, QuantizedModel
from unitprune.mcu.reference import run_reference


def ttp_like(rng: np.random.Generator) -> QuantizedModel:
    """conv (padding 1, 85 % zero weights), pool, conv (stride 2, 85 %), flatten, linear (85 %)."""
    conv1 = qmodels.conv(rng, "conv1", (1, 12, 10), 4, (3, 3), padding=(1, 1, 1, 1), sparsity=0.85)
    pool = qmodels.maxpool("pool", qmodels.output_shape(conv1))
    conv2 = qmodels.conv(rng, "conv2", qmodels.output_shape(pool), 6, (3, 3), stride=(2, 1), sparsity=0.85)
    flat = int(np.prod(qmodels.output_shape(conv2)))
    return QuantizedModel(ops=[conv1, pool, conv2, QFlatten("flatten", flat),
                               qmodels.linear(rng, "fc", flat, 5, sparsity=0.85)],
                          input_shape=(1, 12, 10), input_scale=1.0, output_scale=1.0, variant="zeroskip")


def _symbols(elf, prefixes: tuple[str, ...]) -> dict[str, tuple[str, int]]:
    listing = subprocess.run(["avr-nm", "-S", str(elf)], capture_output=True, text=True, check=True).stdout
    found = {}
    for line in listing.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[3].startswith(prefixes):
            found[parts[3]] = (parts[2], int(parts[1], 16))
    return found


def test_a_zeroskip_export_takes_the_sparse_kernels_and_counts_their_tables(tmp_path):
    from tests.mcu_tools import require_program, require_target

    require_target("avr")
    require_program("make", "make")
    rng = np.random.default_rng(11)
    qmodel = ttp_like(rng)
    x = qmodels.random_input(rng, 2, qmodel.input_shape)
    expected, expected_counts = run_reference(qmodel, x)
    result = export_c(qmodel, tmp_path, target="avr", samples=x, counters=True)
    plan = json.loads((tmp_path / "memory_plan.json").read_text())
    chosen = plan["kernels"]["layers"]
    # conv1's max-pool is taken on its accumulators (unitprune.mcu.export.pooled_conv)
    assert {name: chosen[name]["kernel"] for name in chosen} == {
        "conv1": "unit_conv2d_sparse_pool_s8", "conv2": "unit_conv2d_sparse_s8", "fc": "unit_linear_sparse_s8"}
    assert {chosen[name]["run"] for name in chosen} == {"assembly"}
    # tables: 2 bytes per output channel, 4 per nonzero weight, 2 per tap pair (conv1 has padding)
    for op in (o for o in qmodel.ops if hasattr(o, "weight")):
        nnz, out = int(np.count_nonzero(op.weight)), op.weight.shape[0]
        want = {"nonzeros": 2 * out, "records": 4 * nnz, "bias": 4 * out, "multiplier": 4 * out, "shift": out}
        if op.name == "conv1":
            want["taps"] = 2 * nnz
        assert plan["flash"]["per_layer"][op.name] == want, op.name
    ram = check_avr_export(tmp_path, plan, result, expected.reshape(len(x), -1), expected_counts)
    assert {"conv1_sparse", "conv2_sparse", "fc_sparse"} <= set(ram)


def check_avr_export(out_dir, plan: dict, result, expected: np.ndarray, expected_counts: dict) -> dict[str, int]:
    """Build the counted AVR export in ``out_dir`` (conv1, conv2, fc layers); assert its flash tables and
    RAM equal the ELF's symbols and that simavr's outputs (``expected`` (N, outputs)) and counters equal
    the reference's. Returns the RAM symbols' sizes."""
    from unitprune.mcu import targets
    from unitprune.mcu.targets.common import firmware_from_elf

    made = subprocess.run(["make", "-s", "model.elf"], cwd=out_dir, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    symbols = _symbols(out_dir / "model.elf", ("conv1_", "conv2_", "fc_", "unit_model_"))
    for layer, tables in plan["flash"]["per_layer"].items():
        for table, size in tables.items():
            assert symbols[f"{layer}_{table}"][1] == size, (layer, table)
    ram = {name: size for name, (kind, size) in symbols.items() if kind in "bBdD"
           and name not in ("unit_model_counts", "unit_model_call")}
    assert sum(ram.values()) == result.memory.peak_sram_bytes, ram
    run = targets.run(firmware_from_elf("avr", out_dir / "model.elf", out_dir, [], ""))
    emitted = [region.data for region in run.regions if region.label == "inference"]
    assert np.array_equal(np.stack([np.frombuffer(bytes(d), np.int8) for d in emitted]), expected)
    counts = np.frombuffer(bytes(run.region("counts").data), "<i8").reshape(len(result.layers), 7)
    for name, row in zip(result.layers, counts.tolist()):
        assert row == list(expected_counts[name].to_dict().values()), name
    return ram


def test_only_zeroskip_exports_take_the_sparse_kernels_and_the_flash_limit_drops_the_largest_growth():
    rng = np.random.default_rng(2)
    qmodel = ttp_like(rng)
    dense_layer = qmodels.conv(rng, "dense", (1, 12, 10), 4, (3, 3), sparsity=0.0)
    assert kernel_choice.sparse_layers(qmodel.ops, "dense") == {}
    assert kernel_choice.sparse_layers(qmodel.ops, "unit") == {}
    assert set(kernel_choice.sparse_layers(qmodel.ops, "zeroskip")) == {"conv1", "conv2", "fc"}
    ops = [*qmodel.ops, dense_layer]
    every = kernel_choice.sparse_layers(ops, "zeroskip")
    sizes = {name: tables.flash_bytes for name, tables in every.items()}
    weights = {op.name: op.weight.size for op in ops if hasattr(op, "weight")}
    assert sizes["dense"] == 2 * 4 + 4 * np.count_nonzero(dense_layer.weight) > weights["dense"]
    # a limit one byte short of the all-sparse total: the dense layer (largest growth) goes back
    limit = sum(sizes.values()) - 1
    assert set(kernel_choice.sparse_layers(ops, "zeroskip", flash_limit=limit)) == {"conv1", "conv2", "fc"}


def test_a_field_beyond_the_uint16_offsets_keeps_the_weight_stationary_kernel():
    rng = np.random.default_rng(3)
    wide = qmodels.conv(rng, "wide", (2, 200, 200), 1, (1, 1), sparsity=0.5)
    model = QuantizedModel(ops=[wide], input_shape=(2, 200, 200), input_scale=1.0, output_scale=1.0,
                           variant="zeroskip")
    assert set(kernel_choice.sparse_layers(model.ops, "zeroskip")) == {"wide"}  # 2*200*200 offsets < 65536
    far = dataclasses.replace(wide, name="far", in_height=300, in_width=300, out_height=300, out_width=300)
    assert kernel_choice.sparse_tables(far) is None
    assert kernel_choice.sparse_layers([far], "zeroskip") == {}
    chosen = kernel_choice.choose([far], "avr", "zeroskip", sparse={})
    assert chosen["far"].kernel == "unit_conv2d_zeroskip_s8"


def test_msp430_sparse_tables_leave_room_for_the_code_that_shares_the_fram(tmp_path):
    """An unpruned 100x100 linear layer in a zeroskip export for the MSP430: its sparse tables
    (40,200 B) plus the samples fit the 49,024 B of FRAM alone, but not with the firmware's code
    (which shares the FRAM: the link failed and mcu-bench's zeroskip rows on MSP430 died). With the
    code reserve of the msp430 spec the layer keeps its int8 weights; the firmware links, runs and
    is bit-exact."""
    from tests.mcu_tools import require_target
    from unitprune.experiments.mcu_bench.bench import measure_target
    from unitprune.mcu.targets.specs import EXPORT_TARGETS, MSP430_FRAM_BYTES

    require_target("msp430")
    rng = np.random.default_rng(5)
    fc = qmodels.linear(rng, "fc", 100, 100, sparsity=0.0)
    fc = dataclasses.replace(fc, weight=np.where(fc.weight == 0, 1, fc.weight).astype(fc.weight.dtype))
    qmodel = QuantizedModel(ops=[fc], input_shape=(100,), input_scale=1.0, output_scale=1.0, variant="zeroskip")
    x = qmodels.random_input(rng, 2, qmodel.input_shape)
    tables = kernel_choice.sparse_tables(fc)
    assert tables.flash_bytes + x.size <= MSP430_FRAM_BYTES  # without the reserve the layer would go sparse
    assert tables.flash_bytes + x.size + EXPORT_TARGETS["msp430"].code_reserve_bytes > MSP430_FRAM_BYTES
    measured = measure_target(qmodel, "msp430", x, tmp_path, 0, 10**8)
    assert measured["bit_exact"]
    plan = json.loads((tmp_path / "export" / "memory_plan.json").read_text())
    assert plan["kernels"]["layers"]["fc"]["kernel"] != "unit_linear_sparse_s8"


def test_the_sparse_choice_does_not_depend_on_the_embedded_samples(tmp_path):
    """A 64 -> 128 linear layer at 50 % zeros in a zeroskip export for the MSP430: its sparse tables
    (16,640 B, twice its weights) fit the FRAM beside the code's reserve. With so many samples that
    samples and tables exceed the flash the kernels read, the export does not fall back to the
    weight-stationary kernel (a firmware other than the one deployed, which has no samples): it
    raises SamplesTooLarge (embed fewer), and with few samples the layer takes the sparse kernel."""
    from unitprune.mcu.targets.specs import EXPORT_TARGETS

    rng = np.random.default_rng(8)
    fc = qmodels.linear(rng, "fc", 64, 128, sparsity=0.0)
    weight = np.where(fc.weight == 0, 1, fc.weight).astype(fc.weight.dtype)
    weight[:, ::2] = 0  # exactly half the weights zero
    fc = dataclasses.replace(fc, weight=weight)
    qmodel = QuantizedModel(ops=[fc], input_shape=(64,), input_scale=1.0, output_scale=1.0, variant="zeroskip")
    tables = kernel_choice.sparse_tables(fc)
    assert tables.flash_bytes == 2 * 128 + 4 * 64 * 64 == 2 * weight.size + 2 * 128
    limit = EXPORT_TARGETS["msp430"].flash_read_limit
    many = (limit - tables.flash_bytes) // 64 + 1  # samples + tables > limit, samples + weights fit
    assert many * 64 + tables.flash_bytes > limit and many * 64 + weight.size + 128 * 9 < limit
    x_many = qmodels.random_input(rng, many, qmodel.input_shape)
    with pytest.raises(SamplesTooLarge, match="embed fewer"):
        export_c(qmodel, tmp_path / "many", target="msp430", samples=x_many)
    assert not (tmp_path / "many" / "model.c").exists()
    export_c(qmodel, tmp_path / "few", target="msp430", samples=x_many[:2])
    plan = json.loads((tmp_path / "few" / "memory_plan.json").read_text())
    assert plan["kernels"]["layers"]["fc"]["kernel"] == "unit_linear_sparse_s8"

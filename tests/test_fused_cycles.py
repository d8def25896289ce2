"""What the fused, row-streamed plan costs against layer by layer on the MCUs: the MSP430 fused
export takes the output stage's threshold tables as layer by layer does (bit-exact on both
multiplier builds), and on the Table-1 MNIST architecture (dense) the fused plan at 8 output rows
per conv step runs within 5 % of layer by layer's cycles on AVR and MSP430, both taking the max-pools
on the convs' accumulators (exact simulator cycle counts; benchmarks/fused.py measures the seeds and
B values)."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from unitprune import run_exported
from unitprune.mcu.export import export_c
from unitprune.mcu.qmodel import QFlatten, QuantizedModel
from unitprune.mcu.reference import run_reference

from . import qmodels
from .mcu_tools import require_program, require_target


def _pooled_dense_model(rng: np.random.Generator) -> QuantizedModel:
    """conv (padding, ReLU), max-pool, conv (no ReLU: negative outputs), flatten, linear; dense."""
    conv1 = qmodels.conv(rng, "conv1", (1, 12, 9), 3, (3, 3), padding=(1, 1, 1, 1))
    pool = qmodels.maxpool("pool", qmodels.output_shape(conv1))
    conv2 = qmodels.conv(rng, "conv2", qmodels.output_shape(pool), 4, (3, 3), relu=False)
    flat = int(np.prod(qmodels.output_shape(conv2)))
    return QuantizedModel(ops=[conv1, pool, conv2, QFlatten("flatten", flat), qmodels.linear(rng, "fc", flat, 5)],
                          input_shape=(1, 12, 9), input_scale=1.0, output_scale=1.0, variant="dense")


@pytest.mark.parametrize("target", ["msp430", "msp430-hwmult"])
def test_a_fused_msp430_export_takes_the_threshold_tables_and_stays_bit_exact(target, tmp_path):
    from unitprune.experiments.mcu_bench.bench import measure_target

    require_target(target)
    rng = np.random.default_rng(31)
    qmodel = _pooled_dense_model(rng)
    x = qmodels.random_input(rng, 2, qmodel.input_shape)
    export_c(qmodel, tmp_path / "layers", target="msp430", samples=x)
    layers = json.loads((tmp_path / "layers" / "memory_plan.json").read_text())["flash"]["per_layer"]
    measured = measure_target(qmodel, target, x, tmp_path / "fused", 1, 10**8, execution="fused", fused_rows=2)
    assert measured["bit_exact"] and measured["checks"]["execution"] == "fused"
    plan = json.loads((tmp_path / "fused" / "export" / "memory_plan.json").read_text())
    per_layer = plan["flash"]["per_layer"]
    assert per_layer["conv1"]["thresholds"] == layers["conv1"]["thresholds"] == 3 * 512
    assert per_layer["conv2"]["thresholds"] == layers["conv2"]["thresholds"] == 4 * 512
    assert "thresholds" not in per_layer["fc"]
    model_c = (tmp_path / "fused" / "export" / "model.c").read_text()
    assert "conv1_thresholds" in model_c and "conv2_thresholds" in model_c
    # the portable kernels read no table: the same fused plan without them
    export_c(qmodel, tmp_path / "portable", target="msp430", samples=x, execution="fused", fused_rows=2,
             kernels="portable")
    assert "thresholds" not in (tmp_path / "portable" / "model.c").read_text()


def _inference_cycles(qmodel, target: str, x, out_dir, **options) -> tuple[int, int]:
    """(cycles of the one sample's inference in the simulator, SRAM of the plan with the input and
    output buffers); the outputs checked against the integer reference."""
    from unitprune.mcu import targets
    from unitprune.mcu.targets.common import firmware_from_elf

    result = export_c(qmodel, out_dir, target=target, samples=x, **options)
    made = subprocess.run(["make", "-s", "model.elf"], cwd=out_dir, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    run = targets.run(firmware_from_elf(target, out_dir / "model.elf", out_dir, [], ""), max_cycles=10**8)
    (region,) = [region for region in run.regions if region.label == "inference"]
    expected, _ = run_reference(qmodel, x)
    assert np.array_equal(np.frombuffer(bytes(region.data), np.int8), expected.reshape(-1))
    return region.cycles, result.memory.peak_sram_with_io_bytes


@pytest.mark.parametrize("target", ["avr", "msp430"])
def test_the_fused_mnist_plan_runs_within_five_percent_of_layer_by_layer(target, tmp_path):
    """MNIST (Table 1, dense, random weights), one sample: fused with 8 output rows per conv step
    (conv1 in 3 steps, conv2 in one) takes at most 1.05x the cycles of layer by layer, both on the
    same kernels: each conv with its 2x2 max-pool on the int32 accumulators
    (unit_conv2d_dense_pool_s8; the fused steps on their windows, the pool's rows written by the
    conv). Measured: AVR 3,568,119 against 3,496,405 cycles (1.021x), MSP430 5,109,029 against
    5,009,209 (1.020x); with the fused plan's separate in-place pools 1.125x and 1.064x."""
    require_target(target)
    require_program("make", "make")
    rng = np.random.default_rng(32)
    qmodel = qmodels.mnist_like(rng, variant="dense")
    x = qmodels.random_input(rng, 1, qmodel.input_shape)
    layers, _ = _inference_cycles(qmodel, target, x, tmp_path / "layers")
    fused, _ = _inference_cycles(qmodel, target, x, tmp_path / "fused", execution="fused", fused_rows=8)
    for out in ("layers", "fused"):  # the same pooled kernel in both plans
        plan = json.loads((tmp_path / out / "memory_plan.json").read_text())
        assert set(plan["pooled_convs"]) == {"conv1", "conv2"}, out
    assert fused <= 1.05 * layers, (fused, layers, fused / layers)


def test_pools_read_the_conv_blocks_in_place_when_steps_are_whole_pool_rows(tmp_path):
    """fused_rows=4 on MNIST: each 2x2 pool (stride 2) pools its conv's 4-row block where it is into
    2 rows (no window of its own); the arena by hand (UnIT: the pools' own kernel): conv1's window
    1 x 8 x 28, conv2's 6 x 8 x 12, the blocks 6 x 4 x 24, 6 x 2 x 12, 16 x 4 x 8, 16 x 2 x 4, the
    row buffer 6 x 24, 8 bytes of row counters per stage; dense, the convs take the pools on their
    accumulators and write the pools' rows: no conv blocks. With 3 rows per step (not whole pool
    rows) or an overlapping pool, windows."""
    from unitprune.mcu.export.fused_plan import fused_chain, with_fused_rows

    rng = np.random.default_rng(33)
    qmodel = qmodels.mnist_like(rng, variant="unit")
    chain = with_fused_rows(fused_chain(qmodel), 4)
    assert [(s.name, s.block_rows, s.in_place) for s in chain.stages] == [
        ("conv1", 4, False), ("pool1", 2, True), ("conv2", 4, False), ("pool2", 2, True)]
    assert not any(s.in_place for s in with_fused_rows(fused_chain(qmodel), 3).stages)
    result = export_c(qmodel, tmp_path / "b4", execution="fused", fused_rows=4, fused_axis="height")
    names = [b["name"] for b in result.memory.buffers]
    assert "window of pool1" not in names and "rows of pool1" in names
    windows, blocks = 8 * 28 + 6 * 8 * 12, 6 * 4 * 24 + 6 * 2 * 12 + 16 * 4 * 8 + 16 * 2 * 4
    assert result.memory.arena_bytes == windows + blocks + 6 * 24 + 8 * 4
    dense = export_c(qmodel, tmp_path / "b4-dense", execution="fused", fused_rows=4, fused_axis="height",
                     variant="dense")
    assert [b["name"] for b in dense.memory.buffers] == ["window of conv1", "window of conv2", "rows of pool1",
                                                         "rows of pool2", "row"]
    assert dense.memory.arena_bytes == windows + 6 * 2 * 12 + 16 * 2 * 4 + 6 * 24 + 8 * 4
    x = qmodels.random_input(rng, 2, qmodel.input_shape)
    for out, variant in (("b4", "unit"), ("b4-dense", "dense")):
        outputs, counts = run_exported(tmp_path / out, x)
        expected, expected_counts = run_reference(qmodel, x, variant=variant)
        np.testing.assert_array_equal(outputs, expected.reshape(len(x), -1))
        assert counts == expected_counts
    overlapping = QuantizedModel(ops=[qmodels.conv(rng, "conv", (1, 12, 8), 2, (3, 3)),
                                      qmodels.maxpool("pool", (2, 10, 6), kernel=(3, 3), stride=(2, 2))],
                                 input_shape=(1, 12, 8), input_scale=1.0, output_scale=1.0, variant="dense")
    assert not with_fused_rows(fused_chain(overlapping), 4).stages[1].in_place


def test_the_resource_model_counts_the_fused_msp430_threshold_tables(tmp_path):
    """unitprune.resources(..., target="msp430", execution="fused") counts the tables the fused
    export gives its dense convs: its flash equals the export's tables, the same as layer by layer."""
    import torch

    import unitprune
    from unitprune.mcu.reference import quantize_input
    from unitprune.models import build_model
    from unitprune.shrink.resources import resources

    model = build_model("mnist", seed=0).eval()
    x = torch.randn(18, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    qmodel = unitprune.quantize(model, x[:16], variant="dense")
    x_q = quantize_input(qmodel, x[16:])
    result = export_c(qmodel, tmp_path, target="msp430", samples=x_q, execution="fused", fused_rows=4)
    tables = sum(layer.tables.get("thresholds", 0) for layer in result.flash)
    assert tables == 512 * (6 + 16)
    fused = resources(model, (1, 28, 28), target="msp430", execution="fused", fused_rows=4)
    layers = resources(model, (1, 28, 28), target="msp430")
    assert fused.flash_bytes == layers.flash_bytes == result.flash_table_bytes

"""The output stage by threshold tables (unitprune.mcu.requant_table, unit_requantize_run_table_s8_msp430.S):
the tables against the NumPy integer reference, the MSP430 routine bit-exact on the edge cases with
its exact cycles per output (MSP430 without a multiplier: <= 150, the requantization target), and an
exported model whose dense convolutions take the tables, bit-exact in mspdebug."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests import qmodels
from tests.mcu_tools import load_benchmark, require_target
from unitprune.mcu import reference, requant_table
from unitprune.mcu.qmodel import QFlatten, QuantizedModel

bench = load_benchmark("requantize_run_s8_mcu")


def _magnitude(acc: int, multiplier: int, shift: int) -> int:
    return abs(int(reference.requantize(np.array([acc]), np.array([multiplier]), np.array([shift]))[0]))


@settings(max_examples=60, deadline=None)
@given(multiplier=st.integers(2**30, 2**31 - 1), shift=st.integers(-22, 4), data=st.data())
def test_an_entry_tells_each_side_of_every_magnitude(multiplier, shift, data):
    """|y| >= q iff key >= E(q): key 2A + 1 for acc >= 0, 2A for acc < 0, checked by the reference."""
    table = requant_table.channel_table(multiplier, shift)
    assert table is not None and table.dtype == np.uint32 and np.all(np.diff(table.astype(np.int64)) >= 0)
    q = data.draw(st.integers(1, 128))
    entry = int(table[q - 1])
    limit = 2**31 >> max(shift, 0)
    for sign, key_bit in ((1, 1), (-1, 0)):
        first = (entry - key_bit + 1) // 2  # the smallest A with 2A + key_bit >= entry
        assert 1 <= first <= limit
        assert _magnitude(sign * first, multiplier, shift) >= q
        assert _magnitude(sign * (first - 1), multiplier, shift) < q


def test_channels_whose_outputs_stay_small_get_no_table():
    assert requant_table.channel_table(1, -9) is None  # |y| never reaches 128
    assert requant_table.channel_table(0, 0) is None
    assert requant_table.channel_table(2**30, -23) is None  # T-(128) beyond 2**30
    assert requant_table.channel_table(2**30, -22) is not None
    # at a tie of the negative nudge the two sides' thresholds differ by one: E(q) odd
    assert int(requant_table.channel_table(2**30, -8)[0]) == 511  # T+(1) = 255, T-(1) = 256
    assert _magnitude(255, 2**30, -8) == 1 and _magnitude(-255, 2**30, -8) == 0 and _magnitude(-256, 2**30, -8) == 1


# Exact cycles one output adds to a run on MSP430 without a multiplier, measured in mspdebug: the
# ReLU shortcut, a saturated positive and negative accumulator, the longest search (negative, |y| = 127,
# every compare of the high words equal) and the worst positive.
CYCLES = {"relu": 26, "saturated": 27, "negative_saturated": 38, "positive_worst": 123, "negative_worst": 144}


def _classes(per_output: list[dict]) -> dict[str, int]:
    table = [c for c in per_output if c["table"]]
    return {
        "relu": max(c["cycles"] for c in table if c["acc"] < 0 and c["act_min"] >= 0),
        "saturated": max(c["cycles"] for c in table if c["acc"] >= 2**30),
        "negative_saturated": max(c["cycles"] for c in table if c["acc"] <= -(2**30) and c["act_min"] < 0),
        "positive_worst": max(c["cycles"] for c in table if c["acc"] >= 0),
        "negative_worst": max(c["cycles"] for c in table if c["acc"] < 0 and c["act_min"] < 0),
    }


def test_the_table_output_stage_on_msp430_equals_the_reference_within_150_cycles(tmp_path):
    require_target("msp430")
    rows = bench.channels(0)  # every shift of the fast form and the general routine's, the clamps
    result = bench.measure_table_cases("msp430", rows, tmp_path)  # raises naming the first output that differs
    assert result["outputs_checked"] >= 2000
    assert result["table_channels"] >= 50  # all but those of multipliers 0 and 1, shift -31
    assert result["table_worst"] <= 150
    assert _classes(result["per_output"]) == CYCLES


def test_the_longest_path_over_every_clamp_stays_within_150_cycles(tmp_path):
    """The longest search (|y| = 127 from a negative accumulator, all 7 steps comparing equal high
    words and advancing) with the result above act_max = -128 (a constant output: the clamp's extra
    jump) is the routine's longest path: 147 cycles; with the quantizer's clamps 144."""
    require_target("msp430")
    accs = [-32639, -32638, -32640, 32639, 0, -1]
    rows = [{"multiplier": 2**31 - 1, "shift": -8, "act_min": lo, "act_max": hi, "acc": accs}
            for lo, hi in ((-128, -128), (-128, 127), (5, 9), (127, 127))]
    result = bench.measure_table_cases("msp430", rows, tmp_path)  # bit-exact, or raises
    cycles = {(c["act_max"], c["acc"]): c["cycles"] for c in result["per_output"] if c["act_min"] == -128}
    assert cycles[(-128, -32639)] == 147 == max(c["cycles"] for c in result["per_output"])
    assert cycles[(127, -32639)] == 144


def _dense_model(rng: np.random.Generator) -> QuantizedModel:
    """conv (padding, ReLU), conv (stride 2, no ReLU: negative outputs), flatten, linear."""
    conv1 = qmodels.conv(rng, "conv1", (1, 10, 9), 3, (3, 3), padding=(1, 1, 1, 1))
    conv2 = qmodels.conv(rng, "conv2", qmodels.output_shape(conv1), 4, (3, 3), stride=(2, 2), relu=False)
    flat = int(np.prod(qmodels.output_shape(conv2)))
    return QuantizedModel(ops=[conv1, conv2, QFlatten("flatten", flat), qmodels.linear(rng, "fc", flat, 5)],
                          input_shape=(1, 10, 9), input_scale=1.0, output_scale=1.0, variant="dense")


def test_the_exporter_gives_the_dense_convolutions_tables_only_on_msp430_and_within_the_flash():
    qmodel = _dense_model(np.random.default_rng(2))
    chosen = requant_table.table_layers(qmodel.ops, "msp430", "dense", "auto", None)
    assert set(chosen) == {"conv1", "conv2"}  # the linear layer has no run
    assert chosen["conv2"].shape == (4, 128)
    assert requant_table.table_layers(qmodel.ops, "avr", "dense", "auto", None) == {}
    assert requant_table.table_layers(qmodel.ops, "msp430", "dense", "portable", None) == {}
    assert requant_table.table_layers(qmodel.ops, "msp430", "zeroskip", "auto", None) == {}
    # conv1 (90 outputs per channel) first: 3 * 512 bytes fit, conv2's 4 * 512 more do not
    assert set(requant_table.table_layers(qmodel.ops, "msp430", "dense", "auto", 3 * 512 + 100)) == {"conv1"}
    assert requant_table.table_layers(qmodel.ops, "msp430", "dense", "auto", 1000) == {}


@pytest.mark.parametrize("target", ["msp430", "msp430-hwmult"])
def test_an_msp430_export_takes_the_tables_and_stays_bit_exact(target, tmp_path):
    from unitprune.experiments.mcu_bench.bench import measure_target

    require_target(target)
    rng = np.random.default_rng(4)
    qmodel = _dense_model(rng)
    x = qmodels.random_input(rng, 2, qmodel.input_shape)
    measured = measure_target(qmodel, target, x, tmp_path, 0, 10**8)
    assert measured["bit_exact"]
    plan = json.loads((tmp_path / "export" / "memory_plan.json").read_text())
    per_layer = plan["flash"]["per_layer"]
    assert per_layer["conv1"]["thresholds"] == 3 * 512 and per_layer["conv2"]["thresholds"] == 4 * 512
    assert "thresholds" not in per_layer["fc"]
    model_c = (tmp_path / "export" / "model.c").read_text()
    assert "conv2_thresholds" in model_c


def test_the_export_budget_leaves_room_for_the_code_not_for_samples(tmp_path):
    """with_tables sizes the tables to the FRAM left after the weights, the requantization constants
    and the code reserve (room_bytes; the embedded samples do not count): conv1 (most outputs per
    channel) first; planned_layers is the rule the resource model shares; memory_plan.json follows."""
    from unitprune.mcu.export import export_c
    from unitprune.mcu.targets.specs import EXPORT_TARGETS

    qmodel = _dense_model(np.random.default_rng(2))
    spec = EXPORT_TARGETS["msp430"]
    constants = sum(op.weight.size + 9 * op.requant.bias.size for op in qmodel.ops if hasattr(op, "requant"))
    assert requant_table.room_bytes("msp430", constants) == (
        spec.flash_read_limit - spec.code_reserve_bytes - spec.table_code_bytes - constants)
    assert requant_table.room_bytes("msp430", 10**6) == 0 and requant_table.room_bytes("host", 5) is None
    convs = [(90, 3), (20, 4)]  # (outputs per channel, channels) of conv1, conv2
    assert requant_table.planned_layers(convs, 7 * 512) == [0, 1]
    assert requant_table.planned_layers(convs, 7 * 512 - 1) == [0]
    assert requant_table.planned_layers([(90, 5), (20, 4)], 4 * 512) == [1]  # the first's do not fit, the next's do
    assert requant_table.planned_layers(convs[::-1], 3 * 512) == [1]
    assert requant_table.planned_layers(convs, None) == [0, 1]
    x = qmodels.random_input(np.random.default_rng(0), 200, qmodel.input_shape)  # 18,000 B of samples
    export_c(qmodel, tmp_path, target="msp430", samples=x)
    per_layer = json.loads((tmp_path / "memory_plan.json").read_text())["flash"]["per_layer"]
    assert per_layer["conv1"]["thresholds"] == 3 * 512 and per_layer["conv2"]["thresholds"] == 4 * 512


def test_the_resource_model_counts_the_tables_the_exporter_gives():
    from torch import nn

    from unitprune.shrink.resources import resources

    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Conv2d(3, 4, 3, stride=2), nn.Flatten(),
                          nn.Linear(4 * 4 * 4, 5)).eval()
    avr, msp = resources(model, (1, 10, 10), target="avr"), resources(model, (1, 10, 10), target="msp430")
    assert msp.requant_bytes - avr.requant_bytes == 7 * 512 == msp.flash_bytes - avr.flash_bytes
    unit = resources(model, (1, 10, 10), target="msp430", unit_tables=True)  # the UnIT kernels read none
    assert unit.requant_bytes == avr.requant_bytes

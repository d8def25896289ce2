"""The per-layer UnIT conv kernel of an export (unitprune.mcu.unit_plan): skip-free, per-position
or dense, chosen by the cycle model of unitprune.mcu.unit_cost. Host builds of planned models are
bit-exact against the integer reference (outputs, cause counters, and the skip-free kernel's
``compares`` against a hand count of its visits); on AVR, MSP430 and MSP430 + hardware multiplier
the model's predicted cycles of every conv layer are within a stated tolerance of the cycles the
simulators measure in the exported firmware, and the plan's choice is (near) the fastest measured."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

import unitprune
from unitprune.geometry import ConvGeometry
from unitprune.mcu.export import ExportError, export_c
from unitprune.mcu.qmodel import QConv, QFlatten, QMaxPool, QuantizedModel
from unitprune.mcu.reference import run_reference
from unitprune.mcu.unit_plan import LIST_KERNELS, plan_unit_kernels, sram_fits, with_unit_kernels

from . import qmodels
from .test_export import needs_cc, run_counted_avr_firmware, tiny_model
from .test_unit_fast_s8 import skipfree_visits
from .test_unit_sparse_s8 import row_visits

#: Largest relative error of a predicted layer's cycles against the simulator's, per kernel (the
#: tolerance of tests/test_mcu_unit_kernels.py; here the whole exported layer, requantization and
#: call included).
TOLERANCE = {"skipfree": 0.10, "dense": 0.10, "unit": 0.40, "sparse": 0.15, "static": 0.15}


def _model_and_inputs(seed: int, samples: int):
    rng = np.random.default_rng(seed)
    qmodel = qmodels.mnist_like(rng)
    x = qmodels.random_input(rng, samples, qmodel.input_shape, zero_fraction=0.5,
                             boundary=np.unique(qmodel.ops[0].tau))
    return qmodel, x


def _geometry(op: QConv) -> ConvGeometry:
    return ConvGeometry((op.kernel_height, op.kernel_width), op.stride, op.dilation, op.padding, op.groups)


@needs_cc
@pytest.mark.parametrize("kernels", [("skipfree", "skipfree"), ("dense", "skipfree"), ("skipfree", "unit"),
                                     ("sparse", "sparse"), ("unit", "sparse")])
def test_planned_models_export_bit_exact_with_the_skipfree_visits(tmp_path, kernels):
    qmodel, x = _model_and_inputs(3, 4)
    planned = with_unit_kernels(qmodel, {"conv1": kernels[0], "conv2": kernels[1]})
    export_c(planned, tmp_path / "export")
    outputs, counts = unitprune.run_exported(tmp_path / "export", x)
    expected, expected_counts = run_reference(planned, x)
    np.testing.assert_array_equal(outputs, expected.reshape(len(x), -1))
    assert counts == expected_counts
    inputs = {}
    run_reference(planned, x, capture=lambda op, v: inputs.setdefault(op.name, v))
    for name, kernel in zip(("conv1", "conv2"), kernels):
        unit_counts = run_reference(with_unit_kernels(planned, {name: "unit"}), x)[1]
        op = next(o for o in planned.ops if o.name == name)
        if kernel == "skipfree":  # the hand count of the lists' visits (independent of the reference)
            x4 = inputs[name].reshape(len(x), op.in_channels, op.in_height, op.in_width)
            assert counts[name].compares == skipfree_visits(x4, op.weight, op.tau, _geometry(op)) > 0
        if kernel == "sparse":  # the hand count of the row lists' visits
            x4 = inputs[name].reshape(len(x), op.in_channels, op.in_height, op.in_width)
            assert counts[name].compares == row_visits(x4, op.weight, op.tau, _geometry(op)) > 0
        if kernel == "dense":  # every MAC executed, nothing tested
            assert counts[name].executed == counts[name].dense > unit_counts[name].executed
            assert counts[name].compares == counts[name].threshold == 0
        else:  # the same causes as the per-position kernel
            assert (counts[name].threshold, counts[name].executed) == (unit_counts[name].threshold,
                                                                      unit_counts[name].executed)
    manifest = json.loads((tmp_path / "export" / "memory_plan.json").read_text())
    chosen = {name: manifest["kernels"]["layers"][name]["kernel"] for name in ("conv1", "conv2")}
    # a dense conv takes its max-pool on the accumulators (unitprune.mcu.export.pooled_conv)
    names = {"skipfree": "unit_conv2d_unit_skipfree_s8", "dense": "unit_conv2d_dense_pool_s8",
             "unit": "unit_conv2d_unit_s8", "sparse": "unit_conv2d_unit_sparse_s8"}
    assert chosen == {"conv1": names[kernels[0]], "conv2": names[kernels[1]]}


def test_the_plan_is_recorded_and_bad_plans_are_refused(tmp_path):
    qmodel, x = _model_and_inputs(4, 3)
    planned = plan_unit_kernels(qmodel, x, "avr")
    record = planned.source["unit_kernel_plan"]
    for op in planned.ops:
        if isinstance(op, QConv):
            layer = record["layers"][op.name]
            fastest = min(layer["predicted_cycles"], key=layer["predicted_cycles"].get)
            assert layer["kernel"] == op.unit_kernel
            assert op.unit_kernel == fastest or ("SRAM" in layer["reason"] and fastest in ("skipfree", "sparse"))
    assert sram_fits(planned, "avr")
    # conv1's lists (28x28 input) and the arena exceed the ATmega2560's 8 KB: the plan gives them up there
    forced = plan_unit_kernels(qmodel, x, "avr", plan="skipfree")
    kernels = [op.unit_kernel for op in forced.ops if isinstance(op, QConv)]
    assert kernels[0] != "skipfree" and kernels[1] == "skipfree"  # conv1's lists are the ones that do not fit
    assert not sram_fits(with_unit_kernels(qmodel, {"conv1": "skipfree", "conv2": "skipfree"}), "avr")
    assert sram_fits(forced, "avr") and sram_fits(plan_unit_kernels(qmodel, x, "msp430", plan="skipfree"), "msp430")
    assert all(op.unit_kernel == "unit" for op in qmodel.ops if isinstance(op, QConv))  # the input is not changed
    no_dense = plan_unit_kernels(qmodel, x, "avr", allow_dense=False)
    assert all(op.unit_kernel != "dense" for op in no_dense.ops if isinstance(op, QConv))
    export_c(planned, tmp_path / "e", target="avr", samples=x)
    assert json.loads((tmp_path / "e" / "memory_plan.json").read_text())["unit_kernel_plan"] == record
    with pytest.raises(ValueError, match="no UnIT cost model for target 'm0plus'"):
        plan_unit_kernels(qmodel, x, "m0plus")
    with pytest.raises(ValueError, match="unknown UnIT kernel plan 'fast'"):
        plan_unit_kernels(qmodel, x, "avr", plan="fast")
    with pytest.raises(ValueError, match="no conv or linear layer named pool"):
        with_unit_kernels(qmodel, {"pool": "skipfree"})
    with pytest.raises(ValueError, match="unknown kernel"):
        with_unit_kernels(qmodel, {"fc": "skipfree"})
    # a plan runs fused too (tests/test_fused_kernels.py: bit-exact)
    assert export_c(with_unit_kernels(qmodel, {"conv1": "skipfree"}), tmp_path / "f", execution="fused").execution \
        == "fused"


@needs_cc
def test_sorted_linear_exports_bit_exact_with_its_walk(tmp_path):
    """fc on the early-exit kernel (columns sorted by |w| at export): the outputs and cause counters
    of the unsorted kernel, compares = a hand count of its walk (per input one zero test; per nonzero
    input with t < 128 its weights with |w| > t and the stop)."""
    qmodel, x = _model_and_inputs(6, 4)
    planned = with_unit_kernels(qmodel, {"fc": "sorted"})
    export_c(planned, tmp_path / "export")
    outputs, counts = unitprune.run_exported(tmp_path / "export", x)
    expected, expected_counts = run_reference(planned, x)
    np.testing.assert_array_equal(outputs, expected.reshape(len(x), -1))
    assert counts == expected_counts
    unsorted = run_reference(qmodel, x)[1]["fc"]
    assert (counts["fc"].threshold, counts["fc"].executed) == (unsorted.threshold, unsorted.executed)
    inputs = {}
    run_reference(planned, x, capture=lambda op, v: inputs.setdefault(op.name, v))
    fc = next(op for op in planned.ops if op.name == "fc")
    walk = inputs["fc"].size
    for value, column in zip(inputs["fc"].reshape(-1), np.tile(np.arange(fc.in_features), len(x))):
        if value != 0:
            t = min(int(fc.threshold_q) >> max(abs(int(value)).bit_length(), int(fc.shift_start)), 255)
            if t < 128:
                walk += int(np.count_nonzero(np.abs(fc.weight[:, column].astype(np.int64)) > t)) + 1
    assert counts["fc"].compares == walk < unsorted.compares
    manifest = json.loads((tmp_path / "export" / "memory_plan.json").read_text())
    assert manifest["kernels"]["layers"]["fc"]["kernel"] == f"unit_linear_unit_sorted_{qmodel.linear_quotient}_s8"


def two_conv_model(rng: np.random.Generator) -> QuantizedModel:
    """MNIST's conv2 (6->16 k5 on 12x12), max-pool 2, conv 16->8 k3 padding 1 on 4x4, flatten, linear
    128->10: every kernel's scratch fits an 8 KB MCU beside the activations."""
    conv2 = qmodels.conv(rng, "conv2", (6, 12, 12), 16, (5, 5), sparsity=0.3)
    pool = qmodels.maxpool("pool", qmodels.output_shape(conv2))
    conv3 = qmodels.conv(rng, "conv3", qmodels.output_shape(pool), 8, (3, 3), padding=(1, 1, 1, 1))
    return QuantizedModel(ops=[conv2, pool, conv3, QFlatten("flatten", 128), qmodels.linear(rng, "fc", 128, 10)],
                          input_shape=(6, 12, 12), input_scale=1.0, output_scale=1.0)


@pytest.mark.parametrize("target", ["avr", "msp430", "msp430-hwmult"])
def test_predicted_layer_cycles_match_the_simulators(tmp_path, target):
    from tests.mcu_tools import require_target
    from unitprune.experiments.mcu_bench.bench import measure_target

    require_target(target)
    rng = np.random.default_rng(5)
    qmodel = two_conv_model(rng)
    x = qmodels.random_input(rng, 1, qmodel.input_shape, zero_fraction=0.4)
    auto = plan_unit_kernels(qmodel, x, target)
    convs = {op.name for op in qmodel.ops if isinstance(op, QConv)}
    predicted = {name: layer["predicted_cycles"] for name, layer in auto.source["unit_kernel_plan"]["layers"].items()
                 if name in convs}
    assert set(predicted) == {"conv2", "conv3"}
    pools = {op.name: after.name for op, after in zip(qmodel.ops, qmodel.ops[1:]) if isinstance(after, QMaxPool)}
    measured = {}
    export_target = {"msp430-hwmult": "msp430"}.get(target, target)
    for kernel in ("unit", "skipfree", "sparse", "dense", "static"):
        planned = with_unit_kernels(qmodel, {"conv2": kernel, "conv3": kernel})
        if not sram_fits(planned, export_target):  # the sparse lists of conv2's 61 tau levels on the 8 KB AVR
            assert kernel in LIST_KERNELS and sram_fits(auto, export_target), (target, kernel)
            continue
        row = measure_target(planned, target, x, tmp_path / kernel, layer_samples=len(x))
        assert row["bit_exact"], row["checks"]
        for name in predicted:  # with the max-pool after the conv: the predictions are of both (pool_cost)
            measured.setdefault(name, {})[kernel] = row["cycles_per_layer"][name] + row["cycles_per_layer"].get(
                pools.get(name), 0)
    for name in predicted:
        for kernel, cycles in measured[name].items():
            error = predicted[name][kernel] / cycles - 1
            if kernel == "static" and name == "conv3":  # zeroact_plan's model: +134..248 % on a padded 16x4x4
                assert error > 0, (target, name, predicted[name], measured[name])  # over: never chosen wrongly
                continue
            assert abs(error) <= TOLERANCE[kernel], (target, name, kernel, predicted[name], measured[name])
            print(f"{target} {name} {kernel}: measured {cycles}, predicted {predicted[name][kernel]:.0f} "
                  f"({100 * error:+.1f} %)")
        chosen = next(op.unit_kernel for op in auto.ops if op.name == name)
        assert measured[name][chosen] <= 1.1 * min(measured[name].values()), (target, name, chosen, measured[name])


@pytest.mark.parametrize("kernel", ["skipfree", "sparse"])
def test_avr_counters_of_the_list_kernels_equal_the_reference(tmp_path, kernel):
    """UNIT_S8_COUNTS compiled into the AVR firmware: the skip-free and sparse kernels' counters by
    cause (and their visits) equal the integer reference's."""
    rng = np.random.default_rng(9)
    qmodel = with_unit_kernels(tiny_model(rng), {"conv": kernel})
    x = qmodels.random_input(rng, 2, qmodel.input_shape, boundary=np.unique(qmodel.ops[0].tau))
    result, emitted, counts = run_counted_avr_firmware(tmp_path, qmodel, x)
    outputs, expected = run_reference(qmodel, x)
    np.testing.assert_array_equal(emitted, outputs.reshape(len(x), -1))
    assert counts == {name: list(expected[name].to_dict().values()) for name in result.layers}
    visits = skipfree_visits if kernel == "skipfree" else row_visits
    assert expected["conv"].compares == visits(x, qmodel.ops[0].weight, qmodel.ops[0].tau, _geometry(qmodel.ops[0]))


def test_a_layer_whose_skipfree_lists_do_not_fit_falls_back_to_the_sparse_lists(monkeypatch):
    """MNIST's conv1 (1x28x28 -> 6x24x24) on the 8 KB ATmega2560: the skip-free lists (5,472 bytes)
    do not fit beside the activations, the sparse kernel's (few tau levels) do; with the skip-free
    kernel predicted fastest and the sparse one next, the plan takes the sparse kernel, not a kernel
    without lists; a model on which neither list kernel fits falls back to the fastest without lists."""
    from unitprune.mcu import unit_cost

    rng = np.random.default_rng(3)
    conv1 = qmodels.conv(rng, "conv1", (1, 28, 28), 6, (5, 5), sparsity=0.1)
    conv1 = replace(conv1, tau=np.where(conv1.weight != 0, rng.choice([4, 9, 20], conv1.weight.shape), 255
                                        ).astype(np.uint8))
    qmodel = QuantizedModel(ops=[conv1, QFlatten("flatten", 6 * 24 * 24), qmodels.linear(rng, "fc", 6 * 24 * 24, 10)],
                            input_shape=(1, 28, 28), input_scale=1.0, output_scale=1.0)
    order = {"skipfree": 1.0, "sparse": 2.0, "dense": 3.0, "unit": 4.0}
    monkeypatch.setattr(unit_cost, "predict", lambda work, target, kernel, coefficients=None: order[kernel])
    x = qmodels.random_input(rng, 2, qmodel.input_shape, zero_fraction=0.5)
    assert not sram_fits(with_unit_kernels(qmodel, {"conv1": "skipfree"}), "avr")
    assert sram_fits(with_unit_kernels(qmodel, {"conv1": "sparse"}), "avr")
    planned = plan_unit_kernels(qmodel, x, "avr")
    layer = planned.source["unit_kernel_plan"]["layers"]["conv1"]
    assert (layer["kernel"], layer["reason"]) == ("sparse", "the skipfree lists do not fit the avr SRAM")
    many_levels = replace(qmodel, ops=[replace(conv1, tau=rng.integers(0, 120, conv1.weight.shape).astype(np.uint8)),
                                       *qmodel.ops[1:]])
    assert not sram_fits(with_unit_kernels(many_levels, {"conv1": "sparse"}), "avr")
    layer = plan_unit_kernels(many_levels, x, "avr").source["unit_kernel_plan"]["layers"]["conv1"]
    assert (layer["kernel"], layer["reason"]) == ("dense", "the skipfree and sparse lists do not fit the avr SRAM")

"""The ``static`` layer of a UnIT plan (unitprune.mcu.unit_plan): a conv or linear layer of a ``unit``
model run exactly on TTP's static-sparse kernels (unit_conv2d_sparse_s8, _zeroact, unit_linear_sparse_s8).
Its outputs and counters by cause equal the integer reference of the ``zeroskip`` model on that
layer (the layer exact over its nonzero weights); the planner offers it per layer, so that on a
train-time-pruned model TTP+UnIT is never predicted slower than TTP's own kernels, and in the
simulators the planned firmware is not slower than the TTP firmware of the same model."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

import unitprune
from unitprune.mcu import unit_cost, zeroact_plan
from unitprune.mcu.export import export_c
from unitprune.mcu.qmodel import QConv, QLinear
from unitprune.mcu.reference import run_reference
from unitprune.mcu.unit_plan import has_exact_layers, plan_unit_kernels, with_unit_kernels

from . import qmodels
from .test_export import needs_cc


def _pruned_model(seed: int, sparsity: float = 0.8, threshold_scale: float = 1.0):
    """The MNIST-like model with ``sparsity`` of every layer's weights zero (TTP-like) and small UnIT
    thresholds (``threshold_scale`` times the weights' tau)."""
    rng = np.random.default_rng(seed)
    qmodel = qmodels.mnist_like(rng)
    ops = []
    for op in qmodel.ops:
        if isinstance(op, (QConv, QLinear)):
            weight = op.weight.copy()
            weight[rng.random(weight.shape) < sparsity] = 0
            op = replace(op, weight=weight)
            if isinstance(op, QConv):
                tau = np.where(weight != 0, np.minimum(op.tau.astype(np.int64) * threshold_scale, 255), 255)
                op = replace(op, tau=tau.astype(np.uint8))
        ops.append(op)
    qmodel = replace(qmodel, ops=ops)
    x = qmodels.random_input(rng, 3, qmodel.input_shape, zero_fraction=0.6)
    return qmodel, x


def _zeroskip(qmodel):
    return replace(qmodel, variant="zeroskip")


def test_a_static_layer_is_the_layer_exact_with_the_zeroskip_counters():
    qmodel, x = _pruned_model(1)
    planned = with_unit_kernels(qmodel, {"conv2": "static", "fc": "static"})
    assert has_exact_layers(planned) and not has_exact_layers(qmodel)
    outputs, counts = run_reference(planned, x)
    # the oracle: conv2 and fc of the zeroskip model (exact), conv1 the UnIT model's
    exact_inputs = {}
    run_reference(_zeroskip(planned), x, capture=lambda op, v: exact_inputs.setdefault(op.name, v))
    zeroskip_counts = run_reference(_zeroskip(planned), x)[1]
    unit_counts = run_reference(qmodel, x)[1]
    assert counts["conv1"] == unit_counts["conv1"]
    for name in ("conv2", "fc"):
        assert counts[name].threshold == counts[name].compares == counts[name].divisions == 0
        assert counts[name].executed == counts[name].dense - counts[name].zero_weight - counts[name].zero_activation
    # fc exact: its outputs are torch's integer matmul of its own inputs, requantized as the reference does
    inputs = {}
    run_reference(planned, x, capture=lambda op, v: inputs.setdefault(op.name, v))
    fc = next(op for op in planned.ops if op.name == "fc")
    from unitprune.mcu.reference import _requantize_outputs

    acc = inputs["fc"].reshape(len(x), -1).astype(np.int64) @ fc.weight.astype(np.int64).T
    np.testing.assert_array_equal(outputs.reshape(len(x), -1), _requantize_outputs(acc, fc, channel_axis=1))
    # all layers static: the zeroskip model's outputs and counters exactly
    every = with_unit_kernels(qmodel, {"conv1": "static", "conv2": "static", "fc": "static"})
    all_out, all_counts = run_reference(every, x)
    zs_out, _ = run_reference(_zeroskip(qmodel), x)
    np.testing.assert_array_equal(all_out, zs_out)
    assert all_counts == run_reference(_zeroskip(qmodel), x)[1]
    assert zeroskip_counts["fc"].zero_weight == counts["fc"].zero_weight


def test_the_fast_reference_agrees_on_static_layers():
    from unitprune.mcu.fast_reference import run_fast

    qmodel, x = _pruned_model(2)
    planned = with_unit_kernels(qmodel, {"conv1": "static", "fc": "static"})
    fast_out, fast_counts = run_fast(planned, x)
    out, counts = run_reference(planned, x)
    np.testing.assert_array_equal(fast_out, out)
    assert fast_counts == counts


@needs_cc
def test_static_layers_export_bit_exact_on_the_host(tmp_path):
    qmodel, x = _pruned_model(3)
    planned = with_unit_kernels(qmodel, {"conv1": "static", "conv2": "sparse", "fc": "static"})
    export_c(planned, tmp_path / "export")
    outputs, counts = unitprune.run_exported(tmp_path / "export", x)
    expected, expected_counts = run_reference(planned, x)
    np.testing.assert_array_equal(outputs, expected.reshape(len(x), -1))
    assert counts == expected_counts
    manifest = json.loads((tmp_path / "export" / "memory_plan.json").read_text())
    chosen = {name: manifest["kernels"]["layers"][name]["kernel"] for name in ("conv1", "conv2", "fc")}
    # the static conv1 takes its max-pool on the accumulators (unitprune.mcu.export.pooled_conv); the
    # UnIT kernel of conv2 keeps the separate pool
    assert chosen == {"conv1": "unit_conv2d_sparse_pool_s8", "conv2": "unit_conv2d_unit_sparse_s8",
                      "fc": "unit_linear_sparse_s8"}


@pytest.mark.parametrize("target", ["avr", "msp430", "msp430-hwmult"])
def test_the_plan_is_never_predicted_slower_than_ttp(target):
    """Per layer, the plan's predicted cycles are at most the static-sparse kernels' (what TTP runs):
    with every layer exact the firmware is TTP's, so the plan can only be faster. The old planner
    had no static candidate: on this pruned model at a high kept fraction it chose UnIT kernels
    predicted slower than the static-sparse kernel."""
    qmodel, x = _pruned_model(4, sparsity=0.8, threshold_scale=0.3)
    planned = plan_unit_kernels(qmodel, x, target)
    layers = planned.source["unit_kernel_plan"]["layers"]
    zeroskip = zeroact_plan.plan_zero_activation(_zeroskip(qmodel), x, target)
    inputs = {}
    run_reference(qmodel, x, capture=lambda op, v: inputs.setdefault(op.name, v))
    for op in qmodel.ops:
        if isinstance(op, QConv):
            ttp = min(zeroskip.source["zeroact_plan"]["layers"][op.name]["predicted_cycles"].values())
        elif isinstance(op, QLinear):
            ttp = unit_cost.predict_linear_static(op, target)
        else:
            continue
        layer = layers[op.name]
        assert "static" in layer["predicted_cycles"], (op.name, layer)
        assert layer["predicted_cycles"][layer["kernel"]] <= round(ttp) + 1, (target, op.name, layer, ttp)
    assert any(layer["kernel"] == "static" for layer in layers.values()), layers
    assert has_exact_layers(planned)
    # the static convs' choice of the zero-activation kernel is recorded for the export
    statics = {name for name, layer in layers.items() if layer["kernel"] == "static"
               and name in {op.name for op in qmodel.ops if isinstance(op, QConv)}}
    assert set(planned.source.get("zeroact_plan", {}).get("layers", {})) == statics


def test_without_allow_dense_no_layer_is_exact():
    qmodel, x = _pruned_model(4, sparsity=0.8, threshold_scale=0.3)
    planned = plan_unit_kernels(qmodel, x, "avr", allow_dense=False)
    assert not has_exact_layers(planned)
    assert all("static" not in layer["predicted_cycles"]
               for layer in planned.source["unit_kernel_plan"]["layers"].values())


@pytest.mark.parametrize("target", ["avr", "msp430", "msp430-hwmult"])
def test_the_planned_firmware_is_not_slower_than_ttp_in_the_simulator(tmp_path, target):
    """The TTP firmware of the pruned model (static-sparse kernels, the zero-activation plan) against
    the UnIT plan of the same model with the static-sparse candidates: measured, the plan takes at most
    TTP's cycles, and every layer planned static whose inputs are TTP's (no UnIT layer before it) takes
    exactly TTP's cycles for that layer (same kernel, same tables). Without the static-sparse
    candidates (the old planner's choice among its kernels) the plan is slower than TTP."""
    from tests.mcu_tools import require_target
    from unitprune.experiments.mcu_bench.bench import measure_target

    require_target(target)
    qmodel, x = _pruned_model(11, threshold_scale=0.3)
    x = np.maximum(x[:2], 0).astype(np.int8)  # non-negative inputs, as MNIST's pixels
    ttp = zeroact_plan.plan_zero_activation(_zeroskip(qmodel), x, target)
    planned = plan_unit_kernels(qmodel, x, target)
    layers = planned.source["unit_kernel_plan"]["layers"]
    old = with_unit_kernels(qmodel, {name: min((k for k in layer["predicted_cycles"] if k not in ("static", "sparse_tau")),
                                               key=layer["predicted_cycles"].get) for name, layer in layers.items()})
    rows = {name: measure_target(model, target, x, tmp_path / name, layer_samples=len(x))
            for name, model in (("ttp", ttp), ("planned", planned), ("old", old))}
    for name, row in rows.items():
        assert row["bit_exact"], (name, row["checks"])
    print(target, {name: (row["cycles"], row["cycles_per_layer"]) for name, row in rows.items()},
          {name: layer["kernel"] for name, layer in layers.items()})
    assert rows["planned"]["cycles"] <= rows["ttp"]["cycles"], (target, rows["planned"]["cycles_per_layer"],
                                                                rows["ttp"]["cycles_per_layer"], layers)
    for name, layer in layers.items():  # in order: the exact layers up to the first UnIT one
        if layer["kernel"] != "static":
            break
        assert rows["planned"]["cycles_per_layer"][name] == rows["ttp"]["cycles_per_layer"][name], name
    assert rows["old"]["cycles"] > rows["ttp"]["cycles"], (target, rows["old"]["cycles_per_layer"])
    # the chosen kernel's predicted cycles against the measured ones (the static convs: zeroact_plan's
    # model, 9-11 % low on MNIST's conv1; the sparse_tau convs: that plus unit_cost.SPARSE_TAU_DELTA)
    for name, layer in layers.items():
        measured = rows["planned"]["cycles_per_layer"][name]
        assert abs(layer["predicted_cycles"][layer["kernel"]] / measured - 1) <= 0.15, (target, name, layer, measured)


@needs_cc
@pytest.mark.parametrize("negative", [False, True])
def test_the_sparse_tau_kernel_exports_bit_exact_with_its_counters(tmp_path, negative):
    """unit_conv2d_sparse_tau_s8 (UnIT on the stored weights, tau in each record): the outputs and
    counters by cause of the per-position UnIT kernel on the same layer (the integer reference),
    with padding (conv3 of the two-conv model) and on negative inputs (the C run)."""
    from .test_unit_plan import two_conv_model

    rng = np.random.default_rng(21)
    qmodel = two_conv_model(rng)
    x = qmodels.random_input(rng, 3, qmodel.input_shape, zero_fraction=0.4,
                             boundary=np.unique(qmodel.ops[0].tau))
    if not negative:
        x = np.abs(x.astype(np.int64)).clip(0, 127).astype(np.int8)
    planned = with_unit_kernels(qmodel, {"conv2": "sparse_tau", "conv3": "sparse_tau"})
    export_c(planned, tmp_path / "export")
    outputs, counts = unitprune.run_exported(tmp_path / "export", x)
    expected, expected_counts = run_reference(qmodel, x)  # the per-position kernel's
    np.testing.assert_array_equal(outputs, expected.reshape(len(x), -1))
    assert counts == expected_counts
    assert counts["conv2"].threshold > 0 and counts["conv2"].executed > 0
    # the hand count: compares = output positions x stored weights
    conv2 = qmodel.ops[0]
    assert counts["conv2"].compares == len(x) * conv2.out_height * conv2.out_width * np.count_nonzero(conv2.weight)
    manifest = json.loads((tmp_path / "export" / "memory_plan.json").read_text())
    assert manifest["kernels"]["layers"]["conv2"]["kernel"] == "unit_conv2d_sparse_tau_s8"


def test_a_fused_export_refuses_the_sparse_tau_kernel_naming_the_layer(tmp_path):
    """unit_conv2d_sparse_tau_s8's records are made for the whole plane: a fused export of a layer
    planned on it is an ExportError naming the layer (it generated C that crashed on the host)."""
    from unitprune.mcu.export import ExportError

    from .test_unit_plan import two_conv_model

    planned = with_unit_kernels(two_conv_model(np.random.default_rng(21)), {"conv2": "sparse_tau"})
    with pytest.raises(ExportError, match="layer 'conv2': the fused plan has no unit_conv2d_sparse_tau_s8"):
        export_c(planned, tmp_path / "export", execution="fused")
    export_c(planned, tmp_path / "layers", execution="layers")  # layer by layer it exports
    assert (tmp_path / "layers" / "memory_plan.json").exists()


def _counted_mcu_run(tmp_path, qmodel, x, target):
    """Export for ``target`` with the MAC counters compiled in, build, run in the simulator: (the
    emitted outputs [n, out], the counters {layer: [7 values]}, the run)."""
    from unitprune.mcu import targets

    out = tmp_path / "export"
    result = export_c(qmodel, out, target={"msp430-hwmult": "msp430"}.get(target, target), samples=x, counters=True)
    manifest = json.loads((out / "memory_plan.json").read_text())
    firmware = targets.build(target, [out / source for source in manifest["sources"]],
                             include_dirs=[out, out / "kernels"],
                             defines={"UNIT_S8_COUNTS": 1, **manifest.get("defines", {})},
                             build_dir=tmp_path / "build", name="model")
    run = targets.run(firmware, max_cycles=400_000_000)
    counts = np.frombuffer(bytes(run.region("counts").data), "<i8").reshape(len(result.layers), 7)
    emitted = np.stack([np.frombuffer(bytes(region.data), np.int8) for region in run.regions
                        if region.label == "inference"])
    return emitted, {name: list(row) for name, row in zip(result.layers, counts.tolist())}, run


@pytest.mark.parametrize("target", ["avr", "msp430", "msp430-hwmult"])
@pytest.mark.parametrize("negative", [False, True])
def test_the_sparse_tau_kernel_is_bit_exact_on_the_mcus_with_its_counters(tmp_path, target, negative):
    """In the simulators (MSP430: the assembly run for inputs >= 0, the C run otherwise; AVR: the C
    run), unit_conv2d_sparse_tau_s8's outputs and counters by cause (UNIT_S8_COUNTS) equal the
    integer reference's per-position UnIT kernel."""
    from tests.mcu_tools import require_target

    from .test_unit_plan import two_conv_model

    require_target(target)
    rng = np.random.default_rng(22)
    qmodel = two_conv_model(rng)
    x = qmodels.random_input(rng, 2, qmodel.input_shape, zero_fraction=0.4, boundary=np.unique(qmodel.ops[0].tau))
    if not negative:
        x = np.abs(x.astype(np.int64)).clip(0, 127).astype(np.int8)
    planned = with_unit_kernels(qmodel, {"conv2": "sparse_tau", "conv3": "sparse_tau"})
    emitted, counts, _ = _counted_mcu_run(tmp_path, planned, x, target)
    outputs, expected = run_reference(qmodel, x)
    np.testing.assert_array_equal(emitted, outputs.reshape(len(x), -1))
    assert counts == {name: list(expected[name].to_dict().values()) for name in counts}


def test_without_static_no_layer_is_on_the_static_sparse_records():
    """``static=False`` (mcu-bench's plan when the records do not fit the flash): no ``static`` or
    ``sparse_tau`` candidate, where the same model's default plan has a static layer."""
    qmodel, x = _pruned_model(4, sparsity=0.8, threshold_scale=0.3)
    assert any(layer["kernel"] == "static"
               for layer in plan_unit_kernels(qmodel, x, "msp430").source["unit_kernel_plan"]["layers"].values())
    layers = plan_unit_kernels(qmodel, x, "msp430", static=False).source["unit_kernel_plan"]["layers"]
    assert all(not {"static", "sparse_tau"} & set(layer["predicted_cycles"]) for layer in layers.values()), layers
    assert all(layer["kernel"] not in ("static", "sparse_tau") for layer in layers.values())

"""convert / calibrate / set_thresholds / mac_report: behaviour and errors."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.utils.prune as prune
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.flop_counter import FlopCounterMode

import unitprune
from unitprune import UnITConfig, UnITConv1d, UnITConv2d, UnITLinear


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(6 * 3 * 3, 5),
    )


def inputs(n: int = 16, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


def has_hooks(model: nn.Module) -> bool:
    return any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks for m in model.modules())


# ----------------------------------------------------------------------------------------
# convert
# ----------------------------------------------------------------------------------------

def test_convert_swaps_layers_keeps_outputs_and_leaves_original_alone():
    model = small_cnn().eval()
    converted = unitprune.convert(model)
    assert [type(m) for m in converted if not isinstance(m, (nn.ReLU, nn.MaxPool2d, nn.Flatten))] == \
        [UnITConv2d, UnITConv2d, UnITLinear]
    assert all(type(m) is not UnITConv2d for m in model)  # not converted in place
    assert converted[0].weight is not model[0].weight  # a deep copy
    torch.testing.assert_close(converted(inputs()), model(inputs()), rtol=1e-5, atol=1e-5)
    assert not has_hooks(converted)
    assert [name for name, _ in unitprune.unit_layers(converted)] == ["0", "3", "6"]
    assert converted[3].unit_name == "3"


def test_convert_inplace_reuses_parameters_and_conv1d():
    model = nn.Sequential(nn.Conv1d(2, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 6, 2))
    weight = model[0].weight
    result = unitprune.convert(model, inplace=True)
    assert result is model
    assert isinstance(model[0], UnITConv1d) and model[0].weight is weight


def test_convert_ignored_layers_by_name_and_module():
    model = small_cnn()
    by_name = unitprune.convert(model, ignored_layers=["6"])
    assert type(by_name[6]) is nn.Linear and isinstance(by_name[0], UnITConv2d)
    by_module = unitprune.convert(model, ignored_layers=[model[0]])
    assert type(by_module[0]) is nn.Conv2d and isinstance(by_module[6], UnITLinear)
    with pytest.raises(ValueError, match="no layer named 'fc9'"):
        unitprune.convert(model, ignored_layers=["fc9"])


def test_convert_single_layer_and_idempotence():
    layer = unitprune.convert(nn.Linear(3, 2))
    assert isinstance(layer, UnITLinear)
    again = unitprune.convert(nn.Sequential(layer))
    assert again[0].weight.shape == (2, 3) and isinstance(again[0], UnITLinear)


def test_convert_leaves_multihead_attention_projection_alone():
    model = nn.MultiheadAttention(8, 2)
    converted = unitprune.convert(model)
    assert type(converted.out_proj) is type(model.out_proj)


def test_convert_pruned_model_uses_effective_weights_and_drops_prune_hooks():
    model = small_cnn()
    prune.l1_unstructured(model[6], "weight", amount=0.5)
    prune.random_unstructured(model[0], "weight", amount=0.3)
    masked_weight = model[6].weight.detach().clone()
    converted = unitprune.convert(model).eval()
    assert not has_hooks(converted)
    assert "weight_orig" not in dict(converted[6].named_parameters())
    torch.testing.assert_close(converted[6].weight.detach(), masked_weight)
    assert hasattr(model[6], "weight_orig")  # the user's model is untouched
    model.eval()
    x = inputs()
    torch.testing.assert_close(converted(x), model(x), rtol=1e-5, atol=1e-5)
    report = unitprune.mac_report(converted, x)
    zeros = int((masked_weight == 0).sum())
    assert report.per_layer["6"].zero_weight == len(x) * zeros


@pytest.mark.parametrize("make_model, message", [
    (lambda: nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect"), "padding_mode='reflect'"),
    (lambda: nn.Sequential(nn.Linear(3, 2).double()), "float32"),
    (lambda: nn.Sequential(nn.LazyLinear(4)), "lazy"),
])
def test_convert_rejects_unsupported_layers(make_model, message):
    with pytest.raises((ValueError, TypeError), match=message):
        unitprune.convert(make_model())


def test_state_dict_round_trips_thresholds():
    model = small_cnn()
    config = UnITConfig(approx="bitshift", group_size=2)
    converted = unitprune.convert(model, config).eval()
    unitprune.calibrate(converted, inputs(32))
    buffer = io.BytesIO()
    torch.save(converted.state_dict(), buffer)
    buffer.seek(0)
    fresh = unitprune.convert(model, config).eval()
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    for (name, a), (_, b) in zip(unitprune.unit_layers(converted), unitprune.unit_layers(fresh)):
        assert a.threshold.shape == (a.config.num_groups(a.weight.shape[0]),)
        torch.testing.assert_close(a.threshold, b.threshold)
        assert bool((a.threshold > 0).all()), name
    torch.testing.assert_close(converted(inputs()), fresh(inputs()))


# ----------------------------------------------------------------------------------------
# calibrate / set_thresholds
# ----------------------------------------------------------------------------------------

def _layer_inputs(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    captured = {}
    handles = [layer.register_forward_pre_hook(lambda m, a, name=name: captured.setdefault(name, a[0]))
               for name, layer in unitprune.unit_layers(model)]
    with torch.no_grad():
        model.eval()(x)
    for handle in handles:
        handle.remove()
    return captured


def _products(layer, x: torch.Tensor) -> np.ndarray:
    """|x| * |w| of every connection: per output channel, flattened (explicit, via unfold-free loops)."""
    if isinstance(layer, UnITLinear):
        return (x.abs().unsqueeze(1) * layer.weight.detach().abs().unsqueeze(0)).transpose(0, 1).reshape(
            layer.out_features, -1).numpy()
    padded = nn.functional.pad(x, [layer.padding[1]] * 2 + [layer.padding[0]] * 2).abs()
    out_h = padded.shape[2] - layer.kernel_size[0] + 1
    out_w = padded.shape[3] - layer.kernel_size[1] + 1
    per_output = []
    for o in range(layer.out_channels):
        values = []
        for c in range(layer.in_channels):
            for ky in range(layer.kernel_size[0]):
                for kx in range(layer.kernel_size[1]):
                    w = float(layer.weight.detach()[o, c, ky, kx].abs())
                    values.append(padded[:, c, ky:ky + out_h, kx:kx + out_w].reshape(-1) * w)
        per_output.append(torch.cat(values).numpy())
    return np.stack(per_output)


def _inverted_cdf(values: np.ndarray, percentile: float) -> float:
    nonzero = values[values != 0]
    return float(np.percentile(nonzero, percentile, method="inverted_cdf"))


@pytest.mark.parametrize("sequential", [True, False])
def test_calibrate_matches_numpy_percentile_of_products(sequential):
    model = unitprune.convert(small_cnn())
    x = inputs(24)
    thresholds = unitprune.calibrate(model, x, percentile=30, sequential=sequential)
    # thresholds were computed layer by layer; check each against the layer's actual inputs:
    # sequential -> inputs of the calibrated model; dense -> inputs of the threshold-0 model
    reference_model = model if sequential else unitprune.convert(small_cnn())
    layer_inputs = _layer_inputs(reference_model, x)
    for name, layer in unitprune.unit_layers(model):
        expected = _inverted_cdf(_products(layer, layer_inputs[name]).reshape(-1), 30)
        assert float(thresholds[name][0]) == np.float32(expected), name
        assert float(layer.threshold[0]) == np.float32(expected)


def test_calibrate_sequential_sees_upstream_pruning():
    x = inputs(24)
    sequential = unitprune.convert(small_cnn())
    dense = unitprune.convert(small_cnn())
    a = unitprune.calibrate(sequential, x, percentile=40)
    b = unitprune.calibrate(dense, x, percentile=40, sequential=False)
    assert float(a["0"]) == float(b["0"])  # the first layer sees the same input either way
    assert float(a["3"]) != float(b["3"])


def test_calibrate_group_thresholds_and_per_layer_override():
    model = unitprune.convert(small_cnn(), UnITConfig(group_size=4))
    x = inputs(20)
    thresholds = unitprune.calibrate(model, x, percentile=20, per_layer={"6": 50.0, "3": 0})
    assert thresholds["0"].shape == (1,) and thresholds["3"].shape == (2,) and thresholds["6"].shape == (2,)
    assert bool((thresholds["3"] == 0).all())
    layer_inputs = _layer_inputs(model, x)
    products = _products(model[6], layer_inputs["6"])  # (out=5, ...) -> groups [0..3], [4]
    for group, rows in enumerate([slice(0, 4), slice(4, 5)]):
        assert float(thresholds["6"][group]) == np.float32(_inverted_cdf(products[rows].reshape(-1), 50))


def test_calibrated_percentile_skips_that_share_of_products_with_exact_division():
    model = unitprune.convert(small_cnn())
    x = inputs(40)
    unitprune.calibrate(model, x, percentile=25)
    report = unitprune.mac_report(model, x)
    for name, counts in report.per_layer.items():
        nonzero_products = counts.dense - counts.zero_weight - counts.zero_activation
        share = counts.threshold / nonzero_products
        assert 0.25 <= share < 0.25 + 1e-3, name  # ties and rounding may only add a hair


@pytest.mark.parametrize("make_data", [
    lambda x: DataLoader(TensorDataset(x, torch.zeros(len(x))), batch_size=7),
    lambda x: [(x[:10], None), (x[10:], None)],
    lambda x: [x[:5], x[5:]],
])
def test_calibrate_accepts_loaders_and_iterables(make_data):
    x = inputs(20)
    expected = unitprune.calibrate(unitprune.convert(small_cnn()), x)
    got = unitprune.calibrate(unitprune.convert(small_cnn()), make_data(x))
    for name in expected:
        assert float(got[name]) == float(expected[name])


def test_calibrate_max_batches_and_mode_restored():
    x = inputs(20)
    model = unitprune.convert(small_cnn()).train()
    limited = unitprune.calibrate(model, [x[:5], x[5:]], max_batches=1)
    assert model.training
    only_first = unitprune.calibrate(unitprune.convert(small_cnn()), x[:5])
    assert all(float(limited[n]) == float(only_first[n]) for n in limited)
    assert not has_hooks(model)


def test_calibrate_builds_bintree_for_bintree_layers():
    model = unitprune.convert(small_cnn(), UnITConfig(approx="bintree"))
    unitprune.calibrate(model, inputs(10))
    tree = model[6].bintree
    magnitudes = _layer_inputs(model, inputs(10))["6"].abs().numpy().ravel()
    from unitprune.approx import BinTree, FLOAT32_MAX_EXP, FLOAT32_MIN_EXP
    balanced = BinTree.balanced(FLOAT32_MIN_EXP, FLOAT32_MAX_EXP)
    assert tree.expected_comparisons(magnitudes[magnitudes > 0]) < balanced.expected_comparisons(
        magnitudes[magnitudes > 0])


@pytest.mark.parametrize("kwargs, error, message", [
    ({"data": torch.empty(0, 1, 8, 8)}, ValueError, "empty"),
    ({"data": []}, ValueError, "empty"),
    ({"data": inputs(), "percentile": 120}, ValueError, r"\[0, 100\]"),
    ({"data": inputs(), "percentile": float("nan")}, ValueError, r"\[0, 100\]"),
    ({"data": inputs(), "per_layer": {"fc": 10}}, ValueError, "no UnIT layer named 'fc'"),
    ({"data": inputs(), "max_batches": 0}, ValueError, "max_batches"),
    ({"data": [{"x": 1}]}, TypeError, "expected a tensor"),
    ({"data": 3.0}, TypeError, "calibration data"),
])
def test_calibrate_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        unitprune.calibrate(unitprune.convert(small_cnn()), **kwargs)


def test_calibrate_and_report_need_unit_layers():
    with pytest.raises(ValueError, match="convert"):
        unitprune.calibrate(small_cnn(), inputs())
    with pytest.raises(ValueError, match="convert"):
        unitprune.mac_report(small_cnn(), inputs())
    with pytest.raises(ValueError, match="convert"):
        unitprune.set_thresholds(small_cnn(), 0.1)


def test_calibrate_rejects_nan_activations_naming_the_layer():
    model = unitprune.convert(small_cnn())
    x = inputs()
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="layer '0'.*NaN"):
        unitprune.calibrate(model, x)


def test_set_thresholds_scalar_dict_and_errors():
    model = unitprune.convert(small_cnn(), UnITConfig(group_size=3))
    unitprune.set_thresholds(model, 0.5)
    assert all(bool((layer.threshold == 0.5).all()) for _, layer in unitprune.unit_layers(model))
    unitprune.set_thresholds(model, {"3": [0.1, 0.2], "6": 0.3})
    assert model[3].threshold.tolist() == pytest.approx([0.1, 0.2])
    assert model[6].threshold.tolist() == pytest.approx([0.3, 0.3])
    assert model[0].threshold.tolist() == pytest.approx([0.5, 0.5])
    for bad, message in [(-1.0, "finite and >= 0"), (float("nan"), "finite and >= 0"),
                         (float("inf"), "finite and >= 0"), ({"3": [1, 2, 3]}, "2 threshold groups"),
                         ({"conv9": 1.0}, "no UnIT layer named")]:
        with pytest.raises(ValueError, match=message):
            unitprune.set_thresholds(model, bad)


# ----------------------------------------------------------------------------------------
# forward-pass input errors
# ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("x, error, message", [
    (torch.full((2, 1, 8, 8), float("nan")), ValueError, "layer '0': input contains NaN or Inf"),
    (torch.full((2, 1, 8, 8), float("inf")), ValueError, "NaN or Inf"),
    (torch.randn(2, 3, 8, 8), ValueError, "expected 1 input channels"),
    (torch.randn(2, 1, 1, 8, 8), ValueError, "rank"),
    (torch.randn(2, 1, 8, 8, dtype=torch.float64), TypeError, "float32"),
    (torch.randint(0, 5, (2, 1, 8, 8)), TypeError, "float32"),
])
def test_forward_rejects_bad_inputs_naming_the_layer(x, error, message):
    model = unitprune.convert(small_cnn()).eval()
    with pytest.raises(error, match=message):
        model(x)


def test_forward_rejects_wrong_feature_count_and_bad_threshold_buffer():
    layer = unitprune.convert(nn.Linear(4, 2)).eval()
    with pytest.raises(ValueError, match="expected 4 input"):
        layer(torch.randn(3, 5))
    layer.threshold.fill_(-1.0)
    with pytest.raises(ValueError, match="finite and >= 0"):
        layer(torch.randn(3, 4))


# ----------------------------------------------------------------------------------------
# mac_report
# ----------------------------------------------------------------------------------------

def test_mac_report_totals_flops_and_state():
    model = small_cnn()
    converted = unitprune.convert(model, UnITConfig(approx="bitmask"))
    x = inputs(12)
    unitprune.calibrate(converted, x, percentile=20)
    converted.train()
    report = unitprune.mac_report(converted, x)
    assert converted.training  # mode restored
    with FlopCounterMode(display=False) as counter:
        model(x)
    assert report.total.dense == counter.get_total_flops() // 2
    assert report.num_samples == 12
    assert list(report.per_layer) == ["0", "3", "6"]
    total = report.total
    total.check()
    for field in ("dense", "zero_weight", "zero_activation", "threshold", "executed", "compares", "divisions"):
        assert getattr(total, field) == sum(getattr(c, field) for c in report.per_layer.values())
    assert report.skipped_fraction == pytest.approx((total.dense - total.executed) / total.dense)
    assert 0 < report.skipped_fraction < 1
    as_dict = report.to_dict()
    assert as_dict["total"] == total.to_dict() and set(as_dict["per_layer"]) == {"0", "3", "6"}
    text = str(report)
    assert "zero_activation" in text and "total" in text and f"{total.dense:,}" in text
    # a second report of the same input gives the same counts (no leftovers from the first)
    assert unitprune.mac_report(converted, x).to_dict() == as_dict


def test_mac_counts_accumulate_and_reset():
    model = unitprune.convert(small_cnn()).eval()
    x = inputs(4)
    model(x)
    once = model[6].mac_counts
    model(x)
    assert model[6].mac_counts.dense == 2 * once.dense
    unitprune.reset_mac_counts(model)
    assert model[6].mac_counts.dense == 0


def test_mac_report_rejects_empty_inputs():
    with pytest.raises(ValueError, match="at least one sample"):
        unitprune.mac_report(unitprune.convert(small_cnn()), torch.empty(0, 1, 8, 8))


def test_config_validation():
    with pytest.raises(ValueError, match="approx"):
        UnITConfig(approx="fast")
    with pytest.raises(ValueError, match="group_size"):
        UnITConfig(group_size=0)
    with pytest.raises(ValueError, match="percentile"):
        UnITConfig(percentile=-1)
    with pytest.raises(ValueError, match="backend"):
        UnITConfig(backend="cuda")

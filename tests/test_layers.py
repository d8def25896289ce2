"""UnIT layers against the independent NumPy oracle and against torch's own layers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

import unitprune
from unitprune import UnITConfig
from tests.helpers import APPROXES, prune_weights, sparse_input
from tests.oracle import conv2d_oracle, linear_oracle, same_padding

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def flops_of(module: nn.Module, x: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter:
        module(x)
    return counter.get_total_flops()


def assert_counts_equal(actual: unitprune.MacCounts, expected: dict) -> None:
    actual.check()
    assert actual.to_dict() == expected


def thresholds_for(layer_out: int, group_size, generator, scale: float) -> torch.Tensor:
    groups = UnITConfig(group_size=group_size).num_groups(layer_out)
    return torch.rand(groups, generator=generator) * scale


# ----------------------------------------------------------------------------------------
# Linear
# ----------------------------------------------------------------------------------------

@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), approx=st.sampled_from(APPROXES), in_features=st.integers(1, 12),
       out_features=st.integers(1, 9), rows=st.integers(1, 5), bias=st.booleans(),
       group_size=st.sampled_from([None, 1, 2, 4]), shift_start=st.sampled_from([None, -2, 1]),
       zero_fraction=st.sampled_from([0.0, 0.3, 0.7]), weight_zero_fraction=st.sampled_from([0.0, 0.4]))
def test_linear_matches_oracle(seed, approx, in_features, out_features, rows, bias, group_size, shift_start,
                               zero_fraction, weight_zero_fraction):
    generator = torch.Generator().manual_seed(seed)
    dense = nn.Linear(in_features, out_features, bias=bias)
    prune_weights(dense, generator, weight_zero_fraction)
    config = UnITConfig(approx=approx, group_size=group_size, shift_start=shift_start)
    layer = unitprune.convert(dense, config).eval()
    thresholds = thresholds_for(out_features, group_size, generator, scale=0.5)
    layer.threshold.copy_(thresholds)
    x = sparse_input(generator, (rows, in_features), zero_fraction)

    y = layer(x)
    expected_y, expected_counts = linear_oracle(
        x.numpy(), dense.weight.detach().numpy(), None if dense.bias is None else dense.bias.detach().numpy(),
        thresholds.numpy(), approx, group_size, shift_start)
    np.testing.assert_allclose(y.detach().numpy(), expected_y, rtol=1e-5, atol=1e-5)
    assert_counts_equal(layer.mac_counts, expected_counts)
    assert layer.mac_counts.dense == flops_of(dense, x) // 2


def test_linear_accepts_extra_leading_dims_and_counts_rows():
    generator = torch.Generator().manual_seed(3)
    dense = nn.Linear(6, 4)
    layer = unitprune.convert(dense).eval()
    layer.threshold.fill_(0.3)
    x = sparse_input(generator, (2, 3, 6), 0.2)
    y = layer(x)
    expected_y, expected_counts = linear_oracle(x.reshape(6, 6).numpy(), dense.weight.detach().numpy(),
                                                dense.bias.detach().numpy(), [0.3], "exact")
    np.testing.assert_allclose(y.reshape(6, 4).detach().numpy(), expected_y, rtol=1e-5, atol=1e-5)
    assert_counts_equal(layer.mac_counts, expected_counts)
    assert layer.mac_counts.dense == flops_of(dense, x) // 2


# ----------------------------------------------------------------------------------------
# Convolutions
# ----------------------------------------------------------------------------------------

conv_options = st.fixed_dictionaries({
    "kernel": st.sampled_from([1, 2, 3, (2, 3), (3, 1)]),
    "stride": st.sampled_from([1, 2, (1, 2)]),
    "padding": st.sampled_from([0, 1, (1, 2), "same", "valid"]),
    "dilation": st.sampled_from([1, 2, (2, 1)]),
    "groups": st.sampled_from([1, 2]),
    "bias": st.booleans(),
})


def _pair(value):
    return tuple(value) if isinstance(value, tuple) else (value, value)


def _explicit_padding(padding, kernel, dilation):
    if padding == "same":
        return tuple(same_padding(k, d) for k, d in zip(kernel, dilation))
    if padding == "valid":
        return ((0, 0), (0, 0))
    p = _pair(padding)
    return ((p[0], p[0]), (p[1], p[1]))


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), approx=st.sampled_from(APPROXES), options=conv_options,
       channels=st.sampled_from([2, 4]), out_per_group=st.integers(1, 3), batch=st.integers(1, 3),
       size=st.tuples(st.integers(5, 8), st.integers(5, 9)), group_size=st.sampled_from([None, 1, 2]),
       shift_start=st.sampled_from([None, 0]), zero_fraction=st.sampled_from([0.0, 0.5]),
       weight_zero_fraction=st.sampled_from([0.0, 0.3]))
def test_conv2d_matches_oracle(seed, approx, options, channels, out_per_group, batch, size, group_size,
                               shift_start, zero_fraction, weight_zero_fraction):
    if options["padding"] == "same" and _pair(options["stride"]) != (1, 1):
        return  # torch refuses padding='same' with stride > 1
    generator = torch.Generator().manual_seed(seed)
    groups = options["groups"]
    dense = nn.Conv2d(channels, out_per_group * groups, options["kernel"], stride=options["stride"],
                      padding=options["padding"], dilation=options["dilation"], groups=groups, bias=options["bias"])
    prune_weights(dense, generator, weight_zero_fraction)
    config = UnITConfig(approx=approx, group_size=group_size, shift_start=shift_start)
    layer = unitprune.convert(dense, config).eval()
    thresholds = thresholds_for(dense.out_channels, group_size, generator, scale=0.3)
    layer.threshold.copy_(thresholds)
    x = sparse_input(generator, (batch, channels, *size), zero_fraction)

    y = layer(x)
    kernel = _pair(options["kernel"])
    dilation = _pair(options["dilation"])
    expected_y, expected_counts = conv2d_oracle(
        x.numpy(), dense.weight.detach().numpy(), None if dense.bias is None else dense.bias.detach().numpy(),
        thresholds.numpy(), approx, stride=_pair(options["stride"]),
        padding=_explicit_padding(options["padding"], kernel, dilation), dilation=dilation, groups=groups,
        group_size=group_size, shift_start=shift_start)
    np.testing.assert_allclose(y.detach().numpy(), expected_y, rtol=1e-5, atol=1e-5)
    assert_counts_equal(layer.mac_counts, expected_counts)
    assert layer.mac_counts.dense == flops_of(dense, x) // 2


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), approx=st.sampled_from(APPROXES), kernel=st.integers(1, 4),
       stride=st.integers(1, 2), padding=st.sampled_from([0, 2, "same", "valid"]), dilation=st.integers(1, 2),
       groups=st.sampled_from([1, 3]), bias=st.booleans(), length=st.integers(6, 12))
def test_conv1d_matches_oracle(seed, approx, kernel, stride, padding, dilation, groups, bias, length):
    if padding == "same" and stride != 1:
        return
    generator = torch.Generator().manual_seed(seed)
    dense = nn.Conv1d(3, 2 * groups, kernel, stride=stride, padding=padding, dilation=dilation, groups=groups,
                      bias=bias)
    prune_weights(dense, generator, 0.2)
    layer = unitprune.convert(dense, UnITConfig(approx=approx)).eval()
    layer.threshold.fill_(0.2)
    x = sparse_input(generator, (2, 3, length), 0.3)
    padded_length = length + (2 * padding if isinstance(padding, int) else 0)
    if padding != "same" and padded_length < dilation * (kernel - 1) + 1:
        with pytest.raises(ValueError, match="smaller than the dilated kernel"):
            layer(x)  # torch raises too: no output position fits
        return

    y = layer(x)
    if padding == "same":
        explicit = ((0, 0), same_padding(kernel, dilation))
    elif padding == "valid":
        explicit = ((0, 0), (0, 0))
    else:
        explicit = ((0, 0), (padding, padding))
    expected_y, expected_counts = conv2d_oracle(
        x.numpy()[:, :, None, :], dense.weight.detach().numpy()[:, :, None, :],
        None if dense.bias is None else dense.bias.detach().numpy(), [0.2], approx, stride=(1, stride),
        padding=explicit, dilation=(1, dilation), groups=groups)
    np.testing.assert_allclose(y.detach().numpy(), expected_y[:, :, 0, :], rtol=1e-5, atol=1e-5)
    assert_counts_equal(layer.mac_counts, expected_counts)
    assert layer.mac_counts.dense == flops_of(dense, x) // 2


# ----------------------------------------------------------------------------------------
# Against torch at T = 0, train mode, unbatched inputs, chunking
# ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("approx", APPROXES)
@pytest.mark.parametrize("make_layer, shape", [
    (lambda: nn.Linear(20, 7), (5, 20)),
    (lambda: nn.Conv1d(4, 6, 3, stride=2, padding=1, groups=2), (3, 4, 17)),
    (lambda: nn.Conv2d(3, 4, (3, 2), padding="same", dilation=(1, 2)), (2, 3, 9, 8)),
    (lambda: nn.Conv2d(4, 8, 3, stride=2, padding=(2, 1), groups=4, bias=False), (2, 4, 11, 10)),
])
def test_zero_threshold_equals_torch_layer(approx, make_layer, shape):
    torch.manual_seed(0)
    dense = make_layer()
    layer = unitprune.convert(dense, UnITConfig(approx=approx)).eval()
    x = torch.relu(torch.randn(shape))
    torch.testing.assert_close(layer(x), dense(x), rtol=1e-5, atol=1e-5)
    counts = layer.mac_counts
    assert counts.threshold == 0
    assert counts.executed + counts.zero_activation + counts.zero_weight == counts.dense


def test_train_mode_is_dense_and_differentiable():
    torch.manual_seed(0)
    dense = nn.Conv2d(2, 3, 3)
    layer = unitprune.convert(dense)
    layer.threshold.fill_(1e6)  # would skip everything in eval mode
    x = torch.randn(2, 2, 6, 6, requires_grad=True)
    layer.train()
    torch.testing.assert_close(layer(x), dense(x))
    layer(x).sum().backward()
    assert layer.weight.grad is not None and x.grad is not None
    layer.eval()
    assert torch.equal(layer(x.detach()), dense.bias.detach().view(1, 3, 1, 1).expand(2, 3, 4, 4))


@pytest.mark.parametrize("make_layer, shape", [
    (lambda: nn.Conv1d(3, 4, 3, padding=1), (3, 10)),
    (lambda: nn.Conv2d(3, 4, 3, padding=1), (3, 7, 6)),
    (lambda: nn.Linear(5, 2), (5,)),
])
def test_unbatched_inputs(make_layer, shape):
    torch.manual_seed(1)
    dense = make_layer()
    layer = unitprune.convert(dense).eval()
    layer.threshold.fill_(0.2)
    x = torch.randn(shape)
    single = layer(x)
    batched = layer(x.unsqueeze(0)).squeeze(0)
    torch.testing.assert_close(single, batched)
    assert single.shape == dense(x).shape


@pytest.mark.parametrize("make_layer, shape", [
    (lambda: nn.Linear(30, 20), (9, 30)),
    (lambda: nn.Conv2d(4, 6, 3, padding=1, groups=2), (5, 4, 8, 8)),
])
def test_chunked_reference_equals_unchunked(make_layer, shape):
    torch.manual_seed(2)
    dense = make_layer()
    x = torch.relu(torch.randn(shape))
    results = []
    for chunk_elements in (1, 97, 1 << 23):
        layer = unitprune.convert(dense, UnITConfig(approx="bitmask", chunk_elements=chunk_elements)).eval()
        layer.threshold.fill_(0.1)
        results.append((layer(x), layer.mac_counts))
    for y, counts in results[1:]:
        torch.testing.assert_close(y, results[0][0], rtol=1e-6, atol=1e-6)
        assert counts == results[0][1]


def test_conv_quotients_are_cached_until_threshold_or_weight_changes():
    layer = unitprune.convert(nn.Conv2d(2, 3, 3)).eval()
    layer.threshold.fill_(0.5)
    first = layer.quotients()
    assert layer.quotients() is first
    layer.threshold.fill_(0.25)
    second = layer.quotients()
    assert second is not first
    torch.testing.assert_close(second, 0.25 / layer.weight.detach().abs())
    with torch.no_grad():
        layer.weight.mul_(2.0)
    torch.testing.assert_close(layer.quotients(), 0.25 / layer.weight.detach().abs())


@pytest.mark.parametrize("backend", ["torch", "c"])
def test_model_built_and_calibrated_inside_inference_mode(backend):
    """Inference tensors have no version counter: changes of their thresholds and weights must
    still reach the cached quotients and C plans (compared with a model built normally)."""
    if backend == "c" and not unitprune.backends.available():
        pytest.skip("C kernels not built")
    generator = torch.Generator().manual_seed(5)
    dense = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 4 * 4, 5)).eval()
    x = sparse_input(generator, (6, 2, 6, 6), 0.3)
    config = UnITConfig(backend=backend)
    normal = unitprune.convert(dense, config)
    with torch.inference_mode():
        inside = unitprune.convert(dense, config)
        assert inside[0].threshold.is_inference()
        before = inside(x)
        torch.testing.assert_close(before, dense(x))  # thresholds 0: the dense model
        unitprune.calibrate(inside, x, percentile=40)  # in-place threshold updates
        after = inside(x)
    unitprune.calibrate(normal, x, percentile=40)
    with torch.no_grad():
        expected = normal(x)
    assert not torch.allclose(after, before)
    torch.testing.assert_close(after, expected)
    assert inside[0].mac_counts.to_dict() != {} and inside[0].threshold.item() == normal[0].threshold.item()
    with torch.inference_mode():  # in-place weight change of an inference tensor
        inside[0].weight.mul_(-1.0)
        inside[3].weight.mul_(-1.0)
        flipped = inside(x)
    with torch.no_grad():
        normal[0].weight.mul_(-1.0)
        normal[3].weight.mul_(-1.0)
        torch.testing.assert_close(flipped, normal(x))


def test_conv_input_checks_follow_shape_and_geometry_changes():
    layer = unitprune.convert(nn.Conv2d(2, 3, 3)).eval()
    layer(torch.rand(1, 2, 5, 5))  # accepted and remembered
    with pytest.raises(ValueError, match="input channels"):
        layer(torch.rand(1, 4, 5, 5))
    with pytest.raises(TypeError, match="float32"):
        layer(torch.rand(1, 2, 5, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="NaN or Inf"):
        layer(torch.full((1, 2, 5, 5), float("nan")))
    layer.padding = (2, 2)  # geometry changes after conversion are honoured
    assert layer(torch.rand(1, 2, 5, 5)).shape == (1, 3, 7, 7)
    layer.dilation = (3, 3)
    with pytest.raises(ValueError, match="smaller than the dilated kernel"):
        layer(torch.rand(1, 2, 2, 2))


def test_mac_counts_snapshots_are_not_mutated_by_later_calls():
    layer = unitprune.convert(nn.Linear(4, 3)).eval()
    x = torch.rand(2, 4)
    layer(x)
    first = layer.mac_counts
    layer(x)
    assert first.dense == 2 * 4 * 3
    assert layer.mac_counts.dense == 2 * first.dense

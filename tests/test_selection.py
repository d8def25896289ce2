"""The fast exact calibration (sorted multisets) against the explicit products and numpy's percentile."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from unitprune import UnITConfig, convert
from unitprune.calibrate import layer_products, product_percentile
from unitprune.convert import unit_layers
from unitprune.selection import Part, layer_percentile, percentile_of_products

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def captured_inputs(model, x):
    inputs = {}
    hooks = [layer.register_forward_pre_hook(lambda module, args, name=name: inputs.setdefault(name, [args[0]])
                                             and None) for name, layer in unit_layers(model)]
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    return inputs


def explicit_products(layer, x: torch.Tensor) -> np.ndarray:
    """Every |x * w| of the layer, formed with torch's own unfold (independent of the library)."""
    w = layer.weight.detach().abs()
    if isinstance(layer, nn.Linear):
        return (x.abs().reshape(len(x), 1, -1) * w.unsqueeze(0)).reshape(len(x), w.shape[0], -1)
    cols = nn.functional.unfold(x, layer.kernel_size, dilation=layer.dilation, padding=layer.padding,
                                stride=layer.stride).abs()  # (n, C*K, L)
    groups, out = layer.groups, w.shape[0]
    taps = cols.shape[1] // groups
    per_group = [cols[:, g * taps:(g + 1) * taps].unsqueeze(1) * w[g * out // groups:(g + 1) * out // groups]
                 .reshape(1, out // groups, taps, 1) for g in range(groups)]
    return torch.cat(per_group, dim=1)  # (n, O, taps, L)


def build(seed: int):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1, stride=2), nn.ReLU(), nn.Conv2d(6, 8, 3, groups=2, dilation=2, padding=(2, 1)),
                          nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 4, 5))
    with torch.no_grad():
        model[0].weight[0, 0, 0, 0] = 0.0  # a zero weight: its products are zeros, left out
    x = torch.relu(torch.randn(6, 3, 12, 12))
    x[:, :, :3] = 0.25  # runs of equal activations
    return model, x


@pytest.mark.parametrize("group_size", [None, 2])
@pytest.mark.parametrize("seed", [0, 1])
def test_layer_percentile_is_numpy_inverted_cdf(group_size, seed):
    model, x = build(seed)
    unit_model = convert(model, UnITConfig(group_size=group_size))
    inputs = captured_inputs(unit_model, x)
    for name, layer in unit_layers(unit_model):
        products = explicit_products(layer, inputs[name][0])
        for p in (0.5, 20.0, 50.0, 77.7, 99.0, 100.0):
            got = layer_percentile(layer, inputs[name], p)
            assert torch.equal(got, product_percentile(lambda: layer_products(layer, inputs[name]),
                                                       layer.num_threshold_groups, p))
            for group in range(layer.num_threshold_groups):
                outs = slice(None) if group_size is None else slice(group * group_size, (group + 1) * group_size)
                values = products[:, outs].reshape(-1).numpy()
                expected = np.percentile(values[values > 0], p, method="inverted_cdf")
                assert got[group].item() == np.float32(expected), (name, p, group)


def test_rounding_at_the_boundary_and_underflow():
    # products that round onto the candidate threshold, and products that underflow to zero
    values = torch.tensor([[1.0, 1.0 + 2 ** -23, 1.0 + 2 ** -22, 3.0, 3.0, 3.0, 7.0, float("inf")],
                           [1e-30, 2e-30, 5.0, float("inf"), float("inf"), float("inf"), float("inf"), float("inf")]])
    valid = torch.tensor([7, 3])
    weights = torch.tensor([[1.0 / 3.0, 0.1], [1e-20, 0.7]], dtype=torch.float32)
    groups = torch.zeros_like(weights, dtype=torch.int64)
    products = [float(np.float32(v) * np.float32(w)) for r in range(2) for q in range(2)
                for v, w in [(values[r, j].item(), weights[r, q].item()) for j in range(int(valid[r]))]]
    products = np.array(products, dtype=np.float64)
    products = products[products > 0]
    assert len(products) < 20  # some underflowed to 0 and are left out
    for p in (1, 10, 25, 33.3, 50, 60, 75, 90, 100):
        got = percentile_of_products([Part(values, valid, weights, groups, torch.ones_like(groups))], 1, p)
        assert got.item() == np.float32(np.percentile(products, p, method="inverted_cdf")), p

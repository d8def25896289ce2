"""Randomized end-to-end test (issue 10, item 8): random small models, options and bad inputs.

Each example builds a small model mixing layers UnIT converts (Conv2d, Linear) with layers it
does not (ConvTranspose2d, a ``torch.matmul`` in a forward), converts it with random options and
feeds it either good data or one kind of bad input. The expected outcome comes from independent
oracles, never from unitprune itself:

* good data: outputs equal the dense model's at ``T = 0``; ``mac_report``'s whole-model total
  equals torch's FlopCounterMode count of the dense model / 2; after calibration both backends
  give the same outputs and identical MAC counts layer by layer (on the same layer inputs);
* non-finite data or weights: the first converted layer whose input is non-finite (found with
  hooks on the dense model) is named in a ValueError; a NaN/Inf parameter of a converted layer
  is named at ``convert`` and when set later;
* any other bad input (dtype, shape, device, NaN threshold, empty data): either the dense model
  fails the same way (the error is in a layer UnIT does not touch), or a TypeError/ValueError names
  a UnIT layer or the public function. Never an exception from inside torch's or ctypes' code in
  a UnIT layer.
"""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn as nn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

import unitprune
from unitprune import UnITConfig, backends
from unitprune.config import APPROX_METHODS

pytestmark = pytest.mark.usefixtures("one_torch_thread")

HAS_C = backends.available()


class ChannelMix(nn.Module):
    """``torch.matmul`` over the width: MACs no UnIT layer does (a functional call in a forward)."""

    def __init__(self, width: int, seed: int) -> None:
        super().__init__()
        self.mix = nn.Parameter(torch.randn(width, width, generator=torch.Generator().manual_seed(seed)) / width)

    def forward(self, x):
        return torch.matmul(x, self.mix)


def build_model(blocks: list[tuple], channels: int, size: int, classes: int, seed: int) -> nn.Module:
    """A Sequential from ``blocks`` (kind, out channels, kernel); spatial size stays >= 1."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for kind, out, kernel in blocks:
        if kind == "conv":
            kernel = min(kernel, size)
            layers.append(nn.Conv2d(channels, out, kernel, padding=kernel // 2 if size < 4 else 0))
            size = size + 2 * (kernel // 2 if size < 4 else 0) - kernel + 1
        elif kind == "deconv":
            layers.append(nn.ConvTranspose2d(channels, out, kernel))
            size = size + kernel - 1
        elif kind == "mix":
            layers.append(ChannelMix(size, seed))
            out = channels
        layers.append(nn.ReLU())
        channels = out
    layers += [nn.Flatten(), nn.Linear(channels * size * size, classes)]
    return nn.Sequential(*layers).eval()


def flop_macs(model: nn.Module, x: torch.Tensor) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() // 2


def first_nonfinite_input(model: nn.Module, names: list[str], x: torch.Tensor) -> str | None:
    """Name of the first module in ``names`` whose input holds NaN/Inf in the dense model's pass."""
    seen: list[str] = []

    def make_hook(name):
        def hook(module, args):
            if not seen and not bool(torch.isfinite(args[0]).all()):
                seen.append(name)
        return hook

    handles = [model.get_submodule(name).register_forward_pre_hook(make_hook(name)) for name in names]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return seen[0] if seen else None


def dense_outcome(model: nn.Module, x) -> tuple[str, object]:
    try:
        with torch.no_grad():
            return "ok", model(x)
    except Exception as error:  # noqa: BLE001  (the oracle records whatever torch does)
        return "error", error


BLOCK = st.tuples(st.sampled_from(["conv", "deconv", "mix"]), st.integers(1, 3), st.integers(1, 3))
BAD_INPUTS = ["none", "nan_input", "inf_input", "nan_weight", "inf_bias", "nan_weight_later", "nan_threshold",
              "float64", "wrong_channels", "meta_input", "empty_batch", "empty_calibration"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blocks=st.lists(BLOCK, min_size=1, max_size=3), channels=st.integers(1, 2), size=st.integers(3, 6),
       classes=st.integers(1, 4), seed=st.integers(0, 10_000), approx=st.sampled_from(APPROX_METHODS),
       group_size=st.sampled_from([None, 1, 2]), shift_start=st.sampled_from([None, -2, 1]),
       percentile=st.sampled_from([0.0, 30.0, 90.0]), bad=st.sampled_from(BAD_INPUTS), data=st.data())
def test_random_models_options_and_bad_inputs(blocks, channels, size, classes, seed, approx, group_size, shift_start,
                                              percentile, bad, data):
    model = build_model(blocks, channels, size, classes, seed)
    convertible = [name for name, module in model.named_modules() if type(module) in (nn.Conv2d, nn.Linear)]
    config = UnITConfig(approx=approx, group_size=group_size, shift_start=shift_start, backend="torch")
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(3, channels, size, size, generator=generator)

    if bad in ("nan_weight", "inf_bias"):  # bad parameters of a layer UnIT converts: refused at convert
        target = data.draw(st.sampled_from(convertible))
        parameter = "weight" if bad == "nan_weight" else "bias"
        with torch.no_grad():
            getattr(model.get_submodule(target), parameter).view(-1)[0] = float("nan" if bad == "nan_weight" else "inf")
        with pytest.raises(ValueError, match=rf"layer '{target}': {parameter} contains NaN or Inf"):
            unitprune.convert(model, config)
        return

    converted = unitprune.convert(model, config)
    unit_names = [name for name, _ in unitprune.unit_layers(converted)]
    assert unit_names == convertible  # exactly the exact-type Conv2d/Linear layers, nothing else

    if bad == "none":
        check_good_data(model, converted, x, percentile)
        return
    if bad in ("nan_input", "inf_input"):
        x = x.clone()
        index = tuple(data.draw(st.integers(0, d - 1)) for d in x.shape)
        x[index] = float("nan") if bad == "nan_input" else data.draw(st.sampled_from([float("inf"), -float("inf")]))
        culprit = first_nonfinite_input(model, convertible, x)
        if culprit is None:  # the bad value never reaches a UnIT layer (e.g. ReLU(-inf) = 0): documented result
            torch.testing.assert_close(converted(x), model(x), rtol=1e-4, atol=1e-4, equal_nan=True)
        else:
            with pytest.raises(ValueError, match=rf"layer '{re.escape(culprit)}': input contains NaN or Inf"):
                converted(x)
        return
    if bad == "nan_weight_later":
        target = data.draw(st.sampled_from(unit_names))
        converted(x)
        with torch.no_grad():
            converted.get_submodule(target).weight.view(-1)[-1] = float("nan")
        # upstream of the target every input is finite, so the target is the first to fail, on its weight
        with pytest.raises(ValueError, match=rf"layer '{re.escape(target)}': weight contains NaN or Inf"):
            converted(x)
        return
    if bad == "nan_threshold":
        target = data.draw(st.sampled_from(unit_names))
        with pytest.raises(ValueError, match=rf"set_thresholds: thresholds of layer '{re.escape(target)}'"):
            unitprune.set_thresholds(converted, {target: float("nan")})
        converted.get_submodule(target).threshold.fill_(float("nan"))  # around the API: checked at run time
        with pytest.raises(ValueError, match=rf"layer '{re.escape(target)}': thresholds must be finite"):
            converted(x)
        return
    if bad == "empty_calibration":
        with pytest.raises(ValueError, match="calibrate: the calibration data is empty"):
            unitprune.calibrate(converted, x[:0])
        with pytest.raises(ValueError, match="mac_report: inputs must hold at least one sample"):
            unitprune.mac_report(converted, x[:0])
        return

    bad_x = {"float64": x.double(), "empty_batch": x[:0], "meta_input": x.to("meta"),
             "wrong_channels": torch.randn(3, channels + 1, size, size, generator=generator)}[bad]
    check_bad_input(model, converted, unit_names, bad_x)


def check_good_data(model: nn.Module, converted: nn.Module, x: torch.Tensor, percentile: float) -> None:
    torch.testing.assert_close(converted(x), model(x), rtol=1e-5, atol=1e-5)  # T = 0: the dense model
    report = unitprune.mac_report(converted, x)
    assert report.total.dense == flop_macs(model, x)  # every MAC of the model, once
    for counts in [*report.per_layer.values(), *report.other_layers.values()]:
        counts.check()
    unitprune.calibrate(converted, x, percentile=percentile)
    if not HAS_C:
        return
    for name, layer in unitprune.unit_layers(converted):  # both backends on the same layer inputs
        captured = []
        handle = layer.register_forward_pre_hook(lambda module, args: captured.append(args[0]))
        converted(x)
        handle.remove()
        outputs, counts = [], []
        torch_config = layer.config
        for backend in ("torch", "c"):
            layer.config = torch_config.with_runtime(backend=backend)
            layer.reset_mac_counts()
            outputs.append(layer(captured[0]))
            counts.append(layer.mac_counts)
        layer.config = torch_config
        torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-5, atol=1e-5)
        assert counts[1] == counts[0], name


def check_bad_input(model: nn.Module, converted: nn.Module, unit_names: list[str], bad_x: torch.Tensor) -> None:
    dense_status, dense_value = dense_outcome(model, bad_x)
    try:
        with torch.no_grad():
            output = converted(bad_x)
    except (TypeError, ValueError, RuntimeError) as error:
        named = re.search(r"layer '([^']*)'", str(error))
        if named and named.group(1) in unit_names and isinstance(error, (TypeError, ValueError)):
            return  # a clear error naming a UnIT layer
        # otherwise the failure must be the dense model's own (a layer UnIT leaves alone)
        assert dense_status == "error", f"UnIT model failed where the dense model did not: {error!r}"
        assert type(error) is type(dense_value) and str(error) == str(dense_value)
        return
    assert dense_status == "ok", f"the dense model failed ({dense_value!r}) but the UnIT model did not"
    assert output.shape == dense_value.shape
    torch.testing.assert_close(output, dense_value, rtol=1e-5, atol=1e-5)

"""Tests of unitprune.models against Table 1 of the UnIT paper, counted by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from unitprune.models import DATASET_MODEL, MODEL_INPUT_SHAPES, MODEL_NAMES, build_model

# Table 1 weight shapes, in layer order (Conv: out x in x kh x kw, Linear: out x in).
TABLE1 = {
    "mnist": [(6, 1, 5, 5), (16, 6, 5, 5), (10, 256)],
    "cifar10": [(6, 3, 5, 5), (16, 6, 5, 5), (10, 400)],
    "kws": [(6, 1, 5, 5), (16, 6, 5, 5), (12, 7616)],
    "widar": [(32, 22, 6, 6), (64, 32, 3, 3), (96, 64, 3, 3), (128, 1536), (6, 128)],
    "digits": [(6, 1, 3, 3), (10, 54)],
    "mnist-wide": [(32, 1, 3, 3), (64, 32, 3, 3), (128, 9216), (10, 128)],
}

# Dense MACs per example, by hand: conv = out_ch * in_ch * kh * kw * out_h * out_w, linear = out * in.
HAND_MACS = {
    "mnist": 6 * 1 * 5 * 5 * 24 * 24 + 16 * 6 * 5 * 5 * 8 * 8 + 10 * 256,  # 242,560
    "cifar10": 6 * 3 * 5 * 5 * 28 * 28 + 16 * 6 * 5 * 5 * 10 * 10 + 10 * 400,  # 596,800
    "kws": 6 * 1 * 5 * 5 * 76 * 120 + 16 * 6 * 5 * 5 * 34 * 56 + 12 * 7616,  # 6,028,992
    "widar": (32 * 22 * 6 * 6 * 15 * 15 + 64 * 32 * 3 * 3 * 13 * 13 + 96 * 64 * 3 * 3 * 4 * 4
              + 128 * 1536 + 6 * 128),  # 9,899,520
    "digits": 6 * 1 * 3 * 3 * 6 * 6 + 10 * 54,  # 2,484
    "mnist-wide": 32 * 1 * 3 * 3 * 26 * 26 + 64 * 32 * 3 * 3 * 24 * 24 + 128 * 9216 + 10 * 128,  # 11,992,448
}
EXPECTED_SHAPES = {"mnist": (1, 28, 28), "cifar10": (3, 32, 32), "kws": (1, 80, 124),
                   "widar": (22, 20, 20), "digits": (1, 8, 8),
                   "mnist-wide": (1, 28, 28)}
EXPECTED_CLASSES = {"mnist": 10, "cifar10": 10, "kws": 12, "widar": 6, "digits": 10,
                    "mnist-wide": 10}


def test_registry_names():
    assert set(MODEL_NAMES) == set(TABLE1)
    assert MODEL_INPUT_SHAPES == EXPECTED_SHAPES
    assert DATASET_MODEL["speech_commands"] == "kws"


@pytest.mark.parametrize("name", sorted(TABLE1))
def test_output_shape_and_layer_shapes(name):
    model = build_model(name, seed=0)
    x = torch.randn(3, *EXPECTED_SHAPES[name])
    assert model(x).shape == (3, EXPECTED_CLASSES[name])
    weights = [tuple(m.weight.shape) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert weights == TABLE1[name]
    assert model.name == name and model.input_shape == EXPECTED_SHAPES[name]


@pytest.mark.parametrize("name", sorted(TABLE1))
def test_only_standard_layers_relu_after_conv_and_hidden_linear(name):
    model = build_model(name)
    layers = list(model.children())
    allowed = (nn.Conv2d, nn.MaxPool2d, nn.ReLU, nn.Flatten, nn.Linear)
    assert all(type(m) in allowed for m in layers)
    assert isinstance(layers[-1], nn.Linear)
    for i, m in enumerate(layers[:-1]):
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            assert isinstance(layers[i + 1], nn.ReLU), f"no ReLU after layer {i} of {name}"
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            assert m.stride == (1, 1) and m.padding == (0, 0)
        if isinstance(m, nn.MaxPool2d):
            assert m.kernel_size == 2 and m.stride == 2


@pytest.mark.parametrize("name", sorted(TABLE1))
def test_dense_macs_match_hand_count_and_flop_counter(name):
    model = build_model(name, seed=0)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, *EXPECTED_SHAPES[name]))
    assert counter.get_total_flops() // 2 == HAND_MACS[name]


def test_hand_mac_values():
    # the literal figures, so a typo in HAND_MACS cannot hide behind the flop counter
    assert HAND_MACS == {"mnist": 242_560, "cifar10": 596_800, "kws": 6_028_992,
                         "widar": 9_899_520, "digits": 2_484,
                         "mnist-wide": 11_992_448}


def test_seeded_init_is_reproducible_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    a, b, c = build_model("mnist", seed=1), build_model("mnist", seed=1), build_model("mnist", seed=2)
    assert torch.equal(torch.get_rng_state(), state)
    for (ka, va), (_, vb), (_, vc) in zip(a.state_dict().items(), b.state_dict().items(), c.state_dict().items()):
        assert torch.equal(va, vb), ka
        assert not torch.equal(va, vc), ka


def test_num_classes_override_and_unknown_name():
    assert build_model("widar", num_classes=22)(torch.zeros(1, 22, 20, 20)).shape == (1, 22)
    with pytest.raises(ValueError) as info:
        build_model("resnet50")
    for name in MODEL_NAMES:
        assert name in str(info.value)

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
    "ds-cnn": [(64, 1, 10, 4)] + [(64, 1, 3, 3), (64, 64, 1, 1)] * 4 + [(12, 64)],
}
#: the paper-style models: plain conv/ReLU/max-pool/linear chains (ds-cnn has BatchNorm, strides, padding, GAP)
PLAIN = sorted(set(TABLE1) - {"ds-cnn"})

# Dense MACs per example, by hand: conv = out_ch * in_ch * kh * kw * out_h * out_w, linear = out * in.
HAND_MACS = {
    "mnist": 6 * 1 * 5 * 5 * 24 * 24 + 16 * 6 * 5 * 5 * 8 * 8 + 10 * 256,  # 242,560
    "cifar10": 6 * 3 * 5 * 5 * 28 * 28 + 16 * 6 * 5 * 5 * 10 * 10 + 10 * 400,  # 596,800
    "kws": 6 * 1 * 5 * 5 * 76 * 120 + 16 * 6 * 5 * 5 * 34 * 56 + 12 * 7616,  # 6,028,992
    "widar": (32 * 22 * 6 * 6 * 15 * 15 + 64 * 32 * 3 * 3 * 13 * 13 + 96 * 64 * 3 * 3 * 4 * 4
              + 128 * 1536 + 6 * 128),  # 9,899,520
    "digits": 6 * 1 * 3 * 3 * 6 * 6 + 10 * 54,  # 2,484
    "mnist-wide": 32 * 1 * 3 * 3 * 26 * 26 + 64 * 32 * 3 * 3 * 24 * 24 + 128 * 9216 + 10 * 128,  # 11,992,448
    # 40x62 -conv 10x4 stride 2 padding (4, 1)-> 20x31, kept by every block; GAP adds no MACs
    "ds-cnn": 64 * 1 * 10 * 4 * 20 * 31 + 4 * (64 * 1 * 3 * 3 * 20 * 31 + 64 * 64 * 20 * 31) + 12 * 64,  # 13,174,528
}
EXPECTED_SHAPES = {"mnist": (1, 28, 28), "cifar10": (3, 32, 32), "kws": (1, 80, 124),
                   "widar": (22, 20, 20), "digits": (1, 8, 8),
                   "mnist-wide": (1, 28, 28), "ds-cnn": (1, 40, 62)}
EXPECTED_CLASSES = {"mnist": 10, "cifar10": 10, "kws": 12, "widar": 6, "digits": 10,
                    "mnist-wide": 10, "ds-cnn": 12}


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


@pytest.mark.parametrize("name", PLAIN)
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


def test_ds_cnn_structure():
    model = build_model("ds-cnn", seed=0)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert (convs[0].stride, convs[0].padding) == ((2, 2), (4, 1))
    assert [m.groups for m in convs[1:]] == [64, 1] * 4 and all(m.bias is None for m in convs)
    layers = list(model.children())
    for i, m in enumerate(layers):  # every conv: BatchNorm then ReLU
        if isinstance(m, nn.Conv2d):
            assert isinstance(layers[i + 1], nn.BatchNorm2d) and isinstance(layers[i + 2], nn.ReLU)
    assert isinstance(model.pool, nn.AdaptiveAvgPool2d) and model.pool.output_size == 1
    assert sum(p.numel() for p in model.parameters()) == 22_016 + 9 * 2 * 64 + 12  # + BN affine + fc bias
    # fully convolutional: the full 80x124 log-mel map runs too (conv1 -> 40x62)
    assert model(torch.zeros(2, 1, 80, 124)).shape == (2, 12)
    assert build_model("ds-cnn", input_shape=(1, 80, 124)).input_shape == (1, 80, 124)
    with pytest.raises(ValueError, match="one log-mel channel"):
        build_model("ds-cnn", input_shape=(3, 40, 62))


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
                         "mnist-wide": 11_992_448, "ds-cnn": 13_174_528}


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

"""The paper's Table-1 models (UnIT, arXiv 2507.07885, section 3.3), as plain torch modules.

Every model is a :class:`PaperCNN`, an ``nn.Sequential`` of standard ``nn.Conv2d`` /
``nn.ReLU`` / ``nn.MaxPool2d`` / ``nn.Flatten`` / ``nn.Linear`` layers with readable names
(``conv1``, ``relu1``, ``pool1``, ..., ``fc``), so the UnIT converter can swap the Conv/Linear
layers. ReLU follows every convolution and every hidden linear layer; no padding, stride 1,
max-pool 2x2 stride 2. Shapes are (C, H, W) of one example:

* ``mnist``   1x28x28 -C 6x1x5x5-> 6x24x24 -P-> 6x12x12 -C 16x6x5x5-> 16x8x8 -P-> 16x4x4
  = 256 -L 256x10-> 10.
* ``cifar10`` 3x32x32 -C 6x3x5x5-> 6x28x28 -P-> 6x14x14 -C 16x6x5x5-> 16x10x10 -P-> 16x5x5
  = 400 -L 400x10-> 10.
* ``kws``     1x80x124 (log-mel, 80 bands x 124 frames, see :mod:`unitprune.data.audio`)
  -C 6x1x5x5-> 6x76x120 -P-> 6x38x60 -C 16x6x5x5-> 16x34x56 -P-> 16x17x28 = 7616
  -L 7616x12-> 12.
* ``widar``   22x20x20: a Widar3.0 body-velocity profile (BVP), 20x20 velocity bins, with 22
  time frames stacked as channels. -C 32x22x6x6-> 32x15x15 -C 64x32x3x3-> 64x13x13 -P-> 64x6x6
  -C 96x64x3x3-> 96x4x4 = 1536 -L 1536x128-> 128 -L 128x6-> 6 gestures. Table 1 lists no
  pooling for WiDaR; one 2x2 pool after the second convolution is the only placement that
  yields its 1536 = 96x4x4 linear input, so it is used here.
* ``digits``  (not in the paper; for fast tests on sklearn's 8x8 digits) 1x8x8 -C 6x1x3x3->
  6x6x6 -P-> 6x3x3 = 54 -L 54x10-> 10.
* ``mnist-wide`` (not in the paper; the classic Keras MNIST CNN, a model too big for an 8 KB /
  256 KB microcontroller, the starting point of :mod:`unitprune.shrink`) 1x28x28 -C 32x1x3x3->
  32x26x26 -C 64x32x3x3-> 64x24x24 -P-> 64x12x12 = 9216 -L 9216x128-> 128 -L 128x10-> 10
  (1,199,882 parameters).
* ``ds-cnn`` (not in the paper; the Hello Edge / MLPerf Tiny DS-CNN-S keyword-spotting shape, a
  KWS base too big for an 8-32 KB microcontroller, the KWS starting point of
  :mod:`unitprune.shrink`): ``conv1`` 64x1x10x4, stride 2, padding (4, 1) + BatchNorm + ReLU, then
  4 blocks of [depthwise 3x3 (padding 1) + BN + ReLU, pointwise 64x64x1x1 + BN + ReLU], global
  average pool (``nn.AdaptiveAvgPool2d(1)``), flatten, linear 64x12 (no bias on the convs: the
  BatchNorms hold the bias). Registered input: the 2x2-pooled log-mel map ``(1, 40, 62)``
  (``load_dataset("synth_speech", feature_pool=(2, 2))``, see :func:`unitprune.data.audio.pool_features`)
  -C-> 64x20x31 -> 4 x (64x20x31) -GAP-> 64 -L-> 12 (23,180 parameters, 13,174,528 MACs). Being fully
  convolutional it runs on any input size; on the full ``(1, 80, 124)`` map: 64x40x62, 52,695,808 MACs.

Initialisation: torch's default layer init. Pass ``seed=`` to :func:`build_model` for
reproducible weights; this is the one place the library calls ``torch.manual_seed``, inside
``torch.random.fork_rng`` so the caller's global RNG state is left unchanged.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

import torch
from torch import nn

__all__ = ["PaperCNN", "MODEL_INPUT_SHAPES", "MODEL_NUM_CLASSES", "DATASET_MODEL", "MODEL_NAMES", "build_model"]

#: (C, H, W) input of each model.
MODEL_INPUT_SHAPES: dict[str, tuple[int, int, int]] = {
    "mnist": (1, 28, 28),
    "cifar10": (3, 32, 32),
    "kws": (1, 80, 124),
    "widar": (22, 20, 20),
    "digits": (1, 8, 8),
    "mnist-wide": (1, 28, 28),
    "ds-cnn": (1, 40, 62),
}
#: Default number of outputs of each model (Table 1).
MODEL_NUM_CLASSES: dict[str, int] = {"mnist": 10, "cifar10": 10, "kws": 12, "widar": 6, "digits": 10,
                                   "mnist-wide": 10, "ds-cnn": 12}
#: Which model goes with which :func:`unitprune.data.load_dataset` name.
DATASET_MODEL: dict[str, str] = {
    "mnist": "mnist", "cifar10": "cifar10", "speech_commands": "kws", "digits": "digits",
    "synth_speech": "kws", "widar": "widar",
}


class PaperCNN(nn.Sequential):
    """``nn.Sequential`` that also records its registry ``name`` and expected ``input_shape`` (C, H, W)."""

    def __init__(self, name: str, input_shape: tuple[int, int, int], layers: OrderedDict):
        super().__init__(layers)
        self.name = name
        self.input_shape = tuple(input_shape)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, input_shape={self.input_shape}"


def _two_conv_net(name: str, in_channels: int, flat: int, num_classes: int, kernel: int = 5,
                  channels: tuple[int, int] = (6, 16)) -> PaperCNN:
    """Conv-ReLU-Pool-Conv-ReLU-Pool-Linear (the MNIST / CIFAR-10 / KWS family)."""
    c1, c2 = channels
    return PaperCNN(name, MODEL_INPUT_SHAPES[name], OrderedDict([
        ("conv1", nn.Conv2d(in_channels, c1, kernel)),
        ("relu1", nn.ReLU()),
        ("pool1", nn.MaxPool2d(2)),
        ("conv2", nn.Conv2d(c1, c2, kernel)),
        ("relu2", nn.ReLU()),
        ("pool2", nn.MaxPool2d(2)),
        ("flatten", nn.Flatten()),
        ("fc", nn.Linear(flat, num_classes)),
    ]))


def mnist_net(num_classes: int = 10) -> PaperCNN:
    """Table 1, MNIST: C 6x1x5x5, P 2, C 16x6x5x5, P 2, L 256x10. Input (1, 28, 28)."""
    return _two_conv_net("mnist", 1, 16 * 4 * 4, num_classes)


def cifar10_net(num_classes: int = 10) -> PaperCNN:
    """Table 1, CIFAR-10: C 6x3x5x5, P 2, C 16x6x5x5, P 2, L 400x10. Input (3, 32, 32)."""
    return _two_conv_net("cifar10", 3, 16 * 5 * 5, num_classes)


def kws_net(num_classes: int = 12) -> PaperCNN:
    """Table 1, KWS: C 6x1x5x5, P 2, C 16x6x5x5, P 2, L 7616x12. Input (1, 80, 124) log-mel."""
    return _two_conv_net("kws", 1, 16 * 17 * 28, num_classes)


def widar_net(num_classes: int = 6) -> PaperCNN:
    """Table 1, WiDaR: C 32x22x6x6, C 64x32x3x3, P 2, C 96x64x3x3, L 1536x128, L 128x6. Input (22, 20, 20)."""
    return PaperCNN("widar", MODEL_INPUT_SHAPES["widar"], OrderedDict([
        ("conv1", nn.Conv2d(22, 32, 6)),
        ("relu1", nn.ReLU()),
        ("conv2", nn.Conv2d(32, 64, 3)),
        ("relu2", nn.ReLU()),
        ("pool2", nn.MaxPool2d(2)),
        ("conv3", nn.Conv2d(64, 96, 3)),
        ("relu3", nn.ReLU()),
        ("flatten", nn.Flatten()),
        ("fc1", nn.Linear(96 * 4 * 4, 128)),
        ("relu4", nn.ReLU()),
        ("fc2", nn.Linear(128, num_classes)),
    ]))


def digits_net(num_classes: int = 10) -> PaperCNN:
    """Tiny test model for sklearn digits: C 6x1x3x3, P 2, L 54x10. Input (1, 8, 8)."""
    return PaperCNN("digits", MODEL_INPUT_SHAPES["digits"], OrderedDict([
        ("conv1", nn.Conv2d(1, 6, 3)),
        ("relu1", nn.ReLU()),
        ("pool1", nn.MaxPool2d(2)),
        ("flatten", nn.Flatten()),
        ("fc", nn.Linear(6 * 3 * 3, num_classes)),
    ]))


def mnist_wide_net(num_classes: int = 10) -> PaperCNN:
    """Keras MNIST CNN: C 32x1x3x3, C 64x32x3x3, P 2, L 9216x128, L 128x10. Input (1, 28, 28)."""
    return PaperCNN("mnist-wide", MODEL_INPUT_SHAPES["mnist-wide"], OrderedDict([
        ("conv1", nn.Conv2d(1, 32, 3)),
        ("relu1", nn.ReLU()),
        ("conv2", nn.Conv2d(32, 64, 3)),
        ("relu2", nn.ReLU()),
        ("pool2", nn.MaxPool2d(2)),
        ("flatten", nn.Flatten()),
        ("fc1", nn.Linear(64 * 12 * 12, 128)),
        ("relu3", nn.ReLU()),
        ("fc2", nn.Linear(128, num_classes)),
    ]))


def ds_cnn_net(num_classes: int = 12, width: int = 64, blocks: int = 4,
               input_shape: tuple[int, int, int] = MODEL_INPUT_SHAPES["ds-cnn"]) -> PaperCNN:
    """DS-CNN-S (Hello Edge, MLPerf Tiny KWS): C 64x10x4/2 + BN + ReLU, 4 x [DW 3x3, PW 64] + BN + ReLU, GAP, L 64x12.

    ``width`` (64) and ``blocks`` (4) exist for small tests; the registered model is the default.
    ``input_shape`` is only recorded (the network is fully convolutional), e.g. ``(1, 80, 124)``
    for the full log-mel map or ``(1, 20, 62)`` for ``feature_pool=(4, 2)``.
    """
    if len(input_shape) != 3 or input_shape[0] != 1:
        raise ValueError(f"ds-cnn takes one log-mel channel (1, bands, frames), got input_shape={input_shape}")
    layers: OrderedDict = OrderedDict([
        ("conv1", nn.Conv2d(1, width, (10, 4), stride=2, padding=(4, 1), bias=False)),
        ("bn1", nn.BatchNorm2d(width)),
        ("relu1", nn.ReLU()),
    ])
    for k in range(1, blocks + 1):
        layers[f"dw{k}"] = nn.Conv2d(width, width, 3, padding=1, groups=width, bias=False)
        layers[f"dw{k}_bn"] = nn.BatchNorm2d(width)
        layers[f"dw{k}_relu"] = nn.ReLU()
        layers[f"pw{k}"] = nn.Conv2d(width, width, 1, bias=False)
        layers[f"pw{k}_bn"] = nn.BatchNorm2d(width)
        layers[f"pw{k}_relu"] = nn.ReLU()
    layers["pool"] = nn.AdaptiveAvgPool2d(1)
    layers["flatten"] = nn.Flatten()
    layers["fc"] = nn.Linear(width, num_classes)
    return PaperCNN("ds-cnn", input_shape, layers)


_BUILDERS: dict[str, Callable[..., PaperCNN]] = {
    "mnist": mnist_net,
    "cifar10": cifar10_net,
    "kws": kws_net,
    "widar": widar_net,
    "digits": digits_net,
    "mnist-wide": mnist_wide_net,
    "ds-cnn": ds_cnn_net,
}
_ALIASES = {"speech_commands": "kws", "cifar-10": "cifar10"}
#: Valid names for :func:`build_model`.
MODEL_NAMES = tuple(_BUILDERS)


def build_model(name: str, *, seed: int | None = None, **kwargs) -> PaperCNN:
    """Build a Table-1 model by name.

    Args:
        name: one of :data:`MODEL_NAMES` (``"speech_commands"`` is accepted for ``"kws"``).
        seed: if given, the weights are initialised under ``torch.manual_seed(seed)`` inside
            ``torch.random.fork_rng()`` (same seed -> identical weights; the global RNG is not
            changed). If ``None``, torch's global RNG is used as usual.
        **kwargs: passed to the builder (``num_classes``).

    Raises:
        ValueError: unknown name (the message lists the valid ones).
    """
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(MODEL_NAMES)}")
    if seed is None:
        return _BUILDERS[key](**kwargs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _BUILDERS[key](**kwargs)

"""Random :class:`~unitprune.mcu.qmodel.QuantizedModel` objects built directly from the dataclasses
(random int8 weights, thresholds and requantization constants), for the export tests.

The values follow docs/fixed_point.md (tau from ``bitshift_int``, quotient tables and trees of
``T_q >> max(n, shift_start)``), so the integer reference and the exported C can run them.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from unitprune.approx import bitshift_int
from unitprune.mcu.qmodel import QConv, QFlatten, QLinear, QMaxPool, QReLU, QuantizedModel, Requant
from unitprune.mcu.quantize import quantize_multiplier, quotient_tree


def random_requant(rng: np.random.Generator, out: int, fan_in: int, relu: bool) -> Requant:
    """Bias and multipliers that spread a typical accumulator over the int8 range."""
    bias = rng.integers(-2000, 2000, out).astype(np.int32)
    pairs = [quantize_multiplier(127.0 / (1500.0 * math.sqrt(fan_in)) * float(rng.uniform(0.5, 2.0)))
             for _ in range(out)]
    return Requant(bias=bias, multiplier=np.array([m for m, _ in pairs], dtype=np.int32),
                   shift=np.array([s for _, s in pairs], dtype=np.int8), act_min=0 if relu else -128, act_max=127)


def random_weights(rng: np.random.Generator, shape, sparsity: float) -> np.ndarray:
    weight = rng.integers(-127, 128, shape)
    weight[rng.random(shape) < sparsity] = 0
    return weight.astype(np.int8)


def conv(rng: np.random.Generator, name: str, in_shape: tuple[int, int, int], out_channels: int,
         kernel: tuple[int, int], stride=(1, 1), dilation=(1, 1), padding=(0, 0, 0, 0), groups: int = 1,
         relu: bool = True, sparsity: float = 0.2, threshold_q: int | None = None, conv1d: bool = False) -> QConv:
    c, h, w = in_shape
    kh, kw = kernel
    out_h = (h + padding[0] + padding[1] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    out_w = (w + padding[2] + padding[3] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    weight = random_weights(rng, (out_channels, c // groups, kh, kw), sparsity)
    t_q = rng.integers(0, 3000, out_channels) if threshold_q is None else np.full(out_channels, threshold_q)
    magnitude = np.abs(weight.astype(np.int64))
    tau = np.full(weight.shape, 255, dtype=np.int64)
    nonzero = magnitude > 0
    per_weight_t = np.broadcast_to(t_q.reshape(-1, 1, 1, 1), weight.shape)
    tau[nonzero] = np.minimum(bitshift_int(per_weight_t[nonzero], magnitude[nonzero]), 255)
    return QConv(name=name, in_channels=c, in_height=h, in_width=w, out_channels=out_channels, kernel_height=kh,
                 kernel_width=kw, stride=tuple(stride), dilation=tuple(dilation), padding=tuple(padding),
                 groups=groups, out_height=out_h, out_width=out_w, weight=weight,
                 requant=random_requant(rng, out_channels, (c // groups) * kh * kw, relu),
                 threshold_q=t_q.astype(np.int64), tau=tau.astype(np.uint8), input_scale=0.05, output_scale=0.05,
                 weight_scale=np.full(out_channels, 0.01), is_conv1d=conv1d)


def linear(rng: np.random.Generator, name: str, in_features: int, out_features: int, relu: bool = False,
           sparsity: float = 0.2, threshold_q: int | None = None, shift_start: int = 0,
           tree_magnitudes=()) -> QLinear:
    t_q = int(rng.integers(0, 6000)) if threshold_q is None else threshold_q
    magnitudes = np.arange(1, 129)
    table = np.zeros(129, dtype=np.int64)
    table[1:] = np.minimum(bitshift_int(np.full(128, t_q), magnitudes, shift_start), 255)
    split, left, right, quotient = quotient_tree(t_q, shift_start, tree_magnitudes)
    return QLinear(name=name, in_features=in_features, out_features=out_features,
                   weight=random_weights(rng, (out_features, in_features), sparsity),
                   requant=random_requant(rng, out_features, in_features, relu), threshold_q=t_q,
                   shift_start=shift_start, quotient_table=table.astype(np.uint8), tree_split=split, tree_left=left,
                   tree_right=right, tree_quotient=quotient, input_scale=0.05, output_scale=0.05, weight_scale=0.01)


def maxpool(name: str, in_shape: tuple[int, int, int], kernel=(2, 2), stride=None) -> QMaxPool:
    c, h, w = in_shape
    stride = tuple(stride or kernel)
    return QMaxPool(name=name, channels=c, in_height=h, in_width=w, kernel=tuple(kernel), stride=stride,
                    out_height=(h - kernel[0]) // stride[0] + 1, out_width=(w - kernel[1]) // stride[1] + 1)


def output_shape(op) -> tuple[int, int, int]:
    if isinstance(op, QConv):
        return op.out_channels, op.out_height, op.out_width
    if isinstance(op, QMaxPool):
        return op.channels, op.out_height, op.out_width
    raise TypeError(type(op).__name__)


def mnist_like(rng: np.random.Generator, variant: str = "unit", linear_quotient: str = "bitshift") -> QuantizedModel:
    """The Table-1 MNIST architecture (conv 1->6 k5, relu, pool 2, conv 6->16 k5, relu, pool 2, flatten,
    linear 256->10) with random weights; ReLUs fused into the convolutions as quantization does."""
    conv1 = conv(rng, "conv1", (1, 28, 28), 6, (5, 5), sparsity=0.1)
    pool1 = maxpool("pool1", output_shape(conv1))
    conv2 = conv(rng, "conv2", output_shape(pool1), 16, (5, 5), sparsity=0.3)
    pool2 = maxpool("pool2", output_shape(conv2))
    fc = linear(rng, "fc", 256, 10, shift_start=2, tree_magnitudes=rng.integers(0, 40, 500))
    return QuantizedModel(ops=[conv1, pool1, conv2, pool2, QFlatten("flatten", 256), fc], input_shape=(1, 28, 28),
                          input_scale=1 / 127, output_scale=0.1, variant=variant, linear_quotient=linear_quotient,
                          source={"model": "mnist (random weights)"})


def relu(name: str, size: int) -> QReLU:
    return QReLU(name=name, size=size)


def random_input(rng: np.random.Generator, n: int, shape, zero_fraction: float = 0.3, boundary=()) -> np.ndarray:
    """Random int8 inputs with exact zeros; with ``boundary`` values (e.g. a conv's tau), half of the
    nonzero inputs are drawn from ``+-v`` and ``+-(v + 1)``, so the skip test's edge ``|x| == tau``
    is exercised on both sides."""
    x = rng.integers(-128, 128, (n, *shape))
    edges = np.array([e for v in map(int, boundary) if 0 < v < 128 for e in (v, -v, v + 1, -v - 1) if -128 <= e <= 127])
    if edges.size:
        pick = rng.random(x.shape) < 0.5
        x[pick] = rng.choice(edges, int(pick.sum()))
    x[rng.random(x.shape) < zero_fraction] = 0
    return x.astype(np.int8)


def boundary_weights(rng: np.random.Generator, op: QLinear, fraction: float = 0.3) -> QLinear:
    """``op`` with a ``fraction`` of its nonzero weights set to +-(a quotient of its table), so the
    linear skip test's edge ``|w| == t_i`` is exercised."""
    quotients = np.unique(op.quotient_table[1:][(op.quotient_table[1:] > 0) & (op.quotient_table[1:] < 128)])
    if quotients.size == 0:
        return op
    weight = op.weight.astype(np.int64)
    pick = (rng.random(weight.shape) < fraction) & (weight != 0)
    weight[pick] = rng.choice(quotients, int(pick.sum())) * rng.choice([-1, 1], int(pick.sum()))
    return dataclasses.replace(op, weight=weight.astype(np.int8))

"""``run_fast``: the integer reference's outputs and MAC counters, computed with BLAS convolutions.

:func:`unitprune.mcu.reference.run_reference` is the readable oracle: it materialises every
connection's keep mask (``outputs x taps x positions`` per sample) and multiplies in int64. That
costs minutes per pass on a model like the Table-1 KWS CNN (1.4 M + 4.6 M conv connections per
sample), and ``mcu-bench`` runs such a pass for every knob value it considers. This module
computes the same result, bit for bit, from a handful of dense float convolutions:

* **Exact float arithmetic.** Every product is ``|w_q x_q| <= 127 * 128``; a conv/linear output is
  an integer sum of such products. A layer runs in float32 when every output's worst-case partial
  sum (``128 * sum |w_q|`` over its taps) is below ``2**24`` (each partial sum is then an exactly
  represented integer, whatever order BLAS adds in), else in float64 (exact below ``2**53``).
* **Conv, UnIT.** A connection is kept iff ``w != 0 and |x| > tau_w``. Grouping the weights by
  their ``tau`` value ``t``: ``acc = sum_t conv(x * [|x| > t], W * [tau == t])`` -- one dense
  convolution per distinct ``tau`` (at most 129: ``|x| <= 128``).
* **Conv, zeroskip.** A skipped connection has ``w == 0`` or ``x == 0``: its product is 0, so the
  outputs are the dense ones.
* **Linear, UnIT.** The quotient ``t_i`` depends only on ``|x_i|``; grouping the inputs by their
  quotient ``q``: ``acc = sum_q (x * [t(|x|) == q]) @ (W * [|W| > q])^T``.
* **Counters.** From magnitude histograms: for a conv tap the number of ``(sample, position)``
  with ``|x| > t`` is a box sum of the per-pixel histogram (summed over samples) over the tap's
  receptive positions (one small correlation per channel and magnitude), so the executed,
  zero-activation and compare counts follow without any per-connection mask.
* **Requantization.** TFLite's ``MultiplyByQuantizedMultiplier`` in branch-free int64 NumPy.

Pooling, ReLU, FATReLU, flatten and the input checks are the reference's own (:func:`unitprune.mcu.reference.run_chain`). ``tests/test_fast_reference.py``
checks outputs and every counter against :func:`run_reference` on every variant, linear quotient,
conv kernel and geometry.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..counts import MacCounts
from .qmodel import QConv, QLinear, QuantizedModel
from .reference import (INT32_MAX, INT32_MIN, _counts, linear_counts, linear_quotients, rowlists_reach, run_chain,
                        skipfree_reach)

__all__ = ["run_fast", "requantize_fast"]

#: Magnitudes an int8 activation takes: 0..128.
_MAGNITUDES = 129
#: Largest integer every partial sum of a float32 accumulation represents exactly.
_FLOAT32_EXACT = 2**24
#: Samples per convolution call (bounds the float buffers).
_CHUNK_SAMPLES = 64
#: int64 elements requantized at once.
_REQUANT_BLOCK = 1 << 16


def requantize_fast(acc: np.ndarray, multiplier: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """:func:`unitprune.mcu.reference.requantize` (same results, same ``OverflowError``), with the
    per-channel constants broadcast against ``acc``; fewer temporaries, no ``np.where``."""
    acc = np.asarray(acc, dtype=np.int64)
    multiplier = np.asarray(multiplier, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    if acc.size and (acc.min() < INT32_MIN or acc.max() > INT32_MAX):
        raise OverflowError("requantize: accumulator outside int32")
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    shifted = acc << left
    if shifted.size and (shifted.min() < INT32_MIN or shifted.max() > INT32_MAX):
        raise OverflowError("requantize: acc * 2**shift overflows int32")
    ab = shifted * multiplier
    negative = ab >> 63  # -1 where ab < 0, else 0
    ab += (1 << 30) - (negative & ((1 << 31) - 1))  # the nudge: 2^30, or 1 - 2^30 below zero
    negative = ab >> 63
    ab += negative & ((1 << 31) - 1)  # truncating division by 2^31 (toward zero)
    ab >>= 31
    if np.any(multiplier == INT32_MIN):  # the one saturating case of SaturatingRoundingDoublingHighMul
        ab = np.where((shifted == INT32_MIN) & (multiplier == INT32_MIN), INT32_MAX, ab)
    mask = (np.int64(1) << right) - 1
    threshold = (mask >> 1) + (ab < 0)
    remainder = ab & mask
    ab >>= right
    ab += remainder > threshold
    return ab


def _requantize_outputs(acc: np.ndarray, op: QConv | QLinear) -> np.ndarray:
    """``clamp(requantize(bias + acc))`` per output channel (axis 1), as int8; a few samples at a time
    (the int64 temporaries of a block stay in cache: 7x faster than one pass on the KWS conv1 output)."""
    shape = (1, -1) + (1,) * (acc.ndim - 2)
    requant = op.requant
    bias = requant.bias.astype(np.int64).reshape(shape)
    multiplier = requant.multiplier.astype(np.int64).reshape(shape)
    shift = requant.shift.astype(np.int64).reshape(shape)
    y = np.empty(acc.shape, dtype=np.int8)
    rows = max(1, _REQUANT_BLOCK // max(1, acc[0].size))
    for start in range(0, acc.shape[0], rows):
        block = acc[start:start + rows] + bias
        y[start:start + rows] = np.clip(requantize_fast(block, multiplier, shift), requant.act_min, requant.act_max)
    return y


def _float_dtype(weight: np.ndarray) -> torch.dtype:
    """float32 when no partial sum of any output can leave the exact range, else float64."""
    worst = 128 * np.abs(weight.reshape(weight.shape[0], -1).astype(np.int64)).sum(axis=1).max(initial=0)
    return torch.float32 if worst < _FLOAT32_EXACT else torch.float64


# ----------------------------------------------------------------------------------------
# Convolution
# ----------------------------------------------------------------------------------------

def _conv_counts(op: QConv, x4: np.ndarray, variant: str) -> MacCounts:
    """The conv's counters (:func:`unitprune.mcu.reference._conv`) from magnitude histograms."""
    n = x4.shape[0]
    positions = op.out_height * op.out_width
    taps = op.weight[0].size
    dense = n * op.out_channels * positions * taps
    nonzero_weights = int(np.count_nonzero(op.weight))
    zero_weight = n * positions * (op.weight.size - nonzero_weights)
    if variant == "dense":
        return _counts(variant, dense, zero_weight, 0, 0, 0, 0)
    greater = _tap_greater(op, x4)  # [C_in, KH, KW, 129]: #(sample, position) with |x| > t
    group_in, group_out = op.weight.shape[1], op.out_channels // op.groups
    channel = (np.arange(op.out_channels)[:, None] // group_out) * group_in + np.arange(group_in)[None, :]
    channel = np.broadcast_to(channel[:, :, None, None], op.weight.shape)
    ky = np.broadcast_to(np.arange(op.kernel_height)[None, None, :, None], op.weight.shape)
    kx = np.broadcast_to(np.arange(op.kernel_width)[None, None, None, :], op.weight.shape)
    live = op.weight != 0
    nonzero_x = greater[channel[live], ky[live], kx[live], 0]
    zero_activation = int((n * positions - nonzero_x).sum())
    executed = compares = 0
    if variant == "unit":
        tau = op.tau.astype(np.int64)[live]
        executed = int(np.where(tau < 128, greater[channel[live], ky[live], kx[live], np.minimum(tau, 128)], 0).sum())
        compares = n * positions * nonzero_weights
        if op.unit_kernel == "skipfree":
            compares = int(skipfree_reach(op, x4).sum())
        if op.unit_kernel == "sparse":
            compares = int(rowlists_reach(op, x4)[0].sum())
    return _counts(variant, dense, zero_weight, zero_activation, executed, compares, divisions=0)


def _tap_greater(op: QConv, x4: np.ndarray) -> np.ndarray:
    """``[C, KH, KW, t]``: over all samples and output positions, how many of a tap's inputs
    (zero padding included) have ``|x| > t``, for ``t = 0..128``."""
    n, channels, height, width = x4.shape
    magnitudes = np.abs(x4.astype(np.int64)).reshape(n, channels * height * width)
    pixel = np.arange(channels * height * width, dtype=np.int64)[None, :] * _MAGNITUDES
    histogram = np.bincount((pixel + magnitudes).ravel(), minlength=channels * height * width * _MAGNITUDES)
    histogram = histogram.reshape(channels, height, width, _MAGNITUDES)
    above = histogram[..., ::-1].cumsum(axis=-1)[..., ::-1]  # above[..., m] = #(|x| >= m)
    above = np.concatenate([above[..., 1:], np.zeros_like(above[..., :1])], axis=-1)  # #(|x| > t)
    planes = torch.from_numpy(above.transpose(0, 3, 1, 2).reshape(channels * _MAGNITUDES, 1, height, width)
                              .astype(np.float64))
    top, bottom, left, right = op.padding
    planes = F.pad(planes, (left, right, top, bottom))
    (sy, sx), (dy, dx) = op.stride, op.dilation
    window = torch.ones(1, 1, op.out_height, op.out_width, dtype=torch.float64)
    # tap (ky, kx) reads input (ky*dy + oy*sy, kx*dx + ox*sx): a box over the output positions
    boxes = F.conv2d(planes, window, stride=(dy, dx), dilation=(sy, sx))[:, :, :op.kernel_height, :op.kernel_width]
    boxes = boxes.reshape(channels, _MAGNITUDES, op.kernel_height, op.kernel_width).permute(0, 2, 3, 1)
    return np.rint(boxes.numpy()).astype(np.int64)


def _conv(op: QConv, x: np.ndarray, variant: str) -> tuple[np.ndarray, MacCounts]:
    if variant == "unit" and op.unit_kernel == "dense":
        variant = "dense"
    if variant == "unit" and op.unit_kernel == "static":  # exact over the nonzero weights (unit_conv2d_sparse_s8)
        variant = "zeroskip"
    n = x.shape[0]
    x4 = x.reshape(n, op.in_channels, op.in_height, op.in_width)
    dtype = _float_dtype(op.weight)
    weight = torch.from_numpy(op.weight.astype(np.float64)).to(dtype)
    if variant == "unit":
        tau = op.tau.astype(np.int64)
        live = (op.weight != 0) & (tau < 128)
        groups = []
        for t in np.unique(tau[live]):
            kept = np.where(live & (tau == t), op.weight, 0)
            # groups == 1: only the output channels with a weight at this tau (at most 8 tau per channel
            # with bitshift: the work is a few dense convolutions, not one per distinct tau)
            rows = np.flatnonzero(kept.reshape(op.out_channels, -1).any(axis=1)) if op.groups == 1 else None
            groups.append((int(t), rows, torch.from_numpy((kept if rows is None else kept[rows]).astype(np.float64))
                           .to(dtype)))
    else:  # dense, and zeroskip (a skipped product is zero)
        groups = [(-1, None, weight)]
    top, bottom, left, right = op.padding
    acc = np.empty((n, op.out_channels, op.out_height, op.out_width), dtype=np.int64)
    for start in range(0, n, _CHUNK_SAMPLES):
        chunk = torch.from_numpy(x4[start:start + _CHUNK_SAMPLES].astype(np.float32)).to(dtype)
        chunk = F.pad(chunk, (left, right, top, bottom))
        total = torch.zeros((chunk.shape[0], op.out_channels, op.out_height, op.out_width), dtype=dtype)
        for t, rows, w in groups:
            inputs = chunk if t < 0 else chunk * (chunk.abs() > t)
            out = F.conv2d(inputs, w, stride=op.stride, dilation=op.dilation,
                           groups=op.groups)[:, :, :op.out_height, :op.out_width]
            if rows is None:
                total += out
            else:
                total[:, torch.from_numpy(rows)] += out
        acc[start:start + _CHUNK_SAMPLES] = total.to(torch.float64).numpy()
    y = _requantize_outputs(acc, op)
    return y, _conv_counts(op, x4, variant)


# ----------------------------------------------------------------------------------------
# Linear
# ----------------------------------------------------------------------------------------

def _linear(op: QLinear, x: np.ndarray, variant: str, method: str) -> tuple[np.ndarray, MacCounts]:
    if variant == "unit" and op.unit_kernel == "static":  # exact over the nonzero weights (unit_linear_sparse_s8)
        variant = "zeroskip"
    n = x.shape[0]
    x = x.reshape(n, op.in_features).astype(np.int64)
    dtype = _float_dtype(op.weight)
    weight = op.weight.astype(np.int64)
    xf = torch.from_numpy(x.astype(np.float64)).to(dtype)
    executed = 0
    if variant == "unit":
        quotients = linear_quotients(op, np.abs(x), method)
        quotients[x == 0] = -1  # zero inputs are skipped before any quotient
        acc = np.zeros((n, op.out_features), dtype=np.int64)
        abs_weight = np.abs(weight)
        for q in np.unique(quotients[quotients >= 0]):
            inputs = xf * torch.from_numpy(quotients == q)
            kept = np.where(abs_weight > q, weight, 0)
            acc += (inputs @ torch.from_numpy(kept.T.astype(np.float64)).to(dtype)).to(torch.float64).numpy() \
                .round().astype(np.int64)
            executed += int(((quotients == q).sum(axis=0) * (abs_weight > q).sum(axis=0)).sum())
    else:
        acc = (xf @ torch.from_numpy(weight.T.astype(np.float64)).to(dtype)).to(torch.float64).numpy() \
            .round().astype(np.int64)
    y = _requantize_outputs(acc, op)
    return y, linear_counts(op, x, variant, executed, method)


# ----------------------------------------------------------------------------------------
# The whole model
# ----------------------------------------------------------------------------------------

def run_fast(qmodel: QuantizedModel, x_q, variant: str | None = None, capture=None
             ) -> tuple[np.ndarray, dict[str, MacCounts]]:
    """:func:`unitprune.mcu.reference.run_reference` (same arguments, same ``(y_q, counts)``, bit
    for bit), computed as the module docstring says."""
    return run_chain(qmodel, x_q, variant, capture, _conv, _linear, "run_fast")

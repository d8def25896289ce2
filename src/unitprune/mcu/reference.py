"""The integer reference implementation of a :class:`~unitprune.mcu.qmodel.QuantizedModel`.

Readable, vectorized NumPy that computes exactly what docs/fixed_point.md defines: int8 tensors
between ops, int64 arithmetic inside them (every value stays in int32, as the C kernels compute
it), TFLite's ``MultiplyByQuantizedMultiplier`` requantization, and the MAC counters by cause of
the ``dense``, ``zeroskip`` and ``unit`` kernel variants. It is the oracle the C kernels and the
exported model are tested against, bit for bit.

Work is chunked over samples so that at most ``_CHUNK_ELEMENTS`` mask elements exist at once.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..approx import bit_length
from ..counts import MacCounts
from .qmodel import (LINEAR_QUOTIENTS, VARIANTS, QAvgPool, QConv, QFlatten, QLinear, QMaxPool, QReLU, QThresholdReLU,
                     QuantizedModel)

__all__ = ["run_reference", "run_chain", "quantize_input", "dequantize_output", "requantize", "conv_columns", "conv_keep",
           "linear_quotients", "linear_keep", "linear_counts"]

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
_CHUNK_ELEMENTS = 1 << 22


# ----------------------------------------------------------------------------------------
# Requantization (TFLite MultiplyByQuantizedMultiplier)
# ----------------------------------------------------------------------------------------

def _truncating_divide_pow2(values: np.ndarray, exponent: int) -> np.ndarray:
    """``values / 2**exponent`` rounded toward zero (C's integer division)."""
    return np.where(values >= 0, values >> exponent, -((-values) >> exponent))


def saturating_rounding_doubling_high_mul(a, b) -> np.ndarray:
    """gemmlowp's ``SaturatingRoundingDoublingHighMul`` on int32 values (as int64 arrays)."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    high = _truncating_divide_pow2(ab + nudge, 31)
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, high)


def rounding_divide_by_pot(x, exponent) -> np.ndarray:
    """gemmlowp's ``RoundingDivideByPOT``: ``x / 2**exponent`` rounded half away from zero."""
    x = np.asarray(x, dtype=np.int64)
    exponent = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def requantize(acc, multiplier, shift) -> np.ndarray:
    """TFLite ``MultiplyByQuantizedMultiplier(acc, multiplier, shift)`` (no clamp), broadcasting.

    Raises ``OverflowError`` if ``acc * 2**max(shift, 0)`` leaves int32 (quantization's
    accumulator bound rules this out for its models).
    """
    acc = np.asarray(acc, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    if np.any((acc < INT32_MIN) | (acc > INT32_MAX)):
        raise OverflowError("requantize: accumulator outside int32")
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    shifted = acc << left
    if np.any((shifted < INT32_MIN) | (shifted > INT32_MAX)):
        raise OverflowError("requantize: acc * 2**shift overflows int32")
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, multiplier), right)


def _requantize_outputs(acc: np.ndarray, op: QConv | QLinear, channel_axis: int) -> np.ndarray:
    """``clamp(requantize(bias + acc))`` per output channel, as int8."""
    shape = [1] * acc.ndim
    shape[channel_axis] = -1
    requant = op.requant
    total = acc + requant.bias.astype(np.int64).reshape(shape)
    values = requantize(total, requant.multiplier.astype(np.int64).reshape(shape),
                        requant.shift.astype(np.int64).reshape(shape))
    return np.clip(values, requant.act_min, requant.act_max).astype(np.int8)


# ----------------------------------------------------------------------------------------
# Convolution (control term: the weight, tau precomputed)
# ----------------------------------------------------------------------------------------

def conv_columns(op: QConv, x: np.ndarray) -> np.ndarray:
    """im2col of ``x`` (n, C, H, W) with zero padding: int64 ``(n, groups, C/groups * KH * KW, OH * OW)``,
    taps in the weight's ``[c][ky][kx]`` order."""
    top, bottom, left, right = op.padding
    padded = np.pad(x.astype(np.int64), ((0, 0), (0, 0), (top, bottom), (left, right)))
    (dy, dx), (sy, sx) = op.dilation, op.stride
    extent = (dy * (op.kernel_height - 1) + 1, dx * (op.kernel_width - 1) + 1)
    windows = sliding_window_view(padded, extent, axis=(2, 3))  # (n, C, positions_y, positions_x, ey, ex)
    windows = windows[:, :, ::sy, ::sx, ::dy, ::dx][:, :, :op.out_height, :op.out_width]
    taps = op.in_channels // op.groups * op.kernel_height * op.kernel_width
    columns = windows.transpose(0, 1, 4, 5, 2, 3)  # (n, C, KH, KW, OH, OW)
    return columns.reshape(x.shape[0], op.groups, taps, op.out_height * op.out_width)


def _group_weights(op: QConv, group: int) -> tuple[np.ndarray, np.ndarray]:
    per_group = op.out_channels // op.groups
    rows = slice(group * per_group, (group + 1) * per_group)
    weight = op.weight[rows].reshape(per_group, -1).astype(np.int64)
    tau = op.tau[rows].reshape(per_group, -1).astype(np.int64)
    return weight, tau


def conv_keep(op: QConv, columns: np.ndarray, group: int, variant: str) -> np.ndarray:
    """The kept connections of one group: bool ``(n, outputs of the group, taps, positions)``.

    ``zeroskip`` keeps ``w != 0 and x != 0``; ``unit`` keeps ``w != 0 and |x| > tau`` (``tau >= 0``,
    so a zero activation is never kept).
    """
    weight, tau = _group_weights(op, group)
    nonzero_weight = (weight != 0)[None, :, :, None]
    if variant == "zeroskip":
        return nonzero_weight & (columns != 0)[:, None]
    if variant == "unit":
        return nonzero_weight & (np.abs(columns)[:, None] > tau[None, :, :, None])
    raise ValueError(f"conv_keep: variant {variant!r} has no keep mask (dense multiplies everything)")


def skipfree_reach(op: QConv, x4: np.ndarray) -> np.ndarray:
    """Per sample and nonzero-weight tap with ``tau < 128`` (``[n, taps]``, taps in weight order), the
    list entries ``unit_conv2d_unit_skipfree_s8`` visits on ``x4`` ``(n, C, H, W)``: the activations
    of the tap's input channel with ``|x| > tau`` (the whole plane: the window test rejects those
    outside the output)."""
    n = x4.shape[0]
    magnitudes = np.abs(x4.astype(np.int64)).reshape(n, op.in_channels, -1)
    histogram = np.stack([np.stack([np.bincount(m, minlength=129) for m in sample]) for sample in magnitudes])
    greater = histogram[:, :, ::-1].cumsum(axis=2)[:, :, ::-1][:, :, 1:]  # [n, C, 128]: #{|x| > t}
    weight, tau = op.weight, op.tau.astype(np.int64)
    group_in, group_out = weight.shape[1], op.out_channels // op.groups
    live = (weight != 0) & (tau < 128)
    channel = (np.arange(op.out_channels)[:, None] // group_out) * group_in + np.arange(group_in)[None, :]
    channel = np.broadcast_to(channel[:, :, None, None], weight.shape)
    return greater[:, channel[live], np.minimum(tau[live], 127)]


def rowlists_reach(op: QConv, x4: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per sample and nonzero weight with ``tau < 128`` (``[n, weights]``, in weight order), what
    ``unit_conv2d_unit_sparse_s8`` does on ``x4`` ``(n, C, H, W)``: the row-list entries it visits
    (per output row whose input row, for the weight's kernel row, lies inside the input, the
    activations of that whole row with ``|x| > tau``) and the rows it visits with at least one entry."""
    n = x4.shape[0]
    magnitudes = np.abs(x4.astype(np.int64))  # (n, C, H, W)
    greater = np.stack([(magnitudes > t).sum(axis=3) for t in range(128)], axis=3)  # (n, C, H, 128)
    weight, tau = op.weight, op.tau.astype(np.int64)
    group_in, group_out = weight.shape[1], op.out_channels // op.groups
    live = (weight != 0) & (tau < 128)
    o, c, ky, _ = np.nonzero(live)
    channel = (o // group_out) * group_in + c
    t = tau[live]
    sy, dy, top = op.stride[0], op.dilation[0], op.padding[0]
    visits = np.zeros((n, t.size), dtype=np.int64)
    rows = np.zeros((n, t.size), dtype=np.int64)
    for oy in range(op.out_height):
        iy = oy * sy - top + ky * dy
        inside = (iy >= 0) & (iy < op.in_height)
        entries = greater[:, channel[inside], iy[inside], t[inside]]
        visits[:, inside] += entries
        rows[:, inside] += entries > 0
    return visits, rows


def _conv(op: QConv, x: np.ndarray, variant: str) -> tuple[np.ndarray, MacCounts]:
    if variant == "unit" and op.unit_kernel == "dense":
        variant = "dense"
    if variant == "unit" and op.unit_kernel == "static":  # exact over the nonzero weights (unit_conv2d_sparse_s8)
        variant = "zeroskip"
    n = x.shape[0]
    x4 = x.reshape(n, op.in_channels, op.in_height, op.in_width)
    per_group = op.out_channels // op.groups
    positions = op.out_height * op.out_width
    taps = op.weight[0].size
    samples_per_chunk = max(1, _CHUNK_ELEMENTS // max(1, per_group * taps * positions))
    acc = np.empty((n, op.out_channels, positions), dtype=np.int64)
    zero_activation = executed = 0
    for start in range(0, n, samples_per_chunk):
        chunk = slice(start, start + samples_per_chunk)
        columns = conv_columns(op, x4[chunk])
        for group in range(op.groups):
            weight, _ = _group_weights(op, group)
            cols = columns[:, group]  # (n, taps, positions)
            outputs = slice(group * per_group, (group + 1) * per_group)
            zero_taps = (cols == 0).sum(axis=(0, 2))  # zero activations (padding included) per tap
            zero_activation += int((zero_taps * (weight != 0).sum(axis=0)).sum())
            if variant == "dense":
                acc[chunk, outputs] = np.matmul(weight, cols)
            else:
                keep = conv_keep(op, cols, group, variant)
                acc[chunk, outputs] = np.einsum("ok,nokl->nol", weight, cols[:, None] * keep)
                executed += int(keep.sum())
    y = _requantize_outputs(acc, op, channel_axis=1).reshape(n, op.out_channels, op.out_height, op.out_width)
    dense = n * op.out_channels * positions * taps
    nonzero_weights = int(np.count_nonzero(op.weight))
    zero_weight = n * positions * (op.weight.size - nonzero_weights)
    compares = n * positions * nonzero_weights if variant == "unit" else 0
    if variant == "unit" and op.unit_kernel == "skipfree":
        compares = int(skipfree_reach(op, x4).sum())
    if variant == "unit" and op.unit_kernel == "sparse":
        compares = int(rowlists_reach(op, x4)[0].sum())
    return y, _counts(variant, dense, zero_weight, zero_activation, executed, compares, divisions=0)


def _counts(variant: str, dense: int, zero_weight: int, zero_activation: int, executed: int, compares: int,
            divisions: int) -> MacCounts:
    if variant == "dense":
        return MacCounts(dense=dense, executed=dense)
    if variant == "zeroskip":
        return MacCounts(dense=dense, zero_weight=zero_weight, zero_activation=zero_activation,
                         executed=dense - zero_weight - zero_activation)
    return MacCounts(dense=dense, zero_weight=zero_weight, zero_activation=zero_activation,
                     threshold=dense - zero_weight - zero_activation - executed, executed=executed,
                     compares=compares, divisions=divisions)


# ----------------------------------------------------------------------------------------
# Linear (control term: the activation, one quotient per nonzero input)
# ----------------------------------------------------------------------------------------

def linear_quotients(op: QLinear, magnitudes: np.ndarray, method: str) -> np.ndarray:
    """``t_i`` for every input magnitude ``|x_q|`` (int64, 1..128), as the ``method`` kernel computes it:
    ``bitshift`` from ``T_q`` and ``shift_start``, ``bintree`` by walking the stored tree, ``table``
    by a look-up. Entries for ``|x_q| == 0`` are meaningless (zero inputs are skipped first)."""
    magnitudes = np.asarray(magnitudes, dtype=np.int64)
    if method == "table":
        return op.quotient_table.astype(np.int64)[magnitudes]
    if method == "bitshift":
        shift = np.maximum(np.asarray(bit_length(magnitudes)), op.shift_start)
        return np.minimum(np.int64(op.threshold_q) >> shift, 255)
    if method == "bintree":
        split = op.tree_split.astype(np.int64)
        left = op.tree_left.astype(np.int64)
        right = op.tree_right.astype(np.int64)
        node = np.zeros(magnitudes.shape, dtype=np.int64)
        for _ in range(split.size):
            internal = left[node] >= 0
            if not np.any(internal):
                break
            pivot = np.int64(1) << np.maximum(split[node] - 1, 0)
            child = np.where(magnitudes < pivot, left[node], right[node])
            node = np.where(internal, child, node)
        return op.tree_quotient.astype(np.int64)[node]
    raise ValueError(f"linear_quotients: unknown method {method!r}; expected one of {LINEAR_QUOTIENTS}")


def linear_keep(op: QLinear, x: np.ndarray, variant: str, method: str) -> np.ndarray:
    """Kept connections, bool ``(n, out, in)``: ``zeroskip`` keeps ``W != 0 and x != 0``; ``unit``
    keeps ``x != 0 and |W| > t_i`` (``t_i >= 0``, so a zero weight is never kept)."""
    x = np.asarray(x, dtype=np.int64)
    nonzero_x = (x != 0)[:, None, :]
    abs_weight = np.abs(op.weight.astype(np.int64))[None]
    if variant == "zeroskip":
        return nonzero_x & (abs_weight != 0)
    if variant == "unit":
        quotients = linear_quotients(op, np.abs(x), method)
        return nonzero_x & (abs_weight > quotients[:, None, :])
    raise ValueError(f"linear_keep: variant {variant!r} has no keep mask (dense multiplies everything)")


def sorted_walk(op: QLinear, x: np.ndarray, method: str) -> int:
    """The weights ``unit_linear_unit_sorted_*_s8`` walks on ``x`` ``(n, in)``: per nonzero input with
    ``t_i < 128``, the weights of its column with ``|w| > t_i`` and the stop."""
    x = np.asarray(x, dtype=np.int64)
    quotients = linear_quotients(op, np.abs(x), method)  # (n, in)
    live = (x != 0) & (quotients < 128)
    magnitudes = np.abs(op.weight.astype(np.int64))  # (out, in)
    above = np.stack([(magnitudes > t).sum(axis=0) for t in range(128)])  # (128, in): #{|w| > t} per column
    columns = np.broadcast_to(np.arange(op.in_features), x.shape)
    return int((above[np.minimum(quotients, 127)[live], columns[live]] + 1).sum())


def _linear(op: QLinear, x: np.ndarray, variant: str, method: str) -> tuple[np.ndarray, MacCounts]:
    if variant == "unit" and op.unit_kernel == "static":  # exact over the nonzero weights (unit_linear_sparse_s8)
        variant = "zeroskip"
    n = x.shape[0]
    x = x.reshape(n, op.in_features).astype(np.int64)
    weight = op.weight.astype(np.int64)
    acc = np.empty((n, op.out_features), dtype=np.int64)
    executed = 0
    rows_per_chunk = max(1, _CHUNK_ELEMENTS // max(1, op.out_features * op.in_features))
    for start in range(0, n, rows_per_chunk):
        rows = x[start:start + rows_per_chunk]
        if variant == "dense":
            acc[start:start + rows_per_chunk] = rows @ weight.T
        else:
            keep = linear_keep(op, rows, variant, method)
            acc[start:start + rows_per_chunk] = np.einsum("ji,nji,ni->nj", weight, keep, rows)
            executed += int(keep.sum())
    y = _requantize_outputs(acc, op, channel_axis=1)
    return y, linear_counts(op, x, variant, executed, method)


def linear_counts(op: QLinear, x: np.ndarray, variant: str, executed: int, method: str) -> MacCounts:
    """A linear layer's counters on inputs ``x`` ``(n, in)`` given its ``executed`` MACs (unit variant;
    ``method`` the quotient, for the early-exit kernel's walk)."""
    n = x.shape[0]
    dense = n * op.out_features * op.in_features
    nonzero_per_input = (op.weight != 0).sum(axis=0)
    zero_weight = n * int(op.weight.size - np.count_nonzero(op.weight))
    zero_activation = int(((x == 0).sum(axis=0) * nonzero_per_input).sum())
    nonzero_inputs = int(np.count_nonzero(x))
    compares = n * op.in_features + nonzero_inputs * op.out_features
    if variant == "unit" and op.unit_kernel == "sorted":
        compares = n * op.in_features + sorted_walk(op, x, method)
    return _counts(variant, dense, zero_weight, zero_activation, executed, compares, divisions=nonzero_inputs)


# ----------------------------------------------------------------------------------------
# Max-pool, average pool, ReLU, flatten
# ----------------------------------------------------------------------------------------

def _pool_windows(op: QMaxPool | QAvgPool, x: np.ndarray) -> np.ndarray:
    """The pooling windows of ``x``: ``(n, C, OH, OW, KH, KW)``."""
    n = x.shape[0]
    x4 = x.reshape(n, op.channels, op.in_height, op.in_width)
    windows = sliding_window_view(x4, op.kernel, axis=(2, 3))[:, :, ::op.stride[0], ::op.stride[1]]
    return windows[:, :, :op.out_height, :op.out_width]


def _maxpool(op: QMaxPool, x: np.ndarray) -> np.ndarray:
    return _pool_windows(op, x).max(axis=(4, 5))


def _avgpool(op: QAvgPool, x: np.ndarray) -> np.ndarray:
    """TFLite's reference: ``(acc + n/2) / n`` for ``acc > 0``, else ``(acc - n/2) / n``, truncating."""
    acc = _pool_windows(op, x).astype(np.int64).sum(axis=(4, 5))
    count = op.kernel[0] * op.kernel[1]
    shifted = np.where(acc > 0, acc + count // 2, acc - count // 2)
    mean = np.sign(shifted) * (np.abs(shifted) // count)  # C division truncates toward zero
    return np.clip(mean, -128, 127).astype(np.int8)


# ----------------------------------------------------------------------------------------
# The whole model
# ----------------------------------------------------------------------------------------

def quantize_input(qmodel: QuantizedModel, x) -> np.ndarray:
    """``clamp(round_half_away(x / input_scale), -128, 127)`` as int8, ``x`` of shape ``(N, *input_shape)``."""
    values = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float64)
    if values.shape[1:] != tuple(qmodel.input_shape):
        raise ValueError(f"quantize_input: expected inputs of shape (N, {', '.join(map(str, qmodel.input_shape))}), "
                         f"got {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError("quantize_input: the input contains NaN or Inf")
    scaled = values / qmodel.input_scale
    rounded = np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)
    return np.clip(rounded, -128, 127).astype(np.int8)


def dequantize_output(qmodel: QuantizedModel, y_q: np.ndarray) -> np.ndarray:
    """``output_scale * y_q`` as float32."""
    return (qmodel.output_scale * np.asarray(y_q, dtype=np.float64)).astype(np.float32)


def run_reference(qmodel: QuantizedModel, x_q, variant: str | None = None,
                  capture: Callable[[object, np.ndarray], None] | None = None
                  ) -> tuple[np.ndarray, dict[str, MacCounts]]:
    """Run ``qmodel`` on int8 inputs ``x_q`` of shape ``(N, *input_shape)``.

    Args:
        variant: dense, zeroskip or unit (default ``qmodel.variant``); the linear quotient
            kernel is ``qmodel.linear_quotient``.
        capture: called as ``capture(op, x)`` with every op's int8 input (for analysis).

    Returns:
        ``(y_q, counts)``: the int8 outputs, shape ``(N, *output_shape)``, and the MAC counters of
        every conv/linear op by name.
    """
    return run_chain(qmodel, x_q, variant, capture, _conv, _linear, "run_reference")


def run_chain(qmodel: QuantizedModel, x_q, variant: str | None, capture, conv: Callable, linear: Callable,
              who: str) -> tuple[np.ndarray, dict[str, MacCounts]]:
    """:func:`run_reference`'s checks and op loop with the conv and linear ops computed by
    ``conv(op, x, variant)`` and ``linear(op, x, variant, method)`` (``who`` names the caller in errors)."""
    variant = qmodel.variant if variant is None else variant
    if variant not in VARIANTS:
        raise ValueError(f"{who}: variant must be one of {VARIANTS}, got {variant!r}")
    method = qmodel.linear_quotient
    if method not in LINEAR_QUOTIENTS:
        raise ValueError(f"{who}: linear_quotient must be one of {LINEAR_QUOTIENTS}, got {method!r}")
    if qmodel.approx == "exact" and method != "table" and variant == "unit" and \
            any(isinstance(op, QLinear) for op in qmodel.ops):
        raise ValueError(f"{who}: approx='exact' linear quotients (T_q // |x_q|) need linear_quotient='table'")
    if qmodel.source.get("unit_decisions") == "float" and method != "table" and variant == "unit":
        raise ValueError(f"{who}: a model quantized with unit_decisions='float' needs linear_quotient='table'")
    x = np.asarray(x_q)
    if x.dtype != np.int8:
        raise TypeError(f"{who}: expected int8 inputs, got {x.dtype} (use quantize_input)")
    if x.shape[1:] != tuple(qmodel.input_shape):
        raise ValueError(f"{who}: expected inputs of shape (N, {', '.join(map(str, qmodel.input_shape))}), "
                         f"got {x.shape}")
    counts: dict[str, MacCounts] = {}
    for op in qmodel.ops:
        if capture is not None:
            capture(op, x)
        if isinstance(op, QConv):
            x, counts[op.name] = conv(op, x, variant)
        elif isinstance(op, QLinear):
            x, counts[op.name] = linear(op, x, variant, method)
        elif isinstance(op, QMaxPool):
            x = _maxpool(op, x)
        elif isinstance(op, QAvgPool):
            x = _avgpool(op, x)
        elif isinstance(op, QReLU):
            x = np.maximum(x, 0)
        elif isinstance(op, QThresholdReLU):
            x = np.where(x > op.threshold_q, x, 0).astype(np.int8)
        elif isinstance(op, QFlatten):
            x = x.reshape(x.shape[0], -1)
        else:
            raise TypeError(f"{who}: unknown op {type(op).__name__}")
    shape = qmodel.output_shape if qmodel.output_shape is not None else (-1,)
    return x.reshape(x.shape[0], *shape).astype(np.int8), counts

"""Independent NumPy oracles for UnIT layers: explicit per-connection masks, no torch code paths.

Convolutions are computed tap by tap on an explicitly padded array (not with unfold), the
approximations with Python's ``math.frexp``/``math.ldexp`` on exact floats, and every connection
is assigned its cause with the precedence of docs/semantics.md.
"""

from __future__ import annotations

import math

import numpy as np


def approx_scalar(method: str, threshold: float, control: float, shift_start: int | None = None) -> np.float32:
    """One quotient, from the definitions in docs/semantics.md, rounded once to float32."""
    threshold, control = float(np.float32(threshold)), float(np.float32(control))
    if control == 0.0:
        return np.float32(np.inf)
    if threshold == 0.0:
        return np.float32(0.0)
    with np.errstate(over="ignore", under="ignore"):
        if method == "exact":
            return np.float32(threshold) / np.float32(control)
        if method in ("bitshift", "bintree"):
            n = math.frexp(control)[1]
            if shift_start is not None:
                n = max(n, shift_start)
            return np.float32(math.ldexp(threshold, -n))
        if method == "bitmask":
            power = (math.frexp(threshold)[1] - 1) - (math.frexp(control)[1] - 1)
            if power > 127:
                return np.float32(np.inf)
            if power < -149:
                return np.float32(0.0)
            return np.float32(math.ldexp(1.0, power))
    raise ValueError(method)


_approx_vector = np.vectorize(approx_scalar, otypes=[np.float32])


def approx_array(method: str, threshold, control, shift_start: int | None = None) -> np.ndarray:
    return _approx_vector(method, np.asarray(threshold, np.float32), np.asarray(control, np.float32), shift_start)


def _groups(out_features: int, num_groups: int, group_size: int | None) -> np.ndarray:
    if num_groups == 1:
        return np.zeros(out_features, dtype=np.int64)
    return np.arange(out_features) // group_size


def _causes(w_nonzero, x_nonzero, kept) -> dict[str, int]:
    zero_weight = ~w_nonzero
    zero_activation = w_nonzero & ~x_nonzero
    threshold = w_nonzero & x_nonzero & ~kept
    executed = w_nonzero & x_nonzero & kept
    return {
        "dense": int(w_nonzero.size),
        "zero_weight": int(zero_weight.sum()),
        "zero_activation": int(zero_activation.sum()),
        "threshold": int(threshold.sum()),
        "executed": int(executed.sum()),
    }


def linear_oracle(x, weight, bias, thresholds, method, group_size=None, shift_start=None):
    """``(y, counts)`` of a UnIT linear layer; ``x`` is (rows, in)."""
    x = np.asarray(x, np.float32)
    weight = np.asarray(weight, np.float32)
    thresholds = np.asarray(thresholds, np.float32).reshape(-1)
    rows, in_features = x.shape
    out_features = weight.shape[0]
    group = _groups(out_features, thresholds.size, group_size)
    # t[s, j, i] = approx(T[group(j)], |x[s, i]|)
    t = approx_array(method, thresholds[group][None, :, None], np.abs(x)[:, None, :], shift_start)
    abs_w = np.abs(weight)[None, :, :]
    kept = abs_w > t
    w_nonzero = np.broadcast_to(weight != 0, kept.shape)
    x_nonzero = np.broadcast_to((x != 0)[:, None, :], kept.shape)
    y = (np.where(kept, weight[None].astype(np.float64) * x[:, None, :].astype(np.float64), 0.0)).sum(axis=2)
    if bias is not None:
        y = y + np.asarray(bias, np.float64)
    counts = _causes(w_nonzero, x_nonzero, kept & w_nonzero & x_nonzero)
    nonzero_inputs = int((x != 0).sum())
    counts["compares"] = rows * in_features + nonzero_inputs * out_features
    counts["divisions"] = nonzero_inputs * thresholds.size
    return y, counts


def same_padding(kernel: int, dilation: int) -> tuple[int, int]:
    """torch's rule for padding='same': the odd extra pixel goes after."""
    total = dilation * (kernel - 1)
    return total // 2, total - total // 2


def conv2d_oracle(x, weight, bias, thresholds, method, *, stride=(1, 1), padding=((0, 0), (0, 0)),
                  dilation=(1, 1), groups=1, group_size=None, shift_start=None):
    """``(y, counts)`` of a UnIT conv2d; ``x`` is (N, C, H, W), padding ((top, bottom), (left, right))."""
    x = np.asarray(x, np.float32)
    weight = np.asarray(weight, np.float32)
    thresholds = np.asarray(thresholds, np.float32).reshape(-1)
    n, c, h, w = x.shape
    out_channels, group_in, kh, kw = weight.shape
    group_out = out_channels // groups
    (top, bottom), (left, right) = padding
    padded = np.zeros((n, c, h + top + bottom, w + left + right), np.float32)
    padded[:, :, top:top + h, left:left + w] = x
    out_h = (h + top + bottom - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    out_w = (w + left + right - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    group = _groups(out_channels, thresholds.size, group_size)
    tau = approx_array(method, thresholds[group][:, None, None, None] * np.ones_like(weight), np.abs(weight),
                       shift_start)
    y = np.zeros((n, out_channels, out_h, out_w), np.float64)
    totals = dict.fromkeys(("dense", "zero_weight", "zero_activation", "threshold", "executed"), 0)
    for o in range(out_channels):
        g = o // group_out
        for ci in range(group_in):
            channel = g * group_in + ci
            for ky in range(kh):
                for kx in range(kw):
                    rows = slice(ky * dilation[0], ky * dilation[0] + stride[0] * (out_h - 1) + 1, stride[0])
                    cols = slice(kx * dilation[1], kx * dilation[1] + stride[1] * (out_w - 1) + 1, stride[1])
                    patch = padded[:, channel, rows, cols]  # (N, out_h, out_w): inputs under this tap
                    weight_value = weight[o, ci, ky, kx]
                    kept = np.abs(patch) > tau[o, ci, ky, kx]
                    w_nonzero = np.full(patch.shape, weight_value != 0)
                    x_nonzero = patch != 0
                    kept = kept & w_nonzero & x_nonzero
                    y[:, o] += np.where(kept, np.float64(weight_value) * patch.astype(np.float64), 0.0)
                    for key, value in _causes(w_nonzero, x_nonzero, kept).items():
                        totals[key] += value
    if bias is not None:
        y += np.asarray(bias, np.float64)[None, :, None, None]
    totals["compares"] = n * out_h * out_w * int((weight != 0).sum())
    totals["divisions"] = 0
    return y, totals

"""Fast exact percentile of a layer's nonzero ``|x| * |w|`` products, without forming them.

The calibration threshold of a UnIT layer is the ``p``-th percentile (inverted CDF: the
``ceil(n * p / 100)``-th smallest of the ``n`` nonzero products, docs/semantics.md) of the float32
products ``|x| * |w|`` of all its connections over the calibration inputs. A KWS-size layer has
~10^9 of them for 256 samples; streaming them all twice took ~130 s.

Here the products are never formed. Every weight multiplies one *multiset* of activations:

* linear: weight ``(o, i)`` multiplies input ``i`` of every sample;
* convolution with stride 1: weight ``(o, c, a, b)`` multiplies the activations of input channel
  ``c`` inside one rectangle of the input (the tap's window, shifted by ``(a, b)`` times the
  dilation, cut to the input where there is padding: padding only adds zeros, which never count).
  The windows of the taps overlap almost entirely, so the window is counted as the whole channel,
  minus the rows outside the window, minus the columns outside it, plus the cells outside both
  (inclusion-exclusion): sorted arrays of whole channels, single rows, single columns and corner
  cells, ~4x the layer's input instead of ``kh * kw`` times it;
* other convolutions (stride > 1): one multiset per im2col row.

A *part* is a matrix of sorted multisets (rows, ``+inf`` after each row's nonzero values) with the
weights that use each row and a sign (+1, -1, or 0 for padding). For a candidate threshold ``T``
the number of products ``<= T`` of a weight ``w > 0`` with a row is the length of a prefix of the
row, because ``fl(x * w)`` (float32, correctly rounded) is non-decreasing in ``x``: a
``searchsorted`` for ``T / w`` finds it up to rounding and a fix-up step checks the float32
products at the boundary exactly (moving over whole runs of equal activations). The signed prefix
lengths summed per threshold group give the exact count; the order statistic is then found by a
binary search over the float32 bit patterns (positive floats order like their bits), 31 rounds.
Products that underflow to zero are left out, as in the streaming selection
:func:`unitprune.calibrate.product_percentile`, which this reproduces bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .layers import UnITLayerMixin, UnITLinear, _UnITConvNd
from .geometry import output_groups, unfold_columns

__all__ = ["layer_percentile", "layer_parts", "percentile_of_products", "Part"]

_POSITIVE_INF_BITS = 0x7F800000


@dataclass
class Part:
    """Sorted activation multisets and the weights that multiply them.

    Attributes:
        values: float32 ``(R, M)``: row ``r`` holds its nonzero ``|x|`` sorted, then ``+inf``.
        valid: int64 ``(R,)``: nonzero values per row.
        weights: float32 ``(R, Q)``: ``|w|`` of the weights using row ``r`` (1 where ``sign`` is 0).
        groups: int64 ``(R, Q)``: threshold group of each weight.
        sign: int64 ``(R, Q)``: +1 / -1 how the row's count enters the total, 0 for padding and zero weights.
    """

    values: Tensor
    valid: Tensor
    weights: Tensor
    groups: Tensor
    sign: Tensor


def _sorted_rows(rows: Tensor) -> tuple[Tensor, Tensor]:
    """Sort every row's nonzero values (numpy's SIMD sort: ~15x torch.sort here); zeros -> +inf."""
    array = rows.contiguous().numpy()
    array = np.where(array > 0, array, np.float32(np.inf))
    array.sort(axis=1)
    valid = np.isfinite(array).sum(axis=1).astype(np.int64)
    width = max(1, int(valid.max()) if valid.size else 1)
    return torch.from_numpy(np.ascontiguousarray(array[:, :width])), torch.from_numpy(valid)


def _part(rows: Tensor, weights: Tensor, groups: Tensor, sign: Tensor) -> Part:
    keep = (sign != 0).any(dim=1)  # rows that no weight uses are not sorted at all
    rows, weights, groups, sign = rows[keep], weights[keep], groups[keep], sign[keep]
    sign = torch.where(weights > 0, sign, torch.zeros_like(sign))
    weights = torch.where(sign != 0, weights, torch.ones_like(weights))
    values, valid = _sorted_rows(rows)
    return Part(values, valid, weights.to(torch.float32).contiguous(), groups.contiguous(), sign.contiguous())


def layer_parts(layer: UnITLayerMixin, inputs: list[Tensor]) -> list[Part]:
    """The :class:`Part` s whose signed counts are the layer's product counts (see module docs)."""
    weight = layer.weight.detach().abs()
    num_groups = layer.num_threshold_groups
    group_of_output = output_groups(weight.shape[0], num_groups, layer.config.group_size)
    if isinstance(layer, UnITLinear):
        rows = torch.cat([x.reshape(-1, layer.in_features) for x in inputs]).abs().t()  # (in, n)
        weights = weight.t()  # (in, out)
        groups = group_of_output.expand_as(weights)
        return [_part(rows, weights, groups, torch.ones_like(groups))]
    assert isinstance(layer, _UnITConvNd)
    geometry = layer.geometry()
    batches = []
    for x in inputs:
        batch = x if x.dim() == layer.spatial_dims + 2 else x.unsqueeze(0)
        batches.append(batch if layer.spatial_dims == 2 else batch.unsqueeze(2))
    x = torch.cat(batches).abs()
    if tuple(geometry.stride) != (1, 1):
        return [_im2col_part(x, weight, geometry, group_of_output)]
    return _window_parts(x, weight, geometry, group_of_output)


def _tap_weights(weight: Tensor, groups_count: int) -> Tensor:
    """``(C, group_out * K)``: for input channel ``c`` the weights of every output of its conv group and tap."""
    out_channels, per_group_in = weight.shape[0], weight.shape[1]
    group_out = out_channels // groups_count
    per_group = weight.reshape(groups_count, group_out, per_group_in, -1)  # (G, o, c_local, K)
    return per_group.permute(0, 2, 1, 3).reshape(groups_count * per_group_in, -1)  # (C, o*K), o major


def _window_parts(x: Tensor, weight: Tensor, geometry, group_of_output: Tensor) -> list[Part]:
    n, channels, height, width = x.shape
    kh, kw = geometry.kernel_size
    dh, dw = geometry.dilation
    top, _, left, _ = geometry.padding
    out_h, out_w = geometry.output_size(height, width)
    groups_count = geometry.groups
    group_out = weight.shape[0] // groups_count
    weights = _tap_weights(weight, groups_count)  # (C, o*K)
    outputs = torch.cat([torch.arange(g * group_out, (g + 1) * group_out) for g in range(groups_count)])
    out_of_query = outputs.view(groups_count, group_out, 1).expand(-1, -1, kh * kw).reshape(groups_count, -1)
    channel_group = torch.arange(channels) // (channels // groups_count)
    groups = group_of_output[out_of_query[channel_group]]  # (C, o*K)
    # inside[i, a]: input row i is in the window of kernel row a (same for columns)
    rows_in = _inside(height, kh, dh, top, out_h)  # (H, kh)
    cols_in = _inside(width, kw, dw, left, out_w)  # (W, kw)
    q = group_out * kh * kw

    def per_query(mask_k: Tensor) -> Tensor:  # (..., kh*kw) tap mask -> (..., o*K) query mask, o major
        return mask_k.unsqueeze(-2).expand(*mask_k.shape[:-1], group_out, kh * kw).reshape(*mask_k.shape[:-1], q)

    parts = [_part(x.permute(1, 0, 2, 3).reshape(channels, -1), weights, groups, torch.ones_like(groups))]
    # rows outside a tap's window: row strip (c, i) is subtracted for taps (a, b) with i outside rows of a
    row_out = (~rows_in).unsqueeze(2).expand(height, kh, kw).reshape(height, -1)  # (H, K)
    sign = -per_query(row_out).long()  # (H, q)
    parts.append(_part(x.permute(1, 2, 0, 3).reshape(channels * height, -1),
                       weights.repeat_interleave(height, 0), groups.repeat_interleave(height, 0),
                       sign.repeat(channels, 1)))
    col_out = (~cols_in).unsqueeze(1).expand(width, kh, kw).reshape(width, -1)  # (W, K)
    sign = -per_query(col_out).long()
    parts.append(_part(x.permute(1, 3, 0, 2).reshape(channels * width, -1),
                       weights.repeat_interleave(width, 0), groups.repeat_interleave(width, 0),
                       sign.repeat(channels, 1)))
    # cells outside both: added back once
    both = (row_out.unsqueeze(1) & col_out.unsqueeze(0)).reshape(height * width, -1)  # (H*W, K)
    sign = per_query(both).long()
    parts.append(_part(x.permute(1, 2, 3, 0).reshape(channels * height * width, n),
                       weights.repeat_interleave(height * width, 0), groups.repeat_interleave(height * width, 0),
                       sign.repeat(channels, 1)))
    return parts


def _inside(size: int, kernel: int, dilation: int, pad_before: int, out_size: int) -> Tensor:
    """``(size, kernel)`` bool: input index ``i`` is read by kernel tap ``a`` at some output position."""
    index = torch.arange(size).unsqueeze(1)
    start = torch.arange(kernel).unsqueeze(0) * dilation - pad_before
    return (index >= start) & (index < start + out_size)


def _im2col_part(x: Tensor, weight: Tensor, geometry, group_of_output: Tensor) -> Part:
    columns = unfold_columns(x, geometry)  # (n, C*K, L)
    rows = columns.permute(1, 0, 2).reshape(columns.shape[1], -1)
    out_channels = weight.shape[0]
    flat = weight.reshape(out_channels, -1)
    taps = flat.shape[1]
    group_out = out_channels // geometry.groups
    weights = torch.cat([flat[g * group_out:(g + 1) * group_out].t() for g in range(geometry.groups)])
    outputs = torch.cat([torch.arange(g * group_out, (g + 1) * group_out).expand(taps, group_out)
                         for g in range(geometry.groups)])
    groups = group_of_output[outputs]
    return _part(rows, weights, groups, torch.ones_like(groups))


def _prefix_lengths(part: Part, limit: Tensor) -> Tensor:
    """Per (row, weight): how many of the row's activations ``x`` have ``fl32(x * w) <= limit``.

    ``limit`` is float32 ``(R, Q)``. Exact: the estimate from ``limit / w`` is corrected by
    evaluating the float32 products at the prefix boundary.
    """
    values, weights = part.values, part.weights
    cap = part.valid.unsqueeze(1).expand_as(weights)
    guess = (limit.to(torch.float64) / weights.to(torch.float64)).to(torch.float32)
    index = torch.minimum(torch.searchsorted(values, guess, right=True), cap)
    last = values.shape[1] - 1
    while True:
        following = values.gather(1, index.clamp(max=last))
        grow = (index < cap) & (following * weights <= limit)
        if bool(grow.any()):  # include the whole run of values equal to the next one
            index = torch.where(grow, torch.minimum(torch.searchsorted(values, following, right=True), cap), index)
        preceding = values.gather(1, (index - 1).clamp(min=0))
        shrink = (index > 0) & (preceding * weights > limit)
        if bool(shrink.any()):  # drop the whole run of values equal to the previous one
            index = torch.where(shrink, torch.searchsorted(values, preceding, right=False), index)
        if not bool(grow.any()) and not bool(shrink.any()):
            return index


def _group_sums(part: Part, counts: Tensor, num_groups: int) -> Tensor:
    return torch.zeros(num_groups, dtype=torch.int64).index_add_(0, part.groups.reshape(-1),
                                                                 (counts * part.sign).reshape(-1))


def percentile_of_products(parts: list[Part], num_groups: int, percentile: float) -> Tensor:
    """Exact inverted-CDF percentile per threshold group of the nonzero products the parts describe.

    Groups without nonzero products get 0; ``percentile == 0`` gives 0.
    """
    if percentile == 0:
        return torch.zeros(num_groups, dtype=torch.float32)
    underflow = [_prefix_lengths(p, torch.zeros_like(p.weights)) for p in parts]  # products that round to 0
    totals = sum((_group_sums(p, p.valid.unsqueeze(1) - u, num_groups) for p, u in zip(parts, underflow)),
                 torch.zeros(num_groups, dtype=torch.int64))
    ranks = torch.tensor([max(1, math.ceil(int(n) * percentile / 100.0)) for n in totals.tolist()])
    low = torch.ones(num_groups, dtype=torch.int64)  # smallest positive float32
    high = torch.full((num_groups,), _POSITIVE_INF_BITS, dtype=torch.int64)
    while bool((low < high).any()):
        middle = (low + high) // 2
        thresholds = middle.to(torch.int32).view(torch.float32)
        counts = sum((_group_sums(p, _prefix_lengths(p, thresholds[p.groups]) - u, num_groups)
                      for p, u in zip(parts, underflow)), torch.zeros(num_groups, dtype=torch.int64))
        enough = counts >= ranks
        high = torch.where(enough & (low < high), middle, high)
        low = torch.where(~enough & (low < high), middle + 1, low)
    result = low.to(torch.int32).view(torch.float32).clone()
    return torch.where(totals > 0, result, torch.zeros_like(result))


def layer_percentile(layer: UnITLayerMixin, inputs: list[Tensor], percentile: float) -> Tensor:
    """Thresholds ``(num_threshold_groups,)`` of ``layer``: the exact percentile of its nonzero products."""
    num_groups = layer.num_threshold_groups
    if percentile == 0:
        return torch.zeros(num_groups, dtype=torch.float32)
    return percentile_of_products(layer_parts(layer, inputs), num_groups, percentile)

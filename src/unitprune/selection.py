"""Fast exact percentile of a layer's nonzero ``|x| * |w|`` products, without forming them.

The calibration threshold of a UnIT layer is the ``p``-th percentile (inverted CDF: the
``ceil(n * p / 100)``-th smallest of the ``n`` nonzero products, docs/semantics.md) of the float32
products ``|x| * |w|`` of all its connections over the calibration inputs. A KWS-size layer has
~10^9 of them for 256 samples; streaming them all (twice) took ~130 s.

Here the products are never formed. Every weight multiplies one *multiset* of activations:

* linear: weight ``(o, i)`` multiplies input ``i`` of every sample;
* convolution: weight ``(o, c, kh, kw)`` multiplies row ``c*K + k`` of the im2col matrix (the input
  channel shifted by that tap, over every sample and output position; padding contributes zeros).

Each multiset is sorted once (``R`` rows: one per input feature or per im2col row). For a
candidate threshold ``T`` the number of products ``<= T`` of a weight ``w > 0`` is the length of a
prefix of its sorted multiset, because ``fl(x * w)`` (float32, correctly rounded) is
non-decreasing in ``x``: one ``searchsorted`` for ``T / w`` gives the prefix up to rounding, and a
fix-up step checks the float32 products at the boundary exactly (moving over whole runs of equal
activations). The wanted order statistic is then found by a binary search over the float32 bit
patterns (positive floats order like their bits): 31 counting rounds of ``R x Q`` searches, ``Q``
the weights per multiset. Zero activations are left out (stored as ``+inf`` after the valid
prefix); products that underflow to zero are subtracted, so only nonzero products count, exactly
as in the streaming selection :func:`unitprune.calibrate.product_percentile`.

Memory: the sorted multisets, ``R x M`` float32 (``M`` the largest number of nonzero activations
of a row): for the KWS model's second convolution on 256 samples 150 x ~250k x 4 B.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from .layers import UnITLayerMixin, UnITLinear, _UnITConvNd
from .reference import output_groups, unfold_columns

__all__ = ["layer_percentile", "sorted_multisets", "percentile_of_products"]

_POSITIVE_INF_BITS = 0x7F800000


def sorted_multisets(layer: UnITLayerMixin, inputs: list[Tensor]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The activation multisets of ``layer`` on ``inputs`` and the weights that use them.

    Returns:
        ``(values, valid, weights, outputs)``: ``values`` float32 ``(R, M)``, each row the sorted
        nonzero ``|x|`` of one multiset followed by ``+inf`` padding; ``valid`` int64 ``(R,)`` the
        number of nonzero entries of each row; ``weights`` float32 ``(R, Q)`` the ``|w|`` that
        multiply row ``r``; ``outputs`` int64 ``(R, Q)`` the output channel / neuron of each weight.
    """
    weight = layer.weight.detach()
    if isinstance(layer, UnITLinear):
        rows = torch.cat([x.reshape(-1, layer.in_features) for x in inputs]).abs().t()  # (in, n)
        abs_weight = weight.abs().t().contiguous()  # (in, out)
        outputs = torch.arange(weight.shape[0]).expand_as(abs_weight)
    else:
        assert isinstance(layer, _UnITConvNd)
        geometry = layer.geometry()
        out_channels = weight.shape[0]
        flat = weight.reshape(out_channels, -1).abs()  # (O, taps)
        taps = flat.shape[1]
        group_out = out_channels // geometry.groups
        parts = []
        for x in inputs:
            batch = x if x.dim() == layer.spatial_dims + 2 else x.unsqueeze(0)
            batch = batch if layer.spatial_dims == 2 else batch.unsqueeze(2)
            columns = unfold_columns(batch, geometry).abs()  # (n, C*K, L)
            parts.append(columns.permute(1, 0, 2).reshape(columns.shape[1], -1))
        rows = torch.cat(parts, dim=1)  # (C*K, n*L)
        # row g*taps + j is multiplied by the weights of tap j of the outputs of conv group g
        abs_weight = torch.cat([flat[g * group_out:(g + 1) * group_out].t() for g in range(geometry.groups)])
        outputs = torch.cat([torch.arange(g * group_out, (g + 1) * group_out).expand(taps, group_out)
                             for g in range(geometry.groups)])
    # numpy's sort (SIMD on x86) is ~15x faster than torch.sort on these rows
    array = rows.contiguous().numpy().copy()
    array[array <= 0] = np.inf  # zero activations (and padding) sort to the end, never counted
    array.sort(axis=1)
    valid = torch.from_numpy(np.isfinite(array).sum(axis=1).astype(np.int64))
    width = int(valid.max()) if valid.numel() else 0
    values = torch.from_numpy(np.ascontiguousarray(array[:, :max(1, width)]))
    return values, valid, abs_weight.to(torch.float32).contiguous(), outputs.contiguous()


def _prefix_lengths(values: Tensor, valid: Tensor, weights: Tensor, limit: Tensor) -> Tensor:
    """Per (row, weight): how many of the row's activations ``x`` have ``fl32(x * w) <= limit``.

    ``limit`` is float32 ``(R, Q)``; weights must be > 0. Exact: the estimate from ``limit / w`` is
    corrected by evaluating the float32 products at the prefix boundary.
    """
    cap = valid.unsqueeze(1).expand_as(weights)
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


def percentile_of_products(values: Tensor, valid: Tensor, weights: Tensor, groups: Tensor, num_groups: int,
                           percentile: float) -> Tensor:
    """Exact inverted-CDF percentile of the nonzero products ``values[r, :] * weights[r, q]`` per group.

    ``groups`` (int64, shape of ``weights``) is the threshold group of each weight. Groups without
    nonzero products get 0; ``percentile == 0`` gives 0. Same result as
    :func:`unitprune.calibrate.product_percentile` on the formed products.
    """
    if percentile == 0:
        return torch.zeros(num_groups, dtype=torch.float32)
    used = weights > 0
    safe_weights = torch.where(used, weights, torch.ones_like(weights))
    zero = torch.zeros_like(weights)
    underflow = _prefix_lengths(values, valid, safe_weights, zero)  # products that round to 0
    nonzero = torch.where(used, valid.unsqueeze(1) - underflow, torch.zeros_like(underflow))
    flat_groups = groups.reshape(-1)
    totals = torch.zeros(num_groups, dtype=torch.int64).index_add_(0, flat_groups, nonzero.reshape(-1))
    ranks = torch.tensor([max(1, math.ceil(int(n) * percentile / 100.0)) for n in totals.tolist()])
    low = torch.ones(num_groups, dtype=torch.int64)  # smallest positive float32
    high = torch.full((num_groups,), _POSITIVE_INF_BITS, dtype=torch.int64)
    while bool((low < high).any()):
        middle = (low + high) // 2
        limit = middle.to(torch.int32).view(torch.float32)[groups]
        below = _prefix_lengths(values, valid, safe_weights, limit) - underflow
        counts = torch.zeros(num_groups, dtype=torch.int64).index_add_(
            0, flat_groups, torch.where(used, below, torch.zeros_like(below)).reshape(-1))
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
    values, valid, weights, outputs = sorted_multisets(layer, inputs)
    groups = output_groups(layer.weight.shape[0], num_groups, layer.config.group_size)[outputs]
    return percentile_of_products(values, valid, weights, groups, num_groups, percentile)

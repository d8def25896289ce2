"""Threshold calibration: one percentile of each layer's nonzero ``|x * w|`` products.

``calibrate`` runs held-out data through the model and sets, for every UnIT layer (and every
threshold group), ``T`` = the ``p``-th percentile (inverted-CDF definition, docs/semantics.md) of
the nonzero products ``|x| * |w|`` of all its connections.

Upstream layers are pruned while a layer is calibrated (``sequential=True``, the default): layers
are calibrated one at a time in execution order, each on the activations produced by the already
calibrated layers before it. Pruning upstream changes the activations downstream (small
contributions are dropped), so a percentile measured on dense activations would describe inputs the
layer never sees at deployment. Calibrating on the deployed distribution makes the percentile mean
what it says: about ``p``% of the nonzero products the layer actually sees are skipped.
``sequential=False`` measures every layer on the dense model in a single pass instead.

The percentile is exact and the products are never formed: each layer's thresholds come from
:func:`unitprune.selection.layer_percentile`. Every weight multiplies one multiset of activations
(a linear layer's input feature over the samples; for a stride-1 convolution, one input channel
inside the tap's window, counted by inclusion-exclusion from whole channels, rows, columns and
corner cells; one im2col row otherwise). Those multisets are sorted once; a binary search over
the float32 bit patterns of the candidate threshold (positive floats order like their bits) then
counts the products ``<= T`` with one ``searchsorted`` per weight and an exact float32 check at
the boundary, per threshold group. :func:`layer_products` and :func:`product_percentile` below
(all products streamed twice through a 16 + 16-bit radix selection) are the slow reference the
tests and ``benchmarks/calibration.py`` compare against; calibration does not use them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from .approx import FLOAT32_MAX_EXP, FLOAT32_MIN_EXP, BinTree
from .config import validate_percentile
from .convert import unit_layers
from .layers import UnITLayerMixin, UnITLinear, _UnITConvNd
from .model_pass import execution_order, iterate_inputs
from .geometry import output_groups, unfold_columns
from .selection import layer_percentile

logger = logging.getLogger(__name__)

_HALF = 1 << 16


class _InputCaptured(Exception):
    """Raised by a capture hook to stop the forward pass once a layer's input is recorded."""


def calibrate(model: nn.Module, data, *, percentile: float | None = None,
              per_layer: Mapping[str, float] | None = None, max_batches: int | None = None,
              sequential: bool = True) -> dict[str, Tensor]:
    """Set every UnIT layer's threshold(s) from calibration ``data``; return them by layer name.

    Args:
        model: a model converted with :func:`unitprune.convert`.
        data: a tensor of inputs, a DataLoader, or an iterable of tensors or ``(x, y)`` pairs.
        percentile: percentile in [0, 100] for every layer (default: each layer's
            ``config.percentile``).
        per_layer: percentile overrides by layer name (layer sensitivity).
        max_batches: use at most this many batches of ``data``.
        sequential: calibrate layers in order on upstream-pruned activations (see module docs).

    Returns:
        ``{layer name: thresholds tensor of shape (num_groups,)}``.
    """
    layers = dict(unit_layers(model))
    if not layers:
        raise ValueError("calibrate: the model has no UnIT layers; call unitprune.convert(model) first")
    percentiles = _layer_percentiles(layers, percentile, per_layer)
    batches = _collect_batches(data, max_batches)

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            order = _unit_execution_order(model, layers, batches[0])
            if sequential:
                for name in order:
                    inputs = _capture_inputs(model, {name: layers[name]}, batches)[name]
                    _set_from_inputs(name, layers[name], inputs, percentiles[name])
            else:
                for name in order:
                    layers[name].threshold.zero_()
                captured = _capture_inputs(model, {name: layers[name] for name in order}, batches)
                for name in order:
                    _set_from_inputs(name, layers[name], captured[name], percentiles[name])
    finally:
        model.train(was_training)
    return {name: layers[name].threshold.detach().clone() for name in order}


def set_thresholds(model: nn.Module, thresholds) -> None:
    """Set thresholds: one number for every layer, or ``{layer name: number or per-group sequence}``."""
    layers = dict(unit_layers(model))
    if not layers:
        raise ValueError("set_thresholds: the model has no UnIT layers; call unitprune.convert(model) first")
    if isinstance(thresholds, Mapping):
        unknown = sorted(set(thresholds) - set(layers))
        if unknown:
            raise ValueError(f"set_thresholds: no UnIT layer named {unknown}; layers are {sorted(layers)}")
        items = thresholds.items()
    else:
        items = [(name, thresholds) for name in layers]
    for name, value in items:
        layer = layers[name]
        values = _threshold_values(name, value)
        if values.numel() == 1:
            values = values.expand(layer.num_threshold_groups)
        if values.numel() != layer.num_threshold_groups:
            raise ValueError(f"set_thresholds: layer {name!r} has {layer.num_threshold_groups} threshold groups, "
                             f"got {values.numel()} values")
        if not bool(torch.isfinite(values).all()) or bool((values < 0).any()):
            raise ValueError(f"set_thresholds: thresholds of layer {name!r} must be finite and >= 0, "
                             f"got {values.tolist()}")
        layer.threshold.copy_(values.to(torch.float32))


def _threshold_values(name: str, value) -> Tensor:
    """``value`` (a number, a sequence of numbers or a real tensor) as a flat float64 tensor."""
    if isinstance(value, Tensor):
        if value.is_complex() or value.dtype == torch.bool or value.device.type == "meta":
            raise TypeError(f"set_thresholds: thresholds of layer {name!r} must be a real tensor with values, "
                            f"got {value.dtype} on {value.device}")
        return value.detach().to("cpu", torch.float64).flatten()
    if isinstance(value, np.ndarray) and value.dtype.kind in ("i", "u", "f"):
        return torch.from_numpy(value.astype(np.float64)).flatten()
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if not items or any(isinstance(v, bool) or not isinstance(v, (int, float)) and not _is_real_scalar(v)
                        for v in items):
        raise TypeError(f"set_thresholds: thresholds of layer {name!r} must be a number, a list of numbers or "
                        f"a tensor, got {type(value).__name__} {value!r}")
    return torch.tensor([float(v) for v in items], dtype=torch.float64)


def _is_real_scalar(value) -> bool:
    """numpy scalars and 0-d arrays of a real dtype (not strings, not complex)."""
    kind = getattr(getattr(value, "dtype", None), "kind", None)
    return kind in ("i", "u", "f") and getattr(value, "ndim", 0) == 0


def reset_mac_counts(model: nn.Module) -> None:
    """Zero the accumulated ``mac_counts`` of every UnIT layer in ``model``."""
    for _, layer in unit_layers(model):
        layer.reset_mac_counts()


# ----------------------------------------------------------------------------------------
# Data handling
# ----------------------------------------------------------------------------------------

def _collect_batches(data, max_batches: int | None) -> list[Tensor]:
    batches = [x for x in iterate_inputs(data, max_batches) if x.numel() > 0]
    if not batches:
        raise ValueError("calibrate: the calibration data is empty")
    return batches


def _layer_percentiles(layers: Mapping[str, UnITLayerMixin], percentile: float | None,
                       per_layer: Mapping[str, float] | None) -> dict[str, float]:
    if percentile is not None:
        percentile = validate_percentile(percentile, "percentile")
    chosen = {name: percentile if percentile is not None else layer.config.percentile
              for name, layer in layers.items()}
    if per_layer is not None and not isinstance(per_layer, Mapping):
        raise TypeError(f"per_layer must be a mapping {{layer name: percentile}}, got {type(per_layer).__name__}")
    for name, value in (per_layer or {}).items():
        if name not in layers:
            raise ValueError(f"per_layer: no UnIT layer named {name!r}; layers are {sorted(layers)}")
        chosen[name] = validate_percentile(value, f"per_layer[{name!r}]")
    return chosen


def _unit_execution_order(model: nn.Module, layers: Mapping[str, UnITLayerMixin], batch: Tensor) -> list[str]:
    order = execution_order(model, layers, batch)
    for name in layers:
        if name not in order:
            logger.warning("calibrate: layer %r is not called by the model's forward pass; its threshold is unchanged",
                           name)
    return order


def _capture_inputs(model: nn.Module, layers: Mapping[str, UnITLayerMixin],
                    batches: list[Tensor]) -> dict[str, list[Tensor]]:
    """Run the model over ``batches`` and record each layer's first input per batch.

    With a single layer, the forward pass stops right after its input is recorded.
    """
    captured: dict[str, list[Tensor]] = {name: [] for name in layers}
    seen_in_batch: set[str] = set()
    stop_early = len(layers) == 1

    def make_hook(name: str):
        def hook(module, args):
            if name not in seen_in_batch:  # a layer called twice per pass is calibrated on its first call
                seen_in_batch.add(name)
                captured[name].append(args[0].detach())
            if stop_early:
                raise _InputCaptured
        return hook

    handles = [layer.register_forward_pre_hook(make_hook(name)) for name, layer in layers.items()]
    try:
        for batch in batches:
            seen_in_batch.clear()
            try:
                model(batch)
            except _InputCaptured:
                pass
    finally:
        for handle in handles:
            handle.remove()
    return captured


# ----------------------------------------------------------------------------------------
# Products and exact percentile selection
# ----------------------------------------------------------------------------------------

def _set_from_inputs(name: str, layer: UnITLayerMixin, inputs: list[Tensor], percentile: float) -> None:
    for x in inputs:
        if x.dtype != torch.float32:
            raise TypeError(f"calibrate: layer {name!r} received inputs of dtype {x.dtype}; UnIT layers are float32")
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"calibrate: layer {name!r} received NaN or Inf activations")
    thresholds = layer_percentile(layer, inputs, percentile)  # exact, without forming the products
    if percentile > 0 and bool((thresholds == 0).any()):
        logger.warning("calibrate: layer %r has threshold groups without nonzero products; their threshold is 0", name)
    layer.threshold.copy_(thresholds)
    if layer.config.approx == "bintree":
        layer.bintree = BinTree.from_samples(_control_magnitudes(layer, inputs), FLOAT32_MIN_EXP, FLOAT32_MAX_EXP)
    logger.info("calibrate: %s p=%g -> T=%s", name, percentile, [f"{t:.4g}" for t in thresholds.tolist()])


def _control_magnitudes(layer: UnITLayerMixin, inputs: list[Tensor]):
    if isinstance(layer, UnITLinear):
        values = torch.cat([x.reshape(-1) for x in inputs]).abs()
    else:
        values = layer.weight.detach().reshape(-1).abs()
    values = values[values != 0]
    return values.to(torch.float64).numpy() if values.numel() else torch.ones(1, dtype=torch.float64).numpy()


def layer_products(layer: UnITLayerMixin, inputs: list[Tensor], chunk_elements: int | None = None
                   ) -> Iterator[tuple[Tensor, Tensor | None]]:
    """Yield ``(products, group)`` chunks: ``|x| * |w|`` of every connection of the layer on
    ``inputs`` (flat float32) and the threshold group of each product (flat int64; ``None`` when
    the layer has a single threshold)."""
    budget = chunk_elements or layer.config.chunk_elements
    weight = layer.weight.detach()
    num_groups = layer.num_threshold_groups
    groups_of_output = output_groups(weight.shape[0], num_groups, layer.config.group_size)

    def group_ids(products: Tensor, output_dim: int) -> Tensor | None:
        if num_groups == 1:
            return None
        shape = [1] * products.dim()
        shape[output_dim] = -1
        return groups_of_output.view(shape).expand_as(products).reshape(-1)

    if isinstance(layer, UnITLinear):
        abs_weight = weight.abs()
        rows_per_chunk = max(1, budget // weight.numel())
        for x in inputs:
            rows = x.reshape(-1, layer.in_features).abs()
            for start in range(0, rows.shape[0], rows_per_chunk):
                products = rows[start:start + rows_per_chunk].unsqueeze(1) * abs_weight.unsqueeze(0)  # (r, out, in)
                yield products.reshape(-1), group_ids(products, 1)
        return
    assert isinstance(layer, _UnITConvNd)
    geometry = layer.geometry()
    out_channels = weight.shape[0]
    abs_weight = weight.reshape(out_channels, -1).abs()  # (O, Cg*kh*kw): same layout for 1-d and 2-d
    taps = abs_weight.shape[1]
    group_out = out_channels // geometry.groups
    for x in inputs:
        batch = x if x.dim() == layer.spatial_dims + 2 else x.unsqueeze(0)
        batch = batch if layer.spatial_dims == 2 else batch.unsqueeze(2)
        out_h, out_w = geometry.output_size(batch.shape[2], batch.shape[3])
        samples_per_chunk = max(1, budget // max(1, out_channels * taps * out_h * out_w))
        for start in range(0, batch.shape[0], samples_per_chunk):
            columns = unfold_columns(batch[start:start + samples_per_chunk], geometry).abs()  # (n, C*K, L)
            for g in range(geometry.groups):
                group_columns = columns[:, g * taps:(g + 1) * taps, :]
                group_weight = abs_weight[g * group_out:(g + 1) * group_out]
                products = group_columns.unsqueeze(1) * group_weight.view(1, group_out, taps, 1)  # (n, o, K, L)
                ids = None
                if num_groups > 1:
                    own = groups_of_output[g * group_out:(g + 1) * group_out]
                    ids = own.view(1, -1, 1, 1).expand_as(products).reshape(-1)
                yield products.reshape(-1), ids


def product_percentile(make_chunks, num_groups: int, percentile: float) -> Tensor:
    """Exact inverted-CDF percentile of the nonzero non-negative float32 values, per group.

    ``make_chunks()`` must return a fresh iterator of ``(values, group)`` pairs of flat tensors
    (``group`` may be ``None`` when ``num_groups == 1``); it is called twice. Groups without nonzero values get 0; ``percentile == 0`` gives 0.
    """
    if percentile == 0:
        return torch.zeros(num_groups, dtype=torch.float32)
    high_counts = torch.zeros(num_groups * (_HALF // 2), dtype=torch.int64)  # sign bit is 0
    for values, group in make_chunks():
        bits = values.contiguous().view(torch.int32)
        nonzero = bits > 0
        bins = (bits[nonzero] >> 16).to(torch.int64)
        if group is not None:
            bins += group[nonzero] * (_HALF // 2)
        high_counts += torch.bincount(bins, minlength=high_counts.numel())
    high_counts = high_counts.view(num_groups, _HALF // 2)
    totals = high_counts.sum(dim=1)
    ranks = torch.tensor([max(1, math.ceil(int(n) * percentile / 100.0)) for n in totals.tolist()])
    cumulative = high_counts.cumsum(dim=1)
    high_bin = (cumulative < ranks.unsqueeze(1)).sum(dim=1)  # first bin whose cumulative count reaches rank
    before = torch.where(high_bin > 0, cumulative.gather(1, (high_bin - 1).clamp_min(0).unsqueeze(1)).squeeze(1), 0)
    rank_in_bin = ranks - before

    low_counts = torch.zeros(num_groups * _HALF, dtype=torch.int64)
    for values, group in make_chunks():
        bits = values.contiguous().view(torch.int32)
        wanted_high = high_bin[0] if group is None else high_bin[group]
        selected = (bits > 0) & ((bits >> 16).to(torch.int64) == wanted_high)
        bins = (bits[selected] & 0xFFFF).to(torch.int64)
        if group is not None:
            bins += group[selected] * _HALF
        low_counts += torch.bincount(bins, minlength=low_counts.numel())
    low_cumulative = low_counts.view(num_groups, _HALF).cumsum(dim=1)
    low_bin = (low_cumulative < rank_in_bin.unsqueeze(1)).sum(dim=1)
    result_bits = ((high_bin << 16) | low_bin).to(torch.int32)
    result = result_bits.view(torch.float32).clone()
    return torch.where(totals > 0, result, torch.zeros_like(result))

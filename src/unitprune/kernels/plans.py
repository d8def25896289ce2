"""Plans: the preprocessed, static form of a layer's float weights for the C kernels
(``unit_linear_plan_f32`` / ``unit_conv2d_plan_f32``, layouts in ``unit_kernels_f32.h``), the
:class:`PlanCache` that keeps the last plan of a layer, and :func:`conv_params`, the
``unit_conv2d_params`` of a convolution (shared by the float and int8 wrappers and the exporter).
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..config import UnITConfig
from ..geometry import ConvGeometry
from ..versions import TensorSnapshot
from .loading import (APPROX_CODES, _INF_BITS, CConv2dParams, CConv2dPlanF32, CLinearPlanF32, KernelLibrary, _check,
                      _f32, _float_bits, _shift_start_code, load_library)

#: Linear plans: scatter when at most width / SCATTER_COST weights of a group are kept (SIMD hosts).
SCATTER_COST = 4
#: Linear plans: lane rows padded to a multiple of this many lanes (see unit_linear_plan_f32.lanes).
LANE_ALIGN = 4
#: Convolution lane rows are padded to a multiple of this many lanes (see unit_conv2d_plan_f32.row_lanes).
ROW_ALIGN = 4


# ----------------------------------------------------------------------------------------
# Plans (preprocessed weights) and their cache
# ----------------------------------------------------------------------------------------

@dataclass
class LinearPlan:
    """Static form of a linear weight ``W [out, in]`` and its thresholds for :c:type:`unit_linear_plan_f32`.

    Every weight gets its activation cutoff (``unit_linear_cutoffs_f32``): the connection is kept
    iff ``bits(|x|) > cutoff``, so the kernel computes no quotient. The plan therefore depends on
    the thresholds, the approximation and ``shift_start`` (rebuilt when they change). Each input's
    column is also split by threshold group and sorted by ``|w|`` descending (nonzero weights
    only), which sorts the cutoffs ascending: the kept weights of an input form a prefix.
    ``arrays[1]`` is the plain transposed weight ``[in, out]`` (the dense baseline's operand).
    """

    arrays: tuple[Tensor, ...]  # keeps every buffer the struct points at alive
    struct: CLinearPlanF32
    scratch: Tensor | None = None

    def scratch_for(self, library: KernelLibrary) -> Tensor:
        if self.scratch is None:
            size = library.lib.unit_linear_f32_scratch_size(ctypes.byref(self.struct))
            _check(min(size, 0), "unit_linear_f32_scratch_size")
            self.scratch = torch.empty(max(size, 16), dtype=torch.uint8)
        return self.scratch

    @classmethod
    def build(cls, weight: Tensor, thresholds: Tensor, group_size: int, num_groups: int, method: str,
              shift_start: int | None, scatter_cost: int = SCATTER_COST, lane_align: int = LANE_ALIGN,
              library: KernelLibrary | None = None) -> "LinearPlan":
        library = library or load_library()
        weight = _f32(weight.detach(), "weight")
        thresholds = _f32(thresholds.detach(), "thresholds").reshape(-1).clone()
        out_features, in_features = weight.shape
        weight_t = weight.t().contiguous()  # [in, out]
        method_code, shift_code = APPROX_CODES[method], _shift_start_code(shift_start)
        cutoff = torch.empty((in_features, out_features), dtype=torch.int32)
        _check(library.lib.unit_linear_cutoffs_f32(weight_t.data_ptr(), weight_t.numel(), out_features,
                                                   thresholds.data_ptr(), group_size, method_code, shift_code,
                                                   cutoff.data_ptr()), "unit_linear_cutoffs_f32")
        # Lane rows padded with zero weights whose cutoff (+inf) no activation exceeds.
        lanes = -(-out_features // lane_align) * lane_align
        lane_weight = F.pad(weight_t, (0, lanes - out_features)).contiguous()
        lane_cutoff = F.pad(cutoff, (0, lanes - out_features), value=_INF_BITS).contiguous()
        flat, flat_cutoff = weight_t.reshape(-1), cutoff.reshape(-1)
        output_index = torch.arange(out_features).repeat(in_features)
        segment = torch.arange(in_features).repeat_interleave(out_features) * num_groups + output_index // group_size
        nonzero = flat != 0
        values, outputs, segments, cutoffs = flat[nonzero], output_index[nonzero], segment[nonzero], flat_cutoff[nonzero]
        by_magnitude = torch.sort(values.abs(), descending=True, stable=True).indices
        by_segment = torch.sort(segments[by_magnitude], stable=True).indices
        order = by_magnitude[by_segment]
        count = values.numel()
        size = max(1, in_features * out_features)
        sorted_weight = torch.zeros(size, dtype=torch.float32)
        sorted_output = torch.zeros(size, dtype=torch.int32)
        sorted_cutoff = torch.full((size,), _INF_BITS, dtype=torch.int32)
        sorted_weight[:count] = values[order]
        sorted_output[:count] = outputs[order].to(torch.int32)
        sorted_cutoff[:count] = cutoffs[order]
        lengths = torch.bincount(segments, minlength=in_features * num_groups)
        starts = torch.zeros(in_features * num_groups + 1, dtype=torch.int64)
        starts[1:] = torch.cumsum(lengths, 0)
        # Smallest, largest and cut cutoff of each segment (cutoffs ascend along a segment).
        last = (starts[1:] - 1).clamp(0, size - 1)
        first = starts[:-1].clamp(max=size - 1)
        group = torch.arange(in_features * num_groups) % num_groups
        width = torch.clamp(out_features - group * group_size, max=group_size)
        cut = width // scatter_cost
        inf = torch.full_like(lengths, _INF_BITS, dtype=torch.int32)
        stats = torch.stack([
            torch.where(lengths > 0, sorted_cutoff[first], inf),
            torch.where(lengths > 0, sorted_cutoff[last], torch.full_like(inf, -1)),
            torch.where(cut < lengths, sorted_cutoff[(starts[:-1] + cut).clamp(max=size - 1)], inf),
        ], dim=1).to(torch.int32).contiguous()
        column_cutoff = cutoff.amin(dim=1).contiguous()  # zero weights have +inf cutoffs
        column_nonzero = (weight != 0).sum(dim=0).to(torch.int32)
        arrays = (weight_t, thresholds, lane_weight, lane_cutoff, sorted_weight, sorted_output, sorted_cutoff,
                  starts.to(torch.int32), stats, column_cutoff, column_nonzero)
        struct = CLinearPlanF32(in_features, out_features, group_size, num_groups, scatter_cost, lanes, method_code,
                             shift_code, *(a.data_ptr() for a in arrays[1:]), count)
        return cls(arrays=(weight,) + arrays, struct=struct)


@dataclass
class ConvPlan:
    """Static form of a convolution's weights and quotients for :c:type:`unit_conv2d_plan_f32`."""

    arrays: tuple[Tensor, ...]
    struct: CConv2dPlanF32
    scratch: Tensor | None = None  # the largest scratch buffer needed so far
    last_call: tuple | None = None  # (input shape, geometry, params, output shape, scratch)

    @classmethod
    def build(cls, weight: Tensor, tau: Tensor, groups: int) -> "ConvPlan":
        weight = _f32(weight.detach(), "weight")
        tau = _f32(tau.detach(), "tau")
        out_channels, group_in, kernel_h, kernel_w = weight.shape
        group_out = out_channels // groups
        channels = group_in * groups

        def lanes(tensor: Tensor) -> Tensor:  # [O, Cg, KH, KW] -> [C, KH, KW'(reversed), Og]
            grouped = tensor.reshape(groups, group_out, group_in, kernel_h, kernel_w).permute(0, 2, 3, 4, 1)
            return grouped.flip(3).reshape(channels, kernel_h, kernel_w, group_out).contiguous()

        weight_lanes = lanes(weight)
        nonzero = weight_lanes != 0
        inf_bits = torch.full_like(nonzero, _INF_BITS, dtype=torch.int32)
        tau_bits = torch.where(nonzero, _float_bits(lanes(tau)), inf_bits)
        high = torch.where(nonzero, tau_bits, torch.full_like(tau_bits, -1))

        def stats(dims: tuple[int, ...]) -> tuple[Tensor, Tensor]:
            return tau_bits.amin(dim=dims), high.amax(dim=dims)

        tap_min, tap_max = stats((3,))
        tap_nonzero = nonzero.sum(dim=3).to(torch.int32)
        tap_stats = torch.stack([tap_min, tap_max, tap_nonzero], dim=-1).contiguous()
        row_min, row_max = stats((2, 3))
        prefix = torch.zeros(channels, kernel_h, kernel_w + 1, dtype=torch.int32)
        prefix[:, :, 1:] = torch.cumsum(tap_nonzero, dim=2)
        row_stats = torch.cat([row_min.unsqueeze(-1), row_max.unsqueeze(-1), prefix], dim=-1).contiguous()
        channel_min, channel_max = stats((1, 2, 3))
        channel_stats = torch.stack([channel_min, channel_max], dim=-1).contiguous()
        # Rows of KW*Og lanes, padded to a multiple of ROW_ALIGN with zero weights / +inf tau.
        row_lanes = -(-kernel_w * group_out // ROW_ALIGN) * ROW_ALIGN
        padding = row_lanes - kernel_w * group_out
        lane_weight = F.pad(weight_lanes.reshape(channels, kernel_h, -1), (0, padding)).contiguous()
        lane_tau = F.pad(tau_bits.reshape(channels, kernel_h, -1), (0, padding), value=_INF_BITS).contiguous()
        arrays = (lane_weight, lane_tau, tap_stats, row_stats, channel_stats)
        struct = CConv2dPlanF32(row_lanes, *(a.data_ptr() for a in arrays))
        return cls(arrays=(weight, tau) + arrays, struct=struct)

    def scratch_for(self, library: KernelLibrary, params: CConv2dParams) -> Tensor:
        """A scratch buffer of at least unit_conv2d_f32_scratch_size(params) bytes (the size depends
        on the input size and the whole geometry; the largest buffer so far is kept)."""
        size = library.lib.unit_conv2d_f32_scratch_size(ctypes.byref(params))
        _check(min(size, 0), "unit_conv2d_f32_scratch_size")
        if self.scratch is None or self.scratch.numel() < size:
            self.scratch = torch.empty(max(size, 16), dtype=torch.uint8)
        return self.scratch

    def call_state(self, library: KernelLibrary, x_shape: torch.Size, geometry: ConvGeometry):
        """``(params, output shape, scratch)`` for an input shape, kept for the last shape seen."""
        state = self.last_call
        if state is None or state[0] != x_shape or state[1] != geometry:
            params = conv_params(tuple(x_shape), tuple(self.arrays[0].shape), geometry)
            out_h, out_w = geometry.output_size(x_shape[2], x_shape[3])
            out_shape = (x_shape[0], self.arrays[0].shape[0], out_h, out_w)
            state = (x_shape, geometry, params, out_shape, self.scratch_for(library, params))
            self.last_call = state
        return state[2:]


class PlanCache:
    """The last plan of one layer. Copies and pickles of a layer start with an empty cache.

    A plan is reused while its ``extra`` key is equal and its source tensors are unchanged
    (:class:`unitprune.versions.TensorSnapshot`: same tensor or same address/shape/strides, same
    version counter, and same contents for inference tensors). The snapshots hold the sources,
    so an address cannot be reused by another tensor while the plan is cached.
    """

    def __init__(self) -> None:
        self.plan: LinearPlan | ConvPlan | None = None
        self.extra: tuple = ()
        self.snapshots: tuple[TensorSnapshot, ...] = ()

    def lookup(self, sources: tuple[Tensor, ...], extra: tuple, build):
        if self.plan is not None and self.extra == extra and len(self.snapshots) == len(sources):
            for snapshot, tensor in zip(self.snapshots, sources):
                if not snapshot.unchanged(tensor):
                    break
            else:
                return self.plan
        self.plan = None  # never leave a plan paired with the wrong sources if build() raises
        plan = build()
        self.plan, self.extra = plan, extra
        self.snapshots = tuple(TensorSnapshot(tensor) for tensor in sources)
        return plan

    def __deepcopy__(self, memo) -> "PlanCache":
        return PlanCache()

    def __copy__(self) -> "PlanCache":
        return PlanCache()

    def __reduce__(self):
        return (PlanCache, ())


def _linear_groups(out_features: int, thresholds: Tensor, config: UnITConfig) -> tuple[int, int]:
    num_groups = thresholds.numel()
    group_size = out_features if num_groups == 1 else int(config.group_size or 0)
    if group_size < 1 or -(-out_features // group_size) != num_groups:
        raise ValueError(f"{num_groups} thresholds do not match {out_features} outputs with "
                         f"group_size={config.group_size}")
    return group_size, num_groups


def linear_plan(weight: Tensor, thresholds: Tensor, config: UnITConfig, cache: PlanCache | None = None,
                scatter_cost: int = SCATTER_COST, lane_align: int = LANE_ALIGN,
                library: KernelLibrary | None = None) -> LinearPlan:
    """The (cached) :class:`LinearPlan` of ``weight`` for ``thresholds`` and ``config``'s approximation.

    Like the convolution's quotients, the plan is rebuilt when the weight or the threshold tensor
    changes (in place too: the version counter), or the approximation or ``shift_start``. The C
    kernel refuses thresholds other than the plan's, so a stale plan cannot give wrong results.
    """
    def build() -> LinearPlan:
        group_size, num_groups = _linear_groups(weight.shape[0], thresholds, config)
        return LinearPlan.build(weight, thresholds, group_size, num_groups, config.approx, config.shift_start,
                                scatter_cost, lane_align, library)

    # The config object itself is part of the key (frozen; compared by identity first, so the
    # per-call check is cheap); the groups follow from it and the threshold tensor's shape.
    return _plan(cache, (weight, thresholds), ("linear", config, scatter_cost, lane_align), build)


def conv_plan(weight: Tensor, tau: Tensor, groups: int, cache: PlanCache | None = None) -> ConvPlan:
    """The (cached) :class:`ConvPlan` of ``weight`` and its quotients ``tau``."""
    return _plan(cache, (weight, tau), ("conv", groups), lambda: ConvPlan.build(weight, tau, groups))


def _plan(cache: PlanCache | None, sources: tuple[Tensor, ...], extra: tuple, build):
    return (cache if cache is not None else PlanCache()).lookup(sources, extra, build)


def conv_params(x_shape: tuple[int, ...], weight_shape: tuple[int, ...], geometry: ConvGeometry,
                block_rows: int = 0) -> CConv2dParams:
    """The :c:type:`unit_conv2d_params` of an ``(N, C, H, W)`` input and OIHW weight; ``block_rows``
    (int8 kernels only): output rows accumulated at a time, 0 = the whole plane."""
    batch, channels, height, width = x_shape
    top, bottom, left, right = geometry.padding
    return CConv2dParams(batch, channels, height, width, weight_shape[0], weight_shape[2], weight_shape[3],
                         geometry.stride[0], geometry.stride[1], geometry.dilation[0], geometry.dilation[1],
                         top, bottom, left, right, geometry.groups, block_rows)

"""Calls of the float32 C kernels: :func:`linear` / :func:`conv` run a UnIT layer and return
``(y, MacCounts)`` exactly like :mod:`unitprune.torch_reference`; :func:`linear_dense` / :func:`conv_dense`
are the plain dense C loops (benchmark baselines); :func:`approx`, :func:`conv_quotients` and
:func:`linear_cutoffs` expose the C division approximations and the linear activation cutoffs.

Inputs are float32 CPU tensors; they are made contiguous here (no copy when they already are).
The kernels read tensor memory through raw pointers and do not track autograd: use them for
inference (the UnIT layers compute the dense layer in train mode anyway).
"""

from __future__ import annotations

import ctypes

import torch
from torch import Tensor

from ..config import UnITConfig
from ..counts import MacCounts
from ..geometry import ConvGeometry
from .loading import APPROX_CODES, CCounts, KernelLibrary, _check, _f32, _ptr, _shift_start_code, load_library
from .plans import LANE_ALIGN, SCATTER_COST, PlanCache, LinearPlan, conv_params, conv_plan, linear_plan


# ----------------------------------------------------------------------------------------
# Layers
# ----------------------------------------------------------------------------------------

def all_finite(x: Tensor, library: KernelLibrary | None = None) -> bool:
    """Whether a float32 CPU tensor holds no NaN/Inf (one pass in C, cheaper than two torch ops)."""
    library = library or load_library()
    x = _input(x, "input")
    if x.numel() >= 2**31:
        return bool(torch.isfinite(x).all())
    return bool(library.lib.unit_all_finite_f32(x.data_ptr(), x.numel()))


def _input(tensor: Tensor, what: str) -> Tensor:
    """A float32 CPU tensor as a contiguous tensor (the hot path: no copy when it already is)."""
    if tensor.dtype is not torch.float32 or not tensor.is_cpu:
        raise TypeError(f"C kernels take float32 CPU tensors; {what} is {tensor.dtype} on {tensor.device}")
    return tensor if tensor.is_contiguous() else tensor.contiguous()


def linear(x: Tensor, weight: Tensor, bias: Tensor | None, thresholds: Tensor, config: UnITConfig,
           cache: PlanCache | None = None, library: KernelLibrary | None = None,
           scatter_cost: int = SCATTER_COST, lane_align: int = LANE_ALIGN) -> tuple[Tensor, MacCounts]:
    """UnIT linear layer in C; same arguments and result as :func:`unitprune.torch_reference.linear_reference`."""
    library = library or load_library()
    out_features, in_features = weight.shape
    plan = linear_plan(weight, thresholds, config, cache, scatter_cost, lane_align, library)
    rows = _input(x, "input")
    rows = rows if rows.dim() == 2 else rows.reshape(-1, in_features)
    thresholds = _input(thresholds, "thresholds")
    bias_ptr = None if bias is None else _input(bias, "bias").data_ptr()
    y = torch.empty((rows.shape[0], out_features), dtype=torch.float32)
    counts = CCounts()
    scratch = plan.scratch_for(library)
    status = library.lib.unit_linear_f32(ctypes.byref(plan.struct), rows.data_ptr(), rows.shape[0], bias_ptr,
                                         thresholds.data_ptr(), APPROX_CODES[config.approx],
                                         _shift_start_code(config.shift_start), y.data_ptr(), scratch.data_ptr(),
                                         scratch.numel(), ctypes.byref(counts))
    _check(status, "unit_linear_f32")
    return (y if x.dim() == 2 else y.reshape(*x.shape[:-1], out_features)), counts.to_mac_counts()


def linear_dense(x: Tensor, plan: LinearPlan, bias: Tensor | None,
                 library: KernelLibrary | None = None) -> Tensor:
    """The plain dense C linear loop (benchmark baseline) on ``plan``'s transposed weight."""
    library = library or load_library()
    weight_t = plan.arrays[1]
    in_features, out_features = weight_t.shape
    rows = _f32(x, "input").reshape(-1, in_features)
    bias = None if bias is None else _f32(bias.detach(), "bias")
    y = torch.empty((rows.shape[0], out_features), dtype=torch.float32)
    _check(library.lib.unit_linear_dense_f32(rows.data_ptr(), rows.shape[0], in_features, out_features,
                                             weight_t.data_ptr(), _ptr(bias), y.data_ptr()), "unit_linear_dense_f32")
    return y.reshape(*x.shape[:-1], out_features)

def conv(x: Tensor, weight: Tensor, bias: Tensor | None, tau: Tensor, geometry: ConvGeometry, config: UnITConfig,
         cache: PlanCache | None = None, library: KernelLibrary | None = None) -> tuple[Tensor, MacCounts]:
    """UnIT convolution in C; same arguments and result as :func:`unitprune.torch_reference.conv_reference`."""
    del config  # the quotients tau already carry the approximation and the threshold groups
    library = library or load_library()
    plan = conv_plan(weight, tau, geometry.groups, cache)
    x = _input(x, "input")
    params, out_shape, scratch = plan.call_state(library, x.shape, geometry)
    bias_ptr = None if bias is None else _input(bias, "bias").data_ptr()
    y = torch.empty(out_shape, dtype=torch.float32)
    counts = CCounts()
    status = library.lib.unit_conv2d_f32(ctypes.byref(params), ctypes.byref(plan.struct), x.data_ptr(),
                                         plan.arrays[0].data_ptr(), bias_ptr, y.data_ptr(), scratch.data_ptr(),
                                         scratch.numel(), ctypes.byref(counts))
    _check(status, "unit_conv2d_f32")
    return y, counts.to_mac_counts()


def conv_dense(x: Tensor, weight: Tensor, bias: Tensor | None, geometry: ConvGeometry,
               library: KernelLibrary | None = None) -> Tensor:
    """The plain dense direct C convolution (benchmark baseline), NCHW input, OIHW weight."""
    library = library or load_library()
    x = _f32(x, "input")
    weight = _f32(weight.detach(), "weight")
    bias = None if bias is None else _f32(bias.detach(), "bias")
    params = conv_params(tuple(x.shape), tuple(weight.shape), geometry)
    out_h, out_w = geometry.output_size(x.shape[2], x.shape[3])
    y = torch.empty((x.shape[0], weight.shape[0], out_h, out_w), dtype=torch.float32)
    _check(library.lib.unit_conv2d_dense_f32(ctypes.byref(params), x.data_ptr(), weight.data_ptr(), _ptr(bias),
                                             y.data_ptr()), "unit_conv2d_dense_f32")
    return y


# ----------------------------------------------------------------------------------------
# Division approximations
# ----------------------------------------------------------------------------------------

def approx(method: str, threshold: Tensor, control: Tensor, shift_start: int | None = None,
           library: KernelLibrary | None = None) -> Tensor:
    """``approx(T, c)`` elementwise in C (``unit_approx_f32_array``); float32 tensors, broadcast."""
    library = library or load_library()
    threshold, control = torch.broadcast_tensors(_f32(threshold, "threshold"), _f32(control, "control"))
    threshold, control = threshold.contiguous(), control.contiguous()
    out = torch.empty_like(threshold)
    library.lib.unit_approx_f32_array(APPROX_CODES[method], threshold.data_ptr(), control.data_ptr(),
                                      _shift_start_code(shift_start),
                                      out.data_ptr(), out.numel())
    return out


def conv_quotients(weight: Tensor, thresholds: Tensor, config: UnITConfig,
                   library: KernelLibrary | None = None) -> Tensor:
    """``tau = approx(T[group(o)], |w|)`` per weight in C (``unit_conv2d_quotients_f32``)."""
    library = library or load_library()
    weight = _f32(weight.detach(), "weight")
    thresholds = _f32(thresholds.detach(), "thresholds")
    out_channels = weight.shape[0]
    group_size = out_channels if thresholds.numel() == 1 else int(config.group_size or 0)
    tau = torch.empty_like(weight)
    _check(library.lib.unit_conv2d_quotients_f32(weight.data_ptr(), weight.numel(), out_channels,
                                                 thresholds.data_ptr(), group_size, APPROX_CODES[config.approx],
                                                 _shift_start_code(config.shift_start), tau.data_ptr()), "unit_conv2d_quotients_f32")
    return tau


def linear_cutoffs(weight_t: Tensor, thresholds: Tensor, group_size: int, method: str,
                   shift_start: int | None = None, library: KernelLibrary | None = None) -> Tensor:
    """Activation cutoffs (int32 bit patterns) of ``weight_t [..., out]`` in C (``unit_linear_cutoffs_f32``).

    ``W[j, i] * x[i]`` is kept iff ``bits(|x[i]|) > cutoff`` (see unit_kernels_f32.h); output ``j``
    (the last index) uses ``thresholds[j // group_size]``.
    """
    library = library or load_library()
    weight_t = _f32(weight_t.detach(), "weight")
    thresholds = _f32(thresholds.detach(), "thresholds")
    cutoff = torch.empty(weight_t.shape, dtype=torch.int32)
    _check(library.lib.unit_linear_cutoffs_f32(weight_t.data_ptr(), weight_t.numel(), weight_t.shape[-1],
                                               thresholds.data_ptr(), group_size, APPROX_CODES[method],
                                               _shift_start_code(shift_start), cutoff.data_ptr()),
           "unit_linear_cutoffs_f32")
    return cutoff

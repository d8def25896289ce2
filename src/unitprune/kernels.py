"""ctypes binding of the C kernels in ``src/unitprune/csrc`` (built by setup.py, no Python C API).

* :func:`load_library` finds and loads the shared library ``unitprune/_unitkernels<suffix>``
  once per process (the cached library handle is the only module-level state), checks that it
  was built from the same header version, and declares every function's signature.
* :class:`LinearPlan` / :class:`ConvPlan` hold the preprocessed, static form of a layer's weights
  (layouts documented in ``unit_kernels.h``); :class:`PlanCache` keeps the last plan of a layer so
  it is rebuilt only when the weights (or, for convolutions, the quotients) change.
* :func:`linear` / :func:`conv` run a UnIT layer and return ``(y, MacCounts)`` exactly like
  :mod:`unitprune.reference`; :func:`linear_dense` / :func:`conv_dense` are the plain dense C
  loops (benchmark baselines); :func:`approx`, :func:`conv_quotients` and :func:`linear_cutoffs`
  expose the C division approximations and the linear activation cutoffs (used by the tests to
  compare with :mod:`unitprune.approx`).

Inputs are float32 CPU tensors; they are made contiguous here (no copy when they already are).
The kernels read tensor memory through raw pointers and do not track autograd: use them for
inference (the UnIT layers compute the dense layer in train mode anyway).
"""

from __future__ import annotations

import ctypes
import functools
import importlib.machinery
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from .config import UnITConfig
from .counts import MacCounts
from .reference import ConvGeometry
from .versions import TensorSnapshot

logger = logging.getLogger(__name__)

__all__ = [
    "KernelsUnavailableError", "KernelLibrary", "library_path", "load_library", "available",
    "LinearPlan", "ConvPlan", "PlanCache", "linear", "conv", "linear_dense", "conv_dense",
    "approx", "conv_quotients", "linear_cutoffs", "all_finite", "APPROX_CODES", "SHIFT_START_NONE",
]

#: ``UNIT_KERNELS_VERSION`` of the header this binding was written for.
KERNELS_VERSION = 6
LIBRARY_STEM = "_unitkernels"
APPROX_CODES = {"exact": 0, "bitshift": 1, "bintree": 2, "bitmask": 3}
#: ``UNIT_SHIFT_START_NONE``: any shift start <= -148 means "none" for float32.
SHIFT_START_NONE = -32768
_INF_BITS = 0x7F800000
#: Linear plans: scatter when at most width / SCATTER_COST weights of a group are kept (SIMD hosts).
SCATTER_COST = 4
#: Linear plans: lane rows padded to a multiple of this many lanes (see unit_linear_plan.lanes).
LANE_ALIGN = 4
#: Convolution lane rows are padded to a multiple of this many lanes (see unit_conv2d_plan.row_lanes).
ROW_ALIGN = 4
_COUNT_FIELDS = ("dense", "zero_weight", "zero_activation", "threshold", "executed", "compares", "divisions")


class KernelsUnavailableError(RuntimeError):
    """The compiled C kernels cannot be used (not built, stale build, or failed to load)."""


# ----------------------------------------------------------------------------------------
# C structures (mirrors of unit_kernels.h)
# ----------------------------------------------------------------------------------------

class CCounts(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int64) for name in _COUNT_FIELDS]

    def to_mac_counts(self) -> MacCounts:
        return MacCounts.from_ints(self.dense, self.zero_weight, self.zero_activation, self.threshold,
                                   self.executed, self.compares, self.divisions)


class CLinearPlan(ctypes.Structure):
    _fields_ = [
        ("in_features", ctypes.c_int32), ("out_features", ctypes.c_int32),
        ("group_size", ctypes.c_int32), ("num_groups", ctypes.c_int32), ("scatter_cost", ctypes.c_int32),
        ("lanes", ctypes.c_int32), ("method", ctypes.c_int32), ("shift_start", ctypes.c_int32),
    ] + [(name, ctypes.c_void_p) for name in (
        "thresholds", "lane_weight", "lane_cutoff", "sorted_weight", "sorted_output", "sorted_cutoff",
        "segment_start", "segment_stats", "column_cutoff", "column_nonzero")] + [
        ("nonzero_weights", ctypes.c_int64),
    ]


class CConv2dParams(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int32) for name in (
        "batch", "in_channels", "in_height", "in_width", "out_channels", "kernel_height", "kernel_width",
        "stride_y", "stride_x", "dilation_y", "dilation_x", "pad_top", "pad_bottom", "pad_left", "pad_right",
        "groups")]


class CConv2dPlan(ctypes.Structure):
    _fields_ = [("row_lanes", ctypes.c_int32)] + [(name, ctypes.c_void_p) for name in (
        "lane_weight", "lane_tau", "tap_stats", "row_stats", "channel_stats")]


# ----------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------

class KernelLibrary:
    """A loaded kernel library with every function's ctypes signature declared."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.lib = ctypes.CDLL(str(self.path))
        except OSError as error:
            raise KernelsUnavailableError(f"cannot load the C kernels from {self.path}: {error}") from None
        i32, ptr, f32 = ctypes.c_int32, ctypes.c_void_p, ctypes.c_float
        signatures = {
            "unit_kernels_version": (i32, []),
            "unit_all_finite_f32": (i32, [ptr, i32]),
            "unit_approx_f32": (f32, [i32, f32, f32, i32]),
            "unit_approx_f32_array": (None, [i32, ptr, ptr, i32, ptr, i32]),
            "unit_linear_f32_scratch_size": (i32, [ctypes.POINTER(CLinearPlan)]),
            "unit_linear_f32": (i32, [ctypes.POINTER(CLinearPlan), ptr, i32, ptr, ptr, i32, i32, ptr, ptr, i32,
                                      ctypes.POINTER(CCounts)]),
            "unit_linear_dense_f32": (i32, [ptr, i32, i32, i32, ptr, ptr, ptr]),
            "unit_linear_cutoffs_f32": (i32, [ptr, i32, i32, ptr, i32, i32, i32, ptr]),
            "unit_conv2d_output_size": (i32, [ctypes.POINTER(CConv2dParams), ctypes.POINTER(i32),
                                              ctypes.POINTER(i32)]),
            "unit_conv2d_f32_scratch_size": (i32, [ctypes.POINTER(CConv2dParams)]),
            "unit_conv2d_f32": (i32, [ctypes.POINTER(CConv2dParams), ctypes.POINTER(CConv2dPlan), ptr, ptr, ptr,
                                      ptr, ptr, i32, ctypes.POINTER(CCounts)]),
            "unit_conv2d_dense_f32": (i32, [ctypes.POINTER(CConv2dParams), ptr, ptr, ptr, ptr]),
            "unit_conv2d_quotients_f32": (i32, [ptr, i32, i32, ptr, i32, i32, i32, ptr]),
        }
        for name, (restype, argtypes) in signatures.items():
            try:
                function = getattr(self.lib, name)
            except AttributeError:
                raise KernelsUnavailableError(f"{self.path} has no function {name} (stale build? reinstall "
                                              "unitprune with `pip install -e .`)") from None
            function.restype = restype
            function.argtypes = argtypes
        version = self.lib.unit_kernels_version()
        if version != KERNELS_VERSION:
            raise KernelsUnavailableError(f"{self.path} was built from kernel API version {version}, this "
                                          f"binding expects {KERNELS_VERSION}; rebuild with `pip install -e .`")

    def __repr__(self) -> str:
        return f"KernelLibrary({str(self.path)!r})"


def library_path() -> Path | None:
    """Path of the built kernel library inside the installed package, or ``None`` if not built."""
    package_dir = Path(__file__).resolve().parent
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = package_dir / (LIBRARY_STEM + suffix)
        if candidate.is_file():
            return candidate
    return None


@functools.lru_cache(maxsize=1)
def _default_library() -> KernelLibrary | KernelsUnavailableError:
    """The package's library, loaded once per process (or the reason it cannot be used)."""
    path = library_path()
    if path is None:
        return KernelsUnavailableError(
            "the C kernels are not built (no unitprune/_unitkernels shared library next to "
            f"{Path(__file__).name}); install with `pip install -e .` and a C compiler")
    try:
        library = KernelLibrary(path)
    except KernelsUnavailableError as error:
        return error
    logger.debug("loaded UnIT C kernels from %s", path)
    return library


def load_library() -> KernelLibrary:
    """The package's kernel library; raises :class:`KernelsUnavailableError` naming the problem."""
    library = _default_library()
    if isinstance(library, KernelsUnavailableError):
        raise library
    return library


def available() -> bool:
    """Whether the package's C kernels are built and loadable."""
    return not isinstance(_default_library(), KernelsUnavailableError)


# ----------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------

def _ptr(tensor: Tensor | None) -> int | None:
    return None if tensor is None else tensor.data_ptr()


def _f32(tensor: Tensor, what: str) -> Tensor:
    if tensor.dtype != torch.float32 or tensor.device.type != "cpu":
        raise TypeError(f"C kernels take float32 CPU tensors; {what} is {tensor.dtype} on {tensor.device}")
    return tensor.contiguous()


def _check(status: int, function: str) -> None:
    if status != 0:
        reason = {-1: "an argument is out of its documented range", -2: "scratch too small"}.get(status, "error")
        raise ValueError(f"{function} returned {status}: {reason}")


def _shift_start_code(shift_start: int | None) -> int:
    """``shift_start`` as the C int32 argument (clamped to +-32768; beyond that nothing changes)."""
    return SHIFT_START_NONE if shift_start is None else min(-SHIFT_START_NONE, max(SHIFT_START_NONE, int(shift_start)))


def _float_bits(values: Tensor) -> Tensor:
    return values.contiguous().view(torch.int32)


# ----------------------------------------------------------------------------------------
# Plans (preprocessed weights) and their cache
# ----------------------------------------------------------------------------------------

@dataclass
class LinearPlan:
    """Static form of a linear weight ``W [out, in]`` and its thresholds for :c:type:`unit_linear_plan`.

    Every weight gets its activation cutoff (``unit_linear_cutoffs_f32``): the connection is kept
    iff ``bits(|x|) > cutoff``, so the kernel computes no quotient. The plan therefore depends on
    the thresholds, the approximation and ``shift_start`` (rebuilt when they change). Each input's
    column is also split by threshold group and sorted by ``|w|`` descending (nonzero weights
    only), which sorts the cutoffs ascending: the kept weights of an input form a prefix.
    ``arrays[1]`` is the plain transposed weight ``[in, out]`` (the dense baseline's operand).
    """

    arrays: tuple[Tensor, ...]  # keeps every buffer the struct points at alive
    struct: CLinearPlan
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
        struct = CLinearPlan(in_features, out_features, group_size, num_groups, scatter_cost, lanes, method_code,
                             shift_code, *(a.data_ptr() for a in arrays[1:]), count)
        return cls(arrays=(weight,) + arrays, struct=struct)


@dataclass
class ConvPlan:
    """Static form of a convolution's weights and quotients for :c:type:`unit_conv2d_plan`."""

    arrays: tuple[Tensor, ...]
    struct: CConv2dPlan
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
        struct = CConv2dPlan(row_lanes, *(a.data_ptr() for a in arrays))
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
    """UnIT linear layer in C; same arguments and result as :func:`unitprune.reference.linear_reference`."""
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


def conv_params(x_shape: tuple[int, ...], weight_shape: tuple[int, ...], geometry: ConvGeometry) -> CConv2dParams:
    """The :c:type:`unit_conv2d_params` of an ``(N, C, H, W)`` input and OIHW weight."""
    batch, channels, height, width = x_shape
    top, bottom, left, right = geometry.padding
    return CConv2dParams(batch, channels, height, width, weight_shape[0], weight_shape[2], weight_shape[3],
                         geometry.stride[0], geometry.stride[1], geometry.dilation[0], geometry.dilation[1],
                         top, bottom, left, right, geometry.groups)


def conv(x: Tensor, weight: Tensor, bias: Tensor | None, tau: Tensor, geometry: ConvGeometry, config: UnITConfig,
         cache: PlanCache | None = None, library: KernelLibrary | None = None) -> tuple[Tensor, MacCounts]:
    """UnIT convolution in C; same arguments and result as :func:`unitprune.reference.conv_reference`."""
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

    ``W[j, i] * x[i]`` is kept iff ``bits(|x[i]|) > cutoff`` (see unit_kernels.h); output ``j``
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

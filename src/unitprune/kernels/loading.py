"""Loading the C kernel library and the ctypes mirrors of its structs (``unit_types.h`` and the
per-type headers in ``src/unitprune/csrc``).

* :func:`load_library` finds and loads the shared library ``unitprune/_unitkernels<suffix>``
  once per process (the cached library handle is the only module-level state), checks that it
  was built from the same header version, and declares every function's signature (float32 and
  int8 kernels).
* ``C*`` classes mirror the C structs field by field; :data:`STRUCT_MIRRORS` maps each to its
  ``UNIT_STRUCT_*`` id, so :func:`struct_layout_mismatches` can compare ``sizeof`` and every
  field offset with what the compiler reports (``unit_struct_layout``).
* small argument helpers shared by :mod:`.plans`, :mod:`.calls` and :mod:`.s8`.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.machinery
import logging
from pathlib import Path

import torch
from torch import Tensor

from ..counts import COUNT_FIELDS, MacCounts

logger = logging.getLogger(__name__)


#: ``UNIT_KERNELS_VERSION`` of the header this binding was written for.
KERNELS_VERSION = 8
LIBRARY_STEM = "_unitkernels"
APPROX_CODES = {"exact": 0, "bitshift": 1, "bintree": 2, "bitmask": 3}
#: ``UNIT_SHIFT_START_NONE``: any shift start <= -148 means "none" for float32.
SHIFT_START_NONE = -32768
_INF_BITS = 0x7F800000



class KernelsUnavailableError(RuntimeError):
    """The compiled C kernels cannot be used (not built, stale build, or failed to load)."""


# ----------------------------------------------------------------------------------------
# C structures (mirrors of unit_types.h, unit_kernels_f32.h, unit_kernels_s8.h)
# ----------------------------------------------------------------------------------------

class CCounts(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int64) for name in COUNT_FIELDS]

    def to_mac_counts(self) -> MacCounts:
        return MacCounts.from_ints(self.dense, self.zero_weight, self.zero_activation, self.threshold,
                                   self.executed, self.compares, self.divisions)


class CLinearPlanF32(ctypes.Structure):
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
        "groups", "block_rows")]


class CConv2dPlanF32(ctypes.Structure):
    _fields_ = [("row_lanes", ctypes.c_int32)] + [(name, ctypes.c_void_p) for name in (
        "lane_weight", "lane_tau", "tap_stats", "row_stats", "channel_stats")]


class CRequantS8(ctypes.Structure):
    _fields_ = [("bias", ctypes.c_void_p), ("multiplier", ctypes.c_void_p), ("shift", ctypes.c_void_p),
                ("act_min", ctypes.c_int32), ("act_max", ctypes.c_int32)]


class CSparseS8(ctypes.Structure):
    """``unit_sparse_s8``: the nonzero counts, records and taps of a static-sparse layer."""

    _fields_ = [("nonzeros", ctypes.c_void_p), ("records", ctypes.c_void_p), ("taps", ctypes.c_void_p)]


class CQuotientTreeS8(ctypes.Structure):
    _fields_ = [("nodes", ctypes.c_int32), ("split", ctypes.c_void_p), ("left", ctypes.c_void_p),
                ("right", ctypes.c_void_p), ("quotient", ctypes.c_void_p)]


#: The old names of the float plan mirrors (before the _f32 suffix).
CLinearPlan = CLinearPlanF32
CConv2dPlan = CConv2dPlanF32

#: ``UNIT_STRUCT_*`` id of every mirrored struct (unit_types.h).
STRUCT_MIRRORS: dict[int, type[ctypes.Structure]] = {
    0: CCounts, 1: CConv2dParams, 2: CLinearPlanF32, 3: CConv2dPlanF32, 4: CRequantS8, 5: CQuotientTreeS8,
}


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
        params, requant = ctypes.POINTER(CConv2dParams), ctypes.POINTER(CRequantS8)
        counts = ctypes.POINTER(CCounts)
        signatures = {
            "unit_kernels_version": (i32, []),
            "unit_struct_layout": (i32, [i32, i32]),
            "unit_all_finite_f32": (i32, [ptr, i32]),
            "unit_approx_f32": (f32, [i32, f32, f32, i32]),
            "unit_approx_f32_array": (None, [i32, ptr, ptr, i32, ptr, i32]),
            "unit_linear_f32_scratch_size": (i32, [ctypes.POINTER(CLinearPlanF32)]),
            "unit_linear_f32": (i32, [ctypes.POINTER(CLinearPlanF32), ptr, i32, ptr, ptr, i32, i32, ptr, ptr, i32,
                                      ctypes.POINTER(CCounts)]),
            "unit_linear_dense_f32": (i32, [ptr, i32, i32, i32, ptr, ptr, ptr]),
            "unit_linear_cutoffs_f32": (i32, [ptr, i32, i32, ptr, i32, i32, i32, ptr]),
            "unit_conv2d_output_size": (i32, [ctypes.POINTER(CConv2dParams), ctypes.POINTER(i32),
                                              ctypes.POINTER(i32)]),
            "unit_conv2d_f32_scratch_size": (i32, [ctypes.POINTER(CConv2dParams)]),
            "unit_conv2d_f32": (i32, [ctypes.POINTER(CConv2dParams), ctypes.POINTER(CConv2dPlanF32), ptr, ptr, ptr,
                                      ptr, ptr, i32, ctypes.POINTER(CCounts)]),
            "unit_conv2d_dense_f32": (i32, [ctypes.POINTER(CConv2dParams), ptr, ptr, ptr, ptr]),
            "unit_conv2d_quotients_f32": (i32, [ptr, i32, i32, ptr, i32, i32, i32, ptr]),
            # int8 kernels (unit_kernels_s8.h)
            "unit_s8_counts_compiled": (i32, []),
            "unit_requantize_s8": (i32, [i32, i32, i32]),
            "unit_conv2d_s8_scratch_size": (i32, [params]),
            "unit_conv2d_dense_s8": (i32, [params, ptr, ptr, requant, ptr, ptr, counts]),
            "unit_conv2d_dense_pool_s8": (i32, [params, i32, i32, ptr, ptr, requant, ptr, ptr, counts]),
            "unit_conv2d_zeroskip_s8": (i32, [params, ptr, ptr, requant, ptr, ptr, counts]),
            "unit_conv2d_unit_s8": (i32, [params, ptr, ptr, ptr, requant, ptr, ptr, counts]),
            "unit_conv2d_sparse_s8": (i32, [params, ptr, ctypes.POINTER(CSparseS8), requant, ptr, ptr, counts]),
            "unit_conv2d_sparse_pool_s8": (i32, [params, i32, i32, ptr, ctypes.POINTER(CSparseS8), requant, ptr, ptr,
                                                  counts]),
            "unit_conv2d_sparse_zeroact_s8": (i32, [params, ptr, ctypes.POINTER(CSparseS8), ptr, requant, ptr, ptr,
                                                     counts]),
            "unit_conv2d_sparse_zeroact_s8_scratch_size": (i32, [params]),
            "unit_linear_s8_scratch_size": (i32, [i32]),
            "unit_linear_sparse_s8": (i32, [ptr, i32, i32, i32, ctypes.POINTER(CSparseS8), requant, ptr, ptr, counts]),
            "unit_linear_dense_s8": (i32, [ptr, i32, i32, i32, ptr, requant, ptr, ptr, counts]),
            "unit_linear_zeroskip_s8": (i32, [ptr, i32, i32, i32, ptr, requant, ptr, ptr, counts]),
            "unit_linear_unit_bitshift_s8": (i32, [ptr, i32, i32, i32, ptr, i32, i32, requant, ptr, ptr, counts]),
            "unit_linear_unit_bintree_s8": (i32, [ptr, i32, i32, i32, ptr, ctypes.POINTER(CQuotientTreeS8), requant,
                                                  ptr, ptr, counts]),
            "unit_linear_unit_table_s8": (i32, [ptr, i32, i32, i32, ptr, ptr, requant, ptr, ptr, counts]),
            "unit_relu_s8": (i32, [ptr, i32]),
            "unit_threshold_relu_s8": (i32, [ptr, i32, i32]),
            "unit_maxpool2d_s8": (i32, [ptr, i32, i32, i32, i32, i32, i32, i32, i32, ptr]),
            "unit_avgpool2d_s8": (i32, [ptr, i32, i32, i32, i32, i32, i32, i32, i32, ptr]),
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
    package_dir = Path(__file__).resolve().parent.parent
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
            "the C kernels are not built (no unitprune/_unitkernels shared library in "
            f"{Path(__file__).resolve().parent.parent}); install with `pip install -e .` and a C compiler")
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


def struct_layout_mismatches(library: "KernelLibrary") -> list[str]:
    """Differences between every ctypes mirror and the compiled struct (empty when all match)."""
    problems = []
    for which, mirror in STRUCT_MIRRORS.items():
        size = library.lib.unit_struct_layout(which, -1)
        if size != ctypes.sizeof(mirror):
            problems.append(f"{mirror.__name__}: sizeof {ctypes.sizeof(mirror)} in Python, {size} in C")
        for index, (name, _) in enumerate(mirror._fields_):
            offset = library.lib.unit_struct_layout(which, index)
            if offset != getattr(mirror, name).offset:
                problems.append(f"{mirror.__name__}.{name}: offset {getattr(mirror, name).offset} in Python, "
                                f"{offset} in C")
        if library.lib.unit_struct_layout(which, len(mirror._fields_)) != -1:
            problems.append(f"{mirror.__name__}: the C struct has more fields than the mirror")
    return problems

"""The UnIT convolution over the static-sparse layout (``unit_conv2d_unit_sparse_s8``, TTP+UnIT and
FATReLU+UnIT): its export-time tables (:func:`unit_sparse_tables`) and a call of the host library.

The layout is the one documented with ``unit_unit_sparse_s8`` in ``csrc/unit_kernels_s8.h``: per
output channel the count of stored (nonzero) weights, then 5-byte records ``{c, ky, kx, weight,
level}``, and the layer's distinct thresholds ``tau < 128`` ascending (the levels). A record's
level is the index of its ``tau`` among them, 255 for ``tau >= 128`` (it keeps nothing).
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import numpy as np

from ..counts import MacCounts
from ..geometry import ConvGeometry
from .loading import CConv2dParams, CCounts, CRequantS8, KernelLibrary, _check, load_library
from .plans import conv_params
from .s8 import _GUARD, _GUARD_WORDS, _array, _counts, _ptr, _Requant

__all__ = ["UnitSparseTables", "unit_sparse_tables", "unit_sparse_scratch_bytes", "conv2d_unit_sparse",
           "DEAD_LEVEL", "RECORD_BYTES"]

#: Bytes of one record and the level of a weight whose tau >= 128.
RECORD_BYTES, DEAD_LEVEL = 5, 255
#: The kernel's limits: input width (uint8 columns and counts), output width, channels per group.
MAX_WIDTH, MAX_OUT_WIDTH, MAX_GROUP_IN = 255, 0x3FFF, 256


@dataclass(frozen=True)
class UnitSparseTables:
    """``counts`` uint16 ``[O]``, ``records`` uint8 ``[N, 5]``, ``levels`` uint8 ``[K]`` ascending."""

    counts: np.ndarray
    records: np.ndarray
    levels: np.ndarray

    @property
    def stored(self) -> int:
        return int(self.records.shape[0])

    @property
    def flash_bytes(self) -> int:
        return 2 * self.counts.size + RECORD_BYTES * self.stored + self.levels.size


class _CUnitSparseS8(ctypes.Structure):
    """``unit_unit_sparse_s8``."""

    _fields_ = [("counts", ctypes.c_void_p), ("records", ctypes.c_void_p), ("levels", ctypes.c_void_p),
                ("level_count", ctypes.c_int32)]


def unit_sparse_tables(weight, tau, what: str = "conv") -> UnitSparseTables:
    """The tables of a conv's int8 ``weight [O, C/groups, KH, KW]`` and its ``tau`` (uint8, same
    shape); ValueError beyond the layout (more than 256 channels per group or 255 kernel rows or
    columns, more than 65535 nonzero weights in one output channel)."""
    weight = np.asarray(weight)
    tau = np.asarray(tau)
    if weight.ndim != 4 or tau.shape != weight.shape:
        raise ValueError(f"{what}: weight must be [O, C/groups, KH, KW] and tau the same shape, got {weight.shape}, "
                         f"{tau.shape}")
    out, group_in, kh, kw = weight.shape
    if group_in > MAX_GROUP_IN or kh > 255 or kw > 255:
        raise ValueError(f"{what}: {group_in} channels per group and a {kh}x{kw} kernel exceed the UnIT sparse "
                         f"records (at most {MAX_GROUP_IN} channels, 255 rows and columns)")
    keep = weight != 0
    per_channel = keep.reshape(out, -1).sum(axis=1)
    if per_channel.size and int(per_channel.max()) > 0xFFFF:
        raise ValueError(f"{what}: {int(per_channel.max())} nonzero weights in one output channel, more than 65535")
    live_tau = tau[keep & (tau < 128)].astype(np.int64)
    levels = np.unique(live_tau).astype(np.uint8)
    o, c, ky, kx = np.nonzero(keep)  # row-major: output channel by output channel
    t = tau[o, c, ky, kx].astype(np.int64)
    level = np.where(t < 128, np.searchsorted(levels.astype(np.int64), np.minimum(t, 127)), DEAD_LEVEL)
    records = np.stack([c, ky, kx, weight[o, c, ky, kx].astype(np.int8).view(np.uint8), level], axis=1)
    return UnitSparseTables(per_channel.astype(np.uint16), np.ascontiguousarray(records.astype(np.uint8)), levels)


def unit_sparse_scratch_bytes(in_channels: int, in_height: int, in_width: int, kernel_width: int, out_width: int,
                              block_rows: int, levels: int) -> int | None:
    """Bytes of scratch of ``unit_conv2d_unit_sparse_s8`` (``..._scratch_size``; ``block_rows`` the
    accumulators' output rows), None beyond its limits (W <= 255, OW <= 16383)."""
    if in_width > MAX_WIDTH or out_width > MAX_OUT_WIDTH:
        return None
    total = (4 * block_rows * out_width + 2 * kernel_width * in_width + 130 + in_channels * in_height * levels
             + 2 * in_channels * in_height * in_width)
    return (total + 3) // 4 * 4


_DECLARED: set[int] = set()


def _declare(library: KernelLibrary) -> None:
    if id(library.lib) in _DECLARED:
        return
    i32, ptr = ctypes.c_int32, ctypes.c_void_p
    params = ctypes.POINTER(CConv2dParams)
    library.lib.unit_conv2d_unit_sparse_s8_scratch_size.restype = i32
    library.lib.unit_conv2d_unit_sparse_s8_scratch_size.argtypes = [params, i32]
    library.lib.unit_conv2d_unit_sparse_s8.restype = i32
    library.lib.unit_conv2d_unit_sparse_s8.argtypes = [params, ptr, ctypes.POINTER(_CUnitSparseS8),
                                                        ctypes.POINTER(CRequantS8), ptr, ptr, ctypes.POINTER(CCounts)]
    _DECLARED.add(id(library.lib))


def conv2d_unit_sparse(x, weight, tau, requant, geometry: ConvGeometry, library: KernelLibrary | None = None,
                       tables: UnitSparseTables | None = None,
                       block_rows: int = 0) -> tuple[np.ndarray, MacCounts | None]:
    """``unit_conv2d_unit_sparse_s8`` on ``x [N, C, H, W]`` int8 with ``weight`` int8 and ``tau``
    uint8 ``[O, C/groups, KH, KW]`` (``tables``: default built from them; ``block_rows``: the
    accumulators' output rows, 0 the whole plane); returns ``(y, counts)``."""
    library = library or load_library()
    _declare(library)
    x = _array(x, np.int8, "x")
    weight = _array(weight, np.int8, "weight")
    tau = _array(tau, np.uint8, "tau")
    if x.ndim != 4 or weight.ndim != 4 or tau.shape != weight.shape:
        raise ValueError(f"conv2d_unit_sparse takes x [N, C, H, W], weight [O, C/groups, KH, KW] and tau like the "
                         f"weight, got {x.shape}, {weight.shape}, {tau.shape}")
    tables = tables or unit_sparse_tables(weight, tau)
    params = conv_params(tuple(x.shape), tuple(weight.shape), geometry, int(block_rows))
    size = library.lib.unit_conv2d_unit_sparse_s8_scratch_size(ctypes.byref(params), tables.levels.size)
    _check(min(size, 0), "unit_conv2d_unit_sparse_s8_scratch_size")
    out_h, out_w = geometry.output_size(x.shape[2], x.shape[3])
    y = np.empty((x.shape[0], weight.shape[0], out_h, out_w), dtype=np.int8)
    scratch = np.full(max(size // 4, 1) + _GUARD_WORDS, _GUARD, dtype=np.int32)
    counts_arr = np.ascontiguousarray(tables.counts, dtype=np.uint16)
    records = np.ascontiguousarray(tables.records, dtype=np.uint8) if tables.stored else None
    levels = np.ascontiguousarray(tables.levels, dtype=np.uint8) if tables.levels.size else None
    struct = _CUnitSparseS8(_ptr(counts_arr), _ptr(records), _ptr(levels), int(tables.levels.size))
    constants, counts = _Requant(requant, weight.shape[0]), CCounts()
    status = library.lib.unit_conv2d_unit_sparse_s8(ctypes.byref(params), _ptr(x), ctypes.byref(struct),
                                                     ctypes.byref(constants.struct), _ptr(y), _ptr(scratch),
                                                     ctypes.byref(counts))
    _check(status, "unit_conv2d_unit_sparse_s8")
    if np.any(scratch[max(size // 4, 1):] != _GUARD):
        raise RuntimeError(f"unit_conv2d_unit_sparse_s8 wrote past the {size} bytes of scratch it asked for")
    return y, _counts(library, counts)

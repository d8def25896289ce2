"""The static-sparse convolution that also skips zero activations (``unit_conv2d_sparse_zeroact_s8``):
its row table built from int8 weights, and calls of the host library on NumPy arrays.

The kernel reads the ``unit_sparse_s8`` tables of :mod:`unitprune.kernels.sparse_s8` plus
``row_starts`` (uint16 ``[O*G + 1]``, ``G = C/groups * KH``): the index of the first record of output
channel ``o``'s kernel row ``j = c*KH + ky`` at ``o*G + j``, the number of records at ``O*G``.
"""

from __future__ import annotations

import ctypes

import numpy as np

from ..counts import MacCounts
from ..geometry import ConvGeometry
from .loading import CCounts, KernelLibrary, _check, load_library
from .plans import conv_params
from .s8 import _array, _counts, _ptr, _Requant
from .sparse_s8 import SparseTables, _Sparse, conv_sparse_tables

__all__ = ["MAX_KERNEL_ROWS", "conv_row_starts", "row_starts_bytes", "zeroact_scratch_bytes", "conv2d_sparse_zeroact"]

#: The most kernel rows (``C/groups * KH``) the kernel's uint8 keys hold.
MAX_KERNEL_ROWS = 254


def conv_row_starts(weight, what: str = "conv") -> np.ndarray:
    """``row_starts`` (uint16 ``[O*G + 1]``) of a conv's int8 ``weight [O, C/groups, KH, KW]``."""
    weight = np.asarray(weight)
    if weight.ndim != 4:
        raise ValueError(f"{what}: weight must be [O, C/groups, KH, KW], got shape {weight.shape}")
    rows = weight.shape[1] * weight.shape[2]
    if rows > MAX_KERNEL_ROWS:
        raise ValueError(f"{what}: {rows} kernel rows (C/groups x KH), more than the {MAX_KERNEL_ROWS} the "
                         "zero-activation kernel's keys hold")
    counts = (weight != 0).sum(axis=3).reshape(-1)
    starts = np.concatenate([[0], np.cumsum(counts)])
    if starts[-1] > 0xFFFF:
        raise ValueError(f"{what}: {int(starts[-1])} nonzero weights, more than the uint16 row starts address")
    return starts.astype(np.uint16)


def row_starts_bytes(out_channels: int, group_in: int, kernel_height: int) -> int:
    """Flash bytes of ``row_starts``."""
    return 2 * (out_channels * group_in * kernel_height + 1)


def zeroact_scratch_bytes(in_channels: int, in_height: int, out_channels: int, out_width: int,
                          kernel_rows: int) -> int:
    """``unit_conv2d_sparse_zeroact_s8_scratch_size``: ``15*OW + 1 + 4*C*H + 4*G + O`` rounded up to 4
    (``kernel_rows`` G = C/groups * KH)."""
    return (15 * out_width + 1 + 4 * in_channels * in_height + 4 * kernel_rows + out_channels + 3) // 4 * 4


def conv2d_sparse_zeroact(x, weight, requant, geometry: ConvGeometry, library: KernelLibrary | None = None,
                          tables: SparseTables | None = None, row_starts=None) -> tuple[np.ndarray, MacCounts | None]:
    """``unit_conv2d_sparse_zeroact_s8`` on ``x [N, C, H, W]`` int8 with ``weight [O, C/groups, KH, KW]``
    int8 (``tables``, ``row_starts``: default built from ``weight``); returns ``(y, counts)``."""
    library = library or load_library()
    x = _array(x, np.int8, "x")
    weight = _array(weight, np.int8, "weight")
    if x.ndim != 4 or weight.ndim != 4:
        raise ValueError(f"conv2d_sparse_zeroact takes x [N, C, H, W] and weight [O, C/groups, KH, KW], got "
                         f"{x.shape}, {weight.shape}")
    params = conv_params(tuple(x.shape), tuple(weight.shape), geometry, 0)
    padded = any(int(p) for p in (params.pad_top, params.pad_bottom, params.pad_left, params.pad_right))
    tables = tables or conv_sparse_tables(weight, x.shape[2], x.shape[3], geometry.dilation, padded)
    starts = np.ascontiguousarray(conv_row_starts(weight) if row_starts is None else row_starts, dtype=np.uint16)
    size = library.lib.unit_conv2d_sparse_zeroact_s8_scratch_size(ctypes.byref(params))
    _check(min(size, 0), "unit_conv2d_sparse_zeroact_s8_scratch_size")
    out_h, out_w = geometry.output_size(x.shape[2], x.shape[3])
    y = np.empty((x.shape[0], weight.shape[0], out_h, out_w), dtype=np.int8)
    scratch = np.empty(max(size // 4, 1), dtype=np.int32)
    sparse, constants, counts = _Sparse(tables), _Requant(requant, weight.shape[0]), CCounts()
    status = library.lib.unit_conv2d_sparse_zeroact_s8(ctypes.byref(params), _ptr(x), ctypes.byref(sparse.struct),
                                                       _ptr(starts), ctypes.byref(constants.struct), _ptr(y),
                                                       _ptr(scratch), ctypes.byref(counts))
    _check(status, "unit_conv2d_sparse_zeroact_s8")
    return y, _counts(library, counts)

"""The static-sparse int8 kernels (``unit_conv2d_sparse_s8``, ``unit_linear_sparse_s8``): their
tables built from int8 weights, and calls of the host library on NumPy arrays.

The layout is the one documented with ``unit_sparse_s8`` in ``csrc/unit_kernels_s8.h``: per output
channel its count of nonzero weights (uint16), then int16 records ``{offset, weight}`` with
``offset = c*H*W + ky*dilation_y*W + kx*dilation_x`` (Linear: the input index) and, for a conv
with padding, uint8 taps ``{ky, kx}``.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import numpy as np

from ..counts import MacCounts
from ..geometry import ConvGeometry
from .loading import CCounts, CSparseS8, KernelLibrary, _check, load_library
from .plans import conv_params
from .s8 import _array, _counts, _ptr, _Requant

__all__ = ["SparseTables", "conv_sparse_tables", "linear_sparse_tables", "conv2d_sparse", "linear_sparse",
           "RECORD_BYTES", "TAP_BYTES"]

#: Flash bytes of one stored nonzero weight (its int16 offset and int16 weight) and of its taps.
RECORD_BYTES, TAP_BYTES = 4, 2
#: The largest offset and per-channel count the uint16 fields hold.
_U16_MAX = 0xFFFF


@dataclass(frozen=True)
class SparseTables:
    """The tables of one static-sparse layer: ``nonzeros`` uint16 ``[O]``, ``records`` int16
    ``[N, 2]`` (offset as uint16 bits, weight), ``taps`` uint8 ``[N, 2]`` or None."""

    nonzeros: np.ndarray
    records: np.ndarray
    taps: np.ndarray | None

    @property
    def stored(self) -> int:
        """Nonzero weights stored (N)."""
        return int(self.records.shape[0])

    @property
    def flash_bytes(self) -> int:
        """Bytes of the three tables: 2 per output channel, 4 per record, 2 per tap pair."""
        taps = 0 if self.taps is None else TAP_BYTES * self.stored
        return 2 * self.nonzeros.size + RECORD_BYTES * self.stored + taps


def _tables(weight2d: np.ndarray, offsets: np.ndarray, taps: np.ndarray | None, what: str) -> SparseTables:
    """Records of ``weight2d [O, K]`` (row-major taps) whose element k lies at input ``offsets[k]``."""
    if offsets.size and int(offsets.max()) > _U16_MAX:
        raise ValueError(f"{what}: the receptive field spans {int(offsets.max()) + 1} input elements, more than the "
                         f"{_U16_MAX + 1} the sparse kernel's uint16 offsets address")
    keep = weight2d != 0
    nonzeros = keep.sum(axis=1)
    if nonzeros.size and int(nonzeros.max()) > _U16_MAX:
        raise ValueError(f"{what}: {int(nonzeros.max())} nonzero weights in one output channel, more than {_U16_MAX}")
    rows, cols = np.nonzero(keep)  # row-major: channel by channel, ascending offsets within one
    records = np.stack([offsets[cols].astype(np.uint16).view(np.int16), weight2d[rows, cols].astype(np.int16)], axis=1)
    return SparseTables(nonzeros.astype(np.uint16), np.ascontiguousarray(records.reshape(-1, 2)),
                        None if taps is None else np.ascontiguousarray(taps[cols].astype(np.uint8).reshape(-1, 2)))


def conv_sparse_tables(weight, in_height: int, in_width: int, dilation=(1, 1), padded: bool = False,
                       what: str = "conv") -> SparseTables:
    """The tables of a conv's int8 ``weight [O, C/groups, KH, KW]`` on an ``in_height x in_width``
    input; ``padded``: the layer has padding (the taps are stored)."""
    weight = np.asarray(weight)
    if weight.ndim != 4:
        raise ValueError(f"{what}: weight must be [O, C/groups, KH, KW], got shape {weight.shape}")
    _, group_in, kh, kw = weight.shape
    if padded and max(kh, kw) > 256:
        raise ValueError(f"{what}: a {kh}x{kw} kernel with padding needs taps beyond the uint8 range")
    c, ky, kx = np.meshgrid(np.arange(group_in), np.arange(kh), np.arange(kw), indexing="ij")
    offsets = (c * in_height * in_width + ky * dilation[0] * in_width + kx * dilation[1]).reshape(-1)
    taps = np.stack([ky.reshape(-1), kx.reshape(-1)], axis=1) if padded else None
    return _tables(weight.reshape(weight.shape[0], -1), offsets.astype(np.int64), taps, what)


def linear_sparse_tables(weight, what: str = "linear") -> SparseTables:
    """The tables of a Linear's int8 ``weight [out, in]`` (offset = input index)."""
    weight = np.asarray(weight)
    if weight.ndim != 2:
        raise ValueError(f"{what}: weight must be [out, in], got shape {weight.shape}")
    return _tables(weight, np.arange(weight.shape[1], dtype=np.int64), None, what)


class _Sparse:
    """A ``unit_sparse_s8`` and the arrays it points at (kept alive with it)."""

    def __init__(self, tables: SparseTables) -> None:
        self.nonzeros = np.ascontiguousarray(tables.nonzeros, dtype=np.uint16)
        self.records = np.ascontiguousarray(tables.records, dtype=np.int16) if tables.stored else None
        self.taps = None if tables.taps is None else np.ascontiguousarray(tables.taps, dtype=np.uint8)
        self.struct = CSparseS8(_ptr(self.nonzeros), _ptr(self.records), _ptr(self.taps))


def conv2d_sparse(x, weight, requant, geometry: ConvGeometry, library: KernelLibrary | None = None,
                  tables: SparseTables | None = None, block_rows: int = 0,
                  pool: tuple[int, int] | None = None) -> tuple[np.ndarray, MacCounts | None]:
    """``unit_conv2d_sparse_s8`` on ``x [N, C, H, W]`` int8 with ``weight [O, C/groups, KH, KW]``
    int8 (``tables``: the layer's tables, default built from ``weight``; ``block_rows``: the
    params field, which sizes the scratch, ``4 * block_rows * OW`` bytes); returns ``(y, counts)``.
    ``pool``: ``(KH, KW)`` of a max-pool with stride = kernel after it (``unit_conv2d_sparse_pool_s8``:
    ``y`` is ``[N, O, OH // KH, OW // KW]``; ``block_rows`` 0 or >= ``KH``)."""
    library = library or load_library()
    x = _array(x, np.int8, "x")
    weight = _array(weight, np.int8, "weight")
    if x.ndim != 4 or weight.ndim != 4:
        raise ValueError(f"conv2d_sparse takes x [N, C, H, W] and weight [O, C/groups, KH, KW], got {x.shape}, "
                         f"{weight.shape}")
    params = conv_params(tuple(x.shape), tuple(weight.shape), geometry, int(block_rows))
    padded = any(int(p) for p in (params.pad_top, params.pad_bottom, params.pad_left, params.pad_right))
    tables = tables or conv_sparse_tables(weight, x.shape[2], x.shape[3], geometry.dilation, padded)
    size = library.lib.unit_conv2d_s8_scratch_size(ctypes.byref(params))
    _check(min(size, 0), "unit_conv2d_s8_scratch_size")
    out_h, out_w = geometry.output_size(x.shape[2], x.shape[3])
    if pool is not None:
        out_h, out_w = (size // int(kernel) if int(kernel) >= 1 else 0 for size, kernel in zip((out_h, out_w), pool))
    y = np.empty((x.shape[0], weight.shape[0], max(out_h, 0), max(out_w, 0)), dtype=np.int8)
    scratch = np.empty(max(size // 4, 1), dtype=np.int32)
    sparse, constants, counts = _Sparse(tables), _Requant(requant, weight.shape[0]), CCounts()
    if pool is None:
        name = "unit_conv2d_sparse_s8"
        status = library.lib.unit_conv2d_sparse_s8(ctypes.byref(params), _ptr(x), ctypes.byref(sparse.struct),
                                                   ctypes.byref(constants.struct), _ptr(y), _ptr(scratch),
                                                   ctypes.byref(counts))
    else:
        name = "unit_conv2d_sparse_pool_s8"
        status = library.lib.unit_conv2d_sparse_pool_s8(ctypes.byref(params), int(pool[0]), int(pool[1]), _ptr(x),
                                                        ctypes.byref(sparse.struct), ctypes.byref(constants.struct),
                                                        _ptr(y), _ptr(scratch), ctypes.byref(counts))
    _check(status, name)
    return y, _counts(library, counts)


def linear_sparse(x, weight, requant, library: KernelLibrary | None = None,
                  tables: SparseTables | None = None) -> tuple[np.ndarray, MacCounts | None]:
    """``unit_linear_sparse_s8`` on ``x [batch, in]`` int8 with ``weight [out, in]`` int8."""
    library = library or load_library()
    x = _array(x, np.int8, "x")
    weight = _array(weight, np.int8, "weight")
    if x.ndim != 2 or weight.ndim != 2 or x.shape[1] != weight.shape[1]:
        raise ValueError(f"linear_sparse takes x [batch, in] and weight [out, in], got {x.shape}, {weight.shape}")
    tables = tables or linear_sparse_tables(weight)
    batch, in_features = x.shape
    out_features = weight.shape[0]
    y = np.empty((batch, out_features), dtype=np.int8)
    scratch = np.empty(max(out_features, 1), dtype=np.int32)
    sparse, constants, counts = _Sparse(tables), _Requant(requant, out_features), CCounts()
    status = library.lib.unit_linear_sparse_s8(_ptr(x), batch, in_features, out_features,
                                               ctypes.byref(sparse.struct), ctypes.byref(constants.struct),
                                               _ptr(y), _ptr(scratch), ctypes.byref(counts))
    _check(status, "unit_linear_sparse_s8")
    return y, _counts(library, counts)

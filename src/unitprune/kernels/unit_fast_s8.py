"""Calls of the int8 UnIT kernels that skip without a test per skipped connection
(``unit_kernels_s8.h``): the skip-free convolution ``unit_conv2d_unit_skipfree_s8`` and the
early-exit linear kernels ``unit_linear_unit_sorted_{bitshift,bintree,table}_s8`` with their
export-time tables (:func:`sorted_columns`).

Same conventions as :mod:`unitprune.kernels.s8`: NumPy int8 arrays in, ``(y, counts)`` out,
``counts`` a :class:`unitprune.MacCounts` from the host library's counted build. The cause
counters equal the per-position kernels'; ``compares`` counts what these kernels test (the list
entries visited; the weights walked plus the stop).
"""

from __future__ import annotations

import ctypes

import numpy as np

from ..counts import MacCounts
from ..geometry import ConvGeometry
from .loading import CConv2dParams, CCounts, CQuotientTreeS8, CRequantS8, KernelLibrary, _check, load_library
from .plans import conv_params
from .s8 import _GUARD, _GUARD_WORDS, QuotientTree, _array, _counts, _ptr, _Requant

__all__ = ["conv2d_skipfree", "skipfree_scratch_size", "sorted_columns", "linear_sorted"]

_SIGNATURES_SET: set[int] = set()


def _declare(library: KernelLibrary) -> None:
    """ctypes signatures of this module's functions (once per loaded library)."""
    if id(library.lib) in _SIGNATURES_SET:
        return
    i32, ptr = ctypes.c_int32, ctypes.c_void_p
    params, requant = ctypes.POINTER(CConv2dParams), ctypes.POINTER(CRequantS8)
    counts = ctypes.POINTER(CCounts)
    signatures = {
        "unit_conv2d_unit_skipfree_s8_scratch_size": (i32, [params]),
        "unit_conv2d_unit_skipfree_s8": (i32, [params, ptr, ptr, ptr, requant, ptr, ptr, counts]),
        "unit_linear_sorted_s8_check": (i32, [ptr, ptr, i32, i32]),
        "unit_linear_unit_sorted_bitshift_s8": (i32, [ptr, i32, i32, i32, ptr, ptr, i32, i32, requant, ptr, ptr,
                                                      counts]),
        "unit_linear_unit_sorted_bintree_s8": (i32, [ptr, i32, i32, i32, ptr, ptr, ctypes.POINTER(CQuotientTreeS8),
                                                     requant, ptr, ptr, counts]),
        "unit_linear_unit_sorted_table_s8": (i32, [ptr, i32, i32, i32, ptr, ptr, ptr, requant, ptr, ptr, counts]),
    }
    for name, (restype, argtypes) in signatures.items():
        function = getattr(library.lib, name)
        function.restype = restype
        function.argtypes = argtypes
    _SIGNATURES_SET.add(id(library.lib))


def skipfree_scratch_size(x_shape, weight_shape, geometry: ConvGeometry, library: KernelLibrary | None = None) -> int:
    """Bytes of scratch ``unit_conv2d_unit_skipfree_s8`` needs for this layer (ValueError beyond its
    limits: H, W <= 256, OH*OW <= 16384, C*H*W <= 65535)."""
    library = library or load_library()
    _declare(library)
    params = conv_params(tuple(x_shape), tuple(weight_shape), geometry, 0)
    size = library.lib.unit_conv2d_unit_skipfree_s8_scratch_size(ctypes.byref(params))
    _check(min(size, 0), "unit_conv2d_unit_skipfree_s8_scratch_size")
    return size


def conv2d_skipfree(x, weight, tau, requant, geometry: ConvGeometry,
                    library: KernelLibrary | None = None) -> tuple[np.ndarray, MacCounts | None]:
    """``unit_conv2d_unit_skipfree_s8``: ``x [N, C, H, W]`` int8, ``weight [O, C/groups, KH, KW]``
    int8, ``tau`` uint8 like ``weight``; returns ``y [N, O, OH, OW]`` int8 and the counters."""
    library = library or load_library()
    _declare(library)
    x = _array(x, np.int8, "x")
    weight = _array(weight, np.int8, "weight")
    tau = _array(tau, np.uint8, "tau")
    if x.ndim != 4 or weight.ndim != 4 or tau.shape != weight.shape:
        raise ValueError(f"conv2d_skipfree takes x [N, C, H, W], weight [O, C/groups, KH, KW] and tau like the "
                         f"weight, got {x.shape}, {weight.shape}, {tau.shape}")
    size = skipfree_scratch_size(x.shape, weight.shape, geometry, library)
    params = conv_params(tuple(x.shape), tuple(weight.shape), geometry, 0)
    out_h, out_w = geometry.output_size(x.shape[2], x.shape[3])
    y = np.empty((x.shape[0], weight.shape[0], out_h, out_w), dtype=np.int8)
    scratch = np.full(max(size // 4, 1) + _GUARD_WORDS, _GUARD, dtype=np.int32)
    constants = _Requant(requant, weight.shape[0])
    counts = CCounts()
    status = library.lib.unit_conv2d_unit_skipfree_s8(ctypes.byref(params), _ptr(x), _ptr(weight), _ptr(tau),
                                                      ctypes.byref(constants.struct), _ptr(y), _ptr(scratch),
                                                      ctypes.byref(counts))
    _check(status, "unit_conv2d_unit_skipfree_s8")
    if np.any(scratch[max(size // 4, 1):] != _GUARD):
        raise RuntimeError(f"unit_conv2d_unit_skipfree_s8 wrote past the {size} bytes of scratch it asked for")
    return y, _counts(library, counts)


def sorted_columns(weight) -> tuple[np.ndarray, np.ndarray]:
    """The export-time tables of the early-exit linear kernels from ``weight [out, in]`` int8:
    ``weight_sorted [in, out + 1]`` int8 (each input's column by |w|, largest first, stable, then the
    zero sentinel) and ``index [in, out]`` uint16 (the output of each sorted weight)."""
    weight = _array(weight, np.int8, "weight")
    if weight.ndim != 2 or weight.shape[0] > 0xFFFF:
        raise ValueError(f"sorted_columns takes weight [out, in] with out <= 65535, got {weight.shape}")
    columns = weight.T.astype(np.int16)  # [in, out]
    order = np.argsort(-np.abs(columns), axis=1, kind="stable")
    values = np.take_along_axis(columns, order, axis=1).astype(np.int8)
    weight_sorted = np.concatenate([values, np.zeros((values.shape[0], 1), np.int8)], axis=1)
    return np.ascontiguousarray(weight_sorted), np.ascontiguousarray(order.astype(np.uint16))


def linear_sorted(method: str, x, weight_sorted, index, requant, threshold_q: int = 0, shift_start: int = 0,
                  tree: QuotientTree | None = None, quotient_table=None,
                  library: KernelLibrary | None = None) -> tuple[np.ndarray, MacCounts | None]:
    """``unit_linear_unit_sorted_<method>_s8`` (``method`` bitshift, bintree or table) on the tables
    of :func:`sorted_columns`; the tables are validated first (``unit_linear_sorted_s8_check``)."""
    library = library or load_library()
    _declare(library)
    lib = library.lib
    x = _array(x, np.int8, "x")
    weight_sorted = _array(weight_sorted, np.int8, "weight_sorted")
    index = _array(index, np.uint16, "index")
    if x.ndim != 2 or weight_sorted.ndim != 2 or index.shape != (x.shape[1], weight_sorted.shape[1] - 1):
        raise ValueError(f"linear_sorted takes x [batch, in], weight_sorted [in, out + 1], index [in, out], got "
                         f"{x.shape}, {weight_sorted.shape}, {index.shape}")
    batch, in_features = x.shape
    out_features = index.shape[1]
    _check(lib.unit_linear_sorted_s8_check(_ptr(weight_sorted), _ptr(index), in_features, out_features),
           "unit_linear_sorted_s8_check")
    scratch = np.empty(max(out_features, 1), dtype=np.int32)
    y = np.empty((batch, out_features), dtype=np.int8)
    constants = _Requant(requant, out_features)
    counts = CCounts()
    common = (_ptr(x), batch, in_features, out_features, _ptr(weight_sorted), _ptr(index))
    tail = (ctypes.byref(constants.struct), _ptr(y), _ptr(scratch), ctypes.byref(counts))
    name = f"unit_linear_unit_sorted_{method}_s8"
    if method == "bitshift":
        status = lib.unit_linear_unit_sorted_bitshift_s8(*common, int(threshold_q), int(shift_start), *tail)
    elif method == "bintree":
        if tree is None:
            raise ValueError("linear_sorted method 'bintree' needs a QuotientTree")
        arrays = (_array(tree.split, np.int8, "tree.split"), _array(tree.left, np.int8, "tree.left"),
                  _array(tree.right, np.int8, "tree.right"), _array(tree.quotient, np.uint8, "tree.quotient"))
        struct = CQuotientTreeS8(arrays[0].size, *(_ptr(a) for a in arrays))
        status = lib.unit_linear_unit_sorted_bintree_s8(*common, ctypes.byref(struct), *tail)
    elif method == "table":
        if quotient_table is None:
            raise ValueError("linear_sorted method 'table' needs the 129-entry quotient table")
        table = _array(quotient_table, np.uint8, "quotient_table")
        if table.shape != (129,):
            raise ValueError(f"quotient_table must have shape (129,), got {table.shape}")
        status = lib.unit_linear_unit_sorted_table_s8(*common, _ptr(table), *tail)
    else:
        raise ValueError(f"linear_sorted method must be bitshift, bintree or table, got {method!r}")
    _check(status, name)
    return y, _counts(library, counts)

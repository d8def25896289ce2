"""Calls of the int8 fixed-point C kernels (``unit_kernels_s8.h``, contract docs/fixed_point.md) on
NumPy integer arrays.

Every function takes int8 activations ``[batch, ...]`` and the layer's integer constants, runs
one kernel variant and returns ``(y, counts)``: ``y`` an int8 array, ``counts`` a
:class:`unitprune.MacCounts` when the library was built with ``UNIT_S8_COUNTS=1`` (the host
library is, see setup.py), else ``None``. ``requant`` is any object with the attributes of
:class:`unitprune.mcu.qmodel.Requant` (``bias``, ``multiplier``, ``shift``, ``act_min``, ``act_max``).
Bad arguments raise ``ValueError`` naming the C function and the status it returned.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import numpy as np

from ..counts import MacCounts
from ..geometry import ConvGeometry
from .loading import CCounts, CQuotientTreeS8, CRequantS8, KernelLibrary, _check, load_library
from .plans import conv_params

__all__ = ["CONV_VARIANTS", "LINEAR_VARIANTS", "QuotientTree", "counts_compiled", "requantize", "conv2d", "linear",
           "relu", "threshold_relu", "maxpool2d", "avgpool2d"]

CONV_VARIANTS = ("dense", "zeroskip", "unit")
#: Words after a conv's scratch that the kernel must not touch (checked after every call).
_GUARD_WORDS, _GUARD = 16, 0x5A5A5A5A
LINEAR_VARIANTS = ("dense", "zeroskip", "bitshift", "bintree", "table")


@dataclass(frozen=True)
class QuotientTree:
    """The flat arrays of a ``unit_quotient_tree_s8`` (node 0 the root, ``left == -1`` at a leaf)."""

    split: np.ndarray  # int8 [nodes]
    left: np.ndarray  # int8 [nodes]
    right: np.ndarray  # int8 [nodes]
    quotient: np.ndarray  # uint8 [nodes]


def _array(values, dtype, what: str) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype != dtype:
        if not np.issubdtype(array.dtype, np.integer) or (array.size and (
                array.min() < np.iinfo(dtype).min or array.max() > np.iinfo(dtype).max)):
            raise ValueError(f"{what} must hold {np.dtype(dtype).name} values, got {array.dtype}")
        array = array.astype(dtype)
    return np.ascontiguousarray(array)


def _ptr(array: np.ndarray | None) -> int | None:
    return None if array is None else array.ctypes.data


class _Requant:
    """A ``unit_requant_s8`` and the arrays it points at (kept alive with it)."""

    def __init__(self, requant, out: int) -> None:
        self.bias = None if requant.bias is None else _array(requant.bias, np.int32, "requant.bias")
        self.multiplier = _array(requant.multiplier, np.int32, "requant.multiplier")
        self.shift = _array(requant.shift, np.int8, "requant.shift")
        for name, array in (("bias", self.bias), ("multiplier", self.multiplier), ("shift", self.shift)):
            if array is not None and array.shape != (out,):
                raise ValueError(f"requant.{name} must have shape ({out},), got {array.shape}")
        self.struct = CRequantS8(_ptr(self.bias), _ptr(self.multiplier), _ptr(self.shift), int(requant.act_min),
                                 int(requant.act_max))


def counts_compiled(library: KernelLibrary | None = None) -> bool:
    """Whether the library counts MACs in the int8 kernels (built with ``UNIT_S8_COUNTS=1``)."""
    return bool((library or load_library()).lib.unit_s8_counts_compiled())


def _counts(library: KernelLibrary, counts: CCounts) -> MacCounts | None:
    return counts.to_mac_counts() if counts_compiled(library) else None


def requantize(acc, multiplier, shift, library: KernelLibrary | None = None) -> np.ndarray:
    """``unit_requantize_s8`` elementwise (broadcast), as int64 results (one C call per element)."""
    lib = (library or load_library()).lib
    acc, multiplier, shift = np.broadcast_arrays(np.asarray(acc), np.asarray(multiplier), np.asarray(shift))
    out = np.empty(acc.shape, dtype=np.int64)
    for index in np.ndindex(acc.shape):
        out[index] = lib.unit_requantize_s8(int(acc[index]), int(multiplier[index]), int(shift[index]))
    return out


def conv2d(variant: str, x, weight, requant, geometry: ConvGeometry, tau=None,
           library: KernelLibrary | None = None, block_rows: int = 0,
           pool: tuple[int, int] | None = None) -> tuple[np.ndarray, MacCounts | None]:
    """An int8 convolution: ``x [N, C, H, W]`` int8, ``weight [O, C/groups, KH, KW]`` int8, ``tau``
    uint8 like ``weight`` (``variant="unit"`` only); returns ``y [N, O, OH, OW]`` int8.
    ``block_rows``: output rows whose accumulators the kernel holds at a time (0 = the whole plane;
    the result does not depend on it, the scratch is ``4 * block_rows * OW`` bytes).
    ``pool``: ``(KH, KW)`` of a max-pool with stride = kernel after the convolution
    (``variant="dense"`` only: ``unit_conv2d_dense_pool_s8``, the output stage once per pooled output);
    ``y`` is then ``[N, O, OH // KH, OW // KW]``; ``block_rows`` 0 or >= ``KH``."""
    if variant not in CONV_VARIANTS:
        raise ValueError(f"conv variant must be one of {CONV_VARIANTS}, got {variant!r}")
    if pool is not None and variant != "dense":
        raise ValueError(f"conv2d pool={pool!r}: only the dense variant pools before its output stage")
    if isinstance(block_rows, bool) or not isinstance(block_rows, (int, np.integer)) or block_rows < 0:
        raise ValueError(f"conv2d block_rows must be an int >= 0 (0: the whole plane), got {block_rows!r}")
    library = library or load_library()
    x = _array(x, np.int8, "x")
    weight = _array(weight, np.int8, "weight")
    if x.ndim != 4 or weight.ndim != 4:
        raise ValueError(f"conv2d takes x [N, C, H, W] and weight [O, C/groups, KH, KW], got {x.shape}, "
                         f"{weight.shape}")
    if tuple(weight.shape[2:]) != tuple(geometry.kernel_size):
        raise ValueError(f"weight kernel {tuple(weight.shape[2:])} differs from the geometry's {geometry.kernel_size}")
    params = conv_params(tuple(x.shape), tuple(weight.shape), geometry, int(block_rows))
    size = library.lib.unit_conv2d_s8_scratch_size(ctypes.byref(params))
    _check(min(size, 0), "unit_conv2d_s8_scratch_size")
    out_h, out_w = geometry.output_size(x.shape[2], x.shape[3])
    if pool is not None:
        out_h, out_w = (size // int(kernel) if int(kernel) >= 1 else 0 for size, kernel in zip((out_h, out_w), pool))
    y = np.empty((x.shape[0], weight.shape[0], max(out_h, 0), max(out_w, 0)), dtype=np.int8)
    # the scratch the kernel asked for, then guard words it must leave alone (checked after the call)
    scratch = np.full(max(size // 4, 1) + _GUARD_WORDS, _GUARD, dtype=np.int32)
    constants = _Requant(requant, weight.shape[0])
    counts = CCounts()
    lib = library.lib
    if variant == "unit":
        if tau is None:
            raise ValueError("conv2d variant 'unit' needs the tau table")
        tau = _array(tau, np.uint8, "tau")
        if tau.shape != weight.shape:
            raise ValueError(f"tau must have the weight's shape {weight.shape}, got {tau.shape}")
        status = lib.unit_conv2d_unit_s8(ctypes.byref(params), _ptr(x), _ptr(weight), _ptr(tau),
                                         ctypes.byref(constants.struct), _ptr(y), _ptr(scratch), ctypes.byref(counts))
    elif pool is not None:
        variant = "dense_pool"
        status = lib.unit_conv2d_dense_pool_s8(ctypes.byref(params), int(pool[0]), int(pool[1]), _ptr(x), _ptr(weight),
                                               ctypes.byref(constants.struct), _ptr(y), _ptr(scratch),
                                               ctypes.byref(counts))
    else:
        function = getattr(lib, f"unit_conv2d_{variant}_s8")
        status = function(ctypes.byref(params), _ptr(x), _ptr(weight), ctypes.byref(constants.struct), _ptr(y),
                          _ptr(scratch), ctypes.byref(counts))
    _check(status, f"unit_conv2d_{variant}_s8")
    if np.any(scratch[max(size // 4, 1):] != _GUARD):
        raise RuntimeError(f"unit_conv2d_{variant}_s8 wrote past the {size} bytes of scratch that "
                           "unit_conv2d_s8_scratch_size asked for")
    return y, _counts(library, counts)


def linear(variant: str, x, weight, requant, threshold_q: int = 0, shift_start: int = 0,
           tree: QuotientTree | None = None, quotient_table=None,
           library: KernelLibrary | None = None) -> tuple[np.ndarray, MacCounts | None]:
    """An int8 linear layer: ``x [batch, in]`` int8, ``weight [out, in]`` int8 (transposed here to
    the kernels' ``[in, out]``); ``threshold_q``/``shift_start`` for ``bitshift``, ``tree`` for
    ``bintree``, ``quotient_table`` (129 uint8) for ``table``. Returns ``y [batch, out]`` int8."""
    if variant not in LINEAR_VARIANTS:
        raise ValueError(f"linear variant must be one of {LINEAR_VARIANTS}, got {variant!r}")
    library = library or load_library()
    x = _array(x, np.int8, "x")
    weight = _array(weight, np.int8, "weight")
    if x.ndim != 2 or weight.ndim != 2 or x.shape[1] != weight.shape[1]:
        raise ValueError(f"linear takes x [batch, in] and weight [out, in], got {x.shape}, {weight.shape}")
    batch, in_features = x.shape
    out_features = weight.shape[0]
    weight_t = np.ascontiguousarray(weight.T)
    size = library.lib.unit_linear_s8_scratch_size(out_features)
    _check(min(size, 0), "unit_linear_s8_scratch_size")
    scratch = np.empty(size // 4, dtype=np.int32)
    y = np.empty((batch, out_features), dtype=np.int8)
    constants = _Requant(requant, out_features)
    counts = CCounts()
    lib = library.lib
    common = (_ptr(x), batch, in_features, out_features, _ptr(weight_t))
    tail = (ctypes.byref(constants.struct), _ptr(y), _ptr(scratch), ctypes.byref(counts))
    if variant in ("dense", "zeroskip"):
        status = getattr(lib, f"unit_linear_{variant}_s8")(*common, *tail)
        name = f"unit_linear_{variant}_s8"
    elif variant == "bitshift":
        status = lib.unit_linear_unit_bitshift_s8(*common, int(threshold_q), int(shift_start), *tail)
        name = "unit_linear_unit_bitshift_s8"
    elif variant == "bintree":
        if tree is None:
            raise ValueError("linear variant 'bintree' needs a QuotientTree")
        arrays = (_array(tree.split, np.int8, "tree.split"), _array(tree.left, np.int8, "tree.left"),
                  _array(tree.right, np.int8, "tree.right"), _array(tree.quotient, np.uint8, "tree.quotient"))
        if len({a.shape for a in arrays}) != 1 or arrays[0].ndim != 1:
            raise ValueError("the tree arrays must be 1-D and of equal length")
        struct = CQuotientTreeS8(arrays[0].size, *(_ptr(a) for a in arrays))
        status = lib.unit_linear_unit_bintree_s8(*common, ctypes.byref(struct), *tail)
        name = "unit_linear_unit_bintree_s8"
    else:
        if quotient_table is None:
            raise ValueError("linear variant 'table' needs the 129-entry quotient table")
        table = _array(quotient_table, np.uint8, "quotient_table")
        if table.shape != (129,):
            raise ValueError(f"quotient_table must have shape (129,), got {table.shape}")
        status = lib.unit_linear_unit_table_s8(*common, _ptr(table), *tail)
        name = "unit_linear_unit_table_s8"
    _check(status, name)
    return y, _counts(library, counts)


def relu(x, library: KernelLibrary | None = None) -> np.ndarray:
    """``unit_relu_s8`` on a copy of ``x`` (int8, any shape)."""
    library = library or load_library()
    y = _array(x, np.int8, "x").copy()
    _check(library.lib.unit_relu_s8(_ptr(y), y.size), "unit_relu_s8")
    return y


def threshold_relu(x, threshold_q: int, library: KernelLibrary | None = None) -> np.ndarray:
    """``unit_threshold_relu_s8`` on a copy of ``x`` (int8, any shape): ``x if x > threshold_q else 0``."""
    library = library or load_library()
    y = _array(x, np.int8, "x").copy()
    _check(library.lib.unit_threshold_relu_s8(_ptr(y), y.size, int(threshold_q)), "unit_threshold_relu_s8")
    return y


def maxpool2d(x, kernel: tuple[int, int], stride: tuple[int, int], library: KernelLibrary | None = None) -> np.ndarray:
    """``unit_maxpool2d_s8``: ``x [N, C, H, W]`` int8 -> ``[N, C, OH, OW]`` (no padding, floor mode)."""
    return _pool2d("maxpool2d", x, kernel, stride, library)


def avgpool2d(x, kernel: tuple[int, int], stride: tuple[int, int], library: KernelLibrary | None = None) -> np.ndarray:
    """``unit_avgpool2d_s8``: ``x [N, C, H, W]`` int8 -> ``[N, C, OH, OW]`` (no padding, floor mode, TFLite's
    rounding of the window mean, same scale in and out)."""
    return _pool2d("avgpool2d", x, kernel, stride, library)


def _pool2d(which: str, x, kernel: tuple[int, int], stride: tuple[int, int],
            library: KernelLibrary | None) -> np.ndarray:
    library = library or load_library()
    x = _array(x, np.int8, "x")
    if x.ndim != 4:
        raise ValueError(f"{which} takes x [N, C, H, W], got {x.shape}")
    batch, channels, height, width = x.shape
    out_h = (height - kernel[0]) // stride[0] + 1 if height >= kernel[0] and stride[0] >= 1 else 0
    out_w = (width - kernel[1]) // stride[1] + 1 if width >= kernel[1] and stride[1] >= 1 else 0
    y = np.empty((batch, channels, max(out_h, 0), max(out_w, 0)), dtype=np.int8)
    function = getattr(library.lib, f"unit_{which}_s8")
    _check(function(_ptr(x), batch, channels, height, width, kernel[0], kernel[1], stride[0], stride[1], _ptr(y)),
           f"unit_{which}_s8")
    return y

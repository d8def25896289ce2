"""Division approximations for the UnIT quotient ``T / |C|``.

Notation: ``T >= 0`` is the threshold, ``c = |C| > 0`` the magnitude of the control term,
``q = T / c`` the true quotient, and ``e(v)`` the exponent ``frexp`` returns, so that
``v = m * 2**e(v)`` with ``m`` in ``[0.5, 1)`` and therefore ``2**(e(v)-1) <= v < 2**e(v)``.
For an integer ``v > 0``, ``e(v)`` equals its bit length: the number of right shifts that
take ``v`` to zero, which is what the bit-shifting loop of the paper (Fig. 3) counts.

Float versions (torch tensors, float32; results rounded once to float32):

``exact``   ``r = T / c``.
``bitshift`` ``r = T * 2**-n`` with ``n = e(c)``.
    Proof of ``q/2 <= r < q`` (for ``T > 0``): ``2**(n-1) <= c < 2**n`` gives
    ``T / 2**n >= T / (2c) = q/2`` (equality iff ``c`` is a power of two) and ``T / 2**n < T / c = q``.
    With ``shift_start = s`` the exponent is ``max(e(c), s)``: ``r < q`` still holds (a larger
    shift only lowers ``r``), and ``r >= q/2`` holds whenever ``e(c) >= s``.
``bintree``  the same exponent ``n`` found by comparing ``c`` with powers of two in a search
    tree (:class:`BinTree`); identical results to ``bitshift``, different cost.
``bitmask``  ``r = 2**(E(T) - E(c))`` with ``E(v) = e(v) - 1 = floor(log2 v)``, the unbiased
    IEEE-754 exponent (exponent field minus bias; for subnormals, from the leading mantissa bit).
    Proof of ``q/2 < r < 2q``: write ``T = a * 2**E(T)`` and ``c = b * 2**E(c)`` with ``a, b``
    in ``[1, 2)``. Then ``q = r * a / b`` and ``a / b`` lies in ``(1/2, 2)``.

Special values (explicit, identical in every backend): ``T == 0`` gives ``0``; ``c == 0`` gives
``+inf`` (a zero control term skips all its connections); a result beyond float32's range is
``+inf`` (``bitshift``: overflow of ``T * 2**-n``; ``bitmask``: exponent difference above 127)
and a result below the smallest subnormal ``2**-149`` is ``0``. The bounds above hold whenever
the result is representable. NaN and Inf inputs are rejected by the layers before they get here.

Integer / fixed-point versions (Python ints or numpy integer arrays, values ``< 2**62``):

``exact_int(T, c) = T // c``, ``bitshift_int(T, c, s) = T >> max(bit_length(c), s)``,
``bintree_int`` the same with the exponent found by a :class:`BinTree`.
For an integer operand ``Z``, ``|Z| <= floor(y)`` iff ``|Z| <= y``, so comparing with the
floored integer result makes the same decision as comparing with the real ``T / 2**n``: the
integer versions inherit the bounds of the float ones (``q/2 <= T/2**n < q``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

FLOAT32_MIN_EXP = -148  # e(2**-149), the smallest positive subnormal
FLOAT32_MAX_EXP = 128  # e(float32 max)
_F32_MIN_POW = -149  # smallest k with 2**k representable in float32
_F32_MAX_POW = 127  # largest k with 2**k representable in float32


# ----------------------------------------------------------------------------------------
# Float versions (torch, float32)
# ----------------------------------------------------------------------------------------

def _check_float32(threshold: Tensor, control: Tensor) -> None:
    if threshold.dtype != torch.float32 or control.dtype != torch.float32:
        raise TypeError(
            f"approximations take float32 tensors, got threshold {threshold.dtype} and control {control.dtype}"
        )


def _pow2_f64(k: Tensor) -> Tensor:
    """Exact ``2.0**k`` as float64 for integer ``k`` in [-1022, 1023], built from the bit pattern."""
    return ((k.to(torch.int64) + 1023) << 52).view(torch.float64)


def frexp_exponent(values: Tensor) -> Tensor:
    """``e(v)`` of each value (int32): ``2**(e-1) <= |v| < 2**e`` for ``v != 0``; ``0`` for ``v == 0``."""
    return torch.frexp(values).exponent


def exact(threshold: Tensor, control: Tensor) -> Tensor:
    """True IEEE float32 division ``T / c``; ``+inf`` where ``c == 0``."""
    _check_float32(threshold, control)
    quotient = threshold / control
    return torch.where(control == 0, torch.full_like(quotient, float("inf")), quotient)


def shift_exponent(control: Tensor, shift_start: int | None = None) -> Tensor:
    """The shift count ``n = e(c)``, clamped below at ``shift_start`` when given."""
    exponent = frexp_exponent(control)
    if shift_start is not None:
        exponent = exponent.clamp_min(shift_start)
    return exponent


def bitshift(threshold: Tensor, control: Tensor, shift_start: int | None = None) -> Tensor:
    """``T * 2**-n`` with ``n = e(c)`` (or ``max(e(c), shift_start)``): ``q/2 <= r < q``."""
    _check_float32(threshold, control)
    exponent = shift_exponent(control, shift_start)
    # T (float32) times an exact power of two is exact in float64; one rounding to float32.
    scaled = threshold.to(torch.float64) * _pow2_f64(-exponent)
    result = scaled.to(torch.float32)
    return torch.where(control == 0, torch.full_like(result, float("inf")), result)


def bintree(threshold: Tensor, control: Tensor, shift_start: int | None = None) -> Tensor:
    """Same result as :func:`bitshift`; on an MCU the exponent is found by a :class:`BinTree`."""
    return bitshift(threshold, control, shift_start)


def bitmask(threshold: Tensor, control: Tensor) -> Tensor:
    """``2**(E(T) - E(c))`` from the IEEE-754 exponents: ``q/2 < r < 2q``."""
    _check_float32(threshold, control)
    threshold, control = torch.broadcast_tensors(threshold, control)
    power = (frexp_exponent(threshold) - frexp_exponent(control)).to(torch.int64)
    in_range = power.clamp(_F32_MIN_POW, _F32_MAX_POW)
    result = _pow2_f64(in_range).to(torch.float32)
    result = torch.where(power > _F32_MAX_POW, torch.full_like(result, float("inf")), result)
    result = torch.where(power < _F32_MIN_POW, torch.zeros_like(result), result)
    result = torch.where(threshold == 0, torch.zeros_like(result), result)
    return torch.where(control == 0, torch.full_like(result, float("inf")), result)


def quotient(method: str, threshold: Tensor, control: Tensor, shift_start: int | None = None) -> Tensor:
    """Dispatch to the approximation named ``method`` (see :data:`unitprune.config.APPROX_METHODS`)."""
    if method == "exact":
        return exact(threshold, control)
    if method in ("bitshift", "bintree"):
        return bitshift(threshold, control, shift_start)
    if method == "bitmask":
        return bitmask(threshold, control)
    raise ValueError(f"unknown approximation {method!r}; expected exact, bitshift, bintree or bitmask")


# ----------------------------------------------------------------------------------------
# Integer / fixed-point versions (Python ints or numpy integer arrays)
# ----------------------------------------------------------------------------------------

def _as_int_array(values, what: str) -> np.ndarray:
    array = np.asarray(values)
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{what} must be integers, got dtype {array.dtype}")
    array = array.astype(np.int64)
    if np.any(array < 0):
        raise ValueError(f"{what} must be non-negative (pass magnitudes)")
    return array


def _scalar_or_array(result: np.ndarray, *inputs):
    return int(result) if all(np.ndim(value) == 0 for value in inputs) else result


def bit_length(values):
    """Bit length of non-negative integers (``0`` for ``0``), exact for int64, vectorized."""
    remaining = _as_int_array(values, "values").copy()
    length = np.zeros_like(remaining)
    for step in (32, 16, 8, 4, 2, 1):
        has_high = (remaining >> step) > 0
        remaining = np.where(has_high, remaining >> step, remaining)
        length += np.where(has_high, step, 0)
    length += remaining > 0
    return _scalar_or_array(length, values)


def exact_int(threshold, control):
    """Integer division ``T // c``; ``c`` must be positive."""
    t = _as_int_array(threshold, "threshold")
    c = _as_int_array(control, "control")
    if np.any(c == 0):
        raise ZeroDivisionError("control term 0: a zero operand skips its connections without a division")
    return _scalar_or_array(t // c, threshold, control)


def bitshift_int(threshold, control, shift_start: int = 0):
    """``T >> max(bit_length(c), shift_start)``; ``c`` must be positive."""
    t = _as_int_array(threshold, "threshold")
    c = _as_int_array(control, "control")
    if np.any(c == 0):
        raise ZeroDivisionError("control term 0: a zero operand skips its connections without a division")
    shift = np.maximum(np.asarray(bit_length(c)), shift_start)
    return _scalar_or_array(t >> shift, threshold, control)


def bintree_int(threshold, control, tree: "BinTree"):
    """``T >> n`` with ``n`` found by ``tree`` (same result as :func:`bitshift_int` over its range)."""
    t = _as_int_array(threshold, "threshold")
    c = _as_int_array(control, "control")
    if np.any(c == 0):
        raise ZeroDivisionError("control term 0: a zero operand skips its connections without a division")
    shift, _ = tree.search(c)
    return _scalar_or_array(t >> shift, threshold, control)


# ----------------------------------------------------------------------------------------
# Binary search tree over powers of two
# ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BinTree:
    """A binary search tree that finds the exponent ``n = e(c)`` by comparing ``c`` with powers of two.

    Leaves hold exponents ``lo..hi``. An internal node with split ``k`` asks ``c < 2**(k-1)``
    (equivalently ``e(c) < k``): yes goes left (exponents ``< k``), no goes right. The leftmost
    leaf ``lo`` also takes every ``c`` with ``e(c) < lo`` and the rightmost every ``e(c) > hi``,
    so ``lo = shift_start`` implements the coarse start of ``bitshift`` for free.
    The number of comparisons for a value is the depth of its leaf.

    Stored as flat arrays (node 0 is the root), ready to be emitted as a C table:
    ``split[i]``, ``left[i]``, ``right[i]`` (both ``-1`` at a leaf), ``leaf[i]`` (the exponent at a leaf).
    """

    lo: int
    hi: int
    split: tuple[int, ...]
    left: tuple[int, ...]
    right: tuple[int, ...]
    leaf: tuple[int, ...]

    @classmethod
    def balanced(cls, lo: int, hi: int) -> "BinTree":
        """A depth-balanced tree over exponents ``lo..hi`` (every leaf weighted equally)."""
        return cls.from_counts(lo, hi, np.ones(hi - lo + 1))

    @classmethod
    def from_samples(cls, magnitudes, lo: int, hi: int, smoothing: float = 1e-3) -> "BinTree":
        """The tree minimising the mean number of comparisons over ``magnitudes`` (ints or floats > 0).

        Exponents never seen keep a small weight (``smoothing`` times the mean count) so they stay
        reachable in a bounded number of steps.
        """
        counts = exponent_counts(magnitudes, lo, hi)
        if counts.sum() == 0:
            raise ValueError("BinTree.from_samples needs at least one nonzero magnitude")
        weights = counts + smoothing * counts.sum() / len(counts)
        return cls.from_counts(lo, hi, weights)

    @classmethod
    def from_counts(cls, lo: int, hi: int, weights) -> "BinTree":
        """Optimal alphabetic tree for leaf ``weights`` (one per exponent ``lo..hi``).

        Knuth's dynamic programme for optimal binary search trees with weight only on the
        leaves: ``cost[i][j] = W(i..j) + min_r cost[i][r-1] + cost[r][j]``, with the split search
        restricted to ``root[i][j-1] <= r <= root[i+1][j]`` (Knuth 1971), O(n^2) in all.
        """
        if hi < lo:
            raise ValueError(f"BinTree needs lo <= hi, got lo={lo}, hi={hi}")
        weights = np.asarray(weights, dtype=np.float64)
        count = hi - lo + 1
        if weights.shape != (count,) or np.any(weights < 0) or not np.all(np.isfinite(weights)):
            raise ValueError(f"BinTree weights must be {count} finite non-negative numbers")
        prefix = np.concatenate([[0.0], np.cumsum(weights)])
        cost = np.zeros((count, count))
        root = np.zeros((count, count), dtype=np.int64)  # first leaf index of the right subtree
        for length in range(2, count + 1):
            for i in range(0, count - length + 1):
                j = i + length - 1
                first = root[i][j - 1] if length > 2 else i + 1
                last = root[i + 1][j] if length > 2 else j
                best_cost, best_root = float("inf"), first
                for r in range(max(first, i + 1), min(last, j) + 1):
                    candidate = cost[i][r - 1] + cost[r][j]
                    if candidate < best_cost:
                        best_cost, best_root = candidate, r
                cost[i][j] = best_cost + prefix[j + 1] - prefix[i]
                root[i][j] = best_root
        split, left, right, leaf = [], [], [], []

        def build(i: int, j: int) -> int:
            index = len(split)
            split.append(0), left.append(-1), right.append(-1), leaf.append(0)
            if i == j:
                leaf[index] = lo + i
                return index
            r = int(root[i][j])
            split[index] = lo + r
            left[index] = build(i, r - 1)
            right[index] = build(r, j)
            return index

        build(0, count - 1)
        return cls(lo, hi, tuple(split), tuple(left), tuple(right), tuple(leaf))

    def search(self, magnitudes) -> tuple[np.ndarray, np.ndarray]:
        """Walk the tree for each magnitude (> 0): returns ``(exponent, comparisons)`` arrays."""
        values = np.asarray(magnitudes)
        if np.issubdtype(values.dtype, np.integer):
            values = _as_int_array(values, "magnitudes")
        else:
            values = values.astype(np.float64)
        split, left, right = np.asarray(self.split), np.asarray(self.left), np.asarray(self.right)
        node = np.zeros(values.shape, dtype=np.int64)
        comparisons = np.zeros(values.shape, dtype=np.int64)
        active = left[node] >= 0
        while np.any(active):
            pivot_exponent = split[node] - 1  # compare with 2**(k-1)
            if np.issubdtype(values.dtype, np.integer):
                goes_left = np.where(pivot_exponent >= 0, values < np.left_shift(1, np.maximum(pivot_exponent, 0)), False)
            else:
                goes_left = values < np.ldexp(1.0, pivot_exponent)
            child = np.where(goes_left, left[node], right[node])
            node = np.where(active, child, node)
            comparisons += active
            active = left[node] >= 0
        return np.asarray(self.leaf)[node], comparisons

    def depth_of_exponents(self) -> np.ndarray:
        """Comparisons needed for each exponent ``lo..hi`` (the leaf depths)."""
        exponents = np.arange(self.lo, self.hi + 1)
        _, comparisons = self.search(np.ldexp(0.75, exponents))  # 0.75 * 2**n has e(.) = n
        return comparisons

    def expected_comparisons(self, magnitudes) -> float:
        """Mean number of comparisons to find the exponent of each of ``magnitudes``."""
        counts = exponent_counts(magnitudes, self.lo, self.hi)
        if counts.sum() == 0:
            raise ValueError("expected_comparisons needs at least one nonzero magnitude")
        return float((counts * self.depth_of_exponents()).sum() / counts.sum())


def exponent_counts(magnitudes, lo: int, hi: int) -> np.ndarray:
    """Histogram of ``e(v)`` over the nonzero magnitudes, clamped into ``lo..hi``."""
    values = np.abs(np.asarray(magnitudes).ravel())
    if np.issubdtype(values.dtype, np.integer):
        exponents = np.asarray(bit_length(values[values != 0]))
    else:
        values = values.astype(np.float64)
        if not np.all(np.isfinite(values)):
            raise ValueError("magnitudes must be finite")
        exponents = np.frexp(values[values != 0])[1]
    exponents = np.clip(exponents, lo, hi)
    return np.bincount(exponents - lo, minlength=hi - lo + 1).astype(np.float64)

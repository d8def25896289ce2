"""Configuration of UnIT layers (one small dataclass that flows through convert/calibrate)."""

from __future__ import annotations

import math
from dataclasses import dataclass

APPROX_METHODS = ("exact", "bitshift", "bintree", "bitmask")
BACKENDS = ("auto", "c", "torch")


@dataclass(frozen=True)
class UnITConfig:
    """How UnIT layers decide which multiply-accumulates to skip.

    Attributes:
        approx: division approximation used for ``T / |C|``: ``"exact"``, ``"bitshift"``,
            ``"bintree"`` or ``"bitmask"`` (see :mod:`unitprune.approx` and docs/semantics.md).
        percentile: default calibration percentile (0..100) of the nonzero ``|x * w|`` products.
        group_size: ``None`` for one threshold per layer; ``k`` to give every group of ``k``
            consecutive output channels (conv) / output neurons (linear) its own threshold.
        shift_start: optional coarse start for ``bitshift``/``bintree``: the exponent ``n`` used
            is ``max(e(|C|), shift_start)``, so magnitudes below ``2**(shift_start-1)`` share one
            quotient (fewer shift steps on an MCU, never more skipping than ``exact``).
        backend: ``"torch"`` (reference path), ``"c"`` (compiled kernels) or ``"auto"``.
        chunk_elements: memory bound of the reference path: the largest number of
            (sample, output, input) mask elements materialised at once.
        check_finite: raise on NaN/Inf activations in eval mode (names the layer).
    """

    approx: str = "exact"
    percentile: float = 20.0
    group_size: int | None = None
    shift_start: int | None = None
    backend: str = "auto"
    chunk_elements: int = 1 << 23
    check_finite: bool = True

    def __post_init__(self) -> None:
        if self.approx not in APPROX_METHODS:
            raise ValueError(f"UnITConfig.approx must be one of {APPROX_METHODS}, got {self.approx!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"UnITConfig.backend must be one of {BACKENDS}, got {self.backend!r}")
        validate_percentile(self.percentile, "UnITConfig.percentile")
        if self.group_size is not None and (not isinstance(self.group_size, int) or self.group_size < 1):
            raise ValueError(f"UnITConfig.group_size must be None or a positive int, got {self.group_size!r}")
        if self.shift_start is not None and not isinstance(self.shift_start, int):
            raise ValueError(f"UnITConfig.shift_start must be None or an int, got {self.shift_start!r}")
        if not isinstance(self.chunk_elements, int) or self.chunk_elements < 1:
            raise ValueError(f"UnITConfig.chunk_elements must be a positive int, got {self.chunk_elements!r}")

    def num_groups(self, out_channels: int) -> int:
        """Number of thresholds a layer with ``out_channels`` outputs holds."""
        if self.group_size is None:
            return 1
        return math.ceil(out_channels / self.group_size)


def validate_percentile(value: float, what: str) -> float:
    """Return ``value`` as float if it is a finite number in [0, 100], else raise ValueError."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number in [0, 100], got {value!r}") from None
    if not (0.0 <= number <= 100.0):  # also rejects NaN
        raise ValueError(f"{what} must be in [0, 100], got {value!r}")
    return number

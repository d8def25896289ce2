"""Where a UnIT layer's eval-mode computation runs.

Every backend takes the same arguments and returns ``(output, MacCounts)`` with the semantics of
docs/semantics.md. ``"torch"`` is the vectorized reference path (:mod:`unitprune.reference`).
"""

from __future__ import annotations

from torch import Tensor

from .config import UnITConfig
from .counts import MacCounts
from .reference import ConvGeometry, conv_reference, linear_reference


def active_backend(config: UnITConfig) -> str:
    """The backend that layers with ``config`` use: ``"torch"`` or ``"c"``."""
    if config.backend == "c":
        raise RuntimeError("UnITConfig(backend='c'): the compiled C kernels are not part of this build")
    return "torch"


def linear(x: Tensor, weight: Tensor, bias: Tensor | None, thresholds: Tensor,
           config: UnITConfig) -> tuple[Tensor, MacCounts]:
    active_backend(config)
    return linear_reference(x, weight, bias, thresholds, config)


def conv(x: Tensor, weight: Tensor, bias: Tensor | None, tau: Tensor, geometry: ConvGeometry,
         config: UnITConfig) -> tuple[Tensor, MacCounts]:
    active_backend(config)
    return conv_reference(x, weight, bias, tau, geometry, config)

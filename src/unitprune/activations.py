"""Activation layers of the core that other packages build on.

:class:`FATReLU` (forced-activation-threshold ReLU) is the layer of the FATReLU baseline
(:mod:`unitprune.baselines.fatrelu` calibrates it); it lives here because the MCU graph
(:mod:`unitprune.mcu.graph`) quantizes it as a layer of its own.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch import Tensor

__all__ = ["FATReLU"]


class FATReLU(nn.Module):
    """``f(x) = x`` if ``x > threshold`` else ``0``. ``threshold`` is a float32 buffer (>= 0)."""

    def __init__(self, threshold: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("threshold", torch.tensor(float(threshold), dtype=torch.float32))

    def forward(self, x: Tensor) -> Tensor:
        return torch.where(x > self.threshold.to(x.dtype), x, torch.zeros((), dtype=x.dtype, device=x.device))

    def extra_repr(self) -> str:
        return f"threshold={float(self.threshold):.4g}"

"""Layer geometry shared by the reference, the C kernels' bindings and the exporter.

* :class:`ConvGeometry`: a Conv1d/Conv2d as a 2-D convolution with explicit zero padding;
* :func:`unfold_columns`: im2col of an input under a geometry;
* :func:`output_groups`: the threshold group of each output channel (group-wise thresholds).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["ConvGeometry", "output_groups", "unfold_columns"]


def output_groups(out_features: int, num_groups: int, group_size: int | None, device=None) -> Tensor:
    """Threshold group index of each output channel/neuron, shape ``(out_features,)``."""
    if num_groups == 1 or group_size is None:
        return torch.zeros(out_features, dtype=torch.long, device=device)
    return torch.arange(out_features, device=device) // group_size


@dataclass(frozen=True)
class ConvGeometry:
    """A 2-D view of a Conv1d/Conv2d: Conv1d is a Conv2d with height 1.

    ``padding`` is explicit ``(top, bottom, left, right)`` zero padding (torch's ``'same'``
    puts the odd extra pixel at the bottom/right).
    """

    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    padding: tuple[int, int, int, int]
    groups: int

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        top, bottom, left, right = self.padding
        out_h = (height + top + bottom - self.dilation[0] * (self.kernel_size[0] - 1) - 1) // self.stride[0] + 1
        out_w = (width + left + right - self.dilation[1] * (self.kernel_size[1] - 1) - 1) // self.stride[1] + 1
        return out_h, out_w


def unfold_columns(x: Tensor, geometry: ConvGeometry) -> Tensor:
    """im2col of ``x`` (N, C, H, W) with explicit zero padding: (N, C*kh*kw, H_out*W_out)."""
    top, bottom, left, right = geometry.padding
    padded = F.pad(x, (left, right, top, bottom))
    return F.unfold(padded, geometry.kernel_size, dilation=geometry.dilation, stride=geometry.stride)

"""Inputs shared by the layer and kernel tests."""

from __future__ import annotations

import torch
import torch.nn as nn

APPROXES = ["exact", "bitshift", "bintree", "bitmask"]


def sparse_input(generator: torch.Generator, shape, zero_fraction: float) -> torch.Tensor:
    """Activations over a wide magnitude range with exact zeros (like after ReLU)."""
    values = torch.randn(shape, generator=generator) * torch.exp(torch.randn(shape, generator=generator))
    zeros = torch.rand(shape, generator=generator) < zero_fraction
    return torch.where(zeros, torch.zeros_like(values), values)


def prune_weights(layer: nn.Module, generator: torch.Generator, fraction: float) -> None:
    """Set a random ``fraction`` of ``layer.weight`` to exactly zero."""
    with torch.no_grad():
        layer.weight[torch.rand(layer.weight.shape, generator=generator) < fraction] = 0.0

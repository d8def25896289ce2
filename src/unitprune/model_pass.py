"""Running data through a model: where batches come from and in which order modules are called.

* :func:`iterate_inputs`: input tensors from a tensor (split in batches), a DataLoader or an
  iterable of tensors / ``(x, y)`` pairs, with clear errors for anything else.
* :func:`execution_order`: the order in which a forward pass first calls a set of modules.

Used by threshold calibration (:mod:`unitprune.calibrate`) and by the FATReLU baseline.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

import torch.nn as nn
from torch import Tensor

__all__ = ["iterate_inputs", "execution_order"]


def iterate_inputs(data, max_batches: int | None = None, batch_size: int = 256) -> Iterator[Tensor]:
    """Yield input tensors from a tensor (split in batches), a DataLoader or an iterable of
    tensors / ``(x, y)`` pairs."""
    if max_batches is not None and (not isinstance(max_batches, int) or isinstance(max_batches, bool)
                                    or max_batches < 1):
        raise ValueError(f"max_batches must be a positive int or None, got {max_batches!r}")
    if isinstance(data, Tensor):
        source: Iterable = data.split(batch_size) if data.dim() > 0 else [data]
    elif isinstance(data, Iterable) and not isinstance(data, (str, bytes, Mapping)):
        source = data
    else:
        raise TypeError(f"calibration data must be a tensor, a DataLoader or an iterable, got {type(data).__name__}")
    for index, item in enumerate(source):
        if max_batches is not None and index >= max_batches:
            return
        x = item[0] if isinstance(item, (tuple, list)) and item else item
        if not isinstance(x, Tensor):
            raise TypeError(f"calibration batch {index} is a {type(x).__name__}, expected a tensor or (x, y) pair")
        yield x


def execution_order(model: nn.Module, modules: Mapping[str, nn.Module], batch: Tensor) -> list[str]:
    """Names of ``modules`` in the order ``model(batch)`` first calls them (uncalled ones left out)."""
    order: list[str] = []

    def make_hook(name: str):
        def hook(module, args):
            if name not in order:
                order.append(name)
        return hook

    handles = [module.register_forward_pre_hook(make_hook(name)) for name, module in modules.items()]
    try:
        model(batch)
    finally:
        for handle in handles:
            handle.remove()
    return order

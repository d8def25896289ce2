"""BatchNorm running statistics of a masked or pruned model, re-estimated from training data.

While the differentiable method prunes, every BatchNorm after a layer that reads a masked group
sees its input distribution change whenever a mask changes; its running statistics (what eval mode
uses) follow only by the exponential average of ``momentum`` (0.1: about ten steps behind), and a
channel count that falls by a channel every few steps keeps them off. ``recalibrate_batchnorm``
replaces them by the exact mean and (unbiased) variance of the current model's batch statistics,
averaged over the given examples, as a fresh BatchNorm with ``momentum=None`` computes them.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import TensorDataset

from ..training import batches

__all__ = ["recalibrate_batchnorm"]


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, data: TensorDataset, examples: int = 1024, batch_size: int = 64) -> int:
    """Reset the running statistics of every BatchNorm of ``model`` and re-estimate them with
    forward passes in training mode over the first ``examples`` examples of ``data`` (in order,
    ``batch_size`` at a time: the cumulative average of the batch statistics, ``momentum=None``).

    Weights are not changed; the model's train/eval mode and the BatchNorms' momenta are restored.
    Returns the number of BatchNorm layers re-estimated (0: nothing to do, the model is unchanged).
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms:
        return 0
    if examples < 1 or batch_size < 1:
        raise ValueError(f"recalibrate_batchnorm: examples and batch_size must be >= 1, got {examples}, {batch_size}")
    x = data.tensors[0][:examples]
    if len(x) == 0:
        raise ValueError("recalibrate_batchnorm: no examples to estimate BatchNorm statistics from")
    was_training = model.training
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    try:
        for start in range(0, len(x), batch_size):
            model(x[start:start + batch_size])
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.train(was_training)
    return len(norms)

"""Accuracy and MAC counters of a UnIT-converted model over a whole dataset, in one pass.

Every method of a sweep is measured here, on a model converted with :func:`unitprune.convert`
(thresholds ``T = 0`` for the non-UnIT baselines, so their skipped MACs are only zero weights
and zero activations): one accounting for all methods. MACs outside UnIT layers are counted as
dense, executed rows (``Evaluation.other_layers``), so totals are of the whole model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn
from torch import Tensor

from ..accounting import count_other_macs
from ..calibrate import reset_mac_counts
from ..convert import unit_layers
from ..counts import MacCounts

__all__ = ["Evaluation", "evaluate_unit_model", "dataset_tensors"]


@dataclass
class Evaluation:
    """Outcome of :func:`evaluate_unit_model`.

    Attributes:
        correct: correctly classified samples.
        num_samples: samples evaluated.
        per_layer: ``{UnIT layer name: MacCounts}`` summed over all samples (registration order).
        other_layers: MACs done outside UnIT layers (dense = executed), see
            :mod:`unitprune.accounting`.
        sample_correct: bool ``(num_samples,)``: which samples were classified correctly (paired
            comparisons of two models on the same samples, :mod:`unitprune.accuracy_budget`).
    """

    correct: int
    num_samples: int
    per_layer: dict[str, MacCounts] = field(default_factory=dict)
    logits: Tensor | None = None
    other_layers: dict[str, MacCounts] = field(default_factory=dict)
    sample_correct: Tensor | None = None

    @property
    def accuracy(self) -> float:
        return self.correct / self.num_samples

    @property
    def total(self) -> MacCounts:
        """The whole model's counters (UnIT layers and the MACs outside them)."""
        return sum(self.other_layers.values(), sum(self.per_layer.values(), MacCounts()))


def dataset_tensors(data) -> tuple[Tensor, Tensor]:
    """``(inputs, labels)`` of a ``TensorDataset`` or an ``(x, y)`` pair of tensors."""
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = data
    elif hasattr(data, "tensors"):
        x, y = data.tensors[0], data.tensors[1]
    else:
        raise TypeError(f"expected a TensorDataset or an (inputs, labels) pair, got {type(data).__name__}")
    if len(x) != len(y):
        raise ValueError(f"inputs and labels differ in length: {len(x)} vs {len(y)}")
    if len(x) == 0:
        raise ValueError("cannot evaluate on an empty dataset")
    return x, y


def evaluate_unit_model(model: nn.Module, data, batch_size: int = 500, *, keep_logits: bool = False) -> Evaluation:
    """Accuracy and summed MAC counters of ``model`` (with UnIT layers) on ``data``.

    The layers' ``mac_counts`` are reset first and hold this evaluation's counts afterwards.
    Runs in eval mode without gradients; the model's previous train/eval mode is restored.
    With ``keep_logits`` the model outputs are returned too (``Evaluation.logits``).
    """
    layers = dict(unit_layers(model))
    if not layers:
        raise ValueError("evaluate_unit_model: the model has no UnIT layers; call unitprune.convert(model) first")
    x, y = dataset_tensors(data)
    was_training = model.training
    model.eval()
    reset_mac_counts(model)
    hits = []
    outputs = []
    try:
        with torch.no_grad(), count_other_macs(model) as other_layers:
            for start in range(0, len(x), batch_size):
                logits = model(x[start:start + batch_size])
                hits.append(logits.argmax(dim=1) == y[start:start + batch_size])
                if keep_logits:
                    outputs.append(logits)
    finally:
        model.train(was_training)
    per_layer = {name: layer.mac_counts for name, layer in layers.items()}
    for counts in per_layer.values():
        counts.check()
    sample_correct = torch.cat(hits)
    return Evaluation(correct=int(sample_correct.sum()), num_samples=len(x), per_layer=per_layer,
                      logits=torch.cat(outputs) if keep_logits else None, other_layers=other_layers,
                      sample_correct=sample_correct)

"""``mac_report``: run one forward pass and account for every MAC of the model.

UnIT layers report their own counters; the MACs done elsewhere (layers UnIT does not convert,
functional calls in a ``forward``) are measured with FlopCounterMode during the same pass
(:mod:`unitprune.accounting`) and reported as dense, executed rows. ``total`` and
``skipped_fraction`` are of the whole model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn

from .accounting import count_other_macs
from .convert import require_module, unit_layers
from .counts import CAUSES, OVERHEADS, MacCounts


@dataclass
class MacReport:
    """MAC counters of one forward pass, per layer (execution order) and in total.

    Attributes:
        per_layer: ``{UnIT layer name: MacCounts}``.
        other_layers: ``{module name or "other": MacCounts}``: MACs done outside UnIT layers
            (dense = executed), see :mod:`unitprune.accounting`.
        total: the sum over both: the whole model.
        num_samples: the batch size of the input.
    """

    per_layer: dict[str, MacCounts] = field(default_factory=dict)
    num_samples: int = 0
    other_layers: dict[str, MacCounts] = field(default_factory=dict)

    @property
    def unit_total(self) -> MacCounts:
        """The sum over the UnIT layers only."""
        return sum(self.per_layer.values(), MacCounts())

    @property
    def total(self) -> MacCounts:
        """The whole model: UnIT layers plus the MACs outside them."""
        return sum(self.other_layers.values(), self.unit_total)

    @property
    def skipped_fraction(self) -> float:
        """Fraction of the whole model's dense MACs that were not executed (any cause)."""
        return self.total.skipped_fraction

    def to_dict(self) -> dict:
        return {
            "num_samples": self.num_samples,
            "skipped_fraction": self.skipped_fraction,
            "total": self.total.to_dict(),
            "unit_total": self.unit_total.to_dict(),
            "per_layer": {name: counts.to_dict() for name, counts in self.per_layer.items()},
            "other_layers": {name: counts.to_dict() for name, counts in self.other_layers.items()},
        }

    def __str__(self) -> str:
        columns = ("dense",) + CAUSES + OVERHEADS
        rows = ([(name, counts) for name, counts in self.per_layer.items()]
                + [(f"{name} (not UnIT)", counts) for name, counts in self.other_layers.items()]
                + [("total", self.total)])
        name_width = max(len(name) for name, _ in rows)
        header = f"{'layer':<{name_width}}  " + "  ".join(f"{c:>15}" for c in columns) + f"  {'skipped':>8}"
        lines = [f"MAC report over {self.num_samples} samples", header, "-" * len(header)]
        for name, counts in rows:
            values = counts.to_dict()
            lines.append(f"{name:<{name_width}}  " + "  ".join(f"{values[c]:>15,}" for c in columns)
                         + f"  {counts.skipped_fraction:>8.2%}")
        return "\n".join(lines)


def mac_report(model: nn.Module, inputs: torch.Tensor) -> MacReport:
    """Run ``model(inputs)`` once in eval mode without gradients and return its MAC counters.

    Every MAC of the pass is in the report: the UnIT layers' counters and, as dense rows, the
    MACs done outside them (measured with FlopCounterMode). The model's train/eval mode and the
    layers' accumulated ``mac_counts`` are restored afterwards.
    A model that is not an ``nn.Module`` but has its own ``mac_report(inputs)`` (a
    :class:`~unitprune.mcu.qmodel.QuantizedModel`: its integer reference) reports itself.
    """
    if not isinstance(model, nn.Module) and callable(getattr(model, "mac_report", None)):
        return model.mac_report(inputs)
    require_module(model, "mac_report")
    layers = dict(unit_layers(model))
    if not layers:
        raise ValueError("mac_report: the model has no UnIT layers; call unitprune.convert(model) first")
    if not isinstance(inputs, torch.Tensor):
        raise TypeError(f"mac_report expects a tensor of inputs, got {type(inputs).__name__}")
    if inputs.dim() == 0 or inputs.shape[0] == 0:
        raise ValueError(f"mac_report: inputs must hold at least one sample, got shape {tuple(inputs.shape)}")
    saved = {name: layer.mac_counts for name, layer in layers.items()}
    order: list[str] = []
    handles = [layer.register_forward_pre_hook(_order_hook(name, order)) for name, layer in layers.items()]
    was_training = model.training
    try:
        for layer in layers.values():
            layer.reset_mac_counts()
        model.eval()
        with torch.no_grad(), count_other_macs(model) as other_layers:
            model(inputs)
        per_layer = {name: layers[name].mac_counts for name in order}
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
        for name, layer in layers.items():
            layer.mac_counts = saved[name] + layer.mac_counts
    return MacReport(per_layer=per_layer, num_samples=int(inputs.shape[0]), other_layers=other_layers)


def _order_hook(name: str, order: list[str]):
    def hook(module, args):
        if name not in order:
            order.append(name)
    return hook

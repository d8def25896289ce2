"""FATReLU (Kurtz et al., ICML 2020): a ReLU with a threshold, ``f(x) = x if x > t else 0``.

A larger ``t`` zeroes more small activations at inference time, which a zero-skipping kernel
(and UnIT's ``zero_activation`` accounting) then does not multiply. ``t = 0`` is exactly ReLU.

Thresholds live in *percentile space*: for a percentile ``p``, each FATReLU's ``t`` is the
``p``-th percentile (inverted-CDF definition, as :func:`unitprune.calibrate` uses) of the
positive values it outputs on calibration (validation) data, so about ``p``% of the activations
that ReLU would keep are zeroed. Layers are calibrated one at a time in execution order, each
with the FATReLUs before it already at their thresholds (the same "sequential" rule as
:func:`unitprune.calibrate`).

Typical use::

    fat = with_fatrelu(model)                    # copy of model, nn.ReLU -> FATReLU(0)
    calibrate_fatrelu(fat, x_val, percentile=50)  # {"relu1": t1, "relu2": t2}
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Iterator

import torch
import torch.nn as nn
from torch import Tensor

from ..activations import FATReLU
from ..model_pass import execution_order, iterate_inputs
from ..config import validate_percentile

logger = logging.getLogger(__name__)

__all__ = ["FATReLU", "with_fatrelu", "fatrelu_layers", "calibrate_fatrelu", "set_fatrelu_thresholds",
           "positive_percentile"]


def with_fatrelu(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` whose ``nn.ReLU`` modules are replaced by ``FATReLU(0)``.

    The copy computes exactly what ``model`` computes until thresholds are raised. ReLUs applied
    functionally (``F.relu`` / ``torch.relu`` inside ``forward``) cannot be replaced; if the model
    has no ``nn.ReLU`` module a ``ValueError`` says so.
    """
    result = copy.deepcopy(model)
    names = [name for name, module in result.named_modules() if type(module) is nn.ReLU]
    if not names:
        raise ValueError(f"FATReLU: {type(model).__name__} has no nn.ReLU module to replace "
                         "(ReLUs called as functions inside forward() cannot be swapped)")
    for name in names:
        if not name:  # the model itself is a ReLU
            return FATReLU()
        parent_name, _, child_name = name.rpartition(".")
        parent = result.get_submodule(parent_name) if parent_name else result
        setattr(parent, child_name, FATReLU())
    logger.info("FATReLU: replaced %d nn.ReLU modules (%s)", len(names), ", ".join(names))
    return result


def fatrelu_layers(model: nn.Module) -> Iterator[tuple[str, FATReLU]]:
    """``(qualified name, module)`` of every FATReLU in ``model``, in registration order."""
    for name, module in model.named_modules():
        if isinstance(module, FATReLU):
            yield name, module


def set_fatrelu_thresholds(model: nn.Module, thresholds) -> None:
    """Set every FATReLU's threshold: one number for all, or ``{name: number}``."""
    layers = dict(fatrelu_layers(model))
    items = thresholds.items() if isinstance(thresholds, dict) else [(name, thresholds) for name in layers]
    for name, value in items:
        if name not in layers:
            raise ValueError(f"set_fatrelu_thresholds: no FATReLU named {name!r}; FATReLUs are {sorted(layers)}")
        value = float(value)
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"FATReLU threshold of {name!r} must be finite and >= 0, got {value}")
        layers[name].threshold.fill_(value)


def positive_percentile(values: Tensor, percentile: float) -> float:
    """Inverted-CDF ``percentile`` of the strictly positive entries of ``values`` (0 if none or p=0).

    The smallest positive value ``v`` such that at least ``percentile``% of the positive values are
    ``<= v``, so ``FATReLU(v)`` zeroes at least that share of them.
    """
    percentile = validate_percentile(percentile, "percentile")
    positive = values[values > 0].flatten()
    if percentile == 0 or positive.numel() == 0:
        return 0.0
    rank = max(1, math.ceil(positive.numel() * percentile / 100.0))
    return float(torch.kthvalue(positive.to(torch.float64), rank).values)


def calibrate_fatrelu(model: nn.Module, data, percentile: float, *, max_batches: int | None = None
                      ) -> dict[str, float]:
    """Set each FATReLU's threshold to the ``percentile`` of its positive outputs on ``data``.

    Args:
        model: a model made by :func:`with_fatrelu` (or holding :class:`FATReLU` modules).
        data: a tensor of inputs, a DataLoader or an iterable of tensors / ``(x, y)`` pairs
            (use validation data, never test data).
        percentile: in [0, 100]; 0 gives plain ReLU.
        max_batches: use at most this many batches of ``data``.

    Returns:
        ``{FATReLU name: threshold}`` in execution order.
    """
    layers = dict(fatrelu_layers(model))
    if not layers:
        raise ValueError("calibrate_fatrelu: the model has no FATReLU module; use with_fatrelu(model) first")
    percentile = validate_percentile(percentile, "percentile")
    batches = [x for x in iterate_inputs(data, max_batches) if x.numel() > 0]
    if not batches:
        raise ValueError("calibrate_fatrelu: the calibration data is empty")
    was_training = model.training
    model.eval()
    thresholds: dict[str, float] = {}
    try:
        with torch.no_grad():
            for layer in layers.values():
                layer.threshold.zero_()
            for name in execution_order(model, layers, batches[0]):
                outputs = _capture_outputs(model, layers[name], batches)  # upstream already thresholded
                thresholds[name] = positive_percentile(outputs, percentile)
                layers[name].threshold.fill_(thresholds[name])
    finally:
        model.train(was_training)
    logger.info("calibrate_fatrelu p=%g: %s", percentile, {k: f"{v:.4g}" for k, v in thresholds.items()})
    return thresholds


def _capture_outputs(model: nn.Module, layer: FATReLU, batches: list[Tensor]) -> Tensor:
    """The outputs of ``layer`` (with threshold 0, i.e. its ReLU outputs) over all batches."""
    captured: list[Tensor] = []

    def hook(module, args):
        captured.append(torch.relu(args[0].detach()).flatten())

    handle = layer.register_forward_pre_hook(hook)
    try:
        for batch in batches:
            model(batch)
    finally:
        handle.remove()
    return torch.cat(captured)

"""Fold the input normalisation into the first layer, so UnIT sees the input's real zeros.

Datasets are usually normalised, ``x = (raw - mean) / std``. For images this turns the black
background (raw 0, most of an MNIST digit) into a nonzero constant (``-mean / std`` = -0.42), so
the first convolution cannot skip it as a zero activation and has to spend its threshold on it.
On a microcontroller the raw pixels arrive anyway, and the normalisation costs nothing when it is
folded into the first layer::

    W' = W / std          b' = b - sum over (c, k) of W[o, c, k] * mean_c / std_c

which computes exactly the same function of the *raw* (here: ``raw * scale``, e.g. pixel/255)
input, for a first layer without zero padding (padding zeros would become ``-mean/std`` inputs).
:func:`fold_input_normalization` does it for a copy of the model and the data and checks on
validation data that the outputs are unchanged; otherwise it raises ``ValueError``.
"""

from __future__ import annotations

import copy
import dataclasses
import logging

import torch
import torch.nn as nn
from torch import Tensor
from torch.utils.data import TensorDataset

logger = logging.getLogger(__name__)

__all__ = ["fold_input_normalization"]

_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Linear)


def _channel_stats(normalization: dict, channels: int) -> tuple[Tensor, Tensor]:
    if not isinstance(normalization, dict) or "mean" not in normalization or "std" not in normalization:
        raise ValueError(f"cannot fold the input normalisation: the dataset records none ({normalization!r})")
    mean = torch.as_tensor(normalization["mean"], dtype=torch.float64).flatten()
    std = torch.as_tensor(normalization["std"], dtype=torch.float64).flatten()
    if mean.numel() == 1:
        mean = mean.expand(channels)
    if std.numel() == 1:
        std = std.expand(channels)
    if mean.numel() != channels or std.numel() != channels:
        raise ValueError(f"cannot fold per-feature normalisation of shape {tuple(mean.shape)} into {channels} channels")
    if bool((std <= 0).any()):
        raise ValueError(f"cannot fold a normalisation with non-positive std {std.tolist()}")
    return mean, std


def _first_layer(model: nn.Module, x: Tensor) -> tuple[str, nn.Module]:
    """The Conv/Linear layer that receives the model's input tensor (same storage) directly."""
    found: list[tuple[str, nn.Module]] = []

    def make_hook(name: str):
        def hook(module, args):
            if not found and args and isinstance(args[0], Tensor) and args[0].data_ptr() == x.data_ptr() \
                    and args[0].numel() == x.numel():
                found.append((name, module))
        return hook

    handles = [m.register_forward_pre_hook(make_hook(n)) for n, m in model.named_modules() if type(m) in _LAYERS]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    if not found:
        raise ValueError("cannot fold the input normalisation: no Conv/Linear layer takes the model input directly")
    return found[0]


def _fold_into(layer: nn.Module, mean: Tensor, std: Tensor, sample_shape: tuple[int, ...]) -> None:
    with torch.no_grad():
        weight = layer.weight.double()
        if isinstance(layer, nn.Linear):  # input flattened from (C, *spatial) in C-major order
            per_feature = int(torch.tensor(sample_shape[1:]).prod()) if len(sample_shape) > 1 else 1
            mean, std = mean.repeat_interleave(per_feature), std.repeat_interleave(per_feature)
            shift = (weight * (mean / std)).sum(dim=1)
            new_weight = weight / std
        else:
            padding = layer.padding
            if (padding != "valid") if isinstance(padding, str) else any(p != 0 for p in padding):
                raise ValueError("cannot fold the input normalisation into a first convolution with zero padding "
                                 "(padding zeros would change meaning)")
            view = (1, -1) + (1,) * (weight.dim() - 2)
            if layer.groups != 1:
                raise ValueError("cannot fold the input normalisation into a grouped first convolution")
            shift = (weight * (mean / std).view(view)).flatten(1).sum(dim=1)
            new_weight = weight / std.view(view)
        layer.weight.copy_(new_weight.to(layer.weight.dtype))
        if layer.bias is None:
            layer.bias = nn.Parameter(torch.zeros(layer.weight.shape[0], dtype=layer.weight.dtype))
        layer.bias.copy_((layer.bias.double() - shift).to(layer.bias.dtype))


def _raw(dataset: TensorDataset, mean: Tensor, std: Tensor, scale: float | None) -> TensorDataset:
    """Undo ``(raw - mean) / std``. With a recorded ``scale`` (e.g. 1/255) the values are snapped
    back to the grid of raw levels, so a black pixel is exactly 0 again (float rounding of the
    round trip would otherwise leave values like 1e-8, which are not zero activations)."""
    x, y = dataset.tensors[0], dataset.tensors[1]
    view = (1, -1) + (1,) * (x.dim() - 2)
    raw = x.double() * std.view(view) + mean.view(view)
    if scale is not None:
        raw = torch.round(raw / scale) * scale
    return TensorDataset(raw.to(x.dtype), y)


def fold_input_normalization(model: nn.Module, splits, *, atol: float = 1e-4):
    """Return ``(model copy, splits copy)`` computing the same outputs from un-normalised inputs.

    Args:
        model: the trained model (not modified).
        splits: a :class:`unitprune.data.DatasetSplits` whose ``normalization`` records ``mean``
            and ``std`` (scalars or one per input channel).
        atol: largest allowed difference between the original and folded logits on validation.

    Raises:
        ValueError: no recorded normalisation, a first layer with padding, or outputs that differ.
    """
    x_val = splits.val.tensors[0]
    channels = x_val.shape[1]
    mean, std = _channel_stats(splits.normalization, channels)
    folded = copy.deepcopy(model).eval()
    name, layer = _first_layer(folded, x_val[:1].clone())
    _fold_into(layer, mean, std, tuple(x_val.shape[1:]))
    scale = splits.normalization.get("scale")
    scale = float(scale) if isinstance(scale, (int, float)) and scale > 0 else None
    new_splits = dataclasses.replace(
        splits, train=_raw(splits.train, mean, std, scale), val=_raw(splits.val, mean, std, scale),
        test=_raw(splits.test, mean, std, scale), normalization={**splits.normalization, "folded_into": name})
    with torch.no_grad():
        before = model.eval()(x_val)
        after = folded(new_splits.val.tensors[0])
    difference = float((before - after).abs().max())
    if difference > atol:
        raise ValueError(f"folding the input normalisation into {name!r} changed the outputs by {difference:.3g}; "
                         "the model input is probably used elsewhere too")
    logger.info("folded the input normalisation into %r (largest output change %.2g)", name, difference)
    return folded, new_splits

"""``convert``: swap a model's Linear/Conv1d/Conv2d layers for their UnIT twins."""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Iterator

import torch
import torch.nn as nn
from torch.nn.modules.lazy import LazyModuleMixin

from .config import UnITConfig
from .layers import UNIT_LAYERS, UnITConv1d, UnITConv2d, UnITLinear, UnITLayerMixin

logger = logging.getLogger(__name__)

# Exact types converted. Subclasses (e.g. the out-projection inside nn.MultiheadAttention) are
# left alone: their owners call F.linear with their weights directly.
_TWINS = {nn.Linear: UnITLinear, nn.Conv1d: UnITConv1d, nn.Conv2d: UnITConv2d}


def unit_layers(model: nn.Module) -> Iterator[tuple[str, UnITLayerMixin]]:
    """``(qualified name, layer)`` of every UnIT layer in ``model``, in registration order."""
    for name, module in model.named_modules():
        if isinstance(module, UNIT_LAYERS):
            yield name, module


def convert(model: nn.Module, config: UnITConfig | None = None, *, ignored_layers: Iterable = (),
            inplace: bool = False) -> nn.Module:
    """Return ``model`` with every nn.Linear / nn.Conv1d / nn.Conv2d replaced by its UnIT twin.

    Args:
        model: any nn.Module (a single layer works too: its twin is returned).
        config: the :class:`UnITConfig` of the new layers (default ``UnITConfig()``).
        ignored_layers: layers to keep as they are, by qualified name (``"features.0"``) or as
            module objects.
        inplace: modify ``model`` itself (its Parameters are reused) instead of a deep copy.

    The twins hold the same parameters; layers pruned with ``torch.nn.utils.prune`` become plain
    layers holding the effective (masked) weight. Thresholds start at 0, so eval outputs equal the
    original model's. No hooks are added. Unsupported options (``padding_mode`` other than
    ``'zeros'``, non-float32 weights, uninitialized lazy layers) raise ``ValueError``/``TypeError``
    naming the layer, before anything is modified.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"convert expects an nn.Module, got {type(model).__name__}")
    config = config if config is not None else UnITConfig()
    ignored_names, ignored_modules = _split_ignored(model, ignored_layers)

    targets = []
    for name, module in model.named_modules():
        if isinstance(module, LazyModuleMixin) and module.has_uninitialized_params():
            raise ValueError(f"layer {name or type(module).__name__!r} is an uninitialized lazy layer: "
                             "run one forward pass before convert")
        if type(module) in _TWINS and name not in ignored_names and id(module) not in ignored_modules:
            _check_convertible(name, module)
            targets.append(name)
    if not targets:
        logger.warning("convert: no nn.Linear/nn.Conv1d/nn.Conv2d layer to convert in %s", type(model).__name__)

    result = model if inplace else copy.deepcopy(model, _detached_copies(model))
    for name in targets:
        original = result.get_submodule(name) if name else result
        twin = _TWINS[type(original)].from_dense(original, config, name=name or type(original).__name__.lower())
        if original._forward_hooks or original._forward_pre_hooks or original._backward_hooks:
            logger.warning("convert: hooks on layer %r are not carried over to its UnIT twin", name)
        if not name:
            return twin
        parent_name, _, child_name = name.rpartition(".")
        setattr(result.get_submodule(parent_name) if parent_name else result, child_name, twin)
    logger.info("convert: %d layers converted (%s)", len(targets), config.approx)
    return result


def _detached_copies(model: nn.Module) -> dict[int, torch.Tensor]:
    """A deepcopy memo for tensors deepcopy refuses: computed (non-leaf) attributes such as the
    masked ``weight`` that torch.nn.utils.prune keeps on a module."""
    memo = {}
    for module in model.modules():
        for value in vars(module).values():
            if isinstance(value, torch.Tensor) and not value.is_leaf:
                memo[id(value)] = value.detach().clone()
    return memo


def _split_ignored(model: nn.Module, ignored_layers: Iterable) -> tuple[set[str], set[int]]:
    if isinstance(ignored_layers, (str, nn.Module)):
        ignored_layers = [ignored_layers]
    names, modules = set(), set()
    known = dict(model.named_modules())
    for item in ignored_layers:
        if isinstance(item, str):
            if item not in known:
                raise ValueError(f"ignored_layers: no layer named {item!r} in the model "
                                 f"(names look like {sorted(n for n in known if n)[:5]})")
            names.add(item)
        elif isinstance(item, nn.Module):
            modules.add(id(item))
        else:
            raise TypeError(f"ignored_layers takes layer names or modules, got {type(item).__name__}")
    return names, modules


def _check_convertible(name: str, module: nn.Module) -> None:
    label = name or type(module).__name__
    weight = getattr(module, "weight_orig", None)
    weight = weight if weight is not None else module.weight
    if weight.dtype != torch.float32:
        raise TypeError(f"layer {label!r}: UnIT layers are float32, got weights of dtype {weight.dtype} "
                        "(call model.float() before convert)")
    padding_mode = getattr(module, "padding_mode", "zeros")
    if padding_mode != "zeros":
        raise ValueError(f"layer {label!r}: padding_mode={padding_mode!r} is not supported by UnIT (only 'zeros')")


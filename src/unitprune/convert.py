"""``convert``: swap a model's Linear/Conv1d/Conv2d layers for their UnIT twins; ``strip``: undo it.

Only layers of exactly the types ``nn.Linear``, ``nn.Conv1d`` and ``nn.Conv2d`` (with
``padding_mode='zeros'``) are converted. Every other layer that multiplies (Conv3d,
ConvTranspose*, Bilinear, MultiheadAttention, RNN/LSTM/GRU, subclasses of Linear/Conv, ignored
layers) stays a dense torch layer: ``convert`` logs one warning naming each and why, and
:func:`unitprune.mac_report` counts their MACs (and those of functional calls such as
``torch.matmul`` in a ``forward``) as dense, executed MACs of the whole model.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Iterator

import torch
import torch.nn as nn
import torch.nn.utils.prune as torch_prune
from torch.nn.modules.lazy import LazyModuleMixin

from .config import UnITConfig
from .layers import (UNIT_LAYERS, UnITConv1d, UnITConv2d, UnITLayerMixin, UnITLinear, _effective_parameter,
                     check_finite_parameters)

logger = logging.getLogger(__name__)

# Exact types converted. Subclasses (e.g. the out-projection inside nn.MultiheadAttention) are
# left alone: their owners call F.linear with their weights directly.
_TWINS = {nn.Linear: UnITLinear, nn.Conv1d: UnITConv1d, nn.Conv2d: UnITConv2d}
#: The torch layer each UnIT layer is a twin of (what :func:`strip` puts back).
_DENSE_OF = {UnITLinear: nn.Linear, UnITConv1d: nn.Conv1d, UnITConv2d: nn.Conv2d}
#: Module types that multiply and accumulate but that UnIT does not convert (why, for the warning).
_DENSE_MAC_TYPES = (
    (nn.modules.conv._ConvTransposeNd, "transposed convolutions are not supported by UnIT"),
    (nn.Conv3d, "3-d convolutions are not supported by UnIT"),
    (nn.Bilinear, "bilinear layers are not supported by UnIT"),
    (nn.MultiheadAttention, "attention computes with its weights directly (F.multi_head_attention_forward)"),
    (nn.RNNBase, "recurrent layers are not supported by UnIT"),
    (nn.RNNCellBase, "recurrent cells are not supported by UnIT"),
    (nn.Linear, "a subclass of nn.Linear (its owner may use the weight directly): only exact types convert"),
    (nn.modules.conv._ConvNd, "a convolution subclass: only exact nn.Conv1d/nn.Conv2d convert"),
)


def require_module(model, where: str) -> None:
    """Raise TypeError unless ``model`` is an nn.Module (the first check of every public function)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"{where} expects an nn.Module, got {type(model).__name__}")


def unit_layers(model: nn.Module) -> Iterator[tuple[str, UnITLayerMixin]]:
    """``(qualified name, layer)`` of every UnIT layer in ``model``, in registration order."""
    require_module(model, "unitprune")
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
    require_module(model, "convert")
    if config is not None and not isinstance(config, UnITConfig):
        raise TypeError(f"convert: config must be a unitprune.UnITConfig, got {type(config).__name__} {config!r}")
    if not isinstance(inplace, bool):
        raise TypeError(f"convert: inplace must be True or False, got {inplace!r}")
    config = config if config is not None else UnITConfig()
    ignored_names, ignored_modules = _split_ignored(model, ignored_layers)

    targets, left_dense = [], []
    for name, module in model.named_modules():
        if isinstance(module, LazyModuleMixin) and module.has_uninitialized_params():
            raise ValueError(f"layer {name or type(module).__name__!r} is an uninitialized lazy layer: "
                             "run one forward pass before convert")
        if isinstance(module, UNIT_LAYERS):
            continue
        ignored = name in ignored_names or id(module) in ignored_modules
        if type(module) in _TWINS and not ignored:
            _check_convertible(name, module)
            targets.append(name)
        elif not any(name.startswith(outer + ".") or not outer for outer, _ in left_dense):
            reason = "in ignored_layers" if ignored and type(module) in _TWINS else _dense_reason(module)
            if reason is not None:
                left_dense.append((name, f"{type(module).__name__}: {reason}"))
    if not targets:
        logger.warning("convert: no nn.Linear/nn.Conv1d/nn.Conv2d layer to convert in %s", type(model).__name__)
    if left_dense:
        logger.warning("convert: %d layer(s) that multiply stay dense torch layers (mac_report counts their MACs "
                       "as executed): %s", len(left_dense),
                       "; ".join(f"{name or '(model)'!r} ({why})" for name, why in left_dense))

    result = model if inplace else copy.deepcopy(model, _detached_copies(model))
    for name in targets:
        original = result.get_submodule(name) if name else result
        twin = _TWINS[type(original)].from_dense(original, config, name=name or type(original).__name__.lower())
        dropped = _hooks_not_carried_over(original)
        if dropped:
            logger.warning("convert: hooks on layer %r are not carried over to its UnIT twin: %s", name,
                           ", ".join(dropped))
        if not name:
            return twin
        parent_name, _, child_name = name.rpartition(".")
        setattr(result.get_submodule(parent_name) if parent_name else result, child_name, twin)
    logger.info("convert: %d layers converted (%s)", len(targets), config.approx)
    return result


def strip(model: nn.Module, *, inplace: bool = False) -> nn.Module:
    """The plain torch model: every UnIT layer replaced by its nn.Linear / nn.Conv1d / nn.Conv2d.

    The dense layers hold the same parameter values (the same Parameter objects with
    ``inplace=True``, else a deep copy); thresholds, MAC counters and the BinTree are dropped.
    This is the model to hand to ``torch.export``, ``torch.onnx.export``, ``torch.jit`` or
    ``torch.compile(fullgraph=True)``: it computes the dense layers (no skipping).
    A model without UnIT layers is returned unchanged (copied unless ``inplace``).
    """
    require_module(model, "strip")
    result = model if inplace else copy.deepcopy(model)
    if isinstance(result, UNIT_LAYERS):
        return _dense_twin(result)
    for name, layer in list(unit_layers(result)):
        parent_name, _, child_name = name.rpartition(".")
        setattr(result.get_submodule(parent_name) if parent_name else result, child_name, _dense_twin(layer))
    return result


def _dense_twin(layer: UnITLayerMixin) -> nn.Module:
    dense_type = next(base for unit_type, base in _DENSE_OF.items() if isinstance(layer, unit_type))
    if dense_type is nn.Linear:
        dense = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None, device="meta")
    else:
        dense = dense_type(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                           padding=layer.padding, dilation=layer.dilation, groups=layer.groups,
                           bias=layer.bias is not None, padding_mode=layer.padding_mode, device="meta")
    dense.weight = layer.weight
    dense.bias = layer.bias
    dense.train(layer.training)
    for hooks in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks"):
        getattr(dense, hooks).update(getattr(layer, hooks))
    return dense


def _dense_reason(module: nn.Module) -> str | None:
    """Why a module that multiplies is left dense, or ``None`` if it does no MACs of its own."""
    for module_type, reason in _DENSE_MAC_TYPES:
        if isinstance(module, module_type):
            return reason
    return None


def _hooks_not_carried_over(module: nn.Module) -> list[str]:
    """Names of the module's hooks a twin loses; the pre-hooks of torch.nn.utils.prune are not lost
    (the twin holds the effective, masked weight)."""
    hooks = [*module._forward_pre_hooks.values(), *module._forward_hooks.values(), *module._backward_hooks.values()]
    return [getattr(hook, "__qualname__", type(hook).__name__) for hook in hooks
            if not isinstance(hook, torch_prune.BasePruningMethod)]


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
    check_finite_parameters(label, {"weight": _effective_parameter(module, "weight"),
                                    "bias": _effective_parameter(module, "bias") if module.bias is not None else None})


"""Physical channel removal with Torch-Pruning's DependencyGraph, keeping optimizer state aligned.

``remove_channels(model, graph, drop, example_input)`` removes the channels ``drop[group]`` of each
channel group from every module that holds them: the conv/linear producing them (weights, bias),
the BatchNorm after it (affine parameters and running statistics), a depthwise conv continuing the
group, the next layer's input channels (also through a flatten into a linear layer, where each
channel is ``h * w`` features) and every layer coupled by a residual add. Torch-Pruning
(``torch_pruning.DependencyGraph``, built for exactly this) finds and slices the dependent
modules; this module only chooses the root layer of each group and checks that the resulting
shapes are the ones the :class:`~unitprune.shrink.resources.ResourceGraph` predicts.

Torch-Pruning replaces each sliced ``nn.Parameter`` by a new one, which an optimizer does not
know. :func:`remove_channels` therefore takes an optional optimizer and optimizer factory: the
per-parameter state (e.g. Adam's ``exp_avg`` / ``exp_avg_sq``) is sliced with the same kept indices,
derived here from the graph (which dimension of which parameter holds which group), and a new
optimizer over the new parameters receives it.
"""

from __future__ import annotations

import logging
from typing import Callable

import torch
from torch import nn

from ..extras import require

from .resources import ResourceGraph

__all__ = ["remove_channels", "parameter_channel_dims", "kept_indices"]

logger = logging.getLogger(__name__)


def parameter_channel_dims(model: nn.Module, graph: ResourceGraph) -> dict[str, list[tuple[int, int, int]]]:
    """For each parameter/buffer name: ``(dim, group, elements per channel)`` of the sliced dimensions."""
    dims: dict[str, list[tuple[int, int, int]]] = {}
    for layer in graph.layers:
        out_group, in_group = graph.find(layer.out_group), graph.find(layer.in_group)
        weight = [(0, out_group, 1)]
        if not layer.depthwise and layer.groups == 1:
            weight.append((1, in_group, layer.in_per_channel))
        dims[f"{layer.name}.weight"] = weight
        dims[f"{layer.name}.bias"] = [(0, out_group, 1)]
        if layer.bn_name:
            for part in ("weight", "bias", "running_mean", "running_var"):
                dims[f"{layer.bn_name}.{part}"] = [(0, out_group, 1)]
    return dims


def kept_indices(size: int, drop: list[int], per_channel: int = 1) -> torch.Tensor:
    """Indices of the kept elements of a dimension of ``size * per_channel`` (channel-major)."""
    dropped = set(drop)
    keep = [c for c in range(size) if c not in dropped]
    return torch.tensor([c * per_channel + s for c in keep for s in range(per_channel)], dtype=torch.long)


def _slice(tensor: torch.Tensor, dims, graph_sizes: dict[int, int], drop: dict[int, list[int]]) -> torch.Tensor:
    for dim, group, per_channel in dims:
        if group in drop and tensor.dim() > dim:
            tensor = tensor.index_select(dim, kept_indices(graph_sizes[group], drop[group], per_channel))
    return tensor


def remove_channels(
    model: nn.Module,
    graph: ResourceGraph,
    drop: dict[int, list[int]],
    example_input: torch.Tensor,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    make_optimizer: Callable[[list[nn.Parameter], list[nn.Parameter]], torch.optim.Optimizer] | None = None,
    extra_parameters: dict[int, nn.Parameter] | None = None,
) -> tuple[dict[int, nn.Parameter], torch.optim.Optimizer | None]:
    """Remove channels ``drop[group]`` (indices into the current channels) from ``model`` in place.

    ``graph.group_sizes`` is updated to the new sizes. ``extra_parameters`` are per-group vectors
    (the gate parameters) sliced the same way; the sliced ones are returned. With ``optimizer``
    and ``make_optimizer(model_parameters, extra_parameters)``, a new optimizer is returned with
    the old state sliced into it. Hooks on the model must be removed by the caller first (the
    dependency graph is traced through a forward pass). The model's train/eval mode is kept.

    Raises ``ValueError`` when a group would lose every channel or is not prunable.
    """
    drop = _checked_drop(graph, drop)
    extra_parameters = dict(extra_parameters or {})
    if not drop:
        return extra_parameters, optimizer
    dims = parameter_channel_dims(model, graph)
    old_state = _optimizer_state(model, extra_parameters, optimizer)
    was_training = model.training
    try:
        _prune_groups(model, graph, drop, example_input)
    finally:  # Torch-Pruning's tracing leaves every module in eval mode: a model being trained stays in training
        model.train(was_training)
    sizes_before = dict(graph.group_sizes)
    for group in drop:
        graph.group_sizes[group] -= len(drop[group])
    _check_shapes(model, graph)
    sliced_extra = {group: (nn.Parameter(param.detach().index_select(0, kept_indices(sizes_before[group], drop[group])))
                            if group in drop else param)
                    for group, param in extra_parameters.items()}
    new_optimizer = None
    if optimizer is not None and make_optimizer is not None:
        named_after = dict(model.named_parameters())
        new_optimizer = make_optimizer(list(named_after.values()), list(sliced_extra.values()))
        for name, state in old_state.items():
            new_dims = [(0, name[1], 1)] if isinstance(name, tuple) else dims.get(name, [])
            state = {k: (_slice(v, new_dims, sizes_before, drop) if torch.is_tensor(v) and v.dim() > 0 else v)
                     for k, v in state.items()}
            param = sliced_extra[name[1]] if isinstance(name, tuple) else named_after[name]
            for key, value in state.items():
                if torch.is_tensor(value) and value.dim() > 0 and value.shape != param.shape:
                    raise RuntimeError(f"optimizer state {key} of {name}: {tuple(value.shape)} != {tuple(param.shape)}")
            new_optimizer.state[param] = state
    logger.debug("removed %s channels", {g: len(i) for g, i in drop.items()})
    return sliced_extra, new_optimizer


def _checked_drop(graph: ResourceGraph, drop: dict[int, list[int]]) -> dict[int, list[int]]:
    """``drop`` by root group, indices sorted and unique; ValueError for a group that is not
    prunable, would lose every channel, or an index out of range."""
    drop = {graph.find(g): sorted(set(idx)) for g, idx in drop.items() if idx}
    prunable = set(graph.prunable_groups())
    for group, idx in drop.items():
        if group not in prunable:
            raise ValueError(f"channel group {group} is not prunable (network input/output or grouped conv)")
        if len(idx) >= graph.group_sizes[group]:
            raise ValueError(f"cannot remove all {graph.group_sizes[group]} channels of group {group} "
                             f"(layers {[l.name for l in graph.layers_of(group)]})")
        if min(idx) < 0 or max(idx) >= graph.group_sizes[group]:
            raise ValueError(f"channel index out of range for group {group} of {graph.group_sizes[group]}")
    return drop


def _optimizer_state(model: nn.Module, extra_parameters: dict[int, nn.Parameter],
                     optimizer: torch.optim.Optimizer | None) -> dict:
    """The optimizer's state by parameter name (``("extra", group)`` for the extra parameters),
    taken before the parameters are replaced."""
    if optimizer is None:
        return {}
    state = {name: optimizer.state[param] for name, param in model.named_parameters() if param in optimizer.state}
    state.update({("extra", group): optimizer.state[param] for group, param in extra_parameters.items()
                  if param in optimizer.state})
    return state


def _prune_groups(model: nn.Module, graph: ResourceGraph, drop: dict[int, list[int]],
                  example_input: torch.Tensor) -> None:
    """Remove the channels with Torch-Pruning's dependency graph (every coupled layer follows)."""
    modules = dict(model.named_modules())
    tp = require("torch_pruning", "shrink", "removing channels (unitprune.shrink)")
    dependency = tp.DependencyGraph().build_dependency(model, example_inputs=example_input, verbose=False)
    for group, idx in drop.items():
        root_layer = graph.layers_of(group)[0]
        fn = tp.prune_conv_out_channels if root_layer.kind == "conv" else tp.prune_linear_out_channels
        pruning_group = dependency.get_pruning_group(modules[root_layer.name], fn, idxs=idx)
        if not dependency.check_pruning_group(pruning_group):
            raise ValueError(f"Torch-Pruning refuses to prune group {group} (layer {root_layer.name})")
        pruning_group.prune()


def _check_shapes(model: nn.Module, graph: ResourceGraph) -> None:
    """Every conv/linear has the channel counts the graph says (Torch-Pruning agreed with us)."""
    modules = dict(model.named_modules())
    for layer in graph.layers:
        module = modules[layer.name]
        out_expected = graph.group_sizes[graph.find(layer.out_group)]
        out_actual = module.out_channels if layer.kind == "conv" else module.out_features
        if out_actual != out_expected:
            raise RuntimeError(f"layer {layer.name}: {out_actual} output channels after removal, expected {out_expected}")
        if layer.kind == "linear":
            in_expected = graph.group_sizes[graph.find(layer.in_group)] * layer.in_per_channel
            if module.in_features != in_expected:
                raise RuntimeError(f"layer {layer.name}: {module.in_features} inputs after removal, expected {in_expected}")

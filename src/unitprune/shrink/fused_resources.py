"""Peak SRAM of a model exported with the fused, row-streamed plan
(``unitprune.export_c(..., execution="fused")``; :mod:`unitprune.mcu.export.fused_plan`).

``resources(model, input_shape, execution="fused")`` comes here for its SRAM terms (flash and MACs
do not depend on the execution). The model is traced with ``torch.fx`` and shapes; its spatial
modules become the plan's stages and :func:`~unitprune.mcu.export.fused_plan.fused_buffers`, the
exporter's own rule, sizes the windows, the row buffer, the counters, the conv row scratch, the
streamed Linear's sums and the tail after it (an MLP head's vectors and scratch). The input is
read row by row, so it is not in SRAM (``input_bytes`` 0).
"""

from __future__ import annotations

import torch
import torch.fx
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from ..activations import FATReLU
from ..mcu.export.fused_axis import AXES, choose_axis
from ..mcu.export.fused_plan import FusedChain, Stage, fused_buffers, with_fused_rows, with_pooled_convs

__all__ = ["fused_chain_of_model", "fused_chain_of_traced", "fused_sram_terms", "shape_traced"]

_ELEMENTWISE = (nn.ReLU, nn.ReLU6, FATReLU, nn.BatchNorm1d, nn.BatchNorm2d, nn.Dropout, nn.Identity)
_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)
_FUNCTIONS = {"relu", "relu_", "flatten"}


def _shape3(shape) -> tuple[int, int, int]:
    shape = tuple(int(v) for v in shape)
    return shape if len(shape) == 3 else (shape[0], 1, shape[1]) if len(shape) == 2 else (1, 1, shape[0])


def _pair(value, axis: int = 0) -> int:
    """The vertical (``axis`` 0) or horizontal (1) entry of a kernel/stride/padding/dilation argument."""
    return int(value[axis]) if isinstance(value, (tuple, list)) else int(value)


def _along(shape: tuple[int, int, int], axis: str) -> tuple[int, int, int]:
    """``(C, H, W)``, or ``(C, W, H)`` streamed along the width (the transposed model's shape)."""
    return shape if axis == "height" else (shape[0], shape[2], shape[1])


def shape_traced(model: nn.Module, input_shape: tuple[int, ...]) -> torch.fx.GraphModule:
    """``model`` traced with ``torch.fx``, every node's shape recorded on a zero input of
    ``(1, *input_shape)`` (in eval mode; the model's mode is restored)."""
    graph_module = torch.fx.symbolic_trace(model)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            ShapeProp(graph_module).propagate(torch.zeros(1, *input_shape))
    finally:
        model.train(was_training)
    return graph_module


def fused_chain_of_model(model: nn.Module, input_shape: tuple[int, ...],
                         axis: str = "height") -> tuple[FusedChain, int]:
    """The fused chain of ``model`` (traced on a zero input) streamed along ``axis`` (the width: the
    chain of the transposed model, :mod:`unitprune.mcu.export.fused_axis`) and the final Linear's
    outputs (0: none).

    The Linears after the first (an MLP head) are the plan's tail, run layer by layer: their outputs
    are the chain's ``tail_out``.

    Raises ``ValueError`` naming the module the fused plan cannot stream (a spatial op after the
    Linear or the flatten, an unsupported module or function).
    """
    return fused_chain_of_traced(shape_traced(model, input_shape), input_shape, axis)


def fused_chain_of_traced(graph_module: torch.fx.GraphModule, input_shape: tuple[int, ...],
                          axis: str = "height") -> tuple[FusedChain, int]:
    """:func:`fused_chain_of_model` of a model already traced by :func:`shape_traced`."""
    modules = dict(graph_module.named_modules())
    stages: list[Stage] = []
    linear_out, flat = 0, False
    tail_out: list[int] = []
    for node in graph_module.graph.nodes:
        if node.op in ("placeholder", "output"):
            continue
        if node.op == "call_module":
            module = modules[node.target]
            if isinstance(module, _ELEMENTWISE):
                continue
            if isinstance(module, nn.Flatten):
                flat = True
                continue
            if isinstance(module, nn.Linear):
                if linear_out:  # an MLP head: the tail after the streamed Linear, layer by layer
                    tail_out.append(module.out_features)
                else:
                    linear_out = module.out_features
                continue
            if linear_out or flat:
                raise ValueError(f"fused: {node.target} after a flatten or a Linear cannot be streamed")
            in_shape = _along(_shape3(node.args[0].meta["tensor_meta"].shape[1:]), axis)
            out_shape = _along(_shape3(node.meta["tensor_meta"].shape[1:]), axis)
            # the entry of a 2-d argument along the streamed axis; a 1-d op's only entry is its width's
            a = 1 if axis == "width" else 0
            if isinstance(module, (nn.Conv1d, nn.Conv2d)):
                one_d = isinstance(module, nn.Conv1d)
                flat = one_d and axis == "height"  # a Conv1d streamed along its height (1): one row
                a = 0 if one_d else a
                rows = 1 if flat else _pair(module.dilation, a) * (_pair(module.kernel_size, a) - 1) + 1
                pad = 0 if flat else _pair(module.padding, a)
                stride = 1 if flat else _pair(module.stride, a)
                stages.append(Stage(len(stages), node.target, "conv", in_shape[0], in_shape[1], in_shape[2], rows,
                                    stride, pad, pad, *out_shape))
            elif isinstance(module, _POOLS):
                one_d = isinstance(module, (nn.MaxPool1d, nn.AvgPool1d, nn.AdaptiveAvgPool1d))
                if one_d and axis == "height":
                    rows = stride = 1
                elif isinstance(module, (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)):
                    rows = stride = in_shape[1] // out_shape[1]
                else:  # the stride as the exporter's stage has it (an in-place pool needs it)
                    rows = _pair(module.kernel_size, 0 if one_d else a)
                    stride = _pair(module.stride, 0 if one_d else a)
                kind = "maxpool" if isinstance(module, (nn.MaxPool1d, nn.MaxPool2d)) else "avgpool"
                stages.append(Stage(len(stages), node.target, kind, in_shape[0], in_shape[1], in_shape[2], rows,
                                    stride, 0, 0, *out_shape))
            else:
                raise ValueError(f"fused: module {node.target} ({type(module).__name__}) has no fused form")
        elif node.op == "call_function" and getattr(node.target, "__name__", "") in _FUNCTIONS:
            flat = flat or node.target.__name__ == "flatten"
        elif node.op == "call_method" and node.target in ("relu", "relu_", "flatten", "view", "reshape"):
            flat = flat or node.target != "relu" and node.target != "relu_"
        else:
            raise ValueError(f"fused: graph node {node.name} ({node.op} {node.target}) has no fused form")
    chain = FusedChain(_along(_shape3(input_shape), axis), (), tuple(stages), 0 if linear_out else None, (),
                       tail_out=tuple(tail_out))
    return chain, linear_out


def fused_sram_terms(model: nn.Module, input_shape: tuple[int, ...], fused_rows: int = 1,
                     fused_axis: str = "auto", pooled=()) -> dict:
    """The fused plan's SRAM terms of ``model`` without the descriptors, for the export's
    ``fused_rows`` and ``fused_axis`` (chosen as the exporter does: ``choose_axis``):
    ``arena_bytes`` (windows, row blocks, row buffers, counters), ``scratch_bytes`` (conv scratch,
    the Linear's and a global pool's sums), ``output_bytes``, ``peak_op`` (the largest window) and
    ``chain`` (the plan's :class:`FusedChain`). ``pooled``: the convs (module names) that take the
    max-pool after them on their accumulators where the pool reads their steps in place
    (:func:`~unitprune.mcu.export.fused_plan.with_pooled_convs`; the axis is chosen without them,
    as the exporter does)."""
    if fused_axis not in AXES:
        raise ValueError(f"fused_axis must be one of {', '.join(AXES)}, got {fused_axis!r}")
    axes = ["height", "width"] if fused_axis == "auto" else [fused_axis]
    if len(input_shape) < 2:
        if fused_axis == "width":
            raise ValueError(f"fused_axis='width': the input {tuple(input_shape)} has no width to stream")
        axes = ["height"]
    traced = {axis: fused_chain_of_model(model, input_shape, axis) for axis in axes}
    chains = {axis: with_fused_rows(chain, fused_rows) for axis, (chain, _) in traced.items()}
    linear_out = traced[axes[0]][1]
    chain = with_pooled_convs(chains[choose_axis(chains, linear_out)], pooled)
    parts = fused_buffers(chain, linear_out)
    peak = max(chain.stages, key=lambda s: s.window_bytes).name if chain.stages else "input"
    return {"chain": chain, "arena_bytes": parts["arena"], "scratch_bytes": parts["scratch"],
            "output_bytes": parts["output"], "peak_op": peak}

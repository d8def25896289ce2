"""The fused plan's peak SRAM as a function of the channel counts (``MCUBudget(execution="fused")``).

The fused, row-streamed export (:mod:`unitprune.mcu.export.fused_plan`) keeps, per spatial stage,
a window of ``C * S * W`` bytes (``C`` the stage's input channels), a row buffer of the largest
row ``C * W``, the global pools' int32 sums ``4 * C * OW``, and constants (row counters, the conv
row scratch, the streamed Linear's sums ``4 * out``; an MLP head after it: its vectors and
``4 * out`` scratch, the larger of them and the windows / the conv scratch). Every term is linear
in one channel group's count, the row buffer and the tail are maxima of such terms, and the streamed axis is the one whose plan is smaller:
a piecewise-linear function of the counts, the fused counterpart of the layer-by-layer arena of
:class:`~.resources.ResourceGraph`.

:class:`FusedCounts` holds the plan's stages at the traced widths and the channel group of every
stage's input and output; :meth:`FusedCounts.terms` puts the given counts (ints, floats or torch
tensors) into the stages and evaluates the exporter's own :func:`~unitprune.mcu.export.fused_plan.fused_buffers`
on them, so the integer counts give exactly ``unitprune.resources(..., execution="fused")`` of the
model with those widths, and tensor counts give the same terms with their gradients (the row
buffer's maximum and the axis choice pass the gradient of the term that is largest / smallest).
The plan counted is the one with one output row per conv step (``fused_rows=1``): the least SRAM;
an export with more rows per step needs more.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

import torch
import torch.fx

from ..mcu.export.fused_axis import fused_sram_bytes
from ..mcu.export.fused_plan import FusedChain, fused_buffers, with_fused_rows
from .fused_resources import fused_chain_of_traced

__all__ = ["FusedCounts", "fused_counts_of"]


def _value(x) -> float:
    return float(x.detach()) if isinstance(x, torch.Tensor) else float(x)


@dataclass(frozen=True)
class FusedCounts:
    """The fused plan of a traced model, per streamed axis, with the channel group of each stage.

    Attributes:
        chains: ``{axis: FusedChain}`` at the traced widths, one output row per conv step (the
            axes the export's ``fused_axis="auto"`` compares: height, and width for a 2-d input).
        stage_groups: per stage, the channel groups of its input and its output.
        input_group: the network input's group (the input row's channels).
        linear_out: outputs of the streamed Linear at the traced width (0: none; the last stage's
            rows are the output).
        linear_group, tail_groups: the output channel groups of the streamed Linear and of the
            Linears after it (the tail, layer by layer): an MLP head's hidden width is a count too.
    """

    chains: dict[str, FusedChain]
    stage_groups: tuple[tuple[int, int], ...]
    input_group: int
    linear_out: int
    linear_group: int | None = None  # the streamed Linear's output group (None: no Linear)
    tail_groups: tuple[int, ...] = ()  # the output groups of the tail's Linears (an MLP head)

    def chain_at(self, axis: str, count: Callable[[int], Any]) -> FusedChain:
        """The plan of ``axis`` with every stage's channels set to ``count(group)``."""
        chain = self.chains[axis]
        stages = tuple(replace(stage, channels=count(g_in), out_channels=count(g_out))
                       for stage, (g_in, g_out) in zip(chain.stages, self.stage_groups))
        c, h, w = chain.input_shape
        return replace(chain, stages=stages, input_shape=(count(self.input_group), h, w),
                       tail_out=tuple(count(g) for g in self.tail_groups))

    def linear_at(self, count: Callable[[int], Any]):
        """The streamed Linear's outputs at the counts (0: no Linear)."""
        return count(self.linear_group) if self.linear_group is not None else self.linear_out

    def terms(self, count: Callable[[int], Any]) -> dict[str, Any]:
        """The fused plan's SRAM terms without the descriptors at the counts ``count(group)``:
        ``arena_bytes``, ``scratch_bytes``, ``output_bytes``, ``peak_op`` and ``axis`` (the
        streamed axis, chosen as the exporter's ``choose_axis``: the smaller plan, the height on a
        tie)."""
        chains = {axis: self.chain_at(axis, count) for axis in self.chains}
        linear_out = self.linear_at(count)
        sizes = {axis: _value(fused_sram_bytes(chain, linear_out)) for axis, chain in chains.items()}
        axis = min(chains, key=lambda a: (sizes[a], a != "height"))
        chain = chains[axis]
        parts = fused_buffers(chain, linear_out)
        peak = max(chain.stages, key=lambda s: _value(s.window_bytes)).name if chain.stages else "input"
        return {"arena_bytes": parts["arena"], "scratch_bytes": parts["scratch"], "output_bytes": parts["output"],
                "peak_op": peak, "axis": axis}


def fused_counts_of(graph_module: torch.fx.GraphModule, input_shape: tuple[int, ...], layers: dict[str, int],
                    input_group: int, find: Callable[[int], int], linear_groups: tuple[int, ...] = ()) -> FusedCounts:
    """The :class:`FusedCounts` of a model traced by :func:`~.fused_resources.shape_traced`.

    ``layers`` maps a conv's module name to its output channel group, ``find`` a group to its root;
    ``linear_groups``: the Linears' output groups in order (the streamed one, then the tail's).
    A conv stage's output is its layer's group; a pool's is its input's; each stage reads the rows
    of the stage before it (a chain). Raises ``ValueError`` naming what the fused plan cannot
    stream (:func:`~.fused_resources.fused_chain_of_traced`).
    """
    axes = ["height", "width"] if len(input_shape) >= 2 else ["height"]
    traced = {axis: fused_chain_of_traced(graph_module, input_shape, axis) for axis in axes}
    chains = {axis: with_fused_rows(chain, 1) for axis, (chain, _) in traced.items()}
    groups, current = [], find(input_group)
    for stage in chains["height"].stages:
        out = find(layers[stage.name]) if stage.kind == "conv" else current
        groups.append((current, out))
        current = out
    linear_groups = [find(g) for g in linear_groups]
    return FusedCounts(chains, tuple(groups), find(input_group), traced["height"][1],
                       linear_groups[0] if linear_groups else None, tuple(linear_groups[1:]))

"""The MCU resource model: flash, peak SRAM and MACs of a model exported in int8.

``resources(model, input_shape)`` returns exact integers; :class:`ResourceGraph` gives the same
numbers as functions of per-channel-group counts, which may be floats or torch tensors (the soft
channel counts of :mod:`unitprune.shrink.gates`), so the resource terms of the loss are
differentiable and the hard numbers come from the very same code.

The model is traced once with ``torch.fx`` (the ops in execution order, with shapes). Each tensor
gets a *channel group*: the channels that must be kept or removed together. A conv/linear output
opens a new group; BatchNorm, ReLU, max-pool, flatten and dropout carry their input's group; a
residual ``add`` and a depthwise conv merge the groups of their operands (union-find), the same
couplings Torch-Pruning's DependencyGraph finds.

What is counted (the int8 contract of docs/fixed_point.md):

* **flash** per conv/linear: int8 weights (``out * in/groups * kh * kw``), an int32 bias per output
  (the exporter always stores one, zeros when the layer has none), the requantization constants
  (int32 multiplier + int8 shift per output: 5 bytes), and with ``unit_tables=True`` the uint8 tau
  table of every conv (one byte per weight). Linear UnIT in ``bitshift`` mode needs no table (the
  129-byte ``table`` / the ``bintree`` variants are not counted). On ``msp430`` without
  ``unit_tables`` (the dense export, layer by layer) ``requant_bytes`` also holds the output stage's threshold
  tables, 512 bytes per output channel of the convs the exporter gives them
  (:func:`unitprune.mcu.requant_table.planned_layers`: the most outputs per channel first, within
  the FRAM left beside the other constants and the code's reserve; every channel's constants
  assumed to fit a table, as the quantizer's do). This is the exporter's
  ``flash_table_bytes`` (``unitprune.mcu.export``; code and embedded samples excluded).
* **SRAM**, the memory plan of the exporter (``unitprune.mcu.export.memory_plan.plan_memory``): ops run in the
  traced order; every op output that is not an alias is an int8 buffer, live from the op that
  writes it to the last op that reads it; ReLU (in place unless its input has another reader or
  is the network input), BatchNorm (folded into the conv before it), flatten/view/dropout/
  identity are aliases. ``arena_bytes`` = the largest sum of live buffers at any op, *without* the
  network input and output (the caller's buffers); ``scratch_bytes`` = the one int32 buffer the
  kernels share, the largest any layer needs (conv ``4 * B * out_w``, the accumulators of one block
  of ``B`` output rows of one output channel; linear ``4 * out_features``). ``B`` is the exporter's
  rule for the conv kernel counted (``unitprune.mcu.export.conv_rows``): with ``unit_tables`` UnIT's
  weight-stationary kernel, ``B = out_h`` by default and ``conv_block_rows`` otherwise; without,
  the dense export's output-stationary kernel, one row (two on the Cortex-M0+/RV32 targets and the
  ``cortex-m`` layout: ``unit_conv2d_dense_s8_mcu32``), fewer only with ``conv_block_rows=1``.
  ``descriptor_bytes`` = the constant kernel
  descriptors in RAM (per conv ``unit_conv2d_params`` + ``unit_requant_s8``, per linear
  ``unit_requant_s8``, sized for ``target``: 16-bit pointers and byte alignment on ``avr``, 24-bit
  table pointers on ``avr-far``, the layout of an AVR export whose tables exceed 64 KB, which
  ``avr`` switches to by itself when ``flash_bytes`` is above the exporter's 65,024-byte near
  limit and within the chip's 262,144 bytes (a larger model cannot be exported at all); the UnIT
  firmware's linear quotient tables, which the resource model does not count, can put a
  model just under the limit over it in the exporter's count).
  ``sram_bytes`` = arena + scratch + descriptors + ``input_bytes`` + ``output_bytes``: the
  exporter's ``peak_sram_with_io_bytes``, all the RAM the firmware's data needs, the network input
  **counted**. The exporter also keeps ``STACK_RESERVE`` bytes for the stack, not included.
* **MACs**: ``out_h * out_w * out * in/groups * kh * kw`` per conv, ``in * out`` per linear (what
  ``torch.utils.flop_counter.FlopCounterMode`` reports / 2); pooling, ReLU and adds are not MACs.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

import torch
import torch.fx
from torch import nn

from ..mcu.export.conv_rows import kernel_block_rows, resource_conv_kernel
from ..mcu.export.memory_plan import conv_scratch_bytes, parse_conv_block_rows
from ..mcu.export.pooled_conv import pool_fits, pools_on
from ..mcu.export.fused_plan import fused_rows_choices, tail_steps
from ..mcu.requant_table import CHANNEL_BYTES, TABLE_TARGETS, planned_layers, room_bytes
from ..mcu.targets.specs import EXPORT_TARGETS, LAYOUTS, STACK_RESERVE, descriptor_bytes
from .fused_counts import FusedCounts, fused_counts_of
from .fused_resources import fused_sram_terms, shape_traced

__all__ = ["Resources", "ResourceGraph", "LayerInfo", "trace_resources", "resources", "RESOURCE_NAMES",
           "CONV_TYPES"]

#: Resource names, in the order budgets and reports use.
RESOURCE_NAMES = ("sram_bytes", "flash_bytes", "macs")
CONV_TYPES = (nn.Conv1d, nn.Conv2d)
_ALIAS_MODULES = (nn.Flatten, nn.Dropout, nn.Identity, nn.BatchNorm1d, nn.BatchNorm2d)
_RELU_MODULES = (nn.ReLU, nn.ReLU6)
_POOL_MODULES = (nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d,
                 nn.AdaptiveAvgPool2d)
_ALIAS_FUNCTIONS = {torch.flatten, torch.reshape, "flatten", "view", "reshape", "contiguous"}
_RELU_FUNCTIONS = {torch.relu, torch.nn.functional.relu, "relu", "relu_"}
_ADD_FUNCTIONS = {operator.add, operator.iadd, torch.add, "add", "add_"}


@dataclass(frozen=True)
class Resources:
    """Exact resource usage of an int8 export (bytes and MACs per inference of one example).

    Attributes:
        flash_bytes: all constants: weight_bytes + bias_bytes + requant_bytes + tau_bytes
            (requant_bytes: with the MSP430 threshold tables, module docstring).
        sram_bytes: arena_bytes + scratch_bytes + descriptor_bytes + input_bytes + output_bytes.
        macs: dense multiply-accumulates.
        arena_bytes, scratch_bytes, descriptor_bytes, input_bytes, output_bytes: the parts of SRAM.
        weight_bytes, bias_bytes, requant_bytes, tau_bytes: the parts of flash.
        peak_op: the op at which the arena peak occurs.
    """

    flash_bytes: int
    sram_bytes: int
    macs: int
    arena_bytes: int
    scratch_bytes: int
    descriptor_bytes: int
    input_bytes: int
    output_bytes: int
    weight_bytes: int
    bias_bytes: int
    requant_bytes: int
    tau_bytes: int
    peak_op: str

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class LayerInfo:
    """One conv/linear layer of the traced graph (channel groups are union-find roots via the graph)."""

    name: str  # module path in the model
    kind: str  # "conv" or "linear"
    in_group: int
    out_group: int
    in_per_channel: int  # linear: features per input channel (the spatial size flattened into it)
    kernel: int  # kh * kw (1 for linear)
    out_spatial: int  # out_h * out_w (1 for linear)
    groups: int
    depthwise: bool
    has_bias: bool  # bias or a folded BatchNorm after it
    bn_name: str | None  # the BatchNorm that directly follows it (folded by the exporter)


@dataclass
class _Buffer:
    name: str
    group: int
    per_channel: int  # elements per channel of the group
    born: int
    dies: int
    io: bool = False  # the network input or output: the caller's buffer, not in the arena


@dataclass
class ResourceGraph:
    """The traced model: layers, activation buffers and channel groups.

    ``counts`` maps a channel-group id to a channel count (int, float or a torch scalar tensor);
    groups not in ``counts`` keep their traced size. ``base_counts()`` are the traced sizes.
    """

    layers: list[LayerInfo]
    buffers: list[_Buffer]
    op_names: list[str]
    op_scratch: list[tuple[int | None, int, int]]  # per op: (group, bytes per channel, constant bytes)
    group_sizes: dict[int, int]
    parent: dict[int, int]
    input_group: int
    output_group: int
    fixed_groups: set[int] = field(default_factory=set)
    conv_planes: dict[int, tuple[int, int]] = field(default_factory=dict)  # conv op index -> (out_h, out_w)
    #: convs whose output only a max-pool (window = stride) reads, through ReLU/BatchNorm: (conv op
    #: index, conv buffer, pool buffer, pool window rows); the exporter's dense convs write the pooled
    #: plane there (unitprune.mcu.export.pooled_conv)
    pooled: list[tuple[int, str, str, int]] = field(default_factory=list)
    fused: Any = None  # the fused plan's terms (fused_counts.FusedCounts), or why the plan cannot stream the model

    def find(self, group: int) -> int:
        while self.parent[group] != group:
            group = self.parent[group]
        return group

    def base_counts(self) -> dict[int, int]:
        return {g: self.group_sizes[g] for g in self.groups()}

    def groups(self) -> list[int]:
        return sorted({self.find(g) for g in self.group_sizes})

    def prunable_groups(self) -> list[int]:
        """Groups whose channels may be removed: not the network input or output, not fixed."""
        fixed = {self.find(g) for g in self.fixed_groups} | {self.find(self.input_group), self.find(self.output_group)}
        return [g for g in self.groups() if g not in fixed]

    def layers_of(self, group: int) -> list[LayerInfo]:
        """Conv/linear layers whose output channels are ``group`` (not depthwise ones)."""
        return [l for l in self.layers if self.find(l.out_group) == self.find(group) and not l.depthwise]

    def _count(self, counts: Mapping[int, Any], group: int):
        root = self.find(group)
        return counts.get(root, self.group_sizes[root])

    def evaluate(self, counts: Mapping[int, Any] | None = None, *, unit_tables: bool = False,
                 target: str = "avr", conv_block_rows=None, execution: str = "layers") -> dict[str, Any]:
        """Resource terms for the given channel counts: ints for int counts, tensors for tensors.

        ``conv_block_rows``: the exporter's option (None/"plane": whole output planes, "min": 1
        row, an int): the conv scratch is ``4 * B * out_w``, ``B`` the rows the counted kernel
        holds (module docstring). ``execution="fused"``: the SRAM terms
        of the fused, row-streamed plan with one output row per conv step (:mod:`.fused_counts`;
        ``input_bytes`` 0, the input read row by row; ``conv_block_rows`` does not apply), equal
        to ``resources(..., execution="fused")`` of the model with these counts.
        Returns a dict with the fields of :class:`Resources` (``peak_op``: the op name of the
        arena peak, computed from the values as given).
        """
        counts = counts or {}
        c = lambda g: self._count(counts, g)  # noqa: E731
        block_rows = parse_conv_block_rows(conv_block_rows)
        weight = bias = requant = tau = macs = 0
        convs = linears = 0
        for layer in self.layers:
            cout = c(layer.out_group)
            if layer.depthwise:
                cin_per_group = 1
            elif layer.groups == 1:
                cin_per_group = c(layer.in_group) * layer.in_per_channel
            else:  # grouped: fixed channel counts
                cin_per_group = self.group_sizes[layer.in_group] // layer.groups
            w = cout * cin_per_group * layer.kernel
            weight = weight + w
            macs = macs + w * layer.out_spatial
            bias = bias + 4 * cout
            requant = requant + 5 * cout
            if unit_tables and layer.kind == "conv":
                tau = tau + w
            convs, linears = (convs + 1, linears) if layer.kind == "conv" else (convs, linears + 1)
        flash = weight + bias + requant + tau
        if target in TABLE_TARGETS and not unit_tables:  # the dense convs' threshold tables (either execution)
            tables = self._threshold_tables(c, flash, target)
            requant, flash = requant + tables, flash + tables
        avr = EXPORT_TARGETS["avr"]
        flash_value = float(flash.detach()) if isinstance(flash, torch.Tensor) else float(flash)
        if target == "avr" and avr.needs_far_tables(flash_value) and flash_value <= avr.far_flash_bytes:
            target = "avr-far"  # the exporter gives such a model far table pointers (TargetSpec.needs_far_tables)
        descriptors = descriptor_bytes(convs, linears, 0, LAYOUTS[target])
        if execution == "fused":
            if not isinstance(self.fused, FusedCounts):
                raise ValueError(f"execution='fused': {self.fused or 'the model was not traced by trace_resources'}")
            fused = self.fused.terms(c)
            arena, scratch, output_bytes, peak_op = (fused["arena_bytes"], fused["scratch_bytes"],
                                                     fused["output_bytes"], fused["peak_op"])
            input_bytes = 0
        elif execution == "layers":
            rows = kernel_block_rows(resource_conv_kernel(unit_tables, target), block_rows)
            pooled = not unit_tables and pools_on(target)  # the dense convs' max-pool on the accumulators
            arena, scratch, input_bytes, output_bytes, peak_op = self._layer_sram(c, rows, pooled)
        else:
            raise ValueError(f"execution must be 'layers' or 'fused', got {execution!r}")
        return {
            "flash_bytes": flash,
            "sram_bytes": arena + scratch + descriptors + input_bytes + output_bytes, "macs": macs,
            "arena_bytes": arena, "scratch_bytes": scratch, "descriptor_bytes": descriptors,
            "input_bytes": input_bytes, "output_bytes": output_bytes,
            "weight_bytes": weight, "bias_bytes": bias, "requant_bytes": requant, "tau_bytes": tau,
            "peak_op": peak_op,
        }

    def _threshold_tables(self, c, flash, target: str):
        """Flash of the output stage's threshold tables the exporter gives the convolutions
        (:func:`unitprune.mcu.requant_table.planned_layers`, assuming every channel's constants fit a
        table, as the quantizer's do), beside ``flash`` bytes of other constants."""
        value = lambda v: float(v.detach()) if isinstance(v, torch.Tensor) else float(v)  # noqa: E731
        convs = [(layer.out_spatial, c(layer.out_group)) for layer in self.layers if layer.kind == "conv"]
        picked = planned_layers([(spatial, value(n)) for spatial, n in convs], room_bytes(target, value(flash)))
        return sum(CHANNEL_BYTES * convs[i][1] for i in picked)

    def _pooled_buffers(self) -> tuple[list[_Buffer], dict[int, int]]:
        """The buffers when each conv of ``pooled`` writes its pool's output (the pool in place), and
        those convs' scratch rows (the pool's window rows)."""
        by_name = {buf.name: buf for buf in self.buffers}
        merged: dict[str, _Buffer | None] = {}
        rows = {}
        for conv_index, conv_buffer, pool_buffer, pool_rows in self.pooled:
            conv, pool = by_name[conv_buffer], by_name[pool_buffer]
            merged[conv_buffer] = _Buffer(conv.name, conv.group, pool.per_channel, conv.born,
                                          max(conv.dies, pool.dies), conv.io or pool.io)
            merged[pool_buffer] = None
            rows[conv_index] = pool_rows
        buffers = [merged.get(buf.name, buf) for buf in self.buffers]
        return [buf for buf in buffers if buf is not None], rows

    def _layer_sram(self, c, block_rows, pooled: bool = False) -> tuple:
        """The layer-by-layer plan's arena, scratch, input and output bytes and the op of the arena peak;
        ``pooled``: the convs of ``self.pooled`` write their max-pool's output."""
        buffers, pool_rows = self._pooled_buffers() if pooled else (self.buffers, {})
        live_totals, scratches = [], []
        for i, _ in enumerate(self.op_names):
            total = 0
            for buf in buffers:
                if buf.born <= i <= buf.dies and not buf.io:
                    total = total + c(buf.group) * buf.per_channel
            live_totals.append(total)
            group, per_channel, constant = self.op_scratch[i]
            if i in self.conv_planes:  # one block of output rows of one channel, whatever the channels
                constant = conv_scratch_bytes(*self.conv_planes[i], pool_rows.get(i, block_rows))
            scratches.append(constant + (c(group) * per_channel if group is not None else 0))
        if not live_totals:
            raise ValueError("the model has no ops to run")
        peak_index = max(range(len(live_totals)), key=lambda j: float(torch.as_tensor(live_totals[j]).detach()))
        arena, scratch = _maximum(live_totals), _maximum(scratches)
        input_buffer = next(b for b in buffers if b.born < 0)
        output_buffer = next(b for b in buffers if b.io and b.born >= 0) if any(
            b.io and b.born >= 0 for b in buffers) else input_buffer
        input_bytes = c(input_buffer.group) * input_buffer.per_channel
        output_bytes = c(output_buffer.group) * output_buffer.per_channel
        peak_op = self.op_names[peak_index]
        return arena, scratch, input_bytes, output_bytes, peak_op

    def exact(self, counts: Mapping[int, int] | None = None, **kwargs) -> Resources:
        """:meth:`evaluate` with integer counts, as a :class:`Resources` of Python ints."""
        values = self.evaluate({g: int(n) for g, n in (counts or {}).items()}, **kwargs)
        return Resources(**{k: (v if k == "peak_op" else _exact_int(k, v)) for k, v in values.items()})


def _maximum(values: list):
    """``max`` of ints, or a differentiable max when any value is a tensor."""
    if any(isinstance(v, torch.Tensor) for v in values):
        return torch.stack([torch.as_tensor(v, dtype=torch.float32) for v in values]).max()
    return max(values)


def _exact_int(name: str, value) -> int:
    as_float = float(value)
    if abs(as_float - round(as_float)) > 1e-9:
        raise ValueError(f"resource {name} is not an integer ({as_float}): channel counts must divide the groups")
    return int(round(as_float))


def resources(model: nn.Module, input_shape: tuple[int, ...], *, unit_tables: bool = False,
              target: str = "avr", conv_block_rows=None, execution: str = "layers", fused_rows: int = 1,
              fused_axis: str = "auto") -> Resources:
    """Exact flash, peak SRAM and MACs of ``model`` for one input of shape ``input_shape`` (no batch),
    exported with ``conv_block_rows`` (``unitprune.export_c``'s option; None: whole output planes)
    and ``execution`` (``"layers"`` or ``"fused"``, ``unitprune.export_c``'s option: the fused,
    row-streamed plan's SRAM terms come from :mod:`unitprune.shrink.fused_resources`, its
    ``input_bytes`` is 0, the input being read row by row; ``conv_block_rows`` does not apply;
    ``fused_rows`` and ``fused_axis`` are the export's options of that plan; ``fused_rows="auto"``
    takes the export's choice for ``target``: the most rows per step that fit its SRAM).

    Raises ``ValueError`` naming the op when the model holds something the int8 export cannot run.
    """
    graph = trace_resources(model, input_shape)
    layers = graph.exact(unit_tables=unit_tables, target=target, conv_block_rows=conv_block_rows)
    if execution == "layers":
        return layers
    if execution != "fused":
        raise ValueError(f"execution must be 'layers' or 'fused', got {execution!r}")
    spec = EXPORT_TARGETS.get(target)
    limit = spec.sram_bytes if spec is not None else None
    # the dense convs that take their max-pool on the accumulators where their steps are whole pool rows
    conv_names = dict(zip(sorted(graph.conv_planes), [layer.name for layer in graph.layers if layer.kind == "conv"]))
    pooled = {conv_names[entry[0]] for entry in graph.pooled} if not unit_tables and pools_on(target) else set()
    choices = [fused_rows]
    if fused_rows == "auto":  # the export's choice: the most rows per step that fit the target's SRAM
        choices = fused_rows_choices(fused_sram_terms(model, input_shape, 1, fused_axis)["chain"], limit)
    for rows in choices:
        terms = fused_sram_terms(model, input_shape, rows, fused_axis, pooled)
        # the shorter last steps' unit_conv2d_params (pointer-free: the same on every layout but in-flash ones)
        descriptors = layers.descriptor_bytes + descriptor_bytes(0, 0, 0, LAYOUTS[target],
                                                                 step_params=tail_steps(terms.pop("chain")))
        sram = terms["arena_bytes"] + terms["scratch_bytes"] + descriptors + terms["output_bytes"]
        if limit is None or sram + STACK_RESERVE <= limit:
            break
    return replace(layers, sram_bytes=sram, input_bytes=0, descriptor_bytes=descriptors, **terms)


def trace_resources(model: nn.Module, input_shape: tuple[int, ...]) -> ResourceGraph:
    """Trace ``model`` (``torch.fx``) on a zero input of ``(1, *input_shape)`` into a :class:`ResourceGraph`."""
    traced = shape_traced(model, input_shape)
    graph = _Builder(traced).build()
    try:
        graph.fused = fused_counts_of(traced, input_shape, {l.name: l.out_group for l in graph.layers if l.kind == "conv"},
                                      graph.input_group, graph.find,
                                      tuple(l.out_group for l in graph.layers if l.kind == "linear"))
    except ValueError as error:  # the fused plan cannot stream it: said when execution="fused" is asked for
        graph.fused = str(error)
    return graph


class _Builder:
    """Walks the fx graph once and records layers, buffers and channel groups."""

    def __init__(self, graph_module: torch.fx.GraphModule):
        self.gm = graph_module
        self.modules = dict(graph_module.named_modules())
        self.nodes = [n for n in graph_module.graph.nodes]
        self.parent: dict[int, int] = {}
        self.group_sizes: dict[int, int] = {}
        self.fixed: set[int] = set()
        self.tensor_group: dict[str, tuple[int, int]] = {}  # node -> (group, per-channel elements)
        self.buffer_of: dict[str, str] = {}  # node -> name of the buffer holding it
        self.layers: list[LayerInfo] = []
        self.op_names: list[str] = []
        self.op_scratch: list[tuple[int | None, int, int]] = []
        self.conv_planes: dict[int, tuple[int, int]] = {}
        self.conv_ops: dict[str, int] = {}  # conv node -> op index
        self.pooled: list[tuple[int, str, str, int]] = []
        self.buffers: dict[str, _Buffer] = {}
        self.users = {n.name: list(n.users) for n in self.nodes}

    def new_group(self, size: int) -> int:
        g = len(self.parent)
        self.parent[g] = g
        self.group_sizes[g] = size
        return g

    def find(self, g: int) -> int:
        while self.parent[g] != g:
            g = self.parent[g]
        return g

    def union(self, a: int, b: int, where: str) -> int:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            if self.group_sizes[ra] != self.group_sizes[rb]:
                raise ValueError(f"{where}: coupled channel groups of different sizes "
                                 f"({self.group_sizes[ra]} vs {self.group_sizes[rb]})")
            self.parent[rb] = ra
        return ra

    @staticmethod
    def shape(node: torch.fx.Node) -> tuple[int, ...]:
        meta = node.meta.get("tensor_meta")
        if meta is None or not hasattr(meta, "shape"):
            raise ValueError(f"op {node.name!r}: output is not a single tensor; the resource model "
                             "supports chains and residual adds of tensors only")
        return tuple(meta.shape)

    def per_channel(self, node: torch.fx.Node) -> tuple[int, int]:
        shape = self.shape(node)
        channels = shape[1] if len(shape) > 1 else 1
        return channels, math.prod(shape[2:]) if len(shape) > 2 else 1

    def new_buffer(self, node: torch.fx.Node, group: int, per_channel: int, born: int) -> None:
        self.tensor_group[node.name] = (group, per_channel)
        self.buffers[node.name] = _Buffer(node.name, group, per_channel, born, born)
        self.buffer_of[node.name] = node.name

    def alias(self, node: torch.fx.Node, source: torch.fx.Node, group_override=None) -> None:
        self.tensor_group[node.name] = group_override or self.tensor_group[source.name]
        self.buffer_of[node.name] = self.buffer_of[source.name]

    def read(self, source: torch.fx.Node, op_index: int) -> None:
        self.buffers[self.buffer_of[source.name]].dies = max(self.buffers[self.buffer_of[source.name]].dies, op_index)

    def build(self) -> ResourceGraph:
        input_group = output_group = None
        op_index = 0
        for node in self.nodes:
            if node.op == "placeholder":
                if input_group is not None:
                    raise ValueError("the resource model supports models with one input tensor")
                channels, spatial = self.per_channel(node)
                input_group = self.new_group(channels)
                self.new_buffer(node, input_group, spatial, born=-1)
                self.buffers[node.name].io = True
                continue
            if node.op == "output":
                result = node.args[0]
                if not isinstance(result, torch.fx.Node):
                    raise ValueError("the resource model supports models returning one tensor")
                output_group = self.tensor_group[result.name][0]
                self.read(result, op_index)  # the result stays live to the end
                self.buffers[self.buffer_of[result.name]].io = True
                continue
            if node.op == "get_attr":
                raise ValueError(f"op {node.name!r}: parameters used outside a module are not supported")
            self.op_names.append(node.name)
            self.op_scratch.append((None, 0, 0))
            self.visit(node, op_index)
            op_index += 1
        graph = ResourceGraph(
            layers=self.layers, buffers=list(self.buffers.values()), op_names=self.op_names,
            op_scratch=self.op_scratch, group_sizes=self.group_sizes, parent=self.parent,
            input_group=input_group, output_group=output_group, fixed_groups=self.fixed,
            conv_planes=self.conv_planes, pooled=self.pooled)
        for layer in graph.layers:  # resolve to roots for callers
            layer.in_group, layer.out_group = graph.find(layer.in_group), graph.find(layer.out_group)
        for buf in graph.buffers:
            buf.group = graph.find(buf.group)
        graph.op_scratch = [(None if g is None else graph.find(g), per, const) for g, per, const in graph.op_scratch]
        return graph

    def visit(self, node: torch.fx.Node, i: int) -> None:
        inputs = [a for a in node.args if isinstance(a, torch.fx.Node)]
        for source in inputs:
            self.read(source, i)
        module = self.modules.get(node.target) if node.op == "call_module" else None
        target = node.target
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
            self.conv(node, module, inputs[0], i)
        elif isinstance(module, nn.Linear):
            self.linear(node, module, inputs[0], i)
        elif isinstance(module, _RELU_MODULES) or target in _RELU_FUNCTIONS:
            source = inputs[0]
            if len(self.users[source.name]) == 1 and self.buffers[self.buffer_of[source.name]].born >= 0:
                self.alias(node, source)  # in place (never on the caller's read-only input)
            else:
                group, per = self.tensor_group[source.name]
                self.new_buffer(node, group, per, i)
        elif isinstance(module, _ALIAS_MODULES) or target in _ALIAS_FUNCTIONS or \
                (node.op == "call_method" and target in _ALIAS_FUNCTIONS):
            if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                self.fold_bn(node, module, inputs[0])
            self.alias(node, inputs[0])
        elif isinstance(module, _POOL_MODULES) or target in {torch.nn.functional.max_pool2d,
                                                               torch.nn.functional.avg_pool2d}:
            group, _ = self.tensor_group[inputs[0].name]
            _, spatial = self.per_channel(node)
            self.new_buffer(node, group, spatial, i)
            self.pooled_conv(node, module, inputs[0])
        elif target in _ADD_FUNCTIONS and len(inputs) == 2:
            a, b = inputs
            group = self.union(self.tensor_group[a.name][0], self.tensor_group[b.name][0], node.name)
            _, spatial = self.per_channel(node)
            self.new_buffer(node, group, spatial, i)
        else:
            what = type(module).__name__ if module is not None else getattr(target, "__name__", str(target))
            raise ValueError(f"op {node.name!r} ({what}) is not supported by the resource model "
                             "(supported: Conv1d/2d, Linear, BatchNorm, ReLU, max/avg-pool, flatten, "
                             "dropout, identity, residual add)")

    def pooled_conv(self, node, module, source) -> None:
        """Records a max-pool (window = stride, no padding, floor mode) that alone reads a conv's output
        through ReLU/BatchNorm/no-op modules (``ResourceGraph.pooled``)."""
        if not isinstance(module, (nn.MaxPool1d, nn.MaxPool2d)) or module.ceil_mode or module.return_indices:
            return
        pair = lambda v: (1, int(v)) if isinstance(module, nn.MaxPool1d) else (  # noqa: E731
            tuple(int(e) for e in v) if isinstance(v, (tuple, list)) else (int(v), int(v)))
        kernel, stride = pair(module.kernel_size), pair(module.stride or module.kernel_size)
        if pair(module.padding) != (0, 0) or pair(module.dilation) != (1, 1):
            return
        while source.name not in self.conv_ops:
            step = self.modules.get(source.target) if source.op == "call_module" else None
            chain = isinstance(step, (*_RELU_MODULES, nn.BatchNorm1d, nn.BatchNorm2d, nn.Dropout, nn.Identity)) or (
                source.op != "call_module" and source.target in _RELU_FUNCTIONS)
            if not chain or len(self.users[source.name]) != 1:
                return
            source = source.args[0]
        index = self.conv_ops[source.name]
        if len(self.users[source.name]) == 1 and pool_fits(self.conv_planes[index], kernel, stride):
            self.pooled.append((index, self.buffer_of[source.name], node.name, kernel[0]))

    def fold_bn(self, node, module, source) -> None:
        producer = source
        if producer.op == "call_module" and isinstance(self.modules.get(producer.target), (nn.Conv1d, nn.Conv2d, nn.Linear)) \
                and len(self.users[producer.name]) == 1:
            for layer in self.layers:
                if layer.name == producer.target:
                    layer.has_bias = True
                    layer.bn_name = node.target
            return
        raise ValueError(f"op {node.name!r}: BatchNorm must directly follow a conv/linear (the exporter folds it)")

    def conv(self, node, module, source, i) -> None:
        in_group, _ = self.tensor_group[source.name]
        channels_out, spatial = self.per_channel(node)
        depthwise = module.groups > 1 and module.groups == module.in_channels == module.out_channels
        if depthwise:
            out_group = in_group
        else:
            out_group = self.new_group(channels_out)
            if module.groups > 1:  # grouped (not depthwise): channel counts are kept
                self.fixed.update({in_group, out_group})
        kernel = math.prod(module.kernel_size)
        self.layers.append(LayerInfo(node.target, "conv", in_group, out_group, 1, kernel, spatial,
                                     module.groups, depthwise, module.bias is not None, None))
        self.new_buffer(node, out_group, spatial, i)
        self.op_scratch[i] = (None, 0, 4 * spatial)  # one output plane of int32, whatever the channels
        shape = self.shape(node)  # (1, C, OH, OW), or (1, C, L) for Conv1d (one row of L)
        self.conv_planes[i] = (shape[2], shape[3]) if len(shape) == 4 else (1, shape[2])
        self.conv_ops[node.name] = i

    def linear(self, node, module, source, i) -> None:
        in_group, in_per = self.tensor_group[source.name]
        out_group = self.new_group(module.out_features)
        self.layers.append(LayerInfo(node.target, "linear", in_group, out_group, in_per, 1, 1, 1, False,
                                     module.bias is not None, None))
        self.new_buffer(node, out_group, 1, i)
        self.op_scratch[i] = (out_group, 4, 0)  # one int32 per output

"""The static memory plan of an exported model: where every activation tensor lives.

The ops of a :class:`~unitprune.mcu.qmodel.QuantizedModel` form a chain, so a tensor is read only
by the op after the one that wrote it (a ``Flatten`` or an in-place ``ReLU`` keeps the same
storage). Tensors that share storage form a *buffer*; buffers form a chain too:

    input (the caller's, read-only) -> B1 -> B2 -> ... -> output (the caller's)

Op ``k`` reads buffer ``k`` and writes buffer ``k + 1``, so exactly two buffers are live at any
op. The intermediate buffers live in one static arena: even-numbered buffers at its start,
odd-numbered ones at its end, so the two buffers of an op never overlap, and the arena needs

    arena_bytes = max over ops of (bytes of the op's input buffer + bytes of its output buffer),

counting only arena buffers: the optimum for a chain. The network input and the output are the
caller's memory (``unit_model_run(input, output)``) and are **not** in the arena; the report gives
them separately. ``peak_sram_bytes`` = arena + the one int32 scratch buffer the conv/linear
kernels share (the largest any layer needs) + the small constant descriptors the kernels read
from RAM (``unit_conv2d_params``, ``unit_requant_s8``, ``unit_quotient_tree_s8``).

A conv's scratch holds the int32 accumulators of one block of ``B`` output rows of one output
channel, ``4 * B * OW`` bytes (:func:`conv_scratch_bytes`); ``B`` is the export's
``conv_block_rows`` (:func:`parse_conv_block_rows`: the whole plane, ``B = OH``, by default) for
the weight-stationary kernels, and at most the rows an output-stationary kernel holds (one row for
the dense and static-sparse kernels, two for the 32-bit cores' dense kernel: :mod:`.conv_rows`).
The exporter and the resource model (``unitprune.shrink.resources``) both use these functions.

A standalone ReLU on the read-only input is not in place: it copies into a new buffer first.
A model whose ops all alias the input (only ``Flatten``/``ReLU``) copies the input to the output.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..targets.specs import Layout, descriptor_bytes
from .conv_rows import conv_block_rows as kernel_rows
from ..unit_plan import skipfree_scratch_bytes, unit_sparse_scratch
from ..qmodel import QAvgPool, QConv, QFlatten, QLinear, QMaxPool, QOp, QReLU, QThresholdReLU, QuantizedModel

__all__ = ["Storage", "OpMemory", "MemoryPlan", "plan_memory", "op_output_size", "INPUT", "OUTPUT", "ARENA",
           "parse_conv_block_rows", "conv_scratch_bytes", "PLANE", "scratch_sizes", "model_descriptor_bytes"]

INPUT, OUTPUT, ARENA = "input", "output", "arena"
#: ``conv_block_rows`` meaning the whole output plane (the kernels' ``block_rows = 0``).
PLANE = "plane"


def parse_conv_block_rows(value) -> int:
    """The kernels' ``block_rows`` for a ``conv_block_rows`` option: ``None``, ``"plane"`` or 0 -> 0
    (the whole output plane), ``"min"`` -> 1 (one row), an int (or its text) >= 1 -> itself (a
    block larger than a layer's output height is that height).

    Raises:
        ValueError: anything else, naming the value and the accepted ones.
    """
    if value is None or value == PLANE:
        return 0
    if value == "min":
        return 1
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"conv_block_rows must be None or 'plane' (the whole output plane), 'min' (1 row) or an "
                         f"int >= 1, got {value!r}")
    return value


def conv_scratch_bytes(out_height: int, out_width: int, block_rows: int = 0) -> int:
    """Bytes of int32 scratch of an int8 conv (``unit_conv2d_s8_scratch_size``): ``4 * B * OW`` with
    ``B = OH`` for ``block_rows == 0`` (the whole plane), else ``min(block_rows, OH)``."""
    rows = out_height if block_rows == 0 else min(block_rows, out_height)
    return 4 * rows * out_width


@dataclass(frozen=True)
class Storage:
    """Where a tensor lives: the caller's input or output, or ``arena`` at ``offset``."""

    kind: str  # INPUT, OUTPUT or ARENA
    offset: int = 0  # bytes, in the arena
    size: int = 0  # bytes (= elements, int8)


@dataclass(frozen=True)
class OpMemory:
    """The memory of one op: what it reads and writes, and whether it works in place."""

    name: str
    kind: str  # conv, linear, maxpool, avgpool, relu, flatten
    source: Storage
    target: Storage
    in_place: bool  # relu on its input's storage, or flatten (no code)
    copy_first: bool  # relu that copies its (read-only) input to target first
    live_bytes: int  # arena bytes live while this op runs
    scratch_bytes: int
    #: None: the op's scratch is the shared ``unit_model_scratch``; else its byte offset in the arena
    #: (4-byte aligned), between the op's live buffers (the skip-free UnIT convolution's lists)
    scratch_offset: int | None = None


@dataclass
class MemoryPlan:
    """The plan (see the module docstring); byte counts for one sample."""

    ops: list[OpMemory]
    arena_bytes: int
    scratch_bytes: int
    descriptor_bytes: int
    input_bytes: int
    output_bytes: int
    copy_input_to_output: bool  # no op writes a new buffer: output = input (then in-place ops)
    peak_op: str | None  # the op whose live arena buffers set arena_bytes
    notes: list[str] = field(default_factory=list)

    @property
    def peak_sram_bytes(self) -> int:
        """Arena + scratch + descriptors: the model's own RAM, without the caller's input/output."""
        return self.arena_bytes + self.scratch_bytes + self.descriptor_bytes

    @property
    def peak_sram_with_io_bytes(self) -> int:
        """``peak_sram_bytes`` plus the caller's input and output buffers (as the MCU main.c holds them)."""
        return self.peak_sram_bytes + self.input_bytes + self.output_bytes

    def to_dict(self) -> dict:
        return {
            "arena_bytes": self.arena_bytes, "scratch_bytes": self.scratch_bytes,
            "descriptor_bytes": self.descriptor_bytes, "peak_sram_bytes": self.peak_sram_bytes,
            "input_bytes": self.input_bytes, "output_bytes": self.output_bytes,
            "peak_sram_with_io_bytes": self.peak_sram_with_io_bytes,
            "input_counted_in_peak": False, "copy_input_to_output": self.copy_input_to_output,
            "peak_op": self.peak_op, "notes": list(self.notes),
            "ops": [asdict(op) for op in self.ops],
        }


def op_output_size(op: QOp) -> int:
    """Elements per sample that ``op`` writes (int8: also bytes)."""
    if isinstance(op, QConv):
        return op.out_channels * op.out_height * op.out_width
    if isinstance(op, QLinear):
        return op.out_features
    if isinstance(op, (QMaxPool, QAvgPool)):
        return op.channels * op.out_height * op.out_width
    if isinstance(op, (QReLU, QThresholdReLU, QFlatten)):
        return op.size
    raise TypeError(f"unsupported op {type(op).__name__} ({getattr(op, 'name', '?')})")


def _kind(op: QOp) -> str:
    return {QConv: "conv", QLinear: "linear", QMaxPool: "maxpool", QAvgPool: "avgpool", QReLU: "relu", QThresholdReLU: "relu",
            QFlatten: "flatten"}[type(op)]


def _input_size(shape) -> int:
    size = 1
    for dim in shape:
        size *= int(dim)
    return size


def _scratch_in_arena(qmodel: QuantizedModel, op: QOp) -> bool:
    """The op's scratch is its own part of the arena, between its live buffers: every conv's in a model
    with a skip-free or sparse UnIT convolution (whose lists of the whole input would otherwise size the
    shared scratch beside the largest activations)."""
    return isinstance(op, QConv) and qmodel.variant == "unit" and any(
        isinstance(o, QConv) and o.unit_kernel in ("skipfree", "sparse") for o in qmodel.ops)


def plan_memory(qmodel: QuantizedModel, scratch_bytes: dict[str, int] | None = None,
                descriptor_bytes: int = 0, pooled=()) -> MemoryPlan:
    """The memory plan of ``qmodel`` (module docstring).

    Args:
        scratch_bytes: bytes of int32 scratch each conv/linear op needs (by op name; missing: 0).
            One buffer of the largest size is shared by all.
        descriptor_bytes: RAM of the constant descriptors (conv params, requant and tree structs).
        pooled: names of the convs that write their max-pool's output themselves
            (:mod:`.pooled_conv`): the conv's buffer is the pooled plane, the pool works in place
            (no code).
    """
    scratch_bytes = scratch_bytes or {}
    kinds = [_kind(op) for op in qmodel.ops]
    input_bytes = _input_size(qmodel.input_shape)
    pooled_by = {index + 1 for index, op in enumerate(qmodel.ops[:-1]) if op.name in pooled}
    # Buffer index of every tensor: tensor 0 is the input; an op that writes a new buffer
    # (conv, linear, maxpool, avgpool, relu on the read-only input) starts the next buffer.
    buffer_of = [0]
    new_buffer = []
    for index, kind in enumerate(kinds):
        starts = (kind in ("conv", "linear", "maxpool", "avgpool") and index not in pooled_by) or (
            kind == "relu" and buffer_of[-1] == 0)
        new_buffer.append(starts)
        buffer_of.append(buffer_of[-1] + 1 if starts else buffer_of[-1])
    last = buffer_of[-1]
    sizes = {}
    for index, op in enumerate(qmodel.ops):
        size_op = qmodel.ops[index + 1] if index + 1 in pooled_by else op  # a pooled conv writes the pool's plane
        sizes.setdefault(buffer_of[index + 1], op_output_size(size_op))
    sizes[0] = input_bytes
    output_bytes = op_output_size(qmodel.ops[-1]) if qmodel.ops else input_bytes

    def storage(buffer: int, arena_size: int) -> Storage:
        if buffer == last:
            return Storage(OUTPUT, 0, sizes[buffer])
        if buffer == 0:
            return Storage(INPUT, 0, sizes[buffer])
        offset = 0 if buffer % 2 == 1 else arena_size - sizes[buffer]
        return Storage(ARENA, offset, sizes[buffer])

    def in_arena(buffer: int) -> int:
        return sizes[buffer] if buffer not in (0, last) else 0

    live = [in_arena(buffer_of[i]) + (in_arena(buffer_of[i + 1]) if new_buffer[i] else 0) for i in range(len(kinds))]
    # ops whose scratch lives in the arena, between the buffer at offset 0 (odd) and the one at the end
    in_arena_scratch = {index: op for index, op in enumerate(qmodel.ops) if _scratch_in_arena(qmodel, op)}

    def gap(index: int) -> tuple[int, int]:
        """(bytes of the op's live buffer at offset 0, bytes of the one at the end)."""
        buffers = {buffer_of[index], buffer_of[index + 1]}
        low = sum(in_arena(b) for b in buffers if b % 2 == 1)
        return low, sum(in_arena(b) for b in buffers if b % 2 == 0)

    needs = list(live)
    for index, op in in_arena_scratch.items():
        low, high = gap(index)
        needs[index] = (low + 3) // 4 * 4 + int(scratch_bytes.get(op.name, 0)) + high
    arena = max(needs, default=0)
    live = needs
    peak_op = qmodel.ops[live.index(arena)].name if arena else None
    if in_arena_scratch:  # the arena then holds int32 scratch: model_c declares it as int32 words
        arena = (arena + 3) // 4 * 4
    ops = []
    for index, op in enumerate(qmodel.ops):
        source, target = storage(buffer_of[index], arena), storage(buffer_of[index + 1], arena)
        ops.append(OpMemory(name=op.name, kind=kinds[index], source=source, target=target,
                            in_place=not new_buffer[index], copy_first=kinds[index] == "relu" and new_buffer[index],
                            live_bytes=live[index], scratch_bytes=int(scratch_bytes.get(op.name, 0)),
                            scratch_offset=(gap(index)[0] + 3) // 4 * 4 if index in in_arena_scratch else None))
    notes = ["the network input and output are the caller's buffers, not counted in peak_sram_bytes"]
    if pooled:
        notes.append("max-pooled on the int32 accumulators (one requantization per pooled output, the conv writes "
                     "the pooled plane, unit_conv2d_dense_pool_s8): " + ", ".join(sorted(pooled)))
    copy_all = last == 0 and bool(qmodel.ops)
    if copy_all:
        notes.append("no op writes a new buffer: the input is copied to the output first")
    shared = [int(scratch_bytes.get(op.name, 0)) for index, op in enumerate(qmodel.ops) if index not in in_arena_scratch]
    if in_arena_scratch:
        notes.append("with a skip-free or sparse UnIT convolution every conv's scratch lives in the arena between its buffers: "
                     + ", ".join(op.name for op in in_arena_scratch.values()))
    return MemoryPlan(ops=ops, arena_bytes=arena, scratch_bytes=max(shared, default=0),
                      descriptor_bytes=descriptor_bytes, input_bytes=input_bytes, output_bytes=output_bytes,
                      copy_input_to_output=copy_all, peak_op=peak_op, notes=notes)


def scratch_sizes(qmodel: QuantizedModel, conv_block_rows=None, target: str = "host",
                  sparse=frozenset(), variant: str | None = None, pooled=None) -> dict[str, int]:
    """Bytes of int32 scratch each conv/linear op needs, by the formulas of ``unit_kernels_s8.h``
    (``unit_conv2d_s8_scratch_size``: ``4 * B * OW``, the accumulators of one block of ``B`` output
    rows of one output channel, ``B`` the rows the conv's kernel holds on ``target``,
    :func:`.conv_rows.conv_block_rows` of the export's ``conv_block_rows``, see
    :func:`~unitprune.mcu.export.memory_plan.parse_conv_block_rows`; ``sparse``: the layers with
    static-sparse tables; ``variant``: the export's, None for the model's own;
    ``unit_linear_s8_scratch_size``: ``4 * out_features``). The generated
    ``unit_model_check()`` compares the buffer with the kernels' own functions at start-up, so a
    mismatch cannot go unseen. ``pooled``: the convs pooled on their accumulators
    (:func:`.pooled_conv.pooled_convs`), whose scratch is the pool window's rows, ``B = KH`` of the pool."""
    variant = variant or qmodel.variant
    rows = kernel_rows(qmodel, parse_conv_block_rows(conv_block_rows), target, sparse, variant)
    rows.update({name: entry.kernel[0] for name, entry in (pooled or {}).items()})
    sizes = {}
    for op in qmodel.ops:
        if isinstance(op, QConv) and op.unit_kernel == "skipfree" and variant == "unit":
            sizes[op.name] = skipfree_scratch_bytes(op)  # the lists and the whole plane's accumulators
        elif isinstance(op, QConv) and op.unit_kernel == "sparse" and variant == "unit":
            sizes[op.name] = unit_sparse_scratch(op)  # the row lists and its blocks' accumulators
        elif isinstance(op, QConv):
            sizes[op.name] = conv_scratch_bytes(op.out_height, op.out_width, rows[op.name])
        elif isinstance(op, QLinear):
            sizes[op.name] = 4 * op.out_features
    return sizes


def model_descriptor_bytes(qmodel: QuantizedModel, layout: Layout, variant: str, linear_quotient: str,
                           sparse_layers: int = 0, step_params: int = 0) -> int:
    """RAM bytes of the model's kernel descriptors under ``layout``
    (:func:`unitprune.mcu.targets.specs.descriptor_bytes`, the formula the resource model uses too);
    ``sparse_layers``: the static-sparse kernels' ``unit_sparse_s8`` descriptors; ``step_params``: the
    fused plan's ``unit_conv2d_params`` of shorter last steps (:func:`.fused_plan.tail_steps`)."""
    convs = sum(isinstance(op, QConv) for op in qmodel.ops)
    linears = sum(isinstance(op, QLinear) for op in qmodel.ops)
    trees = linears if variant == "unit" and linear_quotient == "bintree" else 0
    unit_sparse = sum(isinstance(op, QConv) and op.unit_kernel == "sparse" for op in qmodel.ops) if variant == "unit" \
        else 0
    if variant == "unit":  # unit_conv2d_sparse_tau_s8's unit_sparse_s8 descriptors
        sparse_layers += sum(isinstance(op, QConv) and op.unit_kernel == "sparse_tau" for op in qmodel.ops)
    return descriptor_bytes(convs, linears, trees, layout, sparse_layers, unit_sparse, step_params)

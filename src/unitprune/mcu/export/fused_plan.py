"""The fused, row-streamed execution plan of an exported model (``export_c(..., execution="fused")``).

Layer by layer (:mod:`.memory_plan`), every activation tensor exists whole at some point. Fused,
a chain of spatial ops computes each output row as soon as the input rows it needs exist:

    input rows -> [window of conv1] -> conv1 row -> [window of pool1] -> pool1 row -> ... -> sink

* every spatial op (a *stage*: conv, max-pool, average pool) owns a **window** ``[C][S][W]`` of the
  input rows its next step reads: ``S = K + (B - 1) * stride_y`` for ``B`` output rows per step
  (``fused_rows``, convs; ``K = dilation_y * (kernel_height - 1) + 1`` for a conv,
  ``kernel_height`` for a pool). Input row ``n`` (padding rows included, pushed as zero rows, which
  the kernels count exactly as padding) goes to place ``n - r * stride_y``, ``r`` the step's first
  output row; when the step's rows are there the stage computes them with the ordinary
  whole-layer kernel on the window (``in_height = S``, no vertical padding; a shorter last step
  with its own parameters), the window moves up ``B * stride_y`` rows and the rows are passed on;
* a pool after a conv of ``B > 1`` rows per step, its windows not overlapping (kernel height =
  stride_y = s) and every step of the conv whole pool rows (``s`` divides ``B`` and the shorter
  last step), keeps no window (``in_place``): once per conv step it pools the conv's ``[C][B][OW]``
  block where it is into ``B / s`` rows (the copy of the conv's rows into a window, the larger
  part of the plan's own cycles, is not made);
* such an in-place max-pool after a dense conv whose output stage allows it (window = stride, a
  multiplier >= 0, a target whose convs call ``unit_conv2d_dense_pool_s8``:
  :mod:`.pooled_conv`, :func:`with_pooled_convs`) is ``pooled``: the conv step calls
  ``unit_conv2d_dense_pool_s8`` on its window, which takes each pool window's largest int32
  accumulator and requantizes once per pooled output, straight into the pool's rows; the conv
  keeps no ``B``-row block and its scratch holds the pool window's rows (``4 * s * OW``);
* a stage writes its output into the shared row buffer (``B = 1``) or its own ``[C][B][OW]``
  block; a conv with a one-row kernel, vertical stride 1, no vertical padding and one-row input
  keeps no window (:func:`direct_stages`): it reads its input row in place and writes the other of
  two row buffers;
* ReLU / FATReLU act on each step's rows;
* the sink takes the last stage's rows: a final ``Linear`` accumulates its int32 sums row by row
  (``unit_linear_accumulate_*_s8`` on a weight table permuted to ``[row][C][W][out]``, then one
  requantization), or the rows are stored into the caller's output;
* a ReLU / FATReLU after the Linear acts on its output vector;
* a **tail** after the streamed Linear (an MLP head: ReLU, further Linears, ...) runs layer by
  layer on the small vectors (:func:`tail_vectors`): the streamed Linear's int8 output and the
  tail's intermediate vectors live in the arena at offset 0 and at its end alternately, over the
  windows and the row buffer, which are no longer needed once the last row was accumulated; the
  last Linear writes the caller's output; its kernels share the conv scratch (``4 * out``).

Streaming along the width is this plan on the transposed model (:mod:`.fused_axis`). The network
input is read row by row (``unit_model_run_rows`` with a reader: from flash on the MCU targets),
so it never sits in SRAM whole. SRAM of the plan (static, one sample):

    windows (sum over windowed stages of C * S * W; none for an in-place pool) + the B-row blocks
    (an in-place pool's: B / s rows; none for a conv whose pool is pooled) + the row buffer (the
    largest row: C * W of the input or of a stage's output; two with a windowless stage) + the
    conv scratch (4 * B * OW of the widest conv step; 4 * s * OW for a pooled one) + the Linear's
    sums (4 * out) + the global pools' sums + the row counters (8 per stage) + the descriptors.
    With a tail, the arena is the larger of that and the tail's vectors (the largest pair one tail
    Linear reads and writes), and the scratch the larger of the conv scratch and the tail Linears'
    ``4 * out``.

An average pool over the whole input height (DS-CNN's global pool) keeps no window: its int32
window sums (4 * C * OW) grow row by row and are divided once, after the last row.

Every step computes with the layer-by-layer kernels on exact int32 sums, so the outputs and the
MAC counters (by cause) are those of the layer-by-layer plan.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from ..qmodel import QAvgPool, QConv, QFlatten, QLinear, QMaxPool, QOp, QReLU, QThresholdReLU, QuantizedModel
from .memory_plan import MemoryPlan, conv_scratch_bytes

__all__ = ["FusedUnsupported", "Stage", "FusedChain", "FusedMemoryPlan", "fused_chain", "fused_buffers", "with_fused_rows",
           "direct_stages", "fused_rows_choices", "tail_steps", "tail_vectors", "with_pooled_convs",
           "pooled_by",
           "plan_fused_memory", "EXECUTIONS"]

#: The export's ``execution`` option: layer by layer, fused (row-streamed), or fused only when
#: layer by layer does not fit the target's SRAM.
EXECUTIONS = ("layers", "fused", "auto")


class FusedUnsupported(ValueError):
    """The model is not a chain the fused plan runs (the message names the op)."""


@dataclass(frozen=True)
class Stage:
    """One spatial op of the chain and the rows it keeps."""

    op: int  # index in qmodel.ops
    name: str
    kind: str  # conv, maxpool, avgpool
    channels: int  # input channels
    in_height: int
    in_width: int
    window_rows: int  # K
    stride_y: int
    pad_top: int
    pad_bottom: int
    out_channels: int
    out_height: int
    out_width: int
    after: tuple[int, ...] = ()  # elementwise ops (indices) applied to each output row
    block_rows: int = 1  # B: output rows computed per step (a conv; for pools 1, or B / stride_y in place)
    in_place: bool = False  # a pool that reads the previous conv's B-row block where it is (no window)
    pooled: bool = False  # an in-place max-pool the conv before it takes on its int32 accumulators

    @property
    def accumulates(self) -> bool:
        """An average pool over the whole input height (a global pool): no window, its int32 window
        sums grow row by row (``unit_avgpool2d_accumulate_s8``)."""
        return self.kind == "avgpool" and self.window_rows == self.in_height

    @property
    def span_rows(self) -> int:
        """Rows of the window: the ``K + (B - 1) * stride_y`` input rows of ``B`` output rows."""
        return self.window_rows + (self.block_rows - 1) * self.stride_y

    @property
    def window_bytes(self) -> int:
        return 0 if self.accumulates or self.in_place else self.channels * self.span_rows * self.in_width

    @property
    def block_bytes(self) -> int:
        """The stage's own output buffer of ``B > 1`` rows ``[C][B][OW]`` (0: one row, in the shared
        row buffer)."""
        return self.out_channels * self.block_rows * self.out_width if self.block_rows > 1 else 0

    @property
    def sum_bytes(self) -> int:
        return 4 * self.channels * self.out_width if self.accumulates else 0

    @property
    def row_bytes(self) -> int:
        return self.out_channels * self.out_width


@dataclass(frozen=True)
class FusedChain:
    """The model as a row-streamed chain: input rows, stages, the sink (a Linear or the output)."""

    input_shape: tuple[int, int, int]  # (C, H, W) of the rows read from the input
    input_after: tuple[int, ...]  # elementwise ops applied to each input row
    stages: tuple[Stage, ...]
    linear: int | None  # index of the streamed Linear, or None: the last rows are the output
    output_after: tuple[int, ...]  # elementwise ops after the streamed Linear, on its output vector
    tail: tuple[int, ...] = ()  # ops after those, run layer by layer (Linears, ReLU/FATReLU)
    tail_out: tuple = ()  # outputs of the tail's Linears, in order (the last: the network output)

    @property
    def sink_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the rows the sink receives."""
        if self.stages:
            last = self.stages[-1]
            return (last.out_channels, last.out_height, last.out_width)
        return self.input_shape


def direct_stages(chain: FusedChain) -> frozenset[int]:
    """The stages that keep no window: a conv with a one-row kernel, one output row per step, vertical
    stride 1 and no vertical padding, whose input is one row (the input's, or a one-row stage's): it
    reads the row where it arrives and writes its output row into the other row buffer."""
    return frozenset(k for k, stage in enumerate(chain.stages)
                     if stage.kind == "conv" and stage.span_rows == 1 and stage.stride_y == 1
                     and stage.pad_top == stage.pad_bottom == 0 and (k == 0 or chain.stages[k - 1].block_rows == 1))


def tail_steps(chain: FusedChain) -> int:
    """The conv stages with a shorter last step (``B`` does not divide the output height): each has
    a second ``unit_conv2d_params`` in RAM (the descriptors of the plan)."""
    return sum(stage.kind == "conv" and stage.out_height % stage.block_rows != 0 for stage in chain.stages)


def tail_vectors(linear_out, tail_out) -> list[dict]:
    """The arena vectors of the tail (module docstring), given the streamed Linear's outputs and the
    tail Linears' (``tail_out``; empty: no tail, no vector): the streamed Linear's output and every
    tail Linear's but the last (the caller's output), as ``{"bytes", "end"}``: vector ``j`` lies at
    offset 0 (``end`` False, ``j`` even) or at the end of the tail's part of the arena, so the two
    vectors a tail Linear reads and writes never overlap. Ints or tensors (the shrink's counts)."""
    if not tail_out:
        return []
    return [{"bytes": size, "end": j % 2 == 1} for j, size in enumerate((linear_out, *tail_out[:-1]))]


def _tail_bytes(linear_out, tail_out):
    """The tail's part of the arena: the largest input + output pair of one tail Linear (its output in
    the arena unless it is the last), 0 without a tail."""
    vectors = [v["bytes"] for v in tail_vectors(linear_out, tail_out)]
    pairs = [size + (vectors[j + 1] if j + 1 < len(vectors) else 0) for j, size in enumerate(vectors)]
    return max(pairs, default=0)


def fused_rows_choices(chain: FusedChain, sram_bytes: int | None) -> list[int]:
    """The ``fused_rows`` that ``fused_rows="auto"`` tries, most first: powers of two and the
    tallest conv output, down to 1 (the export takes the first whose plan fits the target's SRAM:
    more rows per step, fewer cycles); only 1 without an SRAM limit (the host)."""
    tallest = max([stage.out_height for stage in chain.stages if stage.kind == "conv"], default=1)
    if sram_bytes is None or tallest == 1:
        return [1]
    powers = {1 << k for k in range(tallest.bit_length()) if 1 << k <= tallest}
    return sorted(powers | {tallest}, reverse=True)


def with_fused_rows(chain: FusedChain, rows: int) -> FusedChain:
    """``chain`` with every conv stage computing ``min(rows, out_height)`` output rows per step
    (the export's ``fused_rows``): a window of ``K + (B - 1) * stride_y`` rows and an output block
    of ``B`` rows, so the kernels' per-call work is shared by ``B`` rows (fewer cycles, more SRAM)."""
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
        raise ValueError(f"fused_rows must be an int >= 1 (output rows per step of a fused conv), got {rows!r}")
    stages = [replace(stage, block_rows=min(rows, stage.out_height)) if stage.kind == "conv" else stage
              for stage in chain.stages]
    for k in range(1, len(stages)):  # pools read a conv's block in place where its steps are whole pool rows
        pool, conv = stages[k], stages[k - 1]
        if (pool.kind in ("maxpool", "avgpool") and not pool.accumulates and conv.kind == "conv"
                and conv.block_rows > 1 and pool.window_rows == pool.stride_y
                and conv.block_rows % pool.stride_y == 0 and conv.out_height % conv.block_rows % pool.stride_y == 0):
            stages[k] = replace(pool, block_rows=conv.block_rows // pool.stride_y, in_place=True)
    return replace(chain, stages=tuple(stages))


def with_pooled_convs(chain: FusedChain, convs) -> FusedChain:
    """``chain`` with every in-place max-pool whose conv (the stage before it) is named in ``convs``
    taken by that conv on its int32 accumulators (``Stage.pooled``: ``unit_conv2d_dense_pool_s8``
    writes the pool's rows; module docstring). ``convs``: the convs the export pools
    (:func:`.pooled_conv.pooled_convs`, the dense ones) or the resource model's."""
    stages = list(chain.stages)
    for k in range(1, len(stages)):
        pool, conv = stages[k], stages[k - 1]
        if pool.kind == "maxpool" and pool.in_place and conv.kind == "conv" and conv.name in convs:
            stages[k] = replace(pool, pooled=True)
    return replace(chain, stages=tuple(stages))


def pooled_by(chain: FusedChain) -> dict[int, Stage]:
    """The conv stages (by index) that take the next stage's max-pool on their accumulators, with that pool."""
    return {k - 1: stage for k, stage in enumerate(chain.stages) if stage.pooled}


def _shape3(shape) -> tuple[int, int, int]:
    shape = tuple(int(v) for v in shape)
    if len(shape) == 3:
        return shape
    if len(shape) == 2:
        return (shape[0], 1, shape[1])
    if len(shape) == 1:
        return (1, 1, shape[0])
    raise FusedUnsupported(f"input shape {shape}: the fused plan streams [C][H][W], [C][L] or [N] inputs")


def fused_chain(qmodel: QuantizedModel) -> FusedChain:
    """The chain of ``qmodel`` (ops checked by :func:`.checks.check_model` first): spatial ops
    (conv, max/avg pool, ReLU, FATReLU), then optionally a flatten and the streamed Linear, then
    optionally ReLU/FATReLU, then optionally the tail: further Linears and ReLU/FATReLU, layer by
    layer.

    Raises:
        FusedUnsupported: naming the first op the fused plan cannot stream.
    """
    stages: list[Stage] = []
    input_after: list[int] = []
    output_after: list[int] = []
    tail: list[int] = []
    linear = None
    flat = False
    for index, op in enumerate(qmodel.ops):
        if isinstance(op, (QReLU, QThresholdReLU)):
            if tail:
                tail.append(index)
            elif linear is not None:
                output_after.append(index)
            elif stages:
                stages[-1] = Stage(**{**asdict(stages[-1]), "after": (*stages[-1].after, index)})
            else:
                input_after.append(index)
        elif isinstance(op, QFlatten):
            if linear is not None:
                continue
            flat = True
        elif isinstance(op, QLinear):
            if linear is not None:  # an MLP head: the layers after the streamed Linear, on its vector
                tail.append(index)
            else:
                linear = index
        elif isinstance(op, (QConv, QMaxPool, QAvgPool)):
            if flat or linear is not None:
                raise FusedUnsupported(f"layer {op.name}: a spatial op after a flatten or a Linear cannot be "
                                       "row-streamed (execution='layers')")
            stages.append(_stage(index, op))
        else:
            raise FusedUnsupported(f"op {getattr(op, 'name', '?')}: {type(op).__name__} has no fused form")
    tail_out = tuple(qmodel.ops[i].out_features for i in tail if isinstance(qmodel.ops[i], QLinear))
    return FusedChain(_shape3(qmodel.input_shape), tuple(input_after), tuple(stages), linear, tuple(output_after),
                      tuple(tail), tail_out)


def _stage(index: int, op: QOp) -> Stage:
    if isinstance(op, QConv):
        rows = op.dilation[0] * (op.kernel_height - 1) + 1
        return Stage(index, op.name, "conv", op.in_channels, op.in_height, op.in_width, rows, op.stride[0],
                     op.padding[0], op.padding[1], op.out_channels, op.out_height, op.out_width)
    kind = "maxpool" if isinstance(op, QMaxPool) else "avgpool"
    return Stage(index, op.name, kind, op.channels, op.in_height, op.in_width, op.kernel[0], op.stride[0], 0, 0,
                 op.channels, op.out_height, op.out_width)


@dataclass
class FusedMemoryPlan(MemoryPlan):
    """The fused plan's memory (a :class:`MemoryPlan`: ``arena_bytes`` = windows + row buffer +
    row counters; ``scratch_bytes`` = the conv row scratch + the Linear's sums). ``buffers``: name,
    offset and bytes of every arena buffer. The input is streamed: it is not in SRAM on the MCU."""

    buffers: list[dict] = field(default_factory=list)
    conv_scratch_bytes: int = 0
    linear_sum_bytes: int = 0
    state_bytes: int = 0
    row_bytes: int = 0
    pool_sum_bytes: int = 0
    axis: str = "height"  # the axis the rows are taken along (width: columns, fused_axis.py)
    tail_bytes: int = 0  # the tail's vectors in the arena (over the windows; 0: no tail)
    tail_scratch_bytes: int = 0  # the tail Linears' scratch (4 * out), in the conv scratch

    @property
    def peak_sram_with_io_bytes(self) -> int:
        """``peak_sram_bytes`` plus the caller's output (the input is read row by row, not held)."""
        return self.peak_sram_bytes + self.output_bytes

    def to_dict(self) -> dict:
        data = super().to_dict()
        data.update(execution="fused", input_streamed=True, peak_sram_with_io_bytes=self.peak_sram_with_io_bytes,
                    buffers=list(self.buffers), conv_scratch_bytes=self.conv_scratch_bytes,
                    linear_sum_bytes=self.linear_sum_bytes, pool_sum_bytes=self.pool_sum_bytes, state_bytes=self.state_bytes, row_bytes=self.row_bytes,
                    stream_axis=self.axis, tail_bytes=self.tail_bytes, tail_scratch_bytes=self.tail_scratch_bytes)
        return data


def fused_buffers(chain: FusedChain, linear_out: int, conv_scratch: dict[str, int] | None = None) -> dict:
    """The static buffers of the fused plan (see the module docstring), for ``chain`` and a streamed
    Linear of ``linear_out`` outputs (0: none): ``buffers`` (the arena in order: the windows of the
    stages, then the row buffer; the tail's vectors over them), ``row``, ``state``, ``conv_scratch``,
    ``linear_sums``, ``pool_sums``, ``tail`` (the tail's part of the arena), ``tail_scratch`` bytes,
    and the totals ``arena``, ``scratch`` and ``output`` (the caller's output). The exporter and the
    resource model (``unitprune.shrink.fused_resources``) both use it.
    ``conv_scratch``: the scratch bytes of a conv stage's kernel by layer name, where it is not the
    ``4 * B * OW`` accumulators (:func:`.fused_kernels.fused_kernels`: the list kernels, the
    zero-activation kernel)."""
    buffers, offset = [], 0
    direct = direct_stages(chain)
    for k, stage in enumerate(chain.stages):
        if stage.accumulates or stage.in_place or k in direct:
            continue
        buffers.append({"name": f"window of {stage.name}", "offset": offset, "bytes": stage.window_bytes,
                        "rows": stage.span_rows})
        offset += stage.window_bytes
    pooling = pooled_by(chain)
    for k, stage in enumerate(chain.stages):
        if stage.block_bytes and k not in pooling:  # a pooled conv writes its pool's rows
            buffers.append({"name": f"rows of {stage.name}", "offset": offset, "bytes": stage.block_bytes,
                            "rows": stage.block_rows})
            offset += stage.block_bytes
    c, _, w = chain.input_shape
    row = max([c * w] + [stage.row_bytes for stage in chain.stages])
    buffers.append({"name": "row", "offset": offset, "bytes": row, "rows": 1})
    if direct:  # a 1x1 conv reads its input row where it is and writes the other row buffer
        buffers.append({"name": "second row", "offset": offset + row, "bytes": row, "rows": 1})
    convs = [(k, stage) for k, stage in enumerate(chain.stages) if stage.kind == "conv"]
    tail = _tail_bytes(linear_out, chain.tail_out)
    for j, vector in enumerate(tail_vectors(linear_out, chain.tail_out)):  # over the windows: used after them
        buffers.append({"name": f"tail vector {j}", "offset": tail - vector["bytes"] if vector["end"] else 0,
                        "bytes": vector["bytes"], "rows": 1})
    parts = {"buffers": buffers, "windows": offset, "row": row * (2 if direct else 1),
             "pool_sums": sum(stage.sum_bytes for stage in chain.stages),
             "state": 4 * 2 * len(chain.stages),  # rows received and the next row due, per stage
             "conv_scratch": max([conv_scratch_bytes(pooling[k].stride_y, stage.out_width) if k in pooling else
                                  (conv_scratch or {}).get(stage.name,
                                                           conv_scratch_bytes(stage.block_rows, stage.out_width))
                                  for k, stage in convs], default=0),
             "linear_sums": 4 * linear_out, "tail": tail,
             "tail_scratch": max([4 * out for out in chain.tail_out], default=0)}
    stream = parts["windows"] + parts["row"]
    parts["arena"] = (max(stream, tail) if chain.tail_out else stream) + parts["state"]
    shared = max(parts["conv_scratch"], parts["tail_scratch"]) if chain.tail_out else parts["conv_scratch"]
    parts["scratch"] = shared + parts["linear_sums"] + parts["pool_sums"]
    sink = chain.sink_shape
    parts["output"] = chain.tail_out[-1] if chain.tail_out else linear_out or sink[0] * sink[1] * sink[2]
    return parts


def plan_fused_memory(qmodel: QuantizedModel, chain: FusedChain, descriptor_bytes: int,
                      axis: str = "height", conv_scratch: dict[str, int] | None = None) -> FusedMemoryPlan:
    """The memory plan of the fused export of ``qmodel`` (:func:`fused_buffers`, with the convs'
    ``conv_scratch``), streamed along ``axis`` (``qmodel`` is then the transposed model: :mod:`.fused_axis`)."""
    linear_out = qmodel.ops[chain.linear].out_features if chain.linear is not None else 0
    parts = fused_buffers(chain, linear_out, conv_scratch)
    input_bytes = chain.input_shape[0] * chain.input_shape[1] * chain.input_shape[2]
    peak = max(chain.stages, key=lambda s: s.window_bytes).name if chain.stages else None
    notes = [f"fused: windows of {', '.join(f'{s.span_rows} rows ({s.name})' for s in chain.stages) or 'none'}; "
             f"row buffer {parts['row']} bytes; the input is read {'column' if axis == 'width' else 'row'} by {'column' if axis == 'width' else 'row'}"]
    if chain.tail:
        notes.append(f"tail after {qmodel.ops[chain.linear].name}, layer by layer: "
                     f"{', '.join(qmodel.ops[i].name for i in chain.tail)}; its vectors ({parts['tail']} bytes) "
                     "over the windows, its scratch shared with the convs'")
    return FusedMemoryPlan(ops=[], arena_bytes=parts["arena"], scratch_bytes=parts["scratch"],
                           descriptor_bytes=descriptor_bytes, input_bytes=input_bytes, output_bytes=parts["output"],
                           copy_input_to_output=False, peak_op=peak, notes=notes, buffers=parts["buffers"],
                           conv_scratch_bytes=parts["conv_scratch"], linear_sum_bytes=parts["linear_sums"],
                           state_bytes=parts["state"], row_bytes=parts["row"], pool_sum_bytes=parts["pool_sums"],
                           axis=axis, tail_bytes=parts["tail"], tail_scratch_bytes=parts["tail_scratch"])

"""The tail of a fused export: the layers after the streamed Linear (an MLP head), layer by layer.

The fused plan (:mod:`.fused_plan`) streams the spatial chain into one Linear, whose int32 sums
grow row by row and are requantized once into an int8 vector. The layers after it (ReLU /
FATReLU, further Linears) are small: they run as the layer-by-layer export runs them
(``model_c._linear_code``: the same kernels, tables and counters), on the tail's vectors in
the fused arena (:func:`.fused_plan.tail_vectors`: the streamed Linear's output and each tail
Linear's but the last, at offset 0 and at the end of the tail's part alternately, over the
windows, which are no longer read), the last Linear writing the caller's output. The tail
Linears' int32 scratch (``4 * out``) is the convs' scratch buffer, sized for both.

Under ``variant="zeroskip"`` the tail Linears run ``unit_linear_zeroskip_s8`` on their dense
tables (the static-sparse tables are chosen for the convs' windows only); the outputs and the
counters by cause are the same as the layer-by-layer export's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .. import codegen
from ..qmodel import QLinear, QReLU, QThresholdReLU, QuantizedModel
from .export_types import LayerFlash
from .fused_plan import FusedChain, FusedMemoryPlan
from .model_c import _linear_code, _TableStyle

__all__ = ["TailCode", "tail_code", "tail_vector_exprs"]


@dataclass
class TailCode:
    """What the tail adds to model.c: constant tables, statements of ``unit_model_run_rows`` after the
    streamed Linear's requantization, flash per layer, scratch checks and the kernels it calls."""

    tables: list[str] = field(default_factory=list)
    statements: list[str] = field(default_factory=list)
    flash: list[LayerFlash] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    kernels: set[str] = field(default_factory=set)


def tail_vector_exprs(plan: FusedMemoryPlan) -> list[str]:
    """The C expressions of the tail's vectors in the arena, in order (:func:`.fused_plan.tail_vectors`)."""
    vectors = sorted((b for b in plan.buffers if b["name"].startswith("tail vector ")),
                     key=lambda b: int(b["name"].rsplit(" ", 1)[1]))
    return [f"(unit_model_arena + {b['offset']})" for b in vectors]


def tail_code(qmodel: QuantizedModel, chain: FusedChain, plan: FusedMemoryPlan, variant: str, linear_quotient: str,
              style: _TableStyle, names: codegen.IdentifierSet, layers: list[str],
              elementwise: Callable[[tuple[int, ...], str, int], list[str]]) -> TailCode:
    """The tail's code (module docstring); ``names``: model.c's identifiers, ``layers``: the counter
    order, ``elementwise(ops, target, size)``: the statements of ReLU/FATReLU ops on a buffer."""
    out = TailCode()
    vectors = tail_vector_exprs(plan)
    current = 0  # the vector the next op reads
    linears = [i for i in chain.tail if isinstance(qmodel.ops[i], QLinear)]
    for index in chain.tail:
        op = qmodel.ops[index]
        if isinstance(op, QLinear):
            src = vectors[current]
            dst = "output" if index == linears[-1] else vectors[current + 1]
            ident = names.add(op.name)
            code = _linear_code(op, ident, variant, linear_quotient, layers.index(op.name), (src, dst), style)
            out.tables += code.tables + ["\n"]
            out.statements += [line + "\n" for line in code.call]
            out.flash.append(code.flash)
            out.checks.append(code.scratch_check)
            quotient = f"_{linear_quotient}" if variant == "unit" else ""
            quotient = f"_sorted{quotient}" if variant == "unit" and op.unit_kernel == "sorted" else quotient
            out.kernels |= {f"unit_linear_{variant}{quotient}_s8", "unit_linear_s8_scratch_size"}
            current += 1
        else:  # ReLU / FATReLU (fused_plan.fused_chain puts nothing else in the tail), in place
            assert isinstance(op, (QReLU, QThresholdReLU)), op
            target = "output" if current == len(vectors) else vectors[current]  # after the last Linear: the output
            out.statements += elementwise((index,), target, op.size)
    return out

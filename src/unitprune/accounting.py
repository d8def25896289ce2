"""Whole-model MAC accounting: the multiply-accumulates done *outside* UnIT layers.

UnIT layers count their own MACs (:class:`~unitprune.counts.MacCounts`). Everything else a model
multiplies (a ConvTranspose2d, a Conv3d, attention, a ``torch.matmul`` in a ``forward``) is
measured here with torch's :class:`~torch.utils.flop_counter.FlopCounterMode` during the same
forward pass, so that a report's total is the whole model's:
``total.dense == FlopCounterMode flops of the dense model / 2``.

Attribution: forward hooks on every module record the counter before and after each call; the
MACs a module does itself (its call minus its children's calls) go to a row named after the
module, those of the top-level ``forward`` to the row ``"other"``. The MACs inside UnIT layers
are left out (they are in the layers' own counts; on the reference backend the layer's masked
matrix products would otherwise be counted twice). Rows count dense = executed (nothing is
skipped outside UnIT layers).

FlopCounterMode runs with :func:`unitprune.mac_formulas.counting_mapping`: formulas for the
operators its registry returns 0 for while they multiply (LSTM, Bilinear, attention fast paths,
matrix-vector products, ...), and a refusal naming the layer for those without a formula.
"""

from __future__ import annotations

from contextlib import contextmanager
from collections.abc import Iterator

import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from .counts import MacCounts
from .layers import UNIT_LAYERS
from .mac_formulas import UncountedOperatorError, counting_mapping

__all__ = ["OTHER_ROW", "count_other_macs", "dense_macs"]

#: The row of MACs done by the top-level module's own forward (not inside any submodule).
OTHER_ROW = "other"


@contextmanager
def count_other_macs(model: nn.Module) -> Iterator[dict[str, MacCounts]]:
    """Inside the block, forward passes of ``model`` add the MACs done outside UnIT layers to the
    yielded dict ``{module name or "other": MacCounts}`` (rows appear in order of first use)."""
    rows: dict[str, MacCounts] = {}
    counter = FlopCounterMode(display=False, custom_mapping=counting_mapping())
    stack: list[list] = []  # per active call: [module name, flops at entry, flops of its child calls]

    def pre_hook(name: str):
        def hook(module, args):
            stack.append([name, counter.get_total_flops(), 0])
        return hook

    def post_hook(name: str, is_unit: bool):
        def hook(module, args, output):
            if not stack or stack[-1][0] != name:
                return  # a call whose entry was not seen (hooks added mid-call): nothing to attribute
            _, start, children = stack.pop()
            inclusive = counter.get_total_flops() - start
            if stack:
                stack[-1][2] += inclusive
            own = inclusive - children
            if not is_unit and own > 0:
                _add(rows, name or OTHER_ROW, own // 2)
        return hook

    handles = []
    for name, module in model.named_modules():
        is_unit = isinstance(module, UNIT_LAYERS)
        handles.append(module.register_forward_pre_hook(pre_hook(name)))
        handles.append(module.register_forward_hook(post_hook(name, is_unit)))
    try:
        with counter:
            yield rows
    except UncountedOperatorError as exc:
        where = next((name for name, _, _ in reversed(stack) if name), None)
        module = dict(model.named_modules()).get(where) if where else None
        layer = f"layer {where!r} ({type(module).__name__})" if where else "the model's own forward"
        raise UncountedOperatorError(f"cannot count the MACs of {layer}: {exc}") from None
    finally:
        for handle in handles:
            handle.remove()


def dense_macs(model: nn.Module, *args, **kwargs) -> int:
    """MACs of one call ``model(*args, **kwargs)`` as FlopCounterMode counts them (flops / 2)."""
    with FlopCounterMode(display=False, custom_mapping=counting_mapping()) as counter:
        model(*args, **kwargs)
    return counter.get_total_flops() // 2


def _add(rows: dict[str, MacCounts], name: str, macs: int) -> None:
    rows[name] = rows.get(name, MacCounts()) + MacCounts.from_ints(macs, 0, 0, 0, macs, 0, 0)

"""The axis the fused plan streams along (``export_c(..., fused_axis=...)``).

The fused plan (:mod:`.fused_plan`) computes a chain row by row: along the height. Streaming along
the width (the time axis of a ``bands x frames`` spectrogram, or the length of a Conv1d's input)
is the same plan on the model with height and width swapped: every conv and pool transposed
(weights and tau ``[O][C][KH][KW] -> [O][C][KW][KH]``, kernel, stride, dilation and padding
swapped), the final Linear's weight columns reordered from ``[C][H][W]`` to ``[C][W][H]``. The
runner then reads the input column by column and stores an output column by column
(:func:`.fused_c.fused_model_c`'s ``columns``), so the outputs and the MAC counters are those of the
model as given: every product, every skip and every int32 sum is the same, only their order
changes. ``auto`` streams along the axis whose plan needs less SRAM (the height on a tie).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..qmodel import QAvgPool, QConv, QLinear, QMaxPool, QuantizedModel
from .fused_plan import FusedChain, fused_buffers

__all__ = ["AXES", "transposed_model", "fused_sram_bytes", "choose_axis"]

#: The export's ``fused_axis`` option.
AXES = ("auto", "height", "width")


def _input3(shape: tuple[int, ...]) -> tuple[int, int, int]:
    shape = tuple(int(v) for v in shape)
    return shape if len(shape) == 3 else (shape[0], 1, shape[1]) if len(shape) == 2 else (1, 1, shape[0])


def transposed_model(qmodel: QuantizedModel) -> QuantizedModel:
    """``qmodel`` with height and width swapped (module docstring); its input is ``(C, W, H)``."""
    ops = []
    shape = _input3(qmodel.input_shape)
    for op in qmodel.ops:
        if isinstance(op, QConv):
            t, b, left, right = op.padding
            ops.append(replace(op, in_height=op.in_width, in_width=op.in_height, kernel_height=op.kernel_width,
                               kernel_width=op.kernel_height, stride=op.stride[::-1], dilation=op.dilation[::-1],
                               padding=(left, right, t, b), out_height=op.out_width, out_width=op.out_height,
                               weight=np.ascontiguousarray(op.weight.transpose(0, 1, 3, 2)),
                               tau=np.ascontiguousarray(op.tau.transpose(0, 1, 3, 2))))
            shape = (op.out_channels, op.out_height, op.out_width)
        elif isinstance(op, (QMaxPool, QAvgPool)):
            ops.append(replace(op, in_height=op.in_width, in_width=op.in_height, kernel=op.kernel[::-1],
                               stride=op.stride[::-1], out_height=op.out_width, out_width=op.out_height))
            shape = (op.channels, op.out_height, op.out_width)
        elif isinstance(op, QLinear) and not any(isinstance(o, QLinear) for o in ops):
            c, h, w = shape
            if c * h * w != op.in_features:
                raise ValueError(f"layer {op.name}: {op.in_features} inputs, but the tensor before it has "
                                 f"{c}x{h}x{w}")
            weight = op.weight.reshape(op.out_features, c, h, w).transpose(0, 1, 3, 2)
            ops.append(replace(op, weight=np.ascontiguousarray(weight.reshape(op.out_features, -1))))
        else:
            ops.append(op)
    c, h, w = _input3(qmodel.input_shape)
    return replace(qmodel, ops=ops, input_shape=(c, w, h))


def fused_sram_bytes(chain: FusedChain, linear_out: int) -> int:
    """The fused plan's SRAM without the descriptors (the same for either axis)."""
    parts = fused_buffers(chain, linear_out)
    return parts["arena"] + parts["scratch"]


def choose_axis(chains: dict[str, FusedChain], linear_out: int) -> str:
    """The axis of ``chains`` (``{"height": ..., "width": ...}``) whose plan needs the least SRAM."""
    return min(chains, key=lambda axis: (fused_sram_bytes(chains[axis], linear_out), axis != "height"))

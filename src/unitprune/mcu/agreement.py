"""How often the integer UnIT decisions agree with the float reference's on the same values.

For every conv/linear layer and every connection whose operands are both nonzero, the integer
decision (docs/fixed_point.md: ``|x_q| > tau`` for conv, ``|W_q| > t_i`` for linear) is compared
with the float decision of :mod:`unitprune.approx` (the float model's own approximation) on the
dequantized operands ``x = s_in * x_q``, ``w = s_w * w_q`` and the float threshold ``T`` (scaled
by a folded BatchNorm). With ``exact`` they differ only by float rounding; with ``bitshift`` the
float exponent of ``s_w * |w_q|`` is not the bit length of ``|w_q|``, so the power of two each
side divides by may differ.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from ..approx import quotient
from .qmodel import QConv, QLinear, QuantizedModel
from .graph import FloatLayer, plan_model
from .reference import conv_columns, conv_keep, linear_keep, quantize_input, run_reference

__all__ = ["decision_agreement"]

_SAMPLES_PER_CHUNK = 16


def decision_agreement(float_model: nn.Module, qmodel: QuantizedModel, x: torch.Tensor, *,
                       detailed: bool = False) -> dict:
    """Per conv/linear layer, the fraction of connections (both operands nonzero) on inputs ``x``
    where the integer keep/skip decision equals the float one on the dequantized values.

    ``float_model`` is the model ``qmodel`` was quantized from. With ``detailed=True`` each
    layer maps to ``{"fraction", "connections", "agreeing", "kept_by_integer_only",
    "kept_by_float_only"}`` instead of the fraction alone.
    """
    layers = {entry.name: entry for entry in plan_model(float_model) if isinstance(entry, FloatLayer)}
    inputs: dict[str, tuple] = {}
    run_reference(qmodel, quantize_input(qmodel, x), variant="unit",
                  capture=lambda op, x_in: inputs.__setitem__(op.name, (op, x_in))
                  if isinstance(op, (QConv, QLinear)) else None)
    result = {}
    for name, (op, x_in) in inputs.items():
        if name not in layers:
            raise ValueError(f"decision_agreement: layer {name!r} of the quantized model is not in the float model")
        tally = np.zeros(3, dtype=np.int64)  # connections, integer only, float only
        for start in range(0, x_in.shape[0], _SAMPLES_PER_CHUNK):
            chunk = x_in[start:start + _SAMPLES_PER_CHUNK]
            if isinstance(op, QConv):
                tally += _conv_tally(op, layers[name], chunk)
            else:
                tally += _linear_tally(op, layers[name], chunk, qmodel.linear_quotient)
        connections, integer_only, float_only = (int(v) for v in tally)
        agreeing = connections - integer_only - float_only
        fraction = agreeing / connections if connections else 1.0
        result[name] = fraction if not detailed else {
            "fraction": fraction, "connections": connections, "agreeing": agreeing,
            "kept_by_integer_only": integer_only, "kept_by_float_only": float_only}
    return result


def _tally(integer_keep: np.ndarray, float_keep: np.ndarray, both_nonzero: np.ndarray) -> np.ndarray:
    return np.array([both_nonzero.sum(), (both_nonzero & integer_keep & ~float_keep).sum(),
                     (both_nonzero & float_keep & ~integer_keep).sum()], dtype=np.int64)


def _float32(values) -> torch.Tensor:
    return torch.from_numpy(np.asarray(values, dtype=np.float64).astype(np.float32))


def _conv_tally(op: QConv, layer: FloatLayer, x: np.ndarray) -> np.ndarray:
    n = x.shape[0]
    columns = conv_columns(op, x.reshape(n, op.in_channels, op.in_height, op.in_width))  # (n, G, K, L)
    per_group = op.out_channels // op.groups
    tally = np.zeros(3, dtype=np.int64)
    for group in range(op.groups):
        rows = slice(group * per_group, (group + 1) * per_group)
        cols = columns[:, group]
        weight = op.weight[rows].reshape(per_group, -1).astype(np.int64)
        integer_keep = conv_keep(op, cols, group, "unit")
        abs_w = _float32(op.weight_scale[rows, None] * np.abs(weight))
        threshold = _float32(np.broadcast_to(layer.threshold[rows, None], weight.shape))
        tau = quotient(layer.approx, threshold.contiguous(), abs_w, layer.shift_start).numpy()
        abs_x = _float32(op.input_scale * np.abs(cols)).numpy()
        float_keep = abs_x[:, None] > tau[None, :, :, None]
        both_nonzero = (cols != 0)[:, None] & (weight != 0)[None, :, :, None]
        tally += _tally(integer_keep, float_keep, both_nonzero)
    return tally


def _linear_tally(op: QLinear, layer: FloatLayer, x: np.ndarray, method: str) -> np.ndarray:
    xs = x.reshape(x.shape[0], op.in_features).astype(np.int64)
    integer_keep = linear_keep(op, xs, "unit", method)
    abs_x = _float32(op.input_scale * np.abs(xs))
    threshold = torch.full_like(abs_x, float(np.float32(layer.threshold[0])))
    t = quotient(layer.approx, threshold, abs_x, layer.shift_start).numpy()
    abs_w = _float32(op.weight_scale * np.abs(op.weight.astype(np.int64))).numpy()
    float_keep = abs_w[None] > t[:, None, :]
    both_nonzero = (xs != 0)[:, None, :] & (op.weight != 0)[None]
    return _tally(integer_keep, float_keep, both_nonzero)

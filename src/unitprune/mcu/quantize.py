"""``quantize``: a float (UnIT) model becomes an int8 :class:`~unitprune.mcu.qmodel.QuantizedModel`.

The scheme is TFLite Micro's int8 one with activation zero point 0 (docs/fixed_point.md fixes it
bit for bit). The steps:

1. :func:`unitprune.mcu.graph.plan_model` traces the model with ``torch.fx`` into a chain of
   supported steps, folds every BatchNorm into the conv/linear before it (in float64) and fuses a
   directly following ReLU (a FATReLU too, followed by a threshold op: docs/fixed_point.md). Anything else raises ``ValueError`` naming the module or graph node.
2. The float model itself (its UnIT eval path: pruned activations, as deployed) runs on the
   calibration data; the range of every quantized tensor is recorded.
3. Weights, biases, requantization constants, integer thresholds ``T_q`` and the UnIT tables (conv
   ``tau``, linear quotient table and quotient tree) are computed per layer.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from ..approx import BinTree, bitshift_int, exact_int, quotient
from ..model_pass import iterate_inputs
from ..config import validate_percentile
from ..layers import UNIT_LAYERS, UnITLayerMixin
from .graph import FloatLayer, _Other, adaptive_pool_window, plan_model, run_step
from .qmodel import (LINEAR_QUOTIENTS, VARIANTS, QAvgPool, QConv, QFlatten, QLinear, QMaxPool, QReLU, QThresholdReLU,
                     QuantizedModel, Requant)

logger = logging.getLogger(__name__)

__all__ = ["QuantConfig", "quantize", "quantize_multiplier", "round_half_away"]

INT32_MAX = 2**31 - 1
ACTIVATION_RANGES = ("max", "percentile")
UNIT_DECISIONS = ("integer", "float")


@dataclass(frozen=True)
class QuantConfig:
    """The quantization scheme's result-changing settings.

    Attributes:
        activation_range: how the range ``r`` of the network input and of every activation
            tensor is measured on the calibration data (scale ``r / 127``): ``"max"`` (the
            largest magnitude, docs/fixed_point.md; nothing saturates on the calibration data)
            or ``"percentile"`` (the ``activation_percentile``-th percentile of the magnitudes:
            rare outliers saturate, the rest gets a finer scale).
        activation_percentile: the percentile in (0, 100] used by ``"percentile"``.
        unit_decisions: how the UnIT tables are computed. ``"integer"`` (docs/fixed_point.md):
            ``tau = approx_int(T_q, |w_q|)`` and ``t_i = approx_int(T_q, |x_q|)``, the paper's
            integer algorithm on the integer values. ``"float"``: the conv ``tau`` tables and the
            linear quotient table reproduce the float model's own decisions on the dequantized
            values (``|s_in x_q| > approx(T, s_w |w_q|)`` in float32, with its approximation), so
            the integer model skips exactly what the float one would; the same uint8 tables, no
            cost on the device for conv, the ``table`` kernel for linear layers.
    """

    activation_range: str = "max"
    activation_percentile: float = 99.99
    unit_decisions: str = "integer"

    def __post_init__(self) -> None:
        if self.unit_decisions not in UNIT_DECISIONS:
            raise ValueError(f"QuantConfig.unit_decisions must be one of {UNIT_DECISIONS}, got {self.unit_decisions!r}")
        if self.activation_range not in ACTIVATION_RANGES:
            raise ValueError(f"QuantConfig.activation_range must be one of {ACTIVATION_RANGES}, "
                             f"got {self.activation_range!r}")
        validate_percentile(self.activation_percentile, "QuantConfig.activation_percentile")
        if self.activation_percentile == 0:
            raise ValueError("QuantConfig.activation_percentile must be > 0")


# ----------------------------------------------------------------------------------------
# TFLite number helpers
# ----------------------------------------------------------------------------------------

def round_half_away(values) -> np.ndarray:
    """``sign(v) * floor(|v| + 0.5)`` in float64 (docs/fixed_point.md's rounding)."""
    values = np.asarray(values, dtype=np.float64)
    return np.sign(values) * np.floor(np.abs(values) + 0.5)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's ``QuantizeMultiplier``: ``real ~= multiplier * 2**(shift - 31)``, multiplier in Q31.

    Returns ``(0, 0)`` for ``real == 0`` and for values below ``2**-32`` (TFLite's flush to zero).
    Raises ``ValueError`` for a negative or non-finite ``real`` and for a ``real`` that rounds to
    ``2**30`` or more (shift beyond the contract's ``[-31, 30]``).
    """
    real = float(real)
    if not math.isfinite(real) or real < 0:
        raise ValueError(f"quantize_multiplier: the real multiplier must be finite and >= 0, got {real!r}")
    if real == 0:
        return 0, 0
    fraction, exponent = math.frexp(real)
    q = int(round_half_away(fraction * 2.0**31))  # exact: fraction * 2**31 is a float64 scaling by 2**31
    if q == 2**31:
        q //= 2
        exponent += 1
    if exponent < -31:
        return 0, 0
    if exponent > 30:
        raise ValueError(f"quantize_multiplier: real multiplier {real!r} rounds to 2**30 or more (shift > 30)")
    return q, exponent


# ----------------------------------------------------------------------------------------
# Calibration run of the float model
# ----------------------------------------------------------------------------------------

class _Range:
    """The range of one tensor over the calibration batches (max or percentile of ``|a|``)."""

    def __init__(self, config: QuantConfig):
        self.config = config
        self.maximum = 0.0
        self.values: list[np.ndarray] = []

    def add(self, values: Tensor) -> None:
        magnitudes = values.detach().abs().flatten()
        if magnitudes.numel():
            self.maximum = max(self.maximum, float(magnitudes.max()))
        if self.config.activation_range == "percentile":
            self.values.append(magnitudes.cpu().numpy())

    def scale(self) -> float:
        """``range / 127``; 1.0 for a tensor that is zero on all calibration data."""
        if self.config.activation_range == "max":
            value = self.maximum
        else:
            value = float(np.percentile(np.concatenate(self.values), self.config.activation_percentile,
                                        method="inverted_cdf"))
        return value / 127.0 if value > 0 else 1.0


def _calibration_batches(data) -> list[Tensor]:
    batches = []
    for index, x in enumerate(iterate_inputs(data)):
        if x.numel() == 0:
            continue
        if x.dtype != torch.float32:
            raise TypeError(f"quantize: calibration batch {index} has dtype {x.dtype}, expected float32")
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"quantize: calibration batch {index} contains NaN or Inf")
        if batches and x.shape[1:] != batches[0].shape[1:]:
            raise ValueError(f"quantize: calibration batch {index} has sample shape {tuple(x.shape[1:])}, "
                             f"batch 0 has {tuple(batches[0].shape[1:])}")
        batches.append(x)
    if not batches:
        raise ValueError("quantize: the calibration data is empty")
    return batches


def _measure_ranges(model: nn.Module, plan, batches: list[Tensor], config: QuantConfig):
    """Run the float model step by step; return the input range, one range per plan entry and the
    per-sample shape after each entry."""
    unit = {id(module): module.mac_counts for module in model.modules() if isinstance(module, UNIT_LAYERS)}
    was_training = model.training
    input_range = _Range(config)
    ranges = [_Range(config) for _ in plan]
    shapes: list[tuple[int, ...]] = [()] * len(plan)
    model.eval()
    try:
        with torch.no_grad():
            for batch in batches:
                input_range.add(batch)
                x = batch
                for position, entry in enumerate(plan):
                    for step in entry.steps:
                        try:
                            x = run_step(step, x)
                        except Exception as exc:
                            raise ValueError(f"quantize: step {step.name!r} failed on the calibration data "
                                             f"({type(exc).__name__}: {exc})") from exc
                    if not bool(torch.isfinite(x).all()):
                        raise ValueError(f"quantize: the output of {entry.name!r} contains NaN or Inf on the "
                                         "calibration data")
                    ranges[position].add(x)
                    shapes[position] = tuple(x.shape[1:])
    finally:
        model.train(was_training)
        for module in model.modules():
            if id(module) in unit:
                module.mac_counts = unit[id(module)]
    return input_range.scale(), [r.scale() for r in ranges], shapes


# ----------------------------------------------------------------------------------------
# Layer quantization
# ----------------------------------------------------------------------------------------

def _quantize_weight(weight: np.ndarray, scale: np.ndarray) -> np.ndarray:
    shape = (-1,) + (1,) * (weight.ndim - 1) if np.ndim(scale) else ()
    return np.clip(round_half_away(weight / np.reshape(scale, shape)), -127, 127).astype(np.int8)


def _requant(name: str, bias: np.ndarray, weight_q: np.ndarray, input_scale: float, weight_scale: np.ndarray,
             output_scale: float, relu: bool) -> Requant:
    out = weight_q.shape[0]
    weight_scale = np.broadcast_to(np.asarray(weight_scale, dtype=np.float64), (out,))
    bias_q = round_half_away(bias / (input_scale * weight_scale))
    if np.any(np.abs(bias_q) > INT32_MAX):
        raise ValueError(f"quantize: layer {name!r}: a quantized bias exceeds int32 (bias / (s_in * s_w) up to "
                         f"{np.abs(bias_q).max():.3g})")
    multipliers, shifts = zip(*(quantize_multiplier(input_scale * s / output_scale) for s in weight_scale))
    shifts_array = np.array(shifts, dtype=np.int64)
    bound = np.abs(bias_q) + 128.0 * np.abs(weight_q.reshape(out, -1).astype(np.int64)).sum(axis=1)
    worst = bound * 2.0 ** np.maximum(shifts_array, 0)
    if np.any(worst >= 2.0**31):
        o = int(np.argmax(worst))
        raise ValueError(f"quantize: layer {name!r}, output {o}: the accumulator bound |bias_q| + 128 * sum|w_q| = "
                         f"{int(bound[o])} times 2**{int(shifts_array[o])} (requantization left shift) reaches "
                         "2**31 (int32 overflow); the output scale is too small for this layer")
    return Requant(bias=bias_q.astype(np.int32), multiplier=np.array(multipliers, dtype=np.int32),
                   shift=shifts_array.astype(np.int8), act_min=0 if relu else -128, act_max=127)


def _threshold_q(threshold: np.ndarray, input_scale: float, weight_scale: np.ndarray) -> np.ndarray:
    """``floor(T / (s_in * s_w))`` saturated at ``2**31 - 1`` (int64)."""
    values = np.floor(threshold / (input_scale * np.asarray(weight_scale, dtype=np.float64)))
    return np.minimum(values, INT32_MAX).astype(np.int64)


def _integer_approx(approx: str) -> str:
    """The integer approximation that implements a float one (bitmask has none: bitshift)."""
    return "exact" if approx == "exact" else "bitshift"


def _approx_int(approx: str, threshold_q, magnitudes, shift_start: int):
    if approx == "exact":
        return exact_int(threshold_q, magnitudes)
    return bitshift_int(threshold_q, magnitudes, shift_start)


def _float_quotients(layer: FloatLayer, threshold: np.ndarray, control: np.ndarray) -> np.ndarray:
    """The float model's quotients ``approx(T, c)`` (float32, its approximation and shift_start)."""
    t = torch.from_numpy(np.ascontiguousarray(threshold, dtype=np.float64).astype(np.float32))
    c = torch.from_numpy(np.ascontiguousarray(control, dtype=np.float64).astype(np.float32))
    return quotient(layer.approx, t, c, layer.shift_start).numpy()


def _integer_cutoffs(float_quotients: np.ndarray, scale: float, largest: int) -> np.ndarray:
    """For each float quotient ``q``: how many of ``m = 1..largest`` have ``float32(scale * m) <= q``.

    ``float32(scale * m)`` grows with ``m``, so ``|z_q| <= cutoff`` iff the float test skips
    ``scale * |z_q|``: the integer table that makes the float model's decision.
    """
    steps = (scale * np.arange(1, largest + 1, dtype=np.float64)).astype(np.float32)
    return np.searchsorted(steps, float_quotients.astype(np.float32), side="right").astype(np.int64)


def _quantize_conv(layer: FloatLayer, input_scale: float, in_shape: tuple[int, ...], out_shape: tuple[int, ...],
                   output_scale: float, approx: str, decisions: str) -> QConv:
    weight = layer.weight
    out = weight.shape[0]
    peak = np.abs(weight.reshape(out, -1)).max(axis=1)
    weight_scale = np.where(peak > 0, peak / 127.0, 1.0)
    weight_q = _quantize_weight(weight, weight_scale)
    requant = _requant(layer.name, layer.bias, weight_q, input_scale, weight_scale, output_scale, layer.relu)
    threshold_q = _threshold_q(layer.threshold, input_scale, weight_scale)
    magnitudes = np.abs(weight_q.astype(np.int64))
    per_weight = np.broadcast_to(threshold_q.reshape(-1, 1, 1, 1), weight_q.shape)
    nonzero = magnitudes > 0
    tau = np.full(weight_q.shape, 255, dtype=np.int64)
    if decisions == "float":
        float_tau = _float_quotients(layer, np.broadcast_to(layer.threshold.reshape(-1, 1, 1, 1), weight_q.shape),
                                     weight_scale.reshape(-1, 1, 1, 1) * magnitudes)
        tau[nonzero] = _integer_cutoffs(float_tau[nonzero], input_scale, 128)
    else:
        tau[nonzero] = np.minimum(_approx_int(approx, per_weight[nonzero], magnitudes[nonzero],
                                            layer.integer_shift_start), 255)
    geometry = layer.geometry
    channels = in_shape[0]
    height, width = (1, in_shape[1]) if layer.is_conv1d else (in_shape[1], in_shape[2])
    out_height, out_width = (1, out_shape[1]) if layer.is_conv1d else (out_shape[1], out_shape[2])
    return QConv(name=layer.name, in_channels=channels, in_height=height, in_width=width, out_channels=out,
                 kernel_height=geometry.kernel_size[0], kernel_width=geometry.kernel_size[1],
                 stride=tuple(geometry.stride), dilation=tuple(geometry.dilation), padding=tuple(geometry.padding),
                 groups=geometry.groups, out_height=out_height, out_width=out_width, weight=weight_q,
                 requant=requant, threshold_q=threshold_q, tau=tau.astype(np.uint8), input_scale=input_scale,
                 output_scale=output_scale, weight_scale=weight_scale.astype(np.float64), is_conv1d=layer.is_conv1d)


def _quotient_table(threshold_q: int, shift_start: int, approx: str) -> np.ndarray:
    table = np.full(129, 255, dtype=np.int64)
    table[1:] = np.minimum(_approx_int(approx, np.full(128, threshold_q, dtype=np.int64), np.arange(1, 129),
                                       shift_start), 255)
    return table.astype(np.uint8)


def quotient_tree(threshold_q: int, shift_start: int, magnitudes) -> tuple[np.ndarray, ...]:
    """The arrays of ``unit_quotient_tree_s8``: a :class:`~unitprune.approx.BinTree` over the bit
    lengths 1..8 of ``|x_q|``, shaped by the nonzero ``magnitudes`` seen on calibration data
    (balanced when there are none), leaves holding ``min(T_q >> max(n, shift_start), 255)``.

    Returns ``(split, left, right, quotient)`` as int8, int8, int8, uint8 arrays.
    """
    magnitudes = np.abs(np.asarray(magnitudes, dtype=np.int64).ravel())
    if np.any(magnitudes != 0):
        tree = BinTree.from_samples(magnitudes[magnitudes != 0], 1, 8)
    else:
        tree = BinTree.balanced(1, 8)
    leaf = np.asarray(tree.leaf, dtype=np.int64)
    is_leaf = np.asarray(tree.left) < 0
    quotients = np.where(is_leaf, np.minimum(threshold_q >> np.maximum(leaf, shift_start), 255), 0)
    return (np.asarray(tree.split, dtype=np.int8), np.asarray(tree.left, dtype=np.int8),
            np.asarray(tree.right, dtype=np.int8), quotients.astype(np.uint8))


def _quantize_linear(layer: FloatLayer, input_scale: float, in_shape: tuple[int, ...], output_scale: float,
                     approx: str, decisions: str) -> QLinear:
    if len(in_shape) != 1:
        raise ValueError(f"quantize: linear layer {layer.name!r} gets inputs of shape {in_shape} per sample; the "
                         "integer model needs flat inputs (add nn.Flatten before it)")
    weight = layer.weight
    peak = float(np.abs(weight).max())
    weight_scale = peak / 127.0 if peak > 0 else 1.0
    weight_q = _quantize_weight(weight, np.float64(weight_scale))
    requant = _requant(layer.name, layer.bias, weight_q, input_scale, np.float64(weight_scale), output_scale,
                       layer.relu)
    threshold_q = int(_threshold_q(layer.threshold, input_scale, np.float64(weight_scale))[0])
    shift_start = layer.integer_shift_start
    split, left, right, tree_quotient = quotient_tree(threshold_q, shift_start, [])
    if decisions == "float":
        table = np.full(129, 255, dtype=np.int64)
        float_t = _float_quotients(layer, np.full(128, layer.threshold[0]), input_scale * np.arange(1, 129))
        table[1:] = _integer_cutoffs(float_t, weight_scale, 127)
        table = table.astype(np.uint8)
    else:
        table = _quotient_table(threshold_q, shift_start, approx)
    return QLinear(name=layer.name, in_features=weight.shape[1], out_features=weight.shape[0], weight=weight_q,
                   requant=requant, threshold_q=threshold_q, shift_start=shift_start,
                   quotient_table=table, tree_split=split,
                   tree_left=left, tree_right=right, tree_quotient=tree_quotient, input_scale=input_scale,
                   output_scale=output_scale, weight_scale=float(weight_scale))


def threshold_relu_q(theta: float, scale: float) -> int:
    """A FATReLU's integer threshold: ``q * scale > theta`` iff ``q > floor(theta / scale)``, in [0, 127]."""
    return int(min(max(math.floor(theta / scale), 0), 127))


def _quantize_other(entry: _Other, in_shape: tuple[int, ...], out_shape: tuple[int, ...], scale: float):
    size = int(np.prod(in_shape))
    if entry.kind == "relu":
        return QReLU(entry.name, size)
    if entry.kind == "threshold_relu":
        return QThresholdReLU(entry.name, size, threshold_relu_q(entry.threshold, scale))
    if entry.kind == "flatten":
        return QFlatten(entry.name, size)
    # max-pool, average pool: (C, L) inputs are (C, 1, L)
    channels, height, width = (in_shape[0], 1, in_shape[1]) if len(in_shape) == 2 else in_shape
    out_height, out_width = (1, out_shape[1]) if len(out_shape) == 2 else out_shape[1:]
    if entry.kind == "avgpool":
        window = adaptive_pool_window(entry, height, width) if entry.adaptive else None
        kernel, stride = (window, window) if window else (entry.kernel, entry.stride)
        return QAvgPool(entry.name, channels, height, width, kernel, stride, out_height, out_width)
    return QMaxPool(entry.name, channels, height, width, entry.kernel, entry.stride, out_height, out_width)


# ----------------------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------------------

def quantize(model: nn.Module, calibration_data, config: QuantConfig | None = None, *, variant: str = "unit",
             linear_quotient: str | None = None) -> QuantizedModel:
    """Quantize a float model (a converted, calibrated UnIT model, or a plain torch model) to int8.

    Args:
        model: a chain of supported layers (see :func:`plan_model`); UnIT layers contribute their
            calibrated thresholds and ``UnITConfig`` (approx, shift_start, group_size), plain
            Conv/Linear layers threshold 0.
        calibration_data: a tensor of inputs, a DataLoader, or an iterable of tensors or
            ``(x, y)`` pairs; sets the input and activation ranges and shapes the quotient trees.
        config: the :class:`QuantConfig` (default ``QuantConfig()``).
        variant: the kernels the integer reference (and an export) runs: dense, zeroskip, unit.
        linear_quotient: how linear layers compute their per-input quotient: bitshift, bintree, table.
            Default: one the model's approximation supports (``table`` for ``approx="exact"`` or
            ``unit_decisions="float"`` with a linear layer, else ``bitshift``).

    The float approximation maps to an integer one: ``exact`` -> ``exact_int`` (only the
    ``table`` linear kernel computes it), ``bitshift``/``bintree``/``bitmask`` -> ``bitshift_int``.
    """
    config = config if config is not None else QuantConfig()
    if variant not in VARIANTS:
        raise ValueError(f"quantize: variant must be one of {VARIANTS}, got {variant!r}")
    if linear_quotient is not None and linear_quotient not in LINEAR_QUOTIENTS:
        raise ValueError(f"quantize: linear_quotient must be one of {LINEAR_QUOTIENTS}, got {linear_quotient!r}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"quantize expects an nn.Module, got {type(model).__name__}")
    plan = plan_model(model)
    layers = [entry for entry in plan if isinstance(entry, FloatLayer)]
    if not layers:
        raise ValueError("quantize: the model has no Conv1d/Conv2d/Linear layer")
    float_approx = _common_approx(model, layers)
    approx = _integer_approx(float_approx)
    if float_approx == "bitmask":
        logger.info("quantize: the float model uses bitmask; the integer model uses bitshift (T_q >> n), the "
                    "integer form of a power-of-two quotient")
    has_linear = any(layer.kind == "linear" for layer in layers)
    if linear_quotient is None:  # the one the approximation supports (the explicit checks below then pass)
        linear_quotient = "table" if has_linear and (approx == "exact" or config.unit_decisions == "float") \
            else "bitshift"
    if config.unit_decisions == "float" and linear_quotient != "table" and has_linear:
        raise ValueError(f"quantize: unit_decisions='float' needs linear_quotient='table' (got {linear_quotient!r}): "
                         "only a table reproduces the float model's linear decisions")
    if approx == "exact" and linear_quotient != "table" and has_linear:
        raise ValueError(f"quantize: approx='exact' needs linear_quotient='table' (got {linear_quotient!r}): the "
                         "bitshift and bintree linear kernels compute T_q >> n, not T_q // |x_q|")
    batches = _calibration_batches(calibration_data)
    input_scale, scales, shapes = _measure_ranges(model, plan, batches, config)
    input_shape = tuple(batches[0].shape[1:])

    ops = []
    scale, shape = input_scale, input_shape
    for entry, entry_scale, entry_shape in zip(plan, scales, shapes):
        if isinstance(entry, FloatLayer) and entry.kind == "conv":
            ops.append(_quantize_conv(entry, scale, shape, entry_shape, entry_scale, approx, config.unit_decisions))
            scale = entry_scale
        elif isinstance(entry, FloatLayer):
            ops.append(_quantize_linear(entry, scale, shape, entry_scale, approx, config.unit_decisions))
            scale = entry_scale
        elif entry.kind != "noop":
            ops.append(_quantize_other(entry, shape, entry_shape, scale))  # same scale in and out
        if isinstance(entry, FloatLayer) and entry.fatrelu is not None and entry.fatrelu[1] > 0:
            name, theta = entry.fatrelu  # theta 0: the fused ReLU is all of it
            ops.append(QThresholdReLU(name, int(np.prod(entry_shape)), threshold_relu_q(theta, scale)))
        shape = entry_shape
    qmodel = QuantizedModel(ops=ops, input_shape=input_shape, input_scale=input_scale, output_scale=scale,
                            variant=variant, linear_quotient=linear_quotient, approx=approx,
                            source={"model": type(model).__name__, "float_approx": float_approx,
                                    "unit_decisions": config.unit_decisions,
                                    "quant_config": dataclasses.asdict(config),
                                    "calibration_samples": sum(int(b.shape[0]) for b in batches)},
                            output_shape=shape)
    _shape_quotient_trees(qmodel, batches)
    logger.info("quantize: %d ops, input scale %.4g, output scale %.4g", len(ops), input_scale, scale)
    return qmodel


def _common_approx(model: nn.Module, layers: list[FloatLayer]) -> str:
    modules = dict(model.named_modules())
    approxes = {layer.approx for layer in layers if isinstance(modules.get(layer.name), UnITLayerMixin)}
    if len(approxes) > 1:
        raise ValueError(f"quantize: the UnIT layers use different approximations {sorted(approxes)}; the integer "
                         "model uses one")
    return approxes.pop() if approxes else "bitshift"


def _shape_quotient_trees(qmodel: QuantizedModel, batches: list[Tensor]) -> None:
    """Rebuild every linear layer's quotient tree from the |x_q| its integer input takes on calibration data
    (the dense integer reference's inputs, computed by :func:`unitprune.mcu.fast_reference.run_fast`)."""
    from .fast_reference import run_fast
    from .reference import quantize_input

    linear = [index for index, op in enumerate(qmodel.ops) if isinstance(op, QLinear)]
    if not linear:
        return
    captured: dict[str, list[np.ndarray]] = {qmodel.ops[i].name: [] for i in linear}
    for batch in batches:
        run_fast(qmodel, quantize_input(qmodel, batch), variant="dense",
                      capture=lambda op, x: captured[op.name].append(x) if isinstance(op, QLinear) else None)
    for index in linear:
        op = qmodel.ops[index]
        magnitudes = np.concatenate([x.ravel() for x in captured[op.name]]).astype(np.int64)
        split, left, right, quotient = quotient_tree(op.threshold_q, op.shift_start, magnitudes)
        qmodel.ops[index] = dataclasses.replace(op, tree_split=split, tree_left=left, tree_right=right,
                                                tree_quotient=quotient)

"""The quantized model: what quantization produces and the exporter and integer reference consume.

All arrays are NumPy arrays of the stated dtype; the semantics of every field are in
docs/fixed_point.md. Ops run in list order on one activation tensor, ``[C][H][W]`` per sample
(Conv1d is a conv with ``in_height == kernel_height == 1``; flattened tensors are ``[N]``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: UnIT variants a kernel can run: the dense baseline, zero skipping, and UnIT.
VARIANTS = ("dense", "zeroskip", "unit")
#: Convolution kernels of the ``unit`` variant (:attr:`QConv.unit_kernel`).
UNIT_CONV_KERNELS = ("unit", "skipfree", "dense", "sparse", "static", "sparse_tau")
#: Linear kernels of the ``unit`` variant (:attr:`QLinear.unit_kernel`).
UNIT_LINEAR_KERNELS = ("unit", "sorted", "static")
#: How a linear layer computes its per-input quotient in the ``unit`` variant.
LINEAR_QUOTIENTS = ("bitshift", "bintree", "table")


@dataclass(frozen=True)
class Requant:
    """Per-output requantization: ``clamp(requantize(bias + acc, multiplier, shift), act_min, act_max)``."""

    bias: np.ndarray  # int32 [out]
    multiplier: np.ndarray  # int32 [out], Q31
    shift: np.ndarray  # int8 [out], in [-31, 30]
    act_min: int  # -128, or 0 with a fused ReLU
    act_max: int  # 127
    #: uint32 [out][128] threshold tables of the output stage (None: none); the exporter sets them
    #: (unitprune.mcu.requant_table.with_tables), the outputs do not depend on them
    thresholds: np.ndarray | None = None


@dataclass(frozen=True)
class QConv:
    """A Conv1d/Conv2d (geometry as ``unit_conv2d_params`` without the batch)."""

    name: str
    in_channels: int
    in_height: int
    in_width: int
    out_channels: int
    kernel_height: int
    kernel_width: int
    stride: tuple[int, int]  # (y, x)
    dilation: tuple[int, int]  # (y, x)
    padding: tuple[int, int, int, int]  # (top, bottom, left, right)
    groups: int
    out_height: int
    out_width: int
    weight: np.ndarray  # int8 [O][C/groups][KH][KW]
    requant: Requant
    threshold_q: np.ndarray  # int64 [O]: T_q per output channel (0: no UnIT skipping)
    tau: np.ndarray  # uint8 [O][C/groups][KH][KW], 255 where weight == 0
    input_scale: float
    output_scale: float
    weight_scale: np.ndarray  # float64 [O]
    is_conv1d: bool = False
    #: The convolution kernel under the ``unit`` variant (``unitprune.mcu.unit_plan``): ``"unit"``
    #: (the per-position test, the default), ``"skipfree"`` (same outputs and cause counters,
    #: ``compares`` = the list entries it visits), ``"sparse"`` (the same over the stored nonzero
    #: weights only, ``unit_conv2d_unit_sparse_s8``; ``compares`` = its row-list entries visited) or
    #: ``"dense"`` (this layer's UnIT off: every MAC) or ``"static"`` (this layer's UnIT off, exact, on
    #: the static-sparse kernel ``unit_conv2d_sparse_s8``: only the nonzero weights, counted as the
    #: ``zeroskip`` variant counts them; the dense kernel where its tables do not fit) or ``"sparse_tau"``
    #: (UnIT over the stored nonzero weights, tau in each record: ``unit_conv2d_sparse_tau_s8``; the
    #: per-position kernel's outputs and counters).
    #: Ignored by the ``dense`` and ``zeroskip`` variants.
    unit_kernel: str = "unit"


@dataclass(frozen=True)
class QLinear:
    """A Linear layer; ``weight`` is ``[out][in]`` as in torch (the exporter writes it transposed)."""

    name: str
    in_features: int
    out_features: int
    weight: np.ndarray  # int8 [out][in]
    requant: Requant
    threshold_q: int  # T_q (0: no UnIT skipping)
    shift_start: int  # bitshift coarse start, >= 0 (0: none)
    quotient_table: np.ndarray  # uint8 [129]: t for |x| = 0..128
    tree_split: np.ndarray  # int8 [nodes]  (unit_quotient_tree_s8, fixed_point.md)
    tree_left: np.ndarray  # int8 [nodes]
    tree_right: np.ndarray  # int8 [nodes]
    tree_quotient: np.ndarray  # uint8 [nodes]
    input_scale: float
    output_scale: float
    weight_scale: float
    #: The linear kernel under the ``unit`` variant (``unitprune.mcu.unit_plan``): ``"unit"`` (every
    #: weight of a nonzero input's column tested, the default) or ``"sorted"`` (the early exit over the
    #: column sorted by |w| at export; same outputs and cause counters, ``compares`` = the walk) or
    #: ``"static"`` (this layer's UnIT off, exact, on ``unit_linear_sparse_s8``: counted as ``zeroskip``).
    unit_kernel: str = "unit"


@dataclass(frozen=True)
class _QPool2d:
    """The geometry every int8 pool shares: no padding, floor mode, same scale in and out."""

    name: str
    channels: int
    in_height: int
    in_width: int
    kernel: tuple[int, int]  # (y, x)
    stride: tuple[int, int]  # (y, x)
    out_height: int
    out_width: int


@dataclass(frozen=True)
class QMaxPool(_QPool2d):
    """Max-pool: the largest int8 value of each window."""


@dataclass(frozen=True)
class QAvgPool(_QPool2d):
    """Average pool (docs/fixed_point.md): per window of ``n = kernel[0] * kernel[1]`` values,
    ``acc`` their sum and ``y = clamp(round_half_away(acc / n))`` as TFLite computes it,
    ``(acc + n/2) / n`` or ``(acc - n/2) / n`` with C's truncating division."""


@dataclass(frozen=True)
class QReLU:
    name: str
    size: int  # elements per sample


@dataclass(frozen=True)
class QThresholdReLU:
    """FATReLU in place: ``q = q if q > threshold_q else 0``. With zero point 0, ``s * q > theta``
    iff ``q > floor(theta / s)``, so ``threshold_q = floor(theta / s)`` clamped to [0, 127]."""

    name: str
    size: int  # elements per sample
    threshold_q: int  # in [0, 127]


@dataclass(frozen=True)
class QFlatten:
    name: str
    size: int  # elements per sample


QOp = QConv | QLinear | QMaxPool | QAvgPool | QReLU | QThresholdReLU | QFlatten


@dataclass
class QuantizedModel:
    """An int8 model: quantize the input with ``input_scale``, run ``ops``, dequantize with ``output_scale``.

    ``variant`` and ``linear_quotient`` choose the kernels the integer reference (and an export)
    runs; they change the counters, never the outputs of ``dense``/``zeroskip`` vs each other, and
    ``unit`` differs from them only by the skipped connections.
    """

    ops: list[QOp]
    input_shape: tuple[int, ...]  # per sample: (C, H, W) or (C, L) or (N,)
    input_scale: float
    output_scale: float
    variant: str = "unit"
    linear_quotient: str = "bitshift"
    approx: str = "bitshift"  # the float model's approximation (bitmask maps to bitshift)
    source: dict = field(default_factory=dict)  # provenance: model name, percentile, config
    output_shape: tuple[int, ...] | None = None  # per sample, as the float model outputs it (None: flat)

    def __call__(self, x):
        """Run the integer reference on a float tensor ``x`` of shape ``(N, *input_shape)``: quantize
        the input, run ``ops`` with :attr:`variant`, return the dequantized float32 outputs (a tensor)."""
        import torch

        from .reference import dequantize_output, quantize_input, run_reference

        y_q, _ = run_reference(self, quantize_input(self, x))
        return torch.from_numpy(dequantize_output(self, y_q))

    def mac_report(self, inputs):
        """The MAC counters of the integer reference on float ``inputs`` ``(N, *input_shape)``, per
        layer, as a :class:`unitprune.MacReport` (what :func:`unitprune.mac_report` returns for this
        model)."""
        from ..report import MacReport
        from .reference import quantize_input, run_reference

        if inputs.dim() == 0 or inputs.shape[0] == 0:
            raise ValueError(f"mac_report: inputs must hold at least one sample, got shape {tuple(inputs.shape)}")
        _, per_layer = run_reference(self, quantize_input(self, inputs))
        return MacReport(per_layer=per_layer, num_samples=int(inputs.shape[0]))

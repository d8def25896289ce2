"""UnIT layers: drop-in twins of nn.Linear, nn.Conv1d and nn.Conv2d.

Each layer is a subclass of its torch layer (same parameters, same ``state_dict`` keys) plus a
``threshold`` buffer of shape ``(num_groups,)``.

* ``train()`` mode computes the plain dense layer, so a converted model can be fine-tuned.
* ``eval()`` mode applies UnIT (docs/semantics.md) through the configured backend and adds the
  MAC counters of every call to ``layer.mac_counts`` (see :func:`unitprune.reset_mac_counts`).

Thresholds start at 0, which makes the eval output equal to the dense layer's.

The ``state_dict`` also holds each layer's ``_extra_state``: its result-changing settings
(:meth:`UnITConfig.result_settings`) and its calibrated :class:`~unitprune.approx.BinTree` (if
any). Loading checks that the settings match the layer's, so thresholds calibrated for one
approximation are never silently used with another.

The eval-mode computation runs the C kernels or the vectorized reference path in Python; it
cannot be captured by ``torch.jit.script``/``trace``, ``torch.export``, ``torch.onnx.export`` or
``torch.compile(fullgraph=True)``: those raise one :class:`RuntimeError` naming the layer and
pointing at :func:`unitprune.strip` (which returns the plain torch model). ``torch.compile``
without ``fullgraph`` runs the UnIT layers eagerly (Dynamo falls back at them) and gives the same
results. In ``train()`` mode the layers are plain torch layers and can be captured.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from . import backends
from .approx import BinTree
from .config import APPROX_METHODS, UnITConfig
from .counts import MacCounts
from .geometry import ConvGeometry
from .torch_reference import conv_quotients
from .versions import TensorSnapshot


class UnITLayerMixin:
    """State and checks shared by the three UnIT layers."""

    unit_name: str
    config: UnITConfig
    threshold: Tensor
    mac_counts: MacCounts
    #: The comparison tree of ``approx="bintree"``, built by :func:`unitprune.calibrate` from the
    #: control-term magnitudes the layer sees (``None`` until then). It sets the cost of finding
    #: the exponent on an MCU, not the result (bintree decides like bitshift). Saved in the
    #: ``state_dict`` (``_extra_state``).
    bintree: BinTree | None = None

    def _init_unit(self, config: UnITConfig | None, out_channels: int, name: str) -> None:
        if config is not None and not isinstance(config, UnITConfig):
            raise TypeError(f"layer {name or type(self).__name__!r}: config must be a unitprune.UnITConfig, "
                            f"got {type(config).__name__}")
        self.config = config if config is not None else UnITConfig()
        self.unit_name = name or type(self).__name__
        self.mac_counts = MacCounts()
        self.bintree = None
        self._backend_cache = backends.new_cache()  # preprocessed weights of the C kernels
        groups = self.config.num_groups(out_channels)
        self.register_buffer("threshold", torch.zeros(groups, dtype=torch.float32, device=self.weight.device))

    @property
    def num_threshold_groups(self) -> int:
        return self.threshold.numel()

    def _check_input(self, x: Tensor, expected_ranks: tuple[int, ...], channel_dim: int, channels: int,
                     layout: str) -> None:
        if not isinstance(x, Tensor):
            raise TypeError(f"layer {self.unit_name!r}: expected a torch.Tensor input, got {type(x).__name__}")
        if x.dtype != torch.float32:
            raise TypeError(f"layer {self.unit_name!r}: UnIT computes in float32, got input dtype {x.dtype} "
                            "(convert the input with .float())")
        self._check_device(x)
        if x.dim() not in expected_ranks:
            raise ValueError(f"layer {self.unit_name!r}: expected input of rank {expected_ranks} ({layout}), "
                             f"got shape {tuple(x.shape)}")
        if x.shape[channel_dim] != channels:
            raise ValueError(f"layer {self.unit_name!r}: expected {channels} input channels/features ({layout}), "
                             f"got shape {tuple(x.shape)}")
        self._check_finite(x)

    def _check_device(self, x: Tensor) -> None:
        weight = self.weight
        if weight.device.type == "meta":
            raise ValueError(f"layer {self.unit_name!r}: parameters are on the meta device (no values); load the "
                             "weights first (e.g. model.to_empty(device='cpu') + load_state_dict)")
        if x.device.type == "meta":
            raise ValueError(f"layer {self.unit_name!r}: the input is on the meta device (no values); UnIT "
                             "decisions depend on the values")
        if x.device != weight.device:
            raise ValueError(f"layer {self.unit_name!r}: input is on {x.device} but the layer's parameters are "
                             f"on {weight.device}")

    def _check_traceable(self) -> None:
        """Refuse tracing/compiling of the eval-mode UnIT computation (one clear message)."""
        if torch.jit.is_tracing() or torch.compiler.is_compiling():
            raise RuntimeError(untraceable_message(self.unit_name))

    def __prepare_scriptable__(self):  # called by torch.jit.script on every submodule
        raise RuntimeError(untraceable_message(self.unit_name))

    def _check_parameters(self) -> None:
        """Raise if the weight or bias holds NaN/Inf; rechecked only after they change."""
        weight, bias = self.weight, self.bias
        checked = self.__dict__.get("_parameters_checked")  # snapshots of the weight and bias last found finite
        if (checked is not None and checked[0].unchanged(weight)
                and (bias is None if checked[1] is None else bias is not None and checked[1].unchanged(bias))):
            return
        check_finite_parameters(self.unit_name, {"weight": weight, "bias": bias})
        object.__setattr__(self, "_parameters_checked",
                           (TensorSnapshot(weight), None if bias is None else TensorSnapshot(bias)))

    def get_extra_state(self) -> Tensor:
        """What ``state_dict`` saves besides parameters and thresholds: the settings that change
        the layer's decisions and the BinTree, encoded as one int64 tensor (tools that walk a
        state_dict, e.g. torch.onnx, expect tensors; see :func:`encode_extra_state`)."""
        return encode_extra_state(self.config, self.bintree)

    def set_extra_state(self, state) -> None:
        settings, tree = decode_extra_state(self.unit_name, state)
        own = {key: getattr(self.config, key) for key in settings}
        differing = {key: (settings[key], own[key]) for key in settings if settings[key] != own[key]}
        if differing:
            raise ValueError(f"layer {self.unit_name!r}: the state_dict was saved from a layer with different "
                             f"settings {differing} (saved, this layer); convert the model with the same UnITConfig")
        self.bintree = tree

    def _check_finite(self, x: Tensor) -> None:
        if self.config.check_finite and not backends.all_finite(x, self.config):
            raise ValueError(f"layer {self.unit_name!r}: input contains NaN or Inf")

    def _checked_thresholds(self) -> Tensor:
        thresholds = self.threshold
        checked = self.__dict__.get("_thresholds_checked")  # snapshot of the thresholds last found valid
        if checked is not None and checked.unchanged(thresholds):
            return thresholds
        if thresholds.dtype != torch.float32:
            raise TypeError(f"layer {self.unit_name!r}: threshold buffer must be float32, got {thresholds.dtype}")
        if not bool(torch.isfinite(thresholds).all()) or bool((thresholds < 0).any()):
            raise ValueError(f"layer {self.unit_name!r}: thresholds must be finite and >= 0, "
                             f"got {thresholds.tolist()}")
        object.__setattr__(self, "_thresholds_checked", TensorSnapshot(thresholds))
        return thresholds

    def _adopt_parameters(self, module: nn.Module) -> None:
        """Take ``module``'s (effective) weight and bias and its train/eval mode (``from_dense``)."""
        self.weight = _effective_parameter(module, "weight")
        self.bias = _effective_parameter(module, "bias") if module.bias is not None else None
        self.threshold = torch.zeros_like(self.threshold, device=self.weight.device)
        self.train(module.training)

    def _record(self, counts: MacCounts) -> None:
        # object.__setattr__ skips nn.Module.__setattr__ (a plain attribute either way), which
        # costs microseconds per call on the per-inference hot path.
        object.__setattr__(self, "mac_counts", self.mac_counts + counts)

    def reset_mac_counts(self) -> None:
        self.mac_counts = MacCounts()

    def _unit_repr(self) -> str:
        values = self.threshold.tolist()
        shown = f"{values[0]:.4g}" if len(values) == 1 else f"[{len(values)} groups]"
        return f"approx={self.config.approx}, threshold={shown}"


_EXTRA_STATE_FORMAT = 1


def encode_extra_state(config: UnITConfig, tree: BinTree | None) -> Tensor:
    """``[format, approx index, group_size (0: none), has shift_start, shift_start, has tree,
    lo, hi, nodes, split..., left..., right..., leaf...]`` as int64 (the decision-changing settings:
    ``percentile`` only seeds calibration and is not stored)."""
    values = [_EXTRA_STATE_FORMAT, APPROX_METHODS.index(config.approx), config.group_size or 0,
              int(config.shift_start is not None), config.shift_start or 0, int(tree is not None)]
    if tree is not None:
        values += [tree.lo, tree.hi, len(tree.split), *tree.split, *tree.left, *tree.right, *tree.leaf]
    return torch.tensor(values, dtype=torch.int64)


def decode_extra_state(name: str, state) -> tuple[dict, BinTree | None]:
    """The inverse of :func:`encode_extra_state`: ``({approx, group_size, shift_start}, tree)``."""
    if (not isinstance(state, Tensor) or state.dtype != torch.int64 or state.dim() != 1 or state.numel() < 6
            or int(state[0]) != _EXTRA_STATE_FORMAT):
        raise ValueError(f"layer {name!r}: the state_dict's _extra_state is not one this unitprune wrote "
                         f"(got {type(state).__name__})")
    values = state.tolist()
    if not 0 <= values[1] < len(APPROX_METHODS):
        raise ValueError(f"layer {name!r}: the state_dict's _extra_state names an unknown approximation")
    settings = {"approx": APPROX_METHODS[values[1]], "group_size": values[2] or None,
                "shift_start": values[4] if values[3] else None}
    if not values[5]:
        return settings, None
    lo, hi, nodes = values[6:9]
    body = values[9:]
    if len(body) != 4 * nodes:
        raise ValueError(f"layer {name!r}: the state_dict's _extra_state holds a truncated BinTree")
    parts = [tuple(body[i * nodes:(i + 1) * nodes]) for i in range(4)]
    return settings, BinTree(lo, hi, *parts)


def untraceable_message(name: str) -> str:
    """The error of every capture path (jit, export, onnx, compile fullgraph) for layer ``name``."""
    return (f"UnIT layer {name!r} cannot be captured by torch.jit, torch.export, torch.onnx or "
            "torch.compile(fullgraph=True): its eval-mode computation runs outside torch's graph (C kernels "
            "or data-dependent Python). Use unitprune.strip(model) for the plain dense torch model, or put "
            "the model in train() mode (dense torch layers).")


def check_finite_parameters(name: str, parameters: dict[str, Tensor | None]) -> None:
    """Raise ValueError naming layer ``name`` and the parameter if one of ``parameters`` (``{name:
    tensor or None}``) holds NaN/Inf or has no values (meta tensors)."""
    for parameter_name, value in parameters.items():
        if value is None:
            continue
        if value.device.type == "meta":
            raise ValueError(f"layer {name!r}: {parameter_name} is on the meta device (no values); load the "
                             "weights first (e.g. model.to_empty(device='cpu') + load_state_dict)")
        if not bool(torch.isfinite(value.detach()).all()):
            raise ValueError(f"layer {name!r}: {parameter_name} contains NaN or Inf")


def _check_weight_dtype(module: nn.Module, name: str) -> None:
    if module.weight.dtype != torch.float32:
        raise TypeError(f"layer {name!r}: UnIT layers are float32, got weights of dtype {module.weight.dtype} "
                        "(call model.float() before convert)")


def _effective_parameter(module: nn.Module, name: str) -> nn.Parameter | None:
    """The parameter as the module computes with it: ``orig * mask`` for torch.nn.utils.prune modules."""
    original = getattr(module, name + "_orig", None)
    mask = getattr(module, name + "_mask", None)
    if isinstance(original, nn.Parameter) and mask is not None:
        return nn.Parameter((original * mask).detach().clone(), requires_grad=original.requires_grad)
    return getattr(module, name)


_LINEAR_RANKS = tuple(range(1, 9))  # the input ranks UnITLinear accepts: (*, in_features)


class UnITLinear(UnITLayerMixin, nn.Linear):
    """``y = W x + b`` where ``W[j, i] * x[i]`` is skipped iff ``|W[j, i]| <= approx(T, |x[i]|)``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, config: UnITConfig | None = None,
                 device=None, dtype=None, name: str = "") -> None:
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self._init_unit(config, out_features, name)

    @classmethod
    def from_dense(cls, module: nn.Linear, config: UnITConfig | None = None, name: str = "") -> "UnITLinear":
        """A UnIT twin holding ``module``'s parameters (the same Parameter objects unless pruned)."""
        _check_weight_dtype(module, name)
        layer = cls(module.in_features, module.out_features, bias=module.bias is not None, config=config,
                    device="meta", name=name)
        layer._adopt_parameters(module)
        return layer

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            return F.linear(x, self.weight, self.bias)
        self._check_traceable()
        self._check_input(x, _LINEAR_RANKS, -1, self.in_features, "(*, in_features)")
        self._check_parameters()
        y, counts = backends.linear(x, self.weight, self.bias, self._checked_thresholds(), self.config,
                                    cache=getattr(self, "_backend_cache", None))
        self._record(counts)
        return y

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {self._unit_repr()}"


class _UnITConvNd(UnITLayerMixin):
    """Shared logic of UnITConv1d / UnITConv2d (the weight is the control term)."""

    spatial_dims: int

    def _init_conv(self, config: UnITConfig | None, name: str) -> None:
        if self.padding_mode != "zeros":
            raise ValueError(f"layer {name!r}: padding_mode={self.padding_mode!r} is not supported by UnIT "
                             "(only 'zeros')")
        self._init_unit(config, self.out_channels, name)
        self._tau_cache: tuple | None = None

    def geometry(self) -> ConvGeometry:
        """The convolution as a 2-D one with explicit (top, bottom, left, right) padding."""
        options = (self.kernel_size, self.stride, self.padding, self.dilation, self.groups)
        cached = self.__dict__.get("_geometry_cache")  # (options, geometry); options compared by identity
        if cached is not None and all(a is b for a, b in zip(cached[0], options)):
            return cached[1]
        geometry = self._compute_geometry()
        object.__setattr__(self, "_geometry_cache", (options, geometry))
        return geometry

    def _compute_geometry(self) -> ConvGeometry:
        kernel = tuple(self.kernel_size)
        dilation = tuple(self.dilation)
        if self.padding == "same":
            pads = []
            for k, d in zip(kernel, dilation):
                total = d * (k - 1)
                pads.append((total // 2, total - total // 2))
        elif self.padding == "valid":
            pads = [(0, 0)] * len(kernel)
        else:
            pads = [(p, p) for p in self.padding]
        if self.spatial_dims == 1:
            return ConvGeometry((1, kernel[0]), (1, self.stride[0]), (1, dilation[0]),
                                (0, 0, pads[0][0], pads[0][1]), self.groups)
        return ConvGeometry(kernel, tuple(self.stride), dilation,
                            (pads[0][0], pads[0][1], pads[1][0], pads[1][1]), self.groups)

    def quotients(self) -> Tensor:
        """``tau = approx(T, |w|)`` per weight; recomputed only when weights, thresholds or config change."""
        weight, thresholds = self.weight, self.threshold
        cached = self._tau_cache  # (weight snapshot, thresholds snapshot, config, tau)
        if (cached is not None and cached[2] is self.config and cached[0].unchanged(weight)
                and cached[1].unchanged(thresholds)):
            return cached[3]  # the thresholds were checked when tau was computed
        self._tau_cache = None
        thresholds = self._checked_thresholds()
        tau = conv_quotients(weight.detach(), thresholds, self.config)
        self._tau_cache = (TensorSnapshot(weight), TensorSnapshot(thresholds), self.config, tau)
        return tau

    def _check_conv_input(self, x: Tensor, geometry: ConvGeometry) -> None:
        ranks = (self.spatial_dims + 1, self.spatial_dims + 2)
        layout = "(N, C, L)" if self.spatial_dims == 1 else "(N, C, H, W)"
        self._check_input(x, ranks, -(self.spatial_dims + 1), self.in_channels, layout)
        height, width = (1, x.shape[-1]) if self.spatial_dims == 1 else (x.shape[-2], x.shape[-1])
        out_h, out_w = geometry.output_size(height, width)
        if out_h < 1 or out_w < 1:
            raise ValueError(f"layer {self.unit_name!r}: input of spatial size {tuple(x.shape[-self.spatial_dims:])} "
                             f"is smaller than the dilated kernel {tuple(self.kernel_size)} with dilation "
                             f"{tuple(self.dilation)} and padding {self.padding}")

    def _unit_forward(self, x: Tensor) -> Tensor:
        self._check_traceable()
        geometry = self.geometry()
        accepted = self.__dict__.get("_accepted_input")  # (shape, device, geometry) that passed the checks
        if (accepted is not None and isinstance(x, Tensor) and x.dtype is torch.float32
                and accepted[0] == x.shape and accepted[1] == x.device and accepted[2] is geometry):
            self._check_finite(x)  # the same shape passed the other checks; the values are new every call
        else:
            self._check_conv_input(x, geometry)
            object.__setattr__(self, "_accepted_input", (x.shape, x.device, geometry))
        self._check_parameters()
        unbatched = x.dim() == self.spatial_dims + 1
        batch = x.unsqueeze(0) if unbatched else x
        if self.spatial_dims == 1:
            batch = batch.unsqueeze(2)  # (N, C, 1, L)
        weight = self.weight if self.spatial_dims == 2 else self.weight.unsqueeze(2)
        tau = self.quotients()
        tau = tau if self.spatial_dims == 2 else tau.unsqueeze(2)
        y, counts = backends.conv(batch, weight, self.bias, tau, geometry, self.config,
                                  cache=getattr(self, "_backend_cache", None))
        if self.spatial_dims == 1:
            y = y.squeeze(2)
        self._record(counts)
        return y.squeeze(0) if unbatched else y

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", config: UnITConfig | None = None,
                 device=None, dtype=None, name: str = "") -> None:
        # the next class in the MRO after the mixins is nn.Conv1d / nn.Conv2d
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, dilation=dilation,
                         groups=groups, bias=bias, padding_mode=padding_mode, device=device, dtype=dtype)
        self._init_conv(config, name)

    @classmethod
    def from_dense(cls, module: nn.Module, config: UnITConfig | None = None, name: str = ""):
        """A UnIT twin holding ``module``'s parameters (the same Parameter objects unless pruned)."""
        _check_weight_dtype(module, name)
        layer = cls(module.in_channels, module.out_channels, module.kernel_size, stride=module.stride,
                    padding=module.padding, dilation=module.dilation, groups=module.groups,
                    bias=module.bias is not None, padding_mode=module.padding_mode, config=config,
                    device="meta", name=name)
        layer._adopt_parameters(module)
        return layer

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            return super().forward(x)  # the plain torch convolution
        return self._unit_forward(x)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {self._unit_repr()}"


class UnITConv1d(_UnITConvNd, nn.Conv1d):
    """Conv1d where ``w * x`` is skipped iff ``|x| <= approx(T, |w|)``."""

    spatial_dims = 1


class UnITConv2d(_UnITConvNd, nn.Conv2d):
    """Conv2d where ``w * x`` is skipped iff ``|x| <= approx(T, |w|)``."""

    spatial_dims = 2


UNIT_LAYERS = (UnITLinear, UnITConv1d, UnITConv2d)

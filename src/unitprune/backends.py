"""Where a UnIT layer's eval-mode computation runs.

Every backend takes the same arguments and returns ``(output, MacCounts)`` with the semantics of
docs/semantics.md:

* ``"torch"``: the vectorized reference path (:mod:`unitprune.torch_reference`), the oracle;
* ``"c"``: the compiled C kernels (:mod:`unitprune.kernels`); an error if they are not built;
* ``"auto"`` (the default): the C kernels when the library is built and loads, else the
  reference path. The fallback is announced with one ``RuntimeWarning`` per process (the
  warnings module shows a warning once per code location under its default filters; no flag is
  kept here). Inputs that are not on the CPU also use the reference path under ``"auto"``.

The only process-wide state is the cached library handle in :mod:`unitprune.kernels`.
Preprocessed weights are cached per layer in the ``cache`` object the layer passes
(:func:`new_cache`), never globally.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import Tensor

from . import kernels
from .config import UnITConfig
from .counts import MacCounts
from .geometry import ConvGeometry
from .torch_reference import conv_reference, linear_reference

__all__ = ["active_backend", "all_finite", "available", "library_path", "new_cache", "linear", "conv"]


def available() -> bool:
    """Whether the compiled C kernels are built and load in this process."""
    return kernels.available()


def library_path() -> Path | None:
    """Path of the built kernel library, or ``None`` when the package was installed without it."""
    return kernels.library_path()


def new_cache() -> kernels.PlanCache:
    """A per-layer cache for preprocessed weights (empty again after copy.deepcopy / pickling)."""
    return kernels.PlanCache()


def _warn_fallback(reason: str) -> None:
    # One call site: under the default warning filters this is shown once per process.
    warnings.warn(f"unitprune: using the PyTorch reference path instead of the C kernels ({reason})",
                  RuntimeWarning, stacklevel=1)


def active_backend(config: UnITConfig) -> str:
    """The backend layers with ``config`` use: ``"c"`` or ``"torch"``.

    Raises:
        RuntimeError: ``config.backend == "c"`` and the C kernels cannot be used (the message
            says why: not built, stale build, load error).
    """
    if config.backend == "torch":
        return "torch"
    try:
        kernels.load_library()
    except kernels.KernelsUnavailableError as error:
        if config.backend == "c":
            raise RuntimeError(f"UnITConfig(backend='c'): {error}") from None
        _warn_fallback(str(error))
        return "torch"
    return "c"


def _use_c(config: UnITConfig, x: Tensor, weight: Tensor) -> bool:
    if active_backend(config) != "c":
        return False
    if x.is_cpu and weight.is_cpu:  # a module's tensors share a device
        return True
    if config.backend == "c":
        raise ValueError("UnITConfig(backend='c'): the C kernels run on CPU tensors only; "
                         "move the model and inputs to the CPU or use backend='auto'")
    return False


def all_finite(x: Tensor, config: UnITConfig) -> bool:
    """Whether ``x`` holds no NaN/Inf (checked in C when the layer runs on the C backend)."""
    if x.dtype is torch.float32 and x.is_cpu and active_backend(config) == "c":
        return kernels.all_finite(x)
    return bool(torch.isfinite(x).all())


def linear(x: Tensor, weight: Tensor, bias: Tensor | None, thresholds: Tensor, config: UnITConfig,
           cache: kernels.PlanCache | None = None) -> tuple[Tensor, MacCounts]:
    """UnIT linear layer; ``cache`` (from :func:`new_cache`) keeps the layer's preprocessed weights."""
    if _use_c(config, x, weight):
        return kernels.linear(x, weight, bias, thresholds, config, cache)
    return linear_reference(x, weight, bias, thresholds, config)


def conv(x: Tensor, weight: Tensor, bias: Tensor | None, tau: Tensor, geometry: ConvGeometry,
         config: UnITConfig, cache: kernels.PlanCache | None = None) -> tuple[Tensor, MacCounts]:
    """UnIT convolution on ``(N, C, H, W)``; ``cache`` keeps the layer's preprocessed weights."""
    if _use_c(config, x, weight):
        return kernels.conv(x, weight, bias, tau, geometry, config, cache)
    return conv_reference(x, weight, bias, tau, geometry, config)

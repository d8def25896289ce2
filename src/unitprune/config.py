"""Configuration of UnIT layers: what they compute (:class:`UnITConfig`) and how (:class:`RuntimeConfig`).

The two kinds of setting are kept apart on purpose:

* **Result-changing** settings (``approx``, ``percentile``, ``group_size``, ``shift_start``)
  decide which multiply-accumulates are skipped, hence the outputs and the MAC counts. They are
  what a saved model must carry along: :meth:`UnITConfig.result_settings` is the dictionary a
  ``state_dict`` (or an MCU export) embeds, and loading checks it.
* **Runtime** settings (:class:`RuntimeConfig`: ``backend``, ``chunk_elements``,
  ``check_finite``) choose where and in what memory the same result is computed, and whether
  inputs are scanned for NaN/Inf. They never change a result that is returned: every backend
  computes the same outputs and counts (docs/semantics.md). ``check_finite=False`` only removes
  the scan; the caller then promises finite inputs (with NaN/Inf inputs the outputs are
  unspecified and the backends may differ).

``UnITConfig`` holds the result-changing fields and one nested ``runtime``. For convenience the
runtime fields may be passed flat, ``UnITConfig(approx="bitshift", backend="torch")``, and read
flat, ``config.backend``: the constructor style used throughout the docs, tests and user code
keeps working, while the type says which setting is which (``config.runtime`` can be swapped with
:meth:`UnITConfig.with_runtime` without touching the result).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

APPROX_METHODS = ("exact", "bitshift", "bintree", "bitmask")
BACKENDS = ("auto", "c", "torch")
#: The names of the result-changing settings (what a saved model embeds).
RESULT_SETTINGS = ("approx", "percentile", "group_size", "shift_start")
#: The names of the runtime settings.
RUNTIME_SETTINGS = ("backend", "chunk_elements", "check_finite")


@dataclass(frozen=True)
class RuntimeConfig:
    """How UnIT layers compute (never what): the same outputs and MAC counts for every value.

    Attributes:
        backend: ``"torch"`` (reference path), ``"c"`` (compiled kernels) or ``"auto"``.
        chunk_elements: memory bound of the reference path: the largest number of
            (sample, output, input) mask elements materialised at once.
        check_finite: raise on NaN/Inf activations in eval mode (names the layer). ``False``
            skips the scan; non-finite inputs then give unspecified outputs.
    """

    backend: str = "auto"
    chunk_elements: int = 1 << 23
    check_finite: bool = True

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"UnITConfig.backend must be one of {BACKENDS}, got {self.backend!r}")
        if (not isinstance(self.chunk_elements, int) or isinstance(self.chunk_elements, bool)
                or self.chunk_elements < 1):
            raise ValueError(f"UnITConfig.chunk_elements must be a positive int, got {self.chunk_elements!r}")
        if not isinstance(self.check_finite, bool):
            raise ValueError(f"UnITConfig.check_finite must be True or False, got {self.check_finite!r}")


@dataclass(frozen=True, init=False)
class UnITConfig:
    """How UnIT layers decide which multiply-accumulates to skip (the result-changing settings).

    Attributes:
        approx: division approximation used for ``T / |C|``: ``"exact"``, ``"bitshift"``,
            ``"bintree"`` or ``"bitmask"`` (see :mod:`unitprune.approx` and docs/semantics.md).
        percentile: default calibration percentile (0..100) of the nonzero ``|x * w|`` products.
        group_size: ``None`` for one threshold per layer; ``k`` to give every group of ``k``
            consecutive output channels (conv) / output neurons (linear) its own threshold.
        shift_start: optional coarse start for ``bitshift``/``bintree``: the exponent ``n`` used
            is ``max(e(|C|), shift_start)``, so magnitudes below ``2**(shift_start-1)`` share one
            quotient (fewer shift steps on an MCU, never more skipping than ``exact``).
        runtime: the :class:`RuntimeConfig` (backend, chunk_elements, check_finite). Its fields
            may also be given as keyword arguments and are readable as attributes
            (``UnITConfig(backend="c").backend == "c"``).
    """

    approx: str
    percentile: float
    group_size: int | None
    shift_start: int | None
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def __init__(self, approx: str = "exact", percentile: float = 20.0, group_size: int | None = None,
                 shift_start: int | None = None, *, runtime: RuntimeConfig | None = None,
                 backend: str | None = None, chunk_elements: int | None = None,
                 check_finite: bool | None = None) -> None:
        flat = {name: value for name, value in
                (("backend", backend), ("chunk_elements", chunk_elements), ("check_finite", check_finite))
                if value is not None}
        if runtime is not None and not isinstance(runtime, RuntimeConfig):
            raise TypeError(f"UnITConfig.runtime must be a RuntimeConfig, got {type(runtime).__name__}")
        runtime = replace(runtime or RuntimeConfig(), **flat)
        for name, value in (("approx", approx), ("percentile", percentile), ("group_size", group_size),
                            ("shift_start", shift_start), ("runtime", runtime)):
            object.__setattr__(self, name, value)
        self.__post_init__()

    def __post_init__(self) -> None:
        if self.approx not in APPROX_METHODS:
            raise ValueError(f"UnITConfig.approx must be one of {APPROX_METHODS}, got {self.approx!r}")
        object.__setattr__(self, "percentile", validate_percentile(self.percentile, "UnITConfig.percentile"))
        if self.group_size is not None and (not isinstance(self.group_size, int) or isinstance(self.group_size, bool)
                                            or self.group_size < 1):
            raise ValueError(f"UnITConfig.group_size must be None or a positive int, got {self.group_size!r}")
        if self.shift_start is not None and (not isinstance(self.shift_start, int)
                                             or isinstance(self.shift_start, bool)):
            raise ValueError(f"UnITConfig.shift_start must be None or an int, got {self.shift_start!r}")

    # Runtime settings, readable flat (backends and the reference path read them this way).
    @property
    def backend(self) -> str:
        return self.runtime.backend

    @property
    def chunk_elements(self) -> int:
        return self.runtime.chunk_elements

    @property
    def check_finite(self) -> bool:
        return self.runtime.check_finite

    def with_runtime(self, **changes) -> "UnITConfig":
        """The same result-changing settings with some runtime settings changed."""
        return UnITConfig(self.approx, self.percentile, self.group_size, self.shift_start,
                          runtime=replace(self.runtime, **changes))

    def result_settings(self) -> dict:
        """The result-changing settings as a plain dict (what a state_dict / export embeds)."""
        return {name: getattr(self, name) for name in RESULT_SETTINGS}

    def num_groups(self, out_channels: int) -> int:
        """Number of thresholds a layer with ``out_channels`` outputs holds."""
        if self.group_size is None:
            return 1
        return math.ceil(out_channels / self.group_size)


def validate_percentile(value: float, what: str) -> float:
    """Return ``value`` as float if it is a finite number in [0, 100], else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise ValueError(f"{what} must be a number in [0, 100], got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number in [0, 100], got {value!r}") from None
    if not (0.0 <= number <= 100.0):  # also rejects NaN
        raise ValueError(f"{what} must be in [0, 100], got {value!r}")
    return number

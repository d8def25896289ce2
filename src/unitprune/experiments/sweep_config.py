"""``SweepConfig``: which methods a sweep runs and the knob values each one sweeps."""

from __future__ import annotations

from dataclasses import dataclass, fields

from ..accuracy_budget import DEFAULT_CONFIDENCE, validate_confidence
from ..baselines.ttp import ALLOCATIONS as TTP_ALLOCATIONS
from ..config import APPROX_METHODS, validate_percentile
from .autotune import DEFAULT_AUTOTUNE_GRID

__all__ = ["SweepConfig", "ALL_METHODS", "KNOBS", "UNIT_METHODS", "TRAINING_METHODS", "FATRELU_METHODS"]

#: UnIT with each division approximation (knob: calibration percentile).
UNIT_METHODS = tuple(f"unit-{approx}" for approx in APPROX_METHODS)
#: Every method a sweep knows, in report order.
ALL_METHODS = ("unpruned", "ttp", "fatrelu") + UNIT_METHODS + ("ttp+unit", "fatrelu+unit", "unit-autotuned")
#: Methods that need training data (fine-tuning).
TRAINING_METHODS = ("ttp", "ttp+unit")
#: Methods that need nn.ReLU modules.
FATRELU_METHODS = ("fatrelu", "fatrelu+unit")
#: The knob each method sweeps.
KNOBS = {"unpruned": "none", "ttp": "sparsity", "fatrelu": "percentile", **{m: "percentile" for m in UNIT_METHODS},
         "ttp+unit": "percentile", "fatrelu+unit": "percentile", "unit-autotuned": "budget_points"}


@dataclass(frozen=True)
class SweepConfig:
    """What :func:`unitprune.experiments.run_sweep` measures.

    Attributes:
        methods: subset of :data:`ALL_METHODS` to run (``unpruned`` always runs: it is the reference).
        unit_percentiles: calibration percentiles swept by every ``unit-*`` method.
        fatrelu_percentiles: FATReLU threshold percentiles.
        ttp_sparsities: train-time pruning schedule (increasing sparsities in (0, 1)).
        ttp_finetune_epochs: fine-tuning epochs after each pruning step.
        ttp_lr: fine-tuning learning rate.
        ttp_allocation: how TTP shares the pruned weights among the layers (``TTPConfig.allocation``):
            ``"global"`` (``ttp_sparsities`` are fractions of the weights, smallest ``|w|``) or
            ``"macs"`` (fractions of the dense MACs, smallest ``|w|`` per MAC saved).
        combo_approx: division approximation used by ``ttp+unit``, ``fatrelu+unit`` and
            ``unit-autotuned``.
        combo_percentiles: UnIT percentiles swept on top of TTP / FATReLU (default: unit_percentiles).
        combo_base_budget: the TTP sparsity / FATReLU percentile under a combination is the most
            aggressive one whose *validation* drop is <= this many points.
        budget: accuracy budget in points: summaries report the most MACs skipped within it and
            the settings selected on validation use it.
        confidence: confidence of every choice on validation (:mod:`unitprune.accuracy_budget`): a knob is
            admissible when the exact upper ``confidence`` bound of its paired validation drop is
            within the budget; 0: the observed drop is compared (no confidence).
        autotune_budgets: validation budgets (points) for which per-layer percentiles are searched.
        autotune_grid: percentiles a layer may take in the search.
        eval_batch_size: batch size of every evaluation.
        calibration_samples: use only the first N validation samples to calibrate (None: all).
        seed: seed of the fine-tuning data order.
        num_threads: torch threads during the sweep (restored afterwards). One is as fast for
            these small models and, unlike two, does not collapse when other processes keep the
            cores busy.
        progress: show progress bars.
    """

    methods: tuple[str, ...] = ALL_METHODS
    unit_percentiles: tuple[float, ...] = (20.0, 40.0, 50.0, 60.0, 65.0, 70.0, 75.0, 80.0, 85.0, 90.0, 95.0)
    fatrelu_percentiles: tuple[float, ...] = (10.0, 30.0, 50.0, 60.0, 65.0, 70.0, 75.0, 80.0, 90.0)
    ttp_sparsities: tuple[float, ...] = (0.5, 0.7, 0.8, 0.85, 0.9, 0.95)
    ttp_finetune_epochs: int = 5
    ttp_lr: float = 1e-3
    ttp_allocation: str = "global"
    combo_approx: str = "exact"
    combo_percentiles: tuple[float, ...] | None = None
    combo_base_budget: float = 0.5
    budget: float = 1.0
    confidence: float = DEFAULT_CONFIDENCE
    autotune_budgets: tuple[float, ...] = (0.5, 1.0, 2.0)
    autotune_grid: tuple[float, ...] = DEFAULT_AUTOTUNE_GRID
    eval_batch_size: int = 500
    calibration_samples: int | None = None
    seed: int = 0
    num_threads: int = 1
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("methods", "unit_percentiles", "fatrelu_percentiles", "ttp_sparsities", "autotune_budgets",
                     "autotune_grid", "combo_percentiles"):
            value = getattr(self, name)
            if value is not None:
                if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
                    raise ValueError(f"SweepConfig.{name} must be a list, got {value!r}")
                object.__setattr__(self, name, tuple(value))
        unknown = [m for m in self.methods if m not in ALL_METHODS]
        if unknown:
            raise ValueError(f"unknown method(s) {unknown}; valid methods: {', '.join(ALL_METHODS)}")
        for name in ("unit_percentiles", "fatrelu_percentiles", "autotune_grid", "combo_percentiles"):
            values = getattr(self, name)
            if values is not None:
                object.__setattr__(self, name, tuple(validate_percentile(v, name) for v in values))
        for value in self.ttp_sparsities:
            if not 0.0 < float(value) < 1.0:
                raise ValueError(f"ttp_sparsities must be in (0, 1), got {value!r}")
        if list(self.ttp_sparsities) != sorted(set(self.ttp_sparsities)):
            raise ValueError(f"ttp_sparsities must be strictly increasing, got {list(self.ttp_sparsities)}")
        if self.combo_approx not in APPROX_METHODS:
            raise ValueError(f"combo_approx must be one of {APPROX_METHODS}, got {self.combo_approx!r}")
        for name in ("budget", "combo_base_budget"):
            if not float(getattr(self, name)) >= 0:
                raise ValueError(f"{name} must be >= 0 points, got {getattr(self, name)!r}")
        object.__setattr__(self, "confidence", validate_confidence(self.confidence, "SweepConfig.confidence"))
        if any(not float(b) >= 0 for b in self.autotune_budgets):
            raise ValueError(f"autotune_budgets must be >= 0 points, got {list(self.autotune_budgets)}")
        if self.ttp_finetune_epochs < 0:
            raise ValueError(f"ttp_finetune_epochs must be >= 0, got {self.ttp_finetune_epochs}")
        if self.ttp_allocation not in TTP_ALLOCATIONS:
            raise ValueError(f"ttp_allocation must be one of {TTP_ALLOCATIONS}, got {self.ttp_allocation!r}")
        if self.num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {self.num_threads}")
        if self.eval_batch_size < 1:
            raise ValueError(f"eval_batch_size must be >= 1, got {self.eval_batch_size}")
        if self.calibration_samples is not None and self.calibration_samples < 1:
            raise ValueError(f"calibration_samples must be >= 1 or None, got {self.calibration_samples}")

    @property
    def percentiles_under_combos(self) -> tuple[float, ...]:
        return self.combo_percentiles if self.combo_percentiles is not None else self.unit_percentiles

    def to_dict(self) -> dict:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in fields(self)}

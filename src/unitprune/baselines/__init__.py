"""Baselines UnIT is compared with, each with one knob to sweep.

* :mod:`~unitprune.baselines.ttp`: train-time pruning, global unstructured L1 magnitude pruning
  with fine-tuning, iterated to a sparsity schedule (knob: sparsity).
* :mod:`~unitprune.baselines.fatrelu`: FATReLU, a thresholded ReLU whose per-layer thresholds
  are percentiles of validation activations (knob: percentile).

The unpruned model and UnIT itself need no code here: every method is measured by converting
the (possibly pruned / FATReLU) model to UnIT layers, with ``T = 0`` for the non-UnIT baselines
(see :mod:`unitprune.experiments`).
"""

from .fatrelu import (FATReLU, calibrate_fatrelu, fatrelu_layers, positive_percentile, set_fatrelu_thresholds,
                      with_fatrelu)
from .ttp import (TTPConfig, TTPStep, global_magnitude_prune, iterative_magnitude_pruning, make_permanent,
                  permanent_copy, prunable_weights, weight_sparsity)

__all__ = [
    "FATReLU", "with_fatrelu", "fatrelu_layers", "calibrate_fatrelu", "set_fatrelu_thresholds",
    "positive_percentile",
    "TTPConfig", "TTPStep", "global_magnitude_prune", "iterative_magnitude_pruning", "make_permanent",
    "permanent_copy", "prunable_weights", "weight_sparsity",
]

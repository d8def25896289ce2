"""Train-time pruning (TTP): global unstructured L1 magnitude pruning with fine-tuning.

The paper's TTP baseline (section 3.4) removes the weights with the smallest absolute values
across the whole model. Here it is iterated to a sparsity schedule (e.g. 50% -> 70% -> 80% ->
90%): at each step the globally smallest remaining weights of every Conv/Linear layer are masked
with ``torch.nn.utils.prune.global_unstructured(..., prune.L1Unstructured)`` so that exactly
``round(target * total_weights)`` weights are zero, then the model is fine-tuned with the masks
active (pruned weights stay zero). After each step a deep copy is taken and made permanent with
``prune.remove``: every returned model is an independent plain module with zeros in its weights.
Biases are not pruned.

``TTPConfig.allocation`` decides how the pruned weights are shared among the layers:

* ``"global"`` (the paper's, the default): the schedule's fractions are of the weights, pruned by
  smallest ``|w|`` over the whole model. A small first convolution with large weights stays almost
  dense, although each of its weights costs the most MACs (once per output position).
* ``"macs"``: the schedule's fractions are of the dense MACs, and the weights are pruned by
  smallest ``|w| / m``, ``m`` the MACs a weight of its layer costs per inference (a conv weight:
  its output channel's positions; a Linear weight: 1): the magnitude lost per MAC saved, a greedy
  knapsack. Each step prunes the fewest weights whose MACs reach ``round(target * total MACs)``.
  ``m`` is measured by one forward pass of an example input (:func:`macs_per_weight`).
  Every layer keeps a floor (``TTPConfig.layer_floor``, :func:`layer_floor_weights`): its largest
  ``|w|`` weight in each output channel, and its largest ``|w|`` weights up to ``layer_floor`` times
  what the uniform allocation would keep (``(1 - target) * n``). Without it a layer whose weights
  each cost many MACs goes entirely: the KWS model's first conv (1 input channel, 76x120 output
  positions per weight) is pruned to nothing at every target from 0.5, and the model answers one
  class. An output channel with no weight is a constant; one weight keeps it an input's feature.

Typical use::

    steps = iterative_magnitude_pruning(model, splits, TTPConfig(schedule=(0.5, 0.7, 0.9)))
    steps[-1].model  # 90% of the weights are exactly zero
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.utils.prune as prune
from torch.utils.data import TensorDataset

logger = logging.getLogger(__name__)

__all__ = ["ALLOCATIONS", "PRUNABLE_TYPES", "TTPConfig", "TTPStep", "prunable_weights", "weight_sparsity",
           "macs_per_weight", "mac_sparsity", "global_magnitude_prune", "layer_floor_weights", "mac_aware_prune",
           "make_permanent", "permanent_copy", "iterative_magnitude_pruning"]

#: Layer types whose ``weight`` is pruned.
PRUNABLE_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d)
#: How the pruned weights are shared among the layers (module docstring).
ALLOCATIONS = ("global", "macs")


@dataclass(frozen=True)
class TTPConfig:
    """Iterative magnitude pruning schedule and fine-tuning settings.

    Attributes:
        schedule: increasing target sparsities in (0, 1): fraction of all prunable weights that
            are zero after each step.
        finetune_epochs: fine-tuning epochs after each pruning step (0: no fine-tuning).
        lr: Adam learning rate of the fine-tuning.
        batch_size: fine-tuning batch size.
        seed: seed of the fine-tuning data order.
        num_threads: torch threads while fine-tuning.
        progress: show progress bars while fine-tuning.
        allocation: ``"global"`` (fractions of the weights, smallest ``|w|``) or ``"macs"``
            (fractions of the dense MACs, smallest ``|w|`` per MAC saved); module docstring.
        layer_floor: ``allocation="macs"`` only: each layer keeps its largest ``|w|`` weight per
            output channel and at least ``layer_floor`` times the weights the uniform allocation
            keeps (:func:`layer_floor_weights`); None: no floor (a layer may be pruned to nothing).
    """

    schedule: tuple[float, ...] = (0.5, 0.7, 0.8, 0.9, 0.95)
    finetune_epochs: int = 2
    lr: float = 5e-4
    batch_size: int = 64
    seed: int = 0
    num_threads: int = 1
    progress: bool = False
    allocation: str = "global"
    layer_floor: float | None = 0.25

    def __post_init__(self) -> None:
        schedule = tuple(float(s) for s in self.schedule)
        object.__setattr__(self, "schedule", schedule)
        if not schedule:
            raise ValueError("TTPConfig.schedule must hold at least one sparsity")
        if any(not (0.0 < s < 1.0) for s in schedule):
            raise ValueError(f"TTPConfig.schedule: sparsities must be in (0, 1), got {schedule}")
        if any(b <= a for a, b in zip(schedule, schedule[1:])):
            raise ValueError(f"TTPConfig.schedule must be strictly increasing, got {schedule}")
        if self.finetune_epochs < 0:
            raise ValueError(f"TTPConfig.finetune_epochs must be >= 0, got {self.finetune_epochs}")
        if self.allocation not in ALLOCATIONS:
            raise ValueError(f"TTPConfig.allocation must be one of {ALLOCATIONS}, got {self.allocation!r}")
        if self.layer_floor is not None and not 0.0 <= self.layer_floor <= 1.0:
            raise ValueError(f"TTPConfig.layer_floor must be in [0, 1] or None, got {self.layer_floor}")


@dataclass
class TTPStep:
    """One point of the schedule.

    Attributes:
        target_sparsity: the scheduled sparsity (of the weights, or of the MACs with ``allocation="macs"``).
        sparsity: measured fraction of zero prunable weights of ``model``.
        model: an independent copy, pruning made permanent (plain layers with zero weights).
        val_accuracy: validation accuracy after fine-tuning (``None`` if not measured).
    """

    target_sparsity: float
    sparsity: float
    model: nn.Module
    val_accuracy: float | None = None


def prunable_weights(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """``(module, "weight")`` for every Linear/Conv1d/Conv2d of ``model``."""
    return [(module, "weight") for module in model.modules() if isinstance(module, PRUNABLE_TYPES)]


def weight_sparsity(model: nn.Module) -> float:
    """Fraction of exactly-zero weights among all prunable weights (effective weights if masked)."""
    zeros = total = 0
    for module, name in prunable_weights(model):
        weight = getattr(module, name)
        zeros += int((weight == 0).sum())
        total += weight.numel()
    if total == 0:
        raise ValueError(f"{type(model).__name__} has no Linear/Conv1d/Conv2d weights to prune")
    return zeros / total


def _masked_count(model: nn.Module) -> int:
    """Weights currently masked by torch.nn.utils.prune (0 for unpruned modules)."""
    count = 0
    for module, name in prunable_weights(model):
        mask = getattr(module, name + "_mask", None)
        if mask is not None:
            count += int((mask == 0).sum())
    return count


def global_magnitude_prune(model: nn.Module, sparsity: float) -> nn.Module:
    """Mask the globally smallest-|w| weights of ``model`` (in place) so that exactly
    ``round(sparsity * total)`` prunable weights are masked.

    Works incrementally: on an already pruned model only the additional weights needed are
    masked (the existing masks are kept). The ``torch.nn.utils.prune`` reparametrisation stays
    active (``weight_orig`` / ``weight_mask``), so fine-tuning keeps pruned weights at zero; call
    :func:`make_permanent` or :func:`permanent_copy` afterwards.
    """
    if not (0.0 <= sparsity < 1.0):
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    parameters = prunable_weights(model)
    if not parameters:
        raise ValueError(f"{type(model).__name__} has no Linear/Conv1d/Conv2d weights to prune")
    total = sum(getattr(module, name).numel() for module, name in parameters)
    target = round(sparsity * total)
    already = _masked_count(model)
    if target < already:
        raise ValueError(f"cannot lower sparsity: {already} weights already masked, target is {target}")
    # amount is relative to the still unmasked weights when masks exist (PruningContainer).
    prune.global_unstructured(parameters, pruning_method=prune.L1Unstructured, amount=target - already)
    logger.info("TTP: %d / %d weights masked (%.2f%%)", target, total, 100.0 * target / total)
    return model


def macs_per_weight(model: nn.Module, example_input: torch.Tensor) -> list[int]:
    """Per :func:`prunable_weights` entry, the MACs one of its weights costs per inference: the
    elements of the layer's output per output channel (a conv: the positions, a Linear: 1), from
    one forward pass of ``example_input`` (batch size 1). A layer the pass does not call is an error."""
    if example_input.shape[0] != 1:
        raise ValueError(f"macs_per_weight: example_input must hold one sample, got shape {tuple(example_input.shape)}")
    parameters = prunable_weights(model)
    if not parameters:
        raise ValueError(f"{type(model).__name__} has no Linear/Conv1d/Conv2d weights to prune")
    sizes: dict[int, int] = {}

    def hook(module, args, output):
        sizes[id(module)] = output.numel() // getattr(module, "weight").shape[0]

    handles = [module.register_forward_hook(hook) for module, _ in parameters]
    try:
        with torch.no_grad():
            model.eval()(example_input)
    finally:
        for handle in handles:
            handle.remove()
    names = {id(module): name for name, module in model.named_modules()}
    missing = [names[id(module)] for module, _ in parameters if id(module) not in sizes]
    if missing:
        raise ValueError(f"macs_per_weight: the forward pass did not call the layer(s) {missing}")
    return [sizes[id(module)] for module, _ in parameters]


def mac_sparsity(model: nn.Module, macs: list[int]) -> float:
    """Fraction of the dense MACs whose weight is zero (``macs``: :func:`macs_per_weight`)."""
    zero = total = 0
    for (module, name), m in zip(prunable_weights(model), macs):
        weight = getattr(module, name)
        zero += int((weight == 0).sum()) * m
        total += weight.numel() * m
    return zero / total


def layer_floor_weights(weight: torch.Tensor, mask: torch.Tensor, sparsity: float, factor: float) -> torch.Tensor:
    """The weights of one layer that :func:`mac_aware_prune` keeps at ``sparsity`` (bool, the shape of
    ``weight``): among the unmasked ones (``mask != 0``), the largest ``|w|`` of each output channel
    (dim 0) that has one, then the layer's largest ``|w|`` until ``ceil(factor * (1 - sparsity) * n)``
    are kept (``n`` its weights; ties by index)."""
    live = (mask != 0).reshape(-1)
    magnitude = torch.where(live, weight.detach().abs().reshape(-1).double(), torch.tensor(-1.0, dtype=torch.float64))
    kept = torch.zeros(magnitude.numel(), dtype=torch.bool)
    per_channel = magnitude.reshape(weight.shape[0], -1)
    best = per_channel.argmax(dim=1)
    rows = torch.nonzero(per_channel.max(dim=1).values >= 0).reshape(-1)
    kept[rows * per_channel.shape[1] + best[rows]] = True
    floor = min(math.ceil(factor * (1.0 - sparsity) * magnitude.numel() - 1e-9), int(live.sum()))
    more = floor - int(kept.sum())
    if more > 0:
        order = torch.sort(-magnitude, stable=True).indices
        order = order[~kept[order] & live[order]]
        kept[order[:more]] = True
    return kept.reshape(weight.shape)


def mac_aware_prune(model: nn.Module, sparsity: float, macs: list[int], layer_floor: float | None = None) -> nn.Module:
    """Mask weights of ``model`` (in place) until the masked weights cost at least
    ``round(sparsity * total dense MACs)`` MACs, taking the unmasked weights by smallest
    ``|w| / m`` (``m`` = ``macs[i]`` for the i-th :func:`prunable_weights` layer; ties by layer and
    index order): the fewest weights in that order that reach the target. ``layer_floor`` (not None):
    each layer's :func:`layer_floor_weights` are never taken (where they leave too few MACs to reach
    the target, every other weight is masked and the shortfall logged). Incremental like
    :func:`global_magnitude_prune` (existing masks kept; torch's reparametrisation stays active)."""
    if not (0.0 <= sparsity < 1.0):
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    parameters = prunable_weights(model)
    if not parameters:
        raise ValueError(f"{type(model).__name__} has no Linear/Conv1d/Conv2d weights to prune")
    if len(macs) != len(parameters) or any(int(m) < 1 for m in macs):
        raise ValueError(f"mac_aware_prune: macs must hold one positive count per prunable layer "
                         f"({len(parameters)}), got {list(macs)}")
    scores, costs, masks = [], [], []
    for (module, name), m in zip(parameters, macs):
        weight = getattr(module, name).detach()
        mask = getattr(module, name + "_mask", torch.ones_like(weight)).detach()
        masks.append(mask)
        prunable = mask.reshape(-1) != 0
        if layer_floor is not None:
            prunable &= ~layer_floor_weights(weight, mask, sparsity, layer_floor).reshape(-1)
        scores.append(torch.where(prunable, weight.abs().reshape(-1).double() / m,
                                  torch.full((weight.numel(),), float("inf"), dtype=torch.float64)))
        costs.append(torch.full((weight.numel(),), int(m), dtype=torch.int64))
    score, cost = torch.cat(scores), torch.cat(costs)
    masked = torch.cat([mask.reshape(-1) == 0 for mask in masks])
    total = int(cost.sum())
    target = round(sparsity * total)
    already = int(cost[masked].sum())
    if target < already:
        raise ValueError(f"cannot lower sparsity: {already} MACs already masked, target is {target}")
    order = torch.sort(score, stable=True).indices
    order = order[~masked[order] & torch.isfinite(score[order])]
    reach = torch.cumsum(cost[order], 0) + already
    count = int(torch.searchsorted(reach, torch.tensor([target], dtype=reach.dtype))[0]) + 1 if target > already else 0
    if count > order.numel():
        logger.warning("TTP (macs): the layer floor keeps %d MACs more than the target %.2f%% leaves",
                       target - (int(reach[-1]) if order.numel() else already), 100.0 * sparsity)
    chosen = torch.zeros(score.numel(), dtype=torch.bool)
    chosen[order[:count]] = True
    start = 0
    for (module, name), mask in zip(parameters, masks):
        n = mask.numel()
        new = chosen[start:start + n].reshape(mask.shape)
        start += n
        if bool(new.any()):
            prune.custom_from_mask(module, name, (mask * (~new).to(mask.dtype)))
    logger.info("TTP (macs): %d / %d MACs masked (target %.2f%%)", already + int(cost[order[:count]].sum()), total,
                100.0 * sparsity)
    return model


def make_permanent(model: nn.Module) -> nn.Module:
    """Remove the pruning reparametrisation in place: ``weight`` becomes a plain Parameter
    holding ``weight_orig * weight_mask``."""
    for module, name in prunable_weights(model):
        if prune.is_pruned(module) and hasattr(module, name + "_mask"):
            prune.remove(module, name)
    return model


def permanent_copy(model: nn.Module) -> nn.Module:
    """An independent deep copy of ``model`` with pruning made permanent (``model`` is unchanged)."""
    _detach_masked_weights(model)
    return make_permanent(copy.deepcopy(model))


def _detach_masked_weights(model: nn.Module) -> None:
    """Replace each pruned module's computed ``weight`` (``weight_orig * weight_mask``, a non-leaf
    tensor that ``copy.deepcopy`` refuses) by a detached value. torch's pruning hook recomputes it
    from ``weight_orig`` and ``weight_mask`` at the next forward pass, so nothing changes."""
    for module, name in prunable_weights(model):
        original = getattr(module, name + "_orig", None)
        mask = getattr(module, name + "_mask", None)
        if original is not None and mask is not None:
            setattr(module, name, (original * mask).detach())


def iterative_magnitude_pruning(model: nn.Module, splits=None, config: TTPConfig | None = None,
                                example_input: torch.Tensor | None = None) -> list[TTPStep]:
    """Prune ``model`` along ``config.schedule``, fine-tuning after each step.

    Args:
        model: the trained dense model; it is not modified (a working copy is pruned).
        splits: a :class:`unitprune.data.DatasetSplits` used for fine-tuning on ``.train`` with
            early stopping on ``.val`` (:func:`unitprune.training.train`). ``None`` only when
            ``config.finetune_epochs == 0``.
        config: the schedule and fine-tuning settings.
        example_input: one input sample (batch 1) for ``allocation="macs"``'s MACs per weight;
            default: the first validation input of ``splits``.

    Returns:
        One :class:`TTPStep` per scheduled sparsity, each holding its own permanent copy.
    """
    from ..training import TrainConfig, evaluate, train  # local: training imports data loaders

    config = config or TTPConfig()
    if config.finetune_epochs > 0 and splits is None:
        raise ValueError("iterative_magnitude_pruning: fine-tuning needs training data (splits)")
    if splits is not None:
        splits = _without_test(splits)
    working = permanent_copy(model)  # also accepts a model that is already pruned
    macs = None
    if config.allocation == "macs":
        if example_input is None:
            if splits is None:
                raise ValueError("iterative_magnitude_pruning: allocation='macs' needs example_input or splits")
            example_input = splits.val.tensors[0][:1]
        macs = macs_per_weight(working, example_input)
    steps: list[TTPStep] = []
    for target in config.schedule:
        if macs is None:
            global_magnitude_prune(working, target)
        else:
            mac_aware_prune(working, target, macs, config.layer_floor)
        val_accuracy = None
        if config.finetune_epochs > 0:
            result = train(working, splits, TrainConfig(
                epochs=config.finetune_epochs, lr=config.lr, batch_size=config.batch_size, patience=None,
                seed=config.seed, num_threads=config.num_threads, progress=config.progress))
            val_accuracy = result.best_val_accuracy
        elif splits is not None:
            val_accuracy = evaluate(working, splits.val)
        snapshot = permanent_copy(working)
        steps.append(TTPStep(target_sparsity=target, sparsity=weight_sparsity(snapshot), model=snapshot,
                             val_accuracy=val_accuracy))
        logger.info("TTP step %.0f%%: sparsity %.4f, val accuracy %s", 100 * target, steps[-1].sparsity,
                    "n/a" if val_accuracy is None else f"{val_accuracy:.4f}")
    return steps


def _without_test(splits):
    """The same splits with an empty test set: fine-tuning must never look at test data."""
    x, y = splits.test.tensors[0], splits.test.tensors[1]
    return dataclasses.replace(splits, test=TensorDataset(x[:0], y[:0]))

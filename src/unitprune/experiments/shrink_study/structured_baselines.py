"""Baselines for :func:`unitprune.shrink.shrink` at the same budget and the same training epochs.

* ``tp_prune_to_budget``: Torch-Pruning's channel pruner (``torch_pruning.pruner.MetaPruner``,
  global ranking, ``GroupMagnitudeImportance(p=2)`` or ``GroupTaylorImportance()``) applied to
  the *trained* model in small iterative steps, with training between steps, until the resource
  model says the model fits (Torch-Pruning itself only knows channel ratios), then fine-tuning
  for the rest of the epochs.
* ``dpf_to_budget``: uNAS-style DPF (dynamic pruning with feedback, Lin et al. 2020) made
  structured: channel masks on the L2 norms of each channel group's weights, a cubic sparsity
  schedule up to the uniform keep ratio that fits the budget (found by bisection on the resource
  model), the forward pass on the masked weights and the gradient applied to the dense weights
  (so masked channels can come back), trained from the same initialisation as the differentiable
  method; masked channels are then removed physically and the model fine-tuned.
* ``ttp_result``: the existing unstructured TTP (``unitprune.baselines.ttp``): zeros in dense
  weights; it changes neither the dense int8 flash nor the activations, so it cannot make a
  model fit; its MACs are those with a nonzero weight (what a zero-skipping kernel executes).

Every function returns a :class:`BaselineResult` with the exact resources of the result.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import torch
import torch_pruning as tp
from torch import nn
from torch.utils.data import TensorDataset

from ...training import batches, evaluate
from ...shrink.gates import channel_norms
from ...shrink.budget import MCUBudget, cubic_budget, over_budget
from ...shrink.removal import remove_channels
from ...shrink.resources import ResourceGraph, Resources, trace_resources

__all__ = ["BaselineResult", "tp_prune_to_budget", "dpf_to_budget", "ttp_result", "uniform_from_scratch",
           "uniform_keep_ratio", "unit_on_top"]

logger = logging.getLogger(__name__)


@dataclass
class BaselineResult:
    """A baseline's model, its resources, whether it fits, and its wall time."""

    name: str
    model: nn.Module
    resources: Resources
    fits: bool
    train_seconds: float
    val_accuracy: float
    details: dict[str, Any] = field(default_factory=dict)


def _fits(r: Resources, budget: MCUBudget) -> bool:
    return not over_budget(r.as_dict(), budget.limits())


def _train_steps(model, optimizer, stream, loss_fn, count: int) -> None:
    model.train()
    for _ in range(count):
        x, y = next(stream)
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        optimizer.step()


def _endless(data, batch_size, generator):
    while True:
        yield from batches(data, batch_size, generator)


def _finetune(model, train_data, val_data, epochs, lr, batch_size, generator, label_smoothing: float = 0.0) -> float:
    """Adam for ``epochs`` epochs; keeps the best validation epoch; returns its accuracy."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    best, best_state = evaluate(model, val_data), copy.deepcopy(model.state_dict())
    n = -(-len(train_data) // batch_size)
    stream = _endless(train_data, batch_size, generator)
    for _ in range(epochs):
        _train_steps(model, optimizer, stream, loss_fn, n)
        val = evaluate(model, val_data)
        if val > best:
            best, best_state = val, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    model.eval()
    return best


def _tp_importance(name: str, model: nn.Module):
    """Torch-Pruning's importance criterion ``name`` (``magnitude``, ``taylor``, ``bn-scale``)."""
    if name == "magnitude":
        return tp.importance.GroupMagnitudeImportance(p=2)
    if name == "taylor":
        return tp.importance.GroupTaylorImportance()
    if name == "bn-scale":
        if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
            raise ValueError("importance 'bn-scale' ranks channels by BatchNorm scales: the model has no BatchNorm")
        return tp.importance.BNScaleImportance()
    raise ValueError(f"importance must be one of magnitude, taylor, bn-scale, got {name!r}")


def tp_prune_to_budget(trained: nn.Module, train_data: TensorDataset, val_data: TensorDataset, budget: MCUBudget,
                       *, importance: str = "magnitude", epochs: int = 8, prune_epochs: int | None = None,
                       lr: float = 1e-3, batch_size: int = 64, seed: int = 0, steps: int = 20,
                       global_pruning: bool = False, input_shape: tuple[int, ...] | None = None,
                       label_smoothing: float = 0.0) -> BaselineResult:
    """Torch-Pruning's iterative pruning with fine-tuning of ``trained`` down to ``budget``.

    ``torch_pruning.pruner.MetaPruner`` with the importance criterion ``importance``, the output
    layer ignored, its default local (per-layer) pruning ratios, ``steps`` iterative steps on its
    linear schedule up to the pruning ratio ``1 - r``, ``r`` the uniform keep ratio that fits the
    budget by the resource model (:func:`uniform_keep_ratio`; Torch-Pruning itself knows only
    channel ratios). The steps are spread evenly over ``prune_epochs`` (default ``epochs - 2``,
    as the differentiable method) with Adam training between them; then fine-tuning up to
    ``epochs`` epochs in all (best validation epoch kept). If the model does not fit after the
    schedule (rounding), further steps of the same size follow.

    ``global_pruning=True`` ranks all layers' channels together instead; with a BatchNorm network
    and magnitude importance that ranking compares norms of weights whose scale the next
    BatchNorm removes, and it can empty most of a layer (docs/results/shrink.md).
    """
    t0 = time.perf_counter()
    input_shape = tuple(input_shape or getattr(trained, "input_shape", None) or train_data.tensors[0].shape[1:])
    model = copy.deepcopy(trained)
    example = torch.zeros(1, *input_shape)
    last = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))][-1]
    score = _tp_importance(importance, model)
    graph = trace_resources(model, input_shape)
    keep = uniform_keep_ratio(graph, budget)
    pruner = tp.pruner.MetaPruner(model, example, importance=score, global_pruning=global_pruning,
                                  pruning_ratio=1.0 - keep, iterative_steps=steps, ignored_layers=[last])
    generator = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    n = -(-len(train_data) // batch_size)
    prune_epochs = prune_epochs if prune_epochs is not None else max(1, epochs - 2)
    stream = _endless(train_data, batch_size, generator)
    every = max(1, (prune_epochs * n) // steps)

    def measure():
        return trace_resources(model, input_shape).exact(**budget.resource_options())

    used, done = 0, 0
    r = measure()
    extra = 0
    while not _fits(r, budget) and extra <= 10 * steps:
        if done >= steps:  # the schedule's rounding left the model over: steps of the same size beyond it
            extra += 1
            pruner = tp.pruner.MetaPruner(model, example, importance=score, global_pruning=global_pruning,
                                          pruning_ratio=min(0.99, (1.0 - keep) / steps), iterative_steps=1,
                                          ignored_layers=[last])
        if importance == "taylor":
            model.train()
            x, y = next(stream)
            model.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            used += 1
        pruner.step()
        done += 1
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        if done < steps:
            _train_steps(model, optimizer, stream, loss_fn, every)
            used += every
        r = measure()
    remaining = max(0, epochs - round(used / n))
    val = _finetune(model, train_data, val_data, remaining, lr, batch_size, generator, label_smoothing)
    r = measure()
    graph = trace_resources(model, input_shape)
    return BaselineResult(f"tp-{importance}", model, r, _fits(r, budget), time.perf_counter() - t0, val,
                          {"pruning_steps": done, "finetune_epochs": remaining, "keep_ratio": keep,
                           "global_pruning": global_pruning,
                           "channels": {str(g): graph.group_sizes[g] for g in graph.prunable_groups()}})


def uniform_from_scratch(init: nn.Module, splits, budget: MCUBudget, *, epochs: int = 16, lr: float = 1e-3,
                         batch_size: int = 64, seed: int = 0, input_shape: tuple[int, ...] | None = None,
                         label_smoothing: float = 0.0) -> BaselineResult:
    """The base architecture at the uniform width that fits ``budget``, trained from scratch.

    Every prunable group keeps the same fraction of its channels (:func:`uniform_keep_ratio`); the
    layers are re-initialised (PyTorch's default initialisation at the new fan-in) with the seed,
    then trained for ``epochs`` epochs (``unitprune.training.train``, best validation epoch kept):
    the simplest thing a user would try, with the training budget of base training + pruning run.
    """
    from ...training import TrainConfig, train

    t0 = time.perf_counter()
    input_shape = tuple(input_shape or getattr(init, "input_shape", None) or splits.input_shape)
    model = copy.deepcopy(init)
    graph = trace_resources(model, input_shape)
    keep = uniform_keep_ratio(graph, budget)
    drop = {g: list(range(max(1, int(keep * graph.group_sizes[g])), graph.group_sizes[g]))
            for g in graph.prunable_groups()}
    remove_channels(model, graph, {g: d for g, d in drop.items() if d}, torch.zeros(1, *input_shape))
    torch.manual_seed(seed)
    for module in model.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Linear, nn.modules.batchnorm._BatchNorm)):
            module.reset_parameters()
    train(model, splits, TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, patience=None, seed=seed,
                                     num_threads=torch.get_num_threads(), progress=False,
                                     label_smoothing=label_smoothing))
    model.eval()
    r = graph.exact(**budget.resource_options())
    return BaselineResult("uniform", model, r, _fits(r, budget), time.perf_counter() - t0, evaluate(model, splits.val),
                          {"keep_ratio": keep, "epochs": epochs,
                           "channels": {str(g): graph.group_sizes[g] for g in graph.prunable_groups()}})


def uniform_keep_ratio(graph: ResourceGraph, budget: MCUBudget) -> float:
    """The largest fraction ``r`` with every prunable group at ``max(1, floor(r * size))`` fitting ``budget``."""
    def counts(r):
        return {g: max(1, int(r * graph.group_sizes[g])) for g in graph.prunable_groups()}

    def ok(r):
        return _fits(graph.exact(counts(r), **budget.resource_options()), budget)

    if ok(1.0):
        return 1.0
    low, high = 0.0, 1.0
    for _ in range(30):
        mid = (low + high) / 2
        low, high = (mid, high) if ok(mid) else (low, mid)
    return low


def _masked_tensors(model, graph, group):
    """Parameters whose dim 0 is the group's channels: layer weight/bias and the BN after it."""
    modules = dict(model.named_modules())
    out = []
    for layer in [l for l in graph.layers if graph.find(l.out_group) == group]:
        for name in (layer.name, layer.bn_name):
            if name:
                for p in (modules[name].weight, modules[name].bias):
                    if p is not None:
                        out.append(p)
    return out


def dpf_to_budget(init: nn.Module, train_data: TensorDataset, val_data: TensorDataset, budget: MCUBudget,
                  *, epochs: int = 8, prune_epochs: int | None = None, tighten_fraction: float = 0.7,
                  lr: float = 1e-3, batch_size: int = 64, seed: int = 0, update_every: int = 16,
                  input_shape: tuple[int, ...] | None = None, label_smoothing: float = 0.0) -> BaselineResult:
    """Structured DPF from ``init`` to the uniform keep ratio that fits ``budget`` (module docstring)."""
    t0 = time.perf_counter()
    input_shape = tuple(input_shape or getattr(init, "input_shape", None) or train_data.tensors[0].shape[1:])
    model = copy.deepcopy(init)
    graph = trace_resources(model, input_shape)
    keep_ratio = uniform_keep_ratio(graph, budget)
    groups = graph.prunable_groups()
    final_keep = {g: max(1, int(keep_ratio * graph.group_sizes[g])) for g in groups}
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    n = -(-len(train_data) // batch_size)
    prune_epochs = prune_epochs if prune_epochs is not None else max(1, epochs - 2)
    total = prune_epochs * n
    tighten = max(1, round(tighten_fraction * total))
    masks = {g: torch.ones(graph.group_sizes[g]) for g in groups}
    step = 0
    for _ in range(prune_epochs):
        model.train()
        for x, y in batches(train_data, batch_size, generator):
            if step % update_every == 0 or step == total - 1:
                for g in groups:
                    size = graph.group_sizes[g]
                    keep = round(cubic_budget(size, final_keep[g], step, tighten))
                    if step == total - 1:
                        keep = final_keep[g]
                    mask = torch.zeros(size)
                    mask[torch.topk(channel_norms(model, graph, g), keep).indices] = 1.0
                    masks[g] = mask
            dense = {}
            with torch.no_grad():  # forward/backward on the masked weights ...
                for g in groups:
                    for p in _masked_tensors(model, graph, g):
                        dense[p] = p.detach().clone()
                        p.mul_(masks[g].view(-1, *([1] * (p.dim() - 1))))
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            with torch.no_grad():  # ... and the step on the dense weights (the feedback)
                for p, value in dense.items():
                    p.copy_(value)
            optimizer.step()
            step += 1
    with torch.no_grad():
        for g in groups:
            for p in _masked_tensors(model, graph, g):
                p.mul_(masks[g].view(-1, *([1] * (p.dim() - 1))))
    drop = {g: torch.nonzero(masks[g] == 0).flatten().tolist() for g in groups}
    remove_channels(model, graph, drop, torch.zeros(1, *input_shape))
    val = _finetune(model, train_data, val_data, epochs - prune_epochs, lr, batch_size, generator,
                    label_smoothing)
    r = graph.exact(**budget.resource_options())
    return BaselineResult("dpf", model, r, _fits(r, budget), time.perf_counter() - t0, val,
                          {"keep_ratio": keep_ratio, "channels": {str(g): graph.group_sizes[g] for g in groups}})


def ttp_result(trained: nn.Module, splits, budget: MCUBudget, *, epochs: int = 8,
               schedule: tuple[float, ...] = (0.5, 0.7, 0.8, 0.9), seed: int = 0,
               input_shape: tuple[int, ...] | None = None) -> BaselineResult:
    """Unstructured TTP of ``trained`` (``epochs`` fine-tuning epochs spread over the schedule)."""
    from ...baselines.ttp import TTPConfig, iterative_magnitude_pruning

    t0 = time.perf_counter()
    input_shape = tuple(input_shape or getattr(trained, "input_shape", None) or splits.input_shape)
    per_step = max(1, epochs // len(schedule))
    steps = iterative_magnitude_pruning(trained, splits, TTPConfig(schedule=schedule, finetune_epochs=per_step,
                                                                  seed=seed))
    model = steps[-1].model
    dense = trace_resources(model, input_shape).exact(**budget.resource_options())
    graph = trace_resources(model, input_shape)
    modules = dict(model.named_modules())
    nonzero_macs = sum(int((modules[l.name].weight != 0).sum()) * l.out_spatial for l in graph.layers)
    r = Resources(**{**dense.as_dict(), "macs": nonzero_macs})
    return BaselineResult("ttp", model, r, _fits(r, budget), time.perf_counter() - t0,
                          evaluate(model, splits.val),
                          {"sparsity": steps[-1].sparsity, "dense_macs": dense.macs,
                           "note": "flash and SRAM of the dense int8 export: unstructured zeros shrink neither"})


def unit_on_top(model: nn.Module, splits, *, max_drop: float = 1.0,
                percentiles: tuple[float, ...] = (10, 20, 30, 40, 50, 60, 70, 80),
                calibration_samples: int = 100) -> dict[str, Any]:
    """UnIT on a (pruned) model: the largest calibration percentile within ``max_drop`` points of
    the model's own validation accuracy; returns its test accuracy and the fraction of MACs skipped.

    Thresholds are calibrated on the first ``calibration_samples`` validation inputs; the choice
    is made on the whole validation split, the figures reported on test.
    """
    from ...calibrate import calibrate
    from ...config import UnITConfig
    from ...convert import convert
    from ..evaluation import evaluate_unit_model

    unit = convert(copy.deepcopy(model), UnITConfig())
    reference_val = evaluate(model, splits.val)
    chosen = None
    for p in percentiles:
        calibrate(unit, splits.val.tensors[0][:calibration_samples], percentile=p)
        if 100 * (reference_val - evaluate_unit_model(unit, splits.val).accuracy) <= max_drop:
            chosen = p
    dense_test = evaluate(model, splits.test)
    if chosen is None:
        return {"percentile": None, "test_accuracy": dense_test, "skipped_fraction": 0.0,
                "threshold_fraction": 0.0, "dense_test_accuracy": dense_test}
    calibrate(unit, splits.val.tensors[0][:calibration_samples], percentile=chosen)
    test = evaluate_unit_model(unit, splits.test)
    total = test.total
    return {"percentile": chosen, "test_accuracy": test.accuracy, "skipped_fraction": total.skipped_fraction,
            "threshold_fraction": total.threshold / total.dense if total.dense else 0.0,
            "dense_test_accuracy": dense_test}

"""The differentiable, MCU-resource-aware pruning loop (``unitprune.shrink``).

``shrink(model, train_data, val_data, budget=MCUBudget(...), config=ShrinkConfig(...))`` trains a
copy of ``model`` with per-channel gates (:mod:`.gates`) and the loss

    L = CE + lambda * sum_k w_k * max(0, R_k(counts) / B_k(t) - 1)

over the constrained resources ``k`` of the budget. ``R_k`` is the resource model
(:mod:`.resources`) evaluated on straight-through channel counts: the value is the *hard* count
(channels whose gate is open), the gradient is that of a salience-weighted *soft* count
``sum(alpha_c * gate_c)``; so the penalty stays on until the real model fits the scheduled
budget, and its gradient reaches every gate.

Gate forward (:mod:`.gates`, ``config.gate_forward``): by default (``"auto"``) hard 0/1 masks
with a straight-through gradient on a model where some group's consumers are all followed by a
BatchNorm (the gate's scale does not reach the loss there), soft gate values otherwise. A soft gate takes SGD steps of the task and
penalty gradients (``config.gate_lr``). A hard gate moves by the penalty alone (``config.mask_lr``):
its task gradient ``dCE/dm_c`` is a noisy first-order estimate with no scale to settle, and SGD
on it is a random walk that closes channels at random (it did on DS-CNN: channels kept closing
with the budget met, docs/shrink.md); it is used as the salience only.

Channel salience feedback: each step first back-propagates the task loss; the gate gradients it
leaves are the first-order Taylor saliences ``|g_c * dCE/dg_c|`` (``|dCE/dm_c|`` for a hard
gate), kept as a running average per channel. Within a group, channels are ranked by salience and
``alpha_c = 2 (n - rank_c) / (n + 1)`` (about 2 for the least salient channel, about 0 for the
most salient; mean 1), so the resource pressure falls mostly on the least salient channels and
they close one after another instead of all together (``config.pressure = "least"``: all of it on
the least salient open channel). The gates take plain SGD steps (``config.gate_lr``): with Adam's per-parameter
normalisation every gate of a group would move at the same speed and close at the same step.
``B_k(t)`` tightens from the model's initial usage to the target on the cubic schedule
(:func:`.budget.cubic_budget`) over the first ``config.tighten_fraction`` of the pruning steps.
Every ``config.remove_every`` steps the closed channels are removed physically
(:mod:`.removal`): weights, BatchNorm statistics, next-layer inputs, gate parameters and Adam
state, so the remaining steps run on a smaller model.

At the end of the pruning phase, if the hard counts still exceed the final budget, the channels
with the smallest gates are removed one at a time (each time from the group whose removal reduces
the total relative excess the most) until the model fits; the number removed this way is
recorded as ``projected_channels`` (0 when the penalty alone sufficed). The gate values are then
folded into the weights and the model is fine-tuned for the remaining epochs (best validation
epoch kept). A budget that cannot be met at one channel per layer raises :class:`BudgetError`
before any training.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import TensorDataset
from tqdm.auto import tqdm

from ..training import batches, evaluate
from .budget import BudgetError, MCUBudget, check_feasible, cubic_budget, over_budget
from .gates import ChannelGates
from .removal import kept_indices, remove_channels
from .resources import RESOURCE_NAMES, ResourceGraph, Resources, trace_resources

__all__ = ["ShrinkConfig", "ShrinkResult", "shrink", "project_to_budget"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShrinkConfig:
    """Hyper-parameters of :func:`shrink`.

    Attributes:
        epochs: total epochs (pruning + fine-tuning), the same count the base model trains for.
        prune_epochs: epochs with gates and the resource penalty (default: ``epochs - 2``,
            at least 1); the rest fine-tune the folded model.
        tighten_fraction: fraction of the pruning steps over which the budget reaches its target.
        penalty: lambda, the weight of the resource penalty.
        resource_weights: w_k per resource name (default 1 each).
        lr: Adam learning rate of the weights.
        gate_lr: SGD learning rate of the soft gates.
        salience_decay: running-average factor of the channel saliences.
        gate_forward: ``"auto"`` (one mode per model, :mod:`.gates`), ``"soft"`` or ``"hard"``.
        mask_lr: SGD learning rate of the hard gates (only the penalty moves them).
        pressure: how a group's resource pressure is shared by its channels: ``"rank"`` (linear
            in the salience rank) or ``"least"`` (all on the least salient open channel).
        close_only_under_pressure: a gate of a group the penalty does not reach this step (the
            model fits the scheduled budget, or the group is not at the binding resource) stays
            open (``theta >= 1e-3``): its task gradient shapes a soft gate's scale but cannot
            close it; and when one step closes several gates, only as many stay closed as the
            scheduled budget needs (:func:`_stop_at_budget`). Off by default: on mnist-wide seed 2
            it kept the budget's last channel (3 / 3 instead of 2 / 3, +0.8 points), on DS-CNN it
            cost 3.7 points (docs/shrink.md). The floor only matters for soft gates (the penalty
            alone moves a hard one).
        batch_size: examples per step.
        remove_every: steps between physical removals of closed channels.
        seed: seed of the data order.
        num_threads: torch threads.
        progress: show a progress bar per epoch.
    """

    epochs: int = 8
    prune_epochs: int | None = None
    tighten_fraction: float = 0.7
    penalty: float = 2.0
    resource_weights: dict[str, float] = field(default_factory=dict)
    lr: float = 1e-3
    gate_lr: float = 0.1
    salience_decay: float = 0.9
    gate_forward: str = "auto"
    mask_lr: float = 1.0
    pressure: str = "rank"
    close_only_under_pressure: bool = False
    batch_size: int = 64
    remove_every: int = 10
    seed: int = 0
    num_threads: int = 1
    progress: bool = False

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"ShrinkConfig.epochs must be >= 1, got {self.epochs}")
        if self.prune_epochs is not None and not (1 <= self.prune_epochs <= self.epochs):
            raise ValueError(f"ShrinkConfig.prune_epochs must be in [1, epochs], got {self.prune_epochs}")
        if not (0.0 < self.tighten_fraction <= 1.0):
            raise ValueError(f"ShrinkConfig.tighten_fraction must be in (0, 1], got {self.tighten_fraction}")
        if self.gate_forward not in ("soft", "hard", "auto"):
            raise ValueError(f"ShrinkConfig.gate_forward must be 'soft', 'hard' or 'auto', got {self.gate_forward!r}")
        if self.pressure not in ("rank", "least"):
            raise ValueError(f"ShrinkConfig.pressure must be 'rank' or 'least', got {self.pressure!r}")
        unknown = set(self.resource_weights) - set(RESOURCE_NAMES)
        if unknown:
            raise ValueError(f"ShrinkConfig.resource_weights: unknown resources {sorted(unknown)}")

    @property
    def pruning_epochs(self) -> int:
        if self.prune_epochs is not None:
            return self.prune_epochs
        return max(1, self.epochs - 2)


@dataclass
class ShrinkResult:
    """What :func:`shrink` returns.

    Attributes:
        model: the smaller model (plain nn layers, eval mode).
        before, after: exact resources of the input and the returned model.
        fits: whether ``after`` is within every limit of the budget (always True on return).
        history: one dict per epoch: ``epoch``, ``phase``, ``train_loss``, ``val_accuracy``,
            the hard resources, the scheduled budget (``budget_<resource>``), ``channels`` per
            group and ``seconds``.
        projected_channels: channels removed by the final projection (0: the penalty sufficed).
        train_seconds: wall time of the whole run.
        val_accuracy: validation accuracy of the returned model.
    """

    model: nn.Module
    before: Resources
    after: Resources
    fits: bool
    history: list[dict[str, Any]]
    projected_channels: int
    train_seconds: float
    val_accuracy: float


def _ste_counts(gates: ChannelGates, alpha: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
    """Hard channel counts in the forward value, salience-weighted soft counts in the gradient."""
    hard = gates.hard_counts()
    out = {}
    for g in gates.groups:
        soft = (alpha[g] * gates.value(g)).sum()
        out[g] = soft - soft.detach() + hard[g]
    return out


def _rank_weights(salience: torch.Tensor, open_: torch.Tensor | None = None, pressure: str = "rank") -> torch.Tensor:
    """Share of a group's resource pressure per channel (mean 1 over the group's channels).

    ``"rank"``: ``2 (n - rank) / (n + 1)`` with rank 0 for the least salient channel. ``"least"``:
    all of it (``n``) on the least salient *open* channel; closed channels (``open_`` False)
    get nothing under ``"least"``.
    """
    n = salience.numel()
    if open_ is None:
        open_ = torch.ones(n, dtype=torch.bool)
    if pressure == "least":
        key = torch.where(open_, salience, torch.full_like(salience, float("inf")))
        alpha = torch.zeros(n)
        if bool(open_.any()):
            alpha[int(torch.argmin(key))] = float(n)
        return alpha
    ranks = torch.empty(n)
    ranks[torch.argsort(salience)] = torch.arange(n, dtype=torch.float32)
    return 2.0 * (n - ranks) / (n + 1)


#: the smallest value an open gate keeps while its group is under no resource pressure
_OPEN_FLOOR = 1e-3


def _add_penalty_gradient(penalty: torch.Tensor, gates: ChannelGates) -> set[int]:
    """Add the penalty's gradient to the gates' ``.grad``; return the groups it reaches (nonzero)."""
    if not penalty.requires_grad:
        return set()
    params = gates.parameters()
    grads = torch.autograd.grad(penalty, params, allow_unused=True)
    pressed = set()
    for g, theta, grad in zip(gates.groups, params, grads):
        if grad is None or not bool(grad.abs().sum() > 0):
            continue
        pressed.add(g)
        theta.grad = grad if theta.grad is None else theta.grad + grad
    return pressed


def _stop_at_budget(graph: ResourceGraph, gates: ChannelGates, was_open: dict[int, torch.Tensor],
                    budgets: dict[str, float], budget: MCUBudget) -> None:
    """Of the gates this step closed, keep closed only as many as the scheduled budget needs.

    Several gates can cross 0 in one step (a group's gates fall together; two groups tie at the
    SRAM peak). They are taken back in the order they were pushed (most negative ``theta``
    first): once the hard counts fit ``budgets``, the rest reopen at the open floor.
    """
    newly = [(float(gates.theta[g][c]), g, int(c)) for g in gates.groups
             for c in torch.nonzero(was_open[g] & (gates.theta[g].detach() <= 0)).flatten()]
    if len(newly) < 2:
        return
    counts = gates.hard_counts()
    for _, g, _ in newly:
        counts[g] += 1  # as before the step
    keep_closed = 0
    for _, g, _ in sorted(newly):
        values = graph.exact(counts, unit_tables=budget.unit_tables, target=budget.target,
                             conv_block_rows=budget.conv_block_rows).as_dict()
        if not over_budget(values, budgets):
            break
        counts[g] -= 1
        keep_closed += 1
    for _, g, c in sorted(newly)[keep_closed:]:
        gates.theta[g][c] = _OPEN_FLOOR


def _penalty(values: dict, budgets: dict[str, float], weights: dict[str, float]) -> torch.Tensor:
    total = torch.zeros(())
    for key, limit in budgets.items():
        total = total + weights.get(key, 1.0) * torch.relu(values[key] / limit - 1.0)
    return total


def project_to_budget(graph: ResourceGraph, gates: ChannelGates, budget: MCUBudget) -> dict[int, list[int]]:
    """Channels to close so the hard counts fit ``budget``: lowest gates first, greedy on excess.

    Each step closes one channel of the group whose removal lowers the excess most. Peak SRAM is
    a maximum over ops, so when several ops tie at the peak (a chain of equal widths, e.g. DS-CNN's
    depthwise/pointwise blocks) no single removal lowers it; the tie is then broken in favour of
    the group with the most open channels (so tied groups shrink in turn, none collapses to one
    channel), then by the total relative usage ``sum_k R_k / B_k`` (every buffer summed instead of
    the peak, plus flash and MACs), so the greedy keeps going until the peak falls.

    Returns ``{group: [channel indices]}``; the gates of those channels are set to 0.
    """
    limits = budget.limits()
    counts = gates.hard_counts()
    chosen: dict[int, list[int]] = {g: [] for g in gates.groups}

    def usage(c) -> tuple[float, float]:
        values = graph.exact(c, unit_tables=budget.unit_tables, target=budget.target,
                             conv_block_rows=budget.conv_block_rows).as_dict()
        excess = sum(max(0.0, float(values[k]) / v - 1.0) for k, v in limits.items())
        total = sum(float(values[k]) / v for k, v in limits.items() if k != "sram_bytes")
        if "sram_bytes" in limits:  # all activation buffers, not only those live at the peak
            buffers = sum(c.get(b.group, graph.group_sizes[b.group]) * b.per_channel for b in graph.buffers)
            total += buffers / limits["sram_bytes"]
        return excess, total

    current, current_total = usage(counts)
    while current > 0:
        best = None
        for g in gates.groups:
            if counts[g] <= 1:
                continue
            excess, total = usage({**counts, g: counts[g] - 1})
            gain = (current - excess, counts[g], current_total - total)
            if best is None or gain > best[0]:
                best = (gain, g)
        if best is None or (best[0][0] <= 0.0 and best[0][2] <= 0.0):
            raise BudgetError("the budget cannot be met by removing more channels "
                              f"(relative excess {current:.3f} at counts {counts})")
        g = best[1]
        theta = gates.theta[g].detach().clone()
        theta[chosen[g]] = float("inf")
        theta[theta <= 0] = float("inf")  # already closed
        index = int(torch.argmin(theta))
        chosen[g].append(index)
        counts[g] -= 1
        current, current_total = usage(counts)
    with torch.no_grad():
        for g, idx in chosen.items():
            if idx:
                gates.theta[g][idx] = 0.0
    return {g: idx for g, idx in chosen.items() if idx}


def _update_salience(gates: ChannelGates, salience: dict[int, torch.Tensor], config: ShrinkConfig
                     ) -> dict[int, torch.Tensor]:
    """One step of the salience ranking (after the task loss's backward): the decayed Taylor
    salience ``|scale * dL/dtheta|`` of every channel, and from it the weights ``alpha`` by which
    the resource pressure is shared out among the open channels. A hard gate's task gradient is
    the salience only: it is cleared, so that only the resource pressure moves the gate."""
    alpha = {}
    with torch.no_grad():
        for g in gates.groups:
            theta = gates.theta[g]
            hard = gates.forward[g] == "hard"
            scale = (theta > 0).float() if hard else gates.value(g)
            taylor = (scale * theta.grad).abs() if theta.grad is not None else torch.zeros_like(theta)
            salience[g] = config.salience_decay * salience[g] + (1 - config.salience_decay) * taylor
            alpha[g] = _rank_weights(salience[g], theta > 0, config.pressure)
            if hard and theta.grad is not None:
                theta.grad.zero_()
    return alpha


def _apply_resource_pressure(graph: ResourceGraph, gates: ChannelGates, alpha: dict[int, torch.Tensor],
                             budgets: dict[str, float], budget: MCUBudget, config: ShrinkConfig
                             ) -> tuple[torch.Tensor, set[int]]:
    """The resource penalty at this step's budgets, its gradient added to the gates; returns the
    penalty and the groups it pressed (all of them unless ``close_only_under_pressure``)."""
    values = graph.evaluate(_ste_counts(gates, alpha), unit_tables=budget.unit_tables, target=budget.target,
                            conv_block_rows=budget.conv_block_rows)
    penalty = config.penalty * _penalty(values, budgets, config.resource_weights)
    if config.close_only_under_pressure:
        return penalty, _add_penalty_gradient(penalty, gates)
    if penalty.requires_grad:
        penalty.backward()
    return penalty, set(gates.groups)


def _hold_unpressed_gates(graph: ResourceGraph, gates: ChannelGates, pressed: set[int],
                          was_open: dict[int, torch.Tensor], budgets: dict[str, float], budget: MCUBudget,
                          config: ShrinkConfig) -> None:
    """After the optimizer step: gates stay <= 1, an open gate of a group the pressure did not
    press stays open (only the resource pressure closes a gate), and with
    ``close_only_under_pressure`` a step closes no more gates than the scheduled budget needs."""
    with torch.no_grad():
        for g in gates.groups:
            theta = gates.theta[g]
            theta.clamp_(max=1.0)
            if g not in pressed:
                theta[was_open[g] & (theta < _OPEN_FLOOR)] = _OPEN_FLOOR
        if config.close_only_under_pressure:
            _stop_at_budget(graph, gates, was_open, budgets, budget)


def _end_pruning(work, graph, gates, example, optimizer, make_optimizer, salience, budget):
    """The last pruning epoch's end: the closed channels removed, the projection onto the budget
    (removing the least salient channels still over it), the gates folded into the weights.
    Returns the optimizer, the salience and how many channels the projection removed."""
    optimizer, salience = _remove_closed(work, graph, gates, example, optimizer, make_optimizer, salience)
    drop = project_to_budget(graph, gates, budget)
    projected = sum(len(v) for v in drop.values())
    if projected:
        logger.info("projection removed %d more channels to meet the budget", projected)
    optimizer, salience = _remove_closed(work, graph, gates, example, optimizer, make_optimizer, salience)
    gates.fold()
    return optimizer, salience, projected


def _epoch_record(graph: ResourceGraph, budget: MCUBudget, epoch: int, pruning: bool, train_loss: float,
                  val: float, budgets: dict[str, float], seconds: float) -> dict[str, Any]:
    """One row of :attr:`ShrinkResult.history`: the epoch's loss, accuracy, exact resources, budgets
    and channel counts."""
    now = graph.exact(unit_tables=budget.unit_tables, target=budget.target, conv_block_rows=budget.conv_block_rows)
    return {"epoch": epoch, "phase": "prune" if pruning else "finetune", "train_loss": train_loss,
            "val_accuracy": val, **{k: getattr(now, k) for k in RESOURCE_NAMES},
            **{f"budget_{k}": value for k, value in budgets.items()},
            "channels": {str(g): graph.group_sizes[g] for g in graph.prunable_groups()}, "seconds": seconds}


def shrink(
    model: nn.Module,
    train_data: TensorDataset,
    val_data: TensorDataset,
    budget: MCUBudget,
    config: ShrinkConfig | None = None,
    input_shape: tuple[int, ...] | None = None,
) -> ShrinkResult:
    """Prune and train a copy of ``model`` until it fits ``budget`` (see the module docstring).

    ``input_shape`` (one example, no batch) defaults to ``model.input_shape`` or the shape of the
    first training example. ``model`` itself is not modified.

    Raises:
        BudgetError: the budget cannot be met even at one channel per prunable layer.
    """
    config = config or ShrinkConfig()
    t0 = time.perf_counter()
    input_shape = tuple(input_shape or getattr(model, "input_shape", None) or train_data.tensors[0].shape[1:])
    work = copy.deepcopy(model)
    graph = trace_resources(work, input_shape)
    before = graph.exact(unit_tables=budget.unit_tables, target=budget.target,
                         conv_block_rows=budget.conv_block_rows)
    check_feasible(graph, budget)
    limits = budget.limits()
    example = torch.zeros(1, *input_shape)

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.num_threads)
    generator = torch.Generator().manual_seed(config.seed)
    gates = ChannelGates(work, graph, forward=config.gate_forward)

    def make_optimizer(params, gate_params):  # gate_params: in the order of gates.groups
        gate_params = list(gate_params)
        lrs = [config.gate_lr if gates.forward[g] == "soft" else config.mask_lr for g in gates.groups]
        return _WeightsAndGates(torch.optim.Adam(params, lr=config.lr),
                                torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(gate_params, lrs)]),
                                gate_params)

    optimizer = make_optimizer(list(work.parameters()), gates.parameters())
    salience = {g: torch.zeros(graph.group_sizes[g]) for g in gates.groups}
    loss_fn = nn.CrossEntropyLoss()
    n_batches = -(-len(train_data) // config.batch_size)
    prune_steps = config.pruning_epochs * n_batches
    tighten_steps = max(1, round(config.tighten_fraction * prune_steps))
    initial = {k: float(getattr(before, k)) for k in limits}
    history: list[dict[str, Any]] = []
    projected = 0
    best_state, best_val = None, -1.0
    step = 0
    try:
        bar = tqdm(range(1, config.epochs + 1), desc="shrink", disable=not config.progress)
        for epoch in bar:
            epoch_t0 = time.perf_counter()
            pruning = epoch <= config.pruning_epochs
            work.train()
            loss_sum = 0.0
            for x, y in batches(train_data, config.batch_size, generator):
                loss = loss_fn(work(x), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if pruning:
                    alpha = _update_salience(gates, salience, config)
                    budgets = {k: cubic_budget(initial[k], limits[k], step, tighten_steps) for k in limits}
                    penalty, pressed = _apply_resource_pressure(graph, gates, alpha, budgets, budget, config)
                    loss = loss.detach() + penalty.detach()
                    was_open = ({g: gates.theta[g].detach() > 0 for g in gates.groups}  # before this step
                                if config.close_only_under_pressure else {})
                optimizer.step()
                loss_sum += float(loss.detach()) * len(y)
                step += 1
                if pruning:
                    _hold_unpressed_gates(graph, gates, pressed, was_open, budgets, budget, config)
                    if step % config.remove_every == 0:
                        optimizer, salience = _remove_closed(work, graph, gates, example, optimizer,
                                                             make_optimizer, salience)
            if pruning and epoch == config.pruning_epochs:
                optimizer, salience, projected = _end_pruning(work, graph, gates, example, optimizer, make_optimizer,
                                                              salience, budget)
                optimizer = torch.optim.Adam(work.parameters(), lr=config.lr)
            val = evaluate(work, val_data)
            record = _epoch_record(graph, budget, epoch, pruning, loss_sum / len(train_data), val,
                                   {k: cubic_budget(initial[k], limits[k], step, tighten_steps) for k in limits},
                                   time.perf_counter() - epoch_t0)
            history.append(record)
            bar.set_postfix(sram=record["sram_bytes"], flash=record["flash_bytes"], macs=record["macs"], val=f"{val:.3f}")
            logger.info("shrink epoch %d (%s): val %.4f, sram %d, flash %d, macs %d", epoch, record["phase"],
                        val, record["sram_bytes"], record["flash_bytes"], record["macs"])
            if not pruning and val > best_val:
                best_val, best_state = val, copy.deepcopy(work.state_dict())
    finally:
        gates.detach()
        torch.set_num_threads(previous_threads)
    if best_state is not None:
        work.load_state_dict(best_state)
    work.eval()
    after = graph.exact(unit_tables=budget.unit_tables, target=budget.target,
                        conv_block_rows=budget.conv_block_rows)
    excess = over_budget(after.as_dict(), limits)
    if excess:  # the projection guarantees this cannot happen; never return an over-budget model
        raise BudgetError(f"shrink ended over budget: {excess}")
    val = evaluate(work, val_data)
    return ShrinkResult(model=work, before=before, after=after, fits=True, history=history,
                        projected_channels=projected, train_seconds=time.perf_counter() - t0, val_accuracy=val)


class _WeightsAndGates:
    """Adam on the weights and SGD on the gates, with one ``step``/``zero_grad``/``state``."""

    def __init__(self, weights: torch.optim.Optimizer, gates: torch.optim.Optimizer, gate_params):
        self.weights, self.gates = weights, gates
        self.gate_params = list(gate_params)

    @property
    def state(self):
        return self.weights.state  # SGD without momentum keeps no state

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.weights.zero_grad(set_to_none=set_to_none)
        self.gates.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        self.weights.step()
        self.gates.step()


def _remove_closed(model, graph, gates, example, optimizer, make_optimizer, salience):
    closed = gates.closed()
    if not closed:
        return optimizer, salience
    for g, idx in closed.items():  # never empty a group: keep its largest gate
        if len(idx) >= graph.group_sizes[g]:
            keep = int(torch.argmax(gates.theta[g].detach()))
            closed[g] = [i for i in idx if i != keep]
            with torch.no_grad():
                gates.theta[g][keep] = 1e-3
    gates.detach()
    sliced, optimizer = remove_channels(model, graph, closed, example, optimizer=optimizer,
                                        make_optimizer=make_optimizer, extra_parameters=gates.theta)
    gates.theta = sliced
    gates.attach()
    salience = {g: (v.index_select(0, kept_indices(v.numel(), closed[g])) if g in closed else v)
                for g, v in salience.items()}
    return optimizer, salience

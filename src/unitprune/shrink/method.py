"""The differentiable, MCU-resource-aware pruning loop (``unitprune.shrink``).

``shrink(model, train_data, val_data, budget=MCUBudget(...), config=ShrinkConfig(...))`` trains a
copy of ``model`` while it prunes it to the budget. The variables of the pruning are one
continuous channel count ``k_g`` per prunable channel group (:mod:`.allocation`); the resource
model (:mod:`.resources`) is a differentiable function of these counts, and the loss is

    L = CE + lambda_t * sum_k R_k(k) / B_k(t)

over the constrained resources ``k`` above their scheduled budget ``B_k(t)``, with the multiplier
``lambda_t`` that keeps the model exactly at the scheduled budget (:func:`.allocation.project_counts`).

Every step:

1. **Masks from counts and the salience ranking**: within each group the channels are ranked by
   salience; the ``floor(k_g)`` most salient are open, the next one is open by ``frac(k_g)``, the
   rest are masked (:func:`.allocation.ranked_mask`, applied by :mod:`.gates` after the BatchNorm,
   before the nonlinearity).
2. **Training**: the task loss (cross-entropy with ``label_smoothing``) on the masked model; Adam
   on the weights. With ``feedback`` (off by default) the gradient reaches every channel's output
   as if its mask were 1 (DPF's feedback), so masked channels keep learning and a reopened
   channel is not stale.
3. **Salience**: each example's gradient of its loss with respect to every channel's mask,
   ``dCE_n/dm_c``, gives the Fisher salience ``0.5 * mean_n (dCE_n/dm_c)^2`` (``salience="fisher"``,
   the default: the second-order estimate of the loss change from removing an open channel or
   adding back a masked one; ``"taylor"``: the batch's ``|dCE/dm_c|``, whose mean vanishes at a
   trained channel's optimum); a running average (``salience_decay``) is each channel's
   salience. A masked channel whose salience rises above an open one's times ``1 + keep_bonus``
   takes its place at the next step:
   closed channels reopen, but not on the noise of one batch.
4. **Counts**: every count grows by ``regrow`` channels (up to the channels still in the model),
   then the counts are projected back onto the scheduled budget along the resource gradient
   divided by each group's marginal salience (:func:`.allocation.project_counts`). Growth that
   is the same for every group and shrinking in proportion to cost over value balance where every
   group's marginal channel buys the same salience per byte: a group whose channels cost much
   and whose marginal channel matters little ends small, wherever the resource model's gradient
   falls.

``B_k(t)`` tightens from the model's initial usage to the target on the cubic schedule
(:func:`.budget.cubic_budget`) over the first ``tighten_fraction`` of the pruning steps. Every
``remove_every`` steps the channels ranked ``reserve`` or more places beyond the open ones are
removed physically (:mod:`.removal`: weights, BatchNorm statistics, next-layer inputs, Adam
state; the model stays in training mode), so training gets faster while the channels near the
margin can still come back. At the end of every pruning epoch the BatchNorm running statistics
are re-estimated for the current masks (``recalibrate_bn``) before the validation.

At the end of the pruning phase the counts become integers that meet the budget exactly by the
resource model (:func:`.allocation.fit_counts`: no group can take one more channel), the masks
are set to the most salient channels of those counts, the rest is removed, the masks folded into
the weights, and the model is fine-tuned for the remaining epochs (best validation epoch kept).
A budget that cannot be met at one channel per layer raises :class:`BudgetError` before any
training.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import TensorDataset
from tqdm.auto import tqdm

from ..extras import require
from ..training import batches, evaluate
from .allocation import fit_counts, marginal_value, project_counts, ranked_mask, salience_ranks
from .bn_stats import recalibrate_batchnorm
from .budget import BudgetError, MCUBudget, check_feasible, cubic_budget, over_budget
from .gates import ChannelGates, channel_norms
from .removal import kept_indices, remove_channels
from .resources import RESOURCE_NAMES, ResourceGraph, Resources, trace_resources

__all__ = ["ShrinkConfig", "ShrinkResult", "shrink"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShrinkConfig:
    """Hyper-parameters of :func:`shrink`.

    Attributes:
        epochs: total epochs (pruning + fine-tuning), the same count the base model trains for.
        prune_epochs: epochs with masks and the budget schedule (default: ``epochs - 2``, at
            least 1); the rest fine-tune the pruned model.
        tighten_fraction: fraction of the pruning steps over which the budget reaches its target.
        lr: Adam learning rate of the weights (pruning and fine-tuning; docs/results/shrink.md
            measures 1e-3, 2e-3 and 3e-3).
        salience_decay: running-average factor of the channel saliences.
        regrow: channels every count grows by per step before the projection onto the budget
            (the speed at which the allocation can move channels between groups).
        reserve: masked channels kept in the model beyond the open ones (per group: at least
            this many, or 10% of the open ones), the channels that can still reopen.
        feedback: masked channels keep learning from the dense gradient (:class:`.gates.ChannelGates`).
        keep_bonus: hysteresis of the ranking: an open channel ranks with its salience times
            ``1 + keep_bonus``, so a masked channel reopens only when it is that much more salient.
        salience: the channel salience: ``"fisher"`` (``0.5 * mean_n (dCE_n/dm_c)^2`` over the
            batch's examples, :meth:`.gates.ChannelGates.take_fisher`: the expected loss increase,
            which does not vanish at a trained channel's optimum as the batch gradient's mean does)
            or ``"taylor"`` (``|dCE/dm_c|`` of each batch); either is averaged over steps with
            ``salience_decay``.
        rank_by: what ranks the channels within a group for the masks, the removal and the final
            pick: ``"salience"`` (the running salience) or ``"norm"`` (the L2 norm of the
            channel's weights, DPF's criterion, :func:`.gates.channel_norms`). The groups are
            compared by the salience either way.
        reserve_fraction: the reserve is at least this fraction of the open channels.
        relative_value: compare groups by their marginal channel's salience over the mean salience
            of the group's open channels (scale-free across layers) instead of the raw salience.
        batch_size: examples per step.
        remove_every: steps between physical removals of the channels beyond the reserve (0: no
            removal before the end of pruning). A removal keeps the model in training mode.
        seed: seed of the data order.
        num_threads: torch threads.
        progress: show a progress bar per epoch.
        recalibrate_bn: at the end of every pruning epoch, re-estimate the BatchNorm running
            statistics of the masked model from the first ``bn_examples`` training examples
            (:func:`.bn_stats.recalibrate_batchnorm`): the momentum average lags behind the
            changing masks, and the epoch's validation accuracy and the start of fine-tuning use them.
        bn_examples: training examples the BatchNorm statistics are re-estimated from.
        finetune_lr: learning rate of the fine-tuning phase: ``"cosine"`` (per step from ``lr`` down
            to 0 over the fine-tuning steps, the default) or ``"constant"`` (``lr``).
        label_smoothing: label smoothing of the training loss's cross-entropy (Szegedy et al.
            2016: the target puts ``1 - eps`` on the label and ``eps / classes`` on every class);
            the salience is that loss's. docs/results/shrink.md measures 0 and 0.1.
    """

    epochs: int = 8
    prune_epochs: int | None = None
    tighten_fraction: float = 0.7
    lr: float = 2e-3
    salience_decay: float = 0.9
    regrow: float = 0.05
    reserve: int = 2
    feedback: bool = False
    keep_bonus: float = 1.0
    salience: str = "fisher"
    rank_by: str = "salience"
    reserve_fraction: float = 0.1
    relative_value: bool = False
    batch_size: int = 64
    remove_every: int = 10
    seed: int = 0
    num_threads: int = 1
    progress: bool = False
    recalibrate_bn: bool = True
    bn_examples: int = 1024
    finetune_lr: str = "cosine"
    label_smoothing: float = 0.1

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"ShrinkConfig.epochs must be >= 1, got {self.epochs}")
        if self.prune_epochs is not None and not (1 <= self.prune_epochs <= self.epochs):
            raise ValueError(f"ShrinkConfig.prune_epochs must be in [1, epochs], got {self.prune_epochs}")
        if not (0.0 < self.tighten_fraction <= 1.0):
            raise ValueError(f"ShrinkConfig.tighten_fraction must be in (0, 1], got {self.tighten_fraction}")
        if not (0.0 <= self.salience_decay < 1.0):
            raise ValueError(f"ShrinkConfig.salience_decay must be in [0, 1), got {self.salience_decay}")
        if self.regrow < 0:
            raise ValueError(f"ShrinkConfig.regrow must be >= 0, got {self.regrow}")
        if self.keep_bonus < 0:
            raise ValueError(f"ShrinkConfig.keep_bonus must be >= 0, got {self.keep_bonus}")
        if self.salience not in ("taylor", "fisher"):
            raise ValueError(f"ShrinkConfig.salience must be 'taylor' or 'fisher', got {self.salience!r}")
        if self.rank_by not in ("salience", "norm"):
            raise ValueError(f"ShrinkConfig.rank_by must be 'salience' or 'norm', got {self.rank_by!r}")
        if self.reserve_fraction < 0:
            raise ValueError(f"ShrinkConfig.reserve_fraction must be >= 0, got {self.reserve_fraction}")
        if self.reserve < 0:
            raise ValueError(f"ShrinkConfig.reserve must be >= 0, got {self.reserve}")
        if self.finetune_lr not in ("constant", "cosine"):
            raise ValueError(f"ShrinkConfig.finetune_lr must be 'constant' or 'cosine', got {self.finetune_lr!r}")
        if not (0.0 <= self.label_smoothing < 1.0):
            raise ValueError(f"ShrinkConfig.label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.remove_every < 0:
            raise ValueError(f"ShrinkConfig.remove_every must be >= 0 (0: only when pruning ends), got {self.remove_every}")
        if self.bn_examples < 1:
            raise ValueError(f"ShrinkConfig.bn_examples must be >= 1, got {self.bn_examples}")

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
            the exact resources of the open channels, the scheduled budget (``budget_<resource>``),
            ``channels`` (open channels per group), ``counts`` (the continuous counts),
            ``reopened`` (masked channels that reopened during the epoch) and ``seconds``.
        channels: open channels per group of the returned model.
        train_seconds: wall time of the whole run.
        val_accuracy: validation accuracy of the returned model.
    """

    model: nn.Module
    before: Resources
    after: Resources
    fits: bool
    history: list[dict[str, Any]]
    channels: dict[str, int]
    train_seconds: float
    val_accuracy: float


def _update_salience(gates: ChannelGates, salience: dict[int, torch.Tensor], decay: float, kind: str) -> None:
    """Running average of ``|dCE/dm_c|`` (``kind="taylor"``, the mask gradients the task loss left)
    or of the Fisher salience (``"fisher"``), then clear the mask gradients."""
    fisher = gates.take_fisher() if kind == "fisher" else None
    with torch.no_grad():
        for g in gates.groups:
            theta = gates.theta[g]
            if theta.grad is not None:
                value = fisher[g] if fisher is not None else theta.grad.abs()
                salience[g].mul_(decay).add_((1 - decay) * value)
                theta.grad = None


def _ranking(gates: ChannelGates, salience: dict[int, torch.Tensor], bonus: float) -> dict[int, torch.Tensor]:
    """``salience`` with an open channel's times ``1 + bonus`` (hysteresis)."""
    if bonus == 0:
        return salience
    return {g: v * (1.0 + bonus * (gates.theta[g].detach() > 0).to(v.dtype)) for g, v in salience.items()}


def _order(gates: ChannelGates, salience: dict[int, torch.Tensor], config: ShrinkConfig) -> dict[int, torch.Tensor]:
    """The values the channels of each group are ranked by (``config.rank_by``), with the hysteresis."""
    if config.rank_by == "norm":
        values = {g: channel_norms(gates.model, gates.graph, g) for g in gates.groups}
    else:
        values = salience
    return _ranking(gates, values, config.keep_bonus)


def _relative(ranking: dict[int, torch.Tensor], counts: dict[int, float]) -> dict[int, torch.Tensor]:
    """Each group's saliences over the mean salience of its ``ceil(count)`` top-ranked channels."""
    out = {}
    for g, v in ranking.items():
        top = torch.sort(v, descending=True).values[:max(1, math.ceil(counts[g] - 1e-9))]
        mean = float(top.mean())
        out[g] = v / mean if mean > 0 else torch.ones_like(v)
    return out


def _loss(logits: torch.Tensor, y: torch.Tensor, config: ShrinkConfig) -> torch.Tensor:
    """The training loss: cross-entropy with :attr:`ShrinkConfig.label_smoothing` (a mean over the
    batch's examples, as the Fisher salience assumes)."""
    return nn.functional.cross_entropy(logits, y, label_smoothing=config.label_smoothing)


def _open_counts(counts: dict[int, float]) -> dict[int, int]:
    return {g: max(1, math.ceil(k - 1e-9)) for g, k in counts.items()}


def _remove_beyond_reserve(model, graph, gates, example, optimizer, make_optimizer, salience, ranking, counts,
                           reserve, reserve_fraction):
    """Remove the channels ranked ``reserve`` (at least ``reserve_fraction`` of the open ones) places
    beyond the open ones; returns the new optimizer and the sliced saliences."""
    drop = {}
    for g, open_ in _open_counts(counts).items():
        keep = open_ + max(reserve, math.ceil(reserve_fraction * open_))
        ranks = salience_ranks(ranking[g])
        idx = torch.nonzero(ranks >= keep).flatten().tolist()
        if idx:
            drop[g] = idx
    if not drop:
        return optimizer, salience
    gates.detach()
    sliced, optimizer = remove_channels(model, graph, drop, example, optimizer=optimizer,
                                        make_optimizer=make_optimizer, extra_parameters=gates.theta)
    gates.theta = sliced
    gates.attach()
    salience = {g: (v.index_select(0, kept_indices(v.numel(), drop[g])) if g in drop else v)
                for g, v in salience.items()}
    return optimizer, salience


def _epoch_record(graph: ResourceGraph, budget: MCUBudget, epoch: int, pruning: bool, train_loss: float,
                  val: float, budgets: dict[str, float], open_counts: dict[int, int], counts: dict[int, float],
                  reopened: int, seconds: float) -> dict[str, Any]:
    """One row of :attr:`ShrinkResult.history` (the exact resources are those of the open channels)."""
    now = graph.exact(open_counts, **budget.resource_options())
    return {"epoch": epoch, "phase": "prune" if pruning else "finetune", "train_loss": train_loss,
            "val_accuracy": val, **{k: getattr(now, k) for k in RESOURCE_NAMES},
            **{f"budget_{k}": value for k, value in budgets.items()},
            "channels": {str(g): int(n) for g, n in open_counts.items()},
            "counts": {str(g): round(float(k), 3) for g, k in counts.items()},
            "reopened": reopened, "seconds": seconds}


def _end_pruning(work, graph, gates, example, ranking, values, counts, budget) -> dict[int, int]:
    """Integer counts that meet the budget exactly and keep the most of ``values`` (the saliences
    groups are compared by), their top-``ranking`` channels open, the rest removed, the masks
    folded into the weights. Returns the counts."""
    ints = fit_counts(graph, counts, values, budget)
    drop = {}
    for g, n in ints.items():
        ranks = salience_ranks(ranking[g])
        gates.set(g, (ranks < n).to(torch.float32))
        idx = torch.nonzero(ranks >= n).flatten().tolist()
        if idx:
            drop[g] = idx
    gates.detach()
    if drop:
        sliced, _ = remove_channels(work, graph, drop, example, extra_parameters=gates.theta)
        gates.theta = sliced
    gates.fold()
    return ints


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
    require("torch_pruning", "shrink", "unitprune.shrink")  # channel removal; fail before any training
    config = config or ShrinkConfig()
    t0 = time.perf_counter()
    input_shape = tuple(input_shape or getattr(model, "input_shape", None) or train_data.tensors[0].shape[1:])
    work = copy.deepcopy(model)
    graph = trace_resources(work, input_shape)
    before = graph.exact(**budget.resource_options())
    check_feasible(graph, budget)
    limits = budget.limits()
    example = torch.zeros(1, *input_shape)

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.num_threads)
    generator = torch.Generator().manual_seed(config.seed)
    gates = ChannelGates(work, graph, feedback=config.feedback, per_example=config.salience == "fisher")

    def make_optimizer(params, extra):  # the masks are set by the method, not by the optimizer
        return torch.optim.Adam(params, lr=config.lr)

    optimizer = make_optimizer(list(work.parameters()), [])
    salience = {g: torch.zeros(graph.group_sizes[g]) for g in gates.groups}
    counts = {g: float(graph.group_sizes[g]) for g in gates.groups}
    n_batches = -(-len(train_data) // config.batch_size)
    prune_steps = config.pruning_epochs * n_batches
    tighten_steps = max(1, round(config.tighten_fraction * prune_steps))
    initial = {k: float(getattr(before, k)) for k in limits}
    history: list[dict[str, Any]] = []
    best_state, best_val = None, -1.0
    step = 0
    ft_steps, ft_step = (config.epochs - config.pruning_epochs) * n_batches, 0

    def finetune_lr(t: int) -> float:
        if config.finetune_lr == "constant" or ft_steps <= 0:
            return config.lr
        return 0.5 * config.lr * (1.0 + math.cos(math.pi * t / ft_steps))

    try:
        bar = tqdm(range(1, config.epochs + 1), desc="shrink", disable=not config.progress)
        for epoch in bar:
            epoch_t0 = time.perf_counter()
            pruning = epoch <= config.pruning_epochs
            work.train()
            loss_sum, reopened = 0.0, 0
            for x, y in batches(train_data, config.batch_size, generator):
                if pruning:
                    ranking = _order(gates, salience, config)
                    for g in gates.groups:
                        was_masked = gates.theta[g].detach() <= 0
                        gates.set(g, ranked_mask(counts[g], ranking[g]))
                        reopened += int((was_masked & (gates.theta[g].detach() > 0)).sum())
                else:
                    for param_group in optimizer.param_groups:
                        param_group["lr"] = finetune_lr(ft_step)
                    ft_step += 1
                loss = _loss(work(x), y, config)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += float(loss.detach()) * len(y)
                if pruning:
                    _update_salience(gates, salience, config.salience_decay, config.salience)
                    budgets = {k: cubic_budget(initial[k], limits[k], step, tighten_steps) for k in limits}
                    widths = {g: float(graph.group_sizes[g]) for g in gates.groups}
                    grown = {g: min(widths[g], counts[g] + config.regrow) for g in gates.groups}
                    ranked = _ranking(gates, salience, config.keep_bonus)
                    compared = _relative(ranked, grown) if config.relative_value else ranked
                    values = {g: marginal_value(grown[g], compared[g]) for g in gates.groups}
                    counts = project_counts(graph, grown, values, budgets, budget)
                    step += 1
                    if config.remove_every and step % config.remove_every == 0:
                        optimizer, salience = _remove_beyond_reserve(work, graph, gates, example, optimizer,
                                                                     make_optimizer, salience,
                                                                     _order(gates, salience, config), counts,
                                                                     config.reserve, config.reserve_fraction)
            if pruning and epoch == config.pruning_epochs:
                ranked = _ranking(gates, salience, config.keep_bonus)
                compared = _relative(ranked, counts) if config.relative_value else ranked
                ints = _end_pruning(work, graph, gates, example, _order(gates, salience, config), compared, counts,
                                    budget)
                counts = {g: float(n) for g, n in ints.items()}
                optimizer = torch.optim.Adam(work.parameters(), lr=config.lr)
            if pruning and config.recalibrate_bn:
                recalibrate_batchnorm(work, train_data, config.bn_examples, config.batch_size)
            val = evaluate(work, val_data)
            budgets = {k: cubic_budget(initial[k], limits[k], step, tighten_steps) for k in limits}
            record = _epoch_record(graph, budget, epoch, pruning, loss_sum / len(train_data), val, budgets,
                                   _open_counts(counts), counts, reopened, time.perf_counter() - epoch_t0)
            history.append(record)
            bar.set_postfix(sram=record["sram_bytes"], flash=record["flash_bytes"], macs=record["macs"], val=f"{val:.3f}")
            logger.info("shrink epoch %d (%s): val %.4f, sram %d, flash %d, macs %d, channels %s, reopened %d",
                        epoch, record["phase"], val, record["sram_bytes"], record["flash_bytes"], record["macs"],
                        record["channels"], reopened)
            if not pruning and val > best_val:
                best_val, best_state = val, copy.deepcopy(work.state_dict())
    finally:
        gates.detach()
        torch.set_num_threads(previous_threads)
    if best_state is not None:
        work.load_state_dict(best_state)
    work.eval()
    after = graph.exact(**budget.resource_options())
    excess = over_budget(after.as_dict(), limits)
    if excess:  # fit_counts guarantees this cannot happen; never return an over-budget model
        raise BudgetError(f"shrink ended over budget: {excess}")
    val = evaluate(work, val_data)
    return ShrinkResult(model=work, before=before, after=after, fits=True, history=history,
                        channels={str(g): graph.group_sizes[g] for g in graph.prunable_groups()},
                        train_seconds=time.perf_counter() - t0, val_accuracy=val)

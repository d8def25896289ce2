"""Per-channel masks: where the channel counts of the differentiable method act on the model.

Every prunable channel group (:meth:`ResourceGraph.prunable_groups`) gets one vector ``theta``
(one entry per channel, initialised to 1): the channel's mask value in ``[0, 1]``, which the
method sets from the group's channel count and the channels' salience ranking
(:func:`unitprune.shrink.allocation.ranked_mask`). A forward hook multiplies the group's channels
by it, so the user's modules stay standard ``nn`` layers (``detach()`` removes the hooks;
``fold()`` bakes the mask values into the weights first, into the BatchNorm that follows a
conv/linear when there is one, else into the layer).

Where: at the output of every layer producing the group, after its BatchNorm, and **after the
ReLU** that follows when that ReLU is a module used once (``ReLU(m a) = m ReLU(a)`` for ``m >= 0``:
the same function, but a masked channel's activation reaches the mask's gradient, which a ReLU at
0 would cut), else before the nonlinearity. A layer whose output goes only into a depthwise conv
continuing the group (DS-CNN's conv1 -> dw1) is not masked itself: the depthwise conv's mask
removes the channel, and the first-order gradient of a masked channel then sees the channel's
real activation (masking both would leave only the depthwise bias in it).

* ``theta == 1`` everywhere: the model computes exactly what it computed without masks.
* ``theta == 0`` for a channel: the channel's output is exactly 0 before the nonlinearity
  (ReLU(0) = 0, max-pool of zeros = 0), so removing it (:mod:`.removal`) changes nothing.
* The task loss's gradient ``dL/dtheta_c = sum(a_c * dL/dy_c)`` over the channel's activations
  ``a_c`` (before the mask) is the first-order Taylor estimate of the loss change when channel c
  is removed (an open channel) or added back (a masked one): the channel's salience. It exists
  for masked channels too, which is what lets a masked channel reopen.
* ``feedback=True`` (DPF's feedback, Lin et al. 2020, on channel outputs): the forward pass is the
  masked one, but the gradient reaches the channel's output as if its mask were 1, so a masked
  channel's weights keep learning from the dense gradient and a channel that reopens is not
  stale; the mask's own gradient (the salience) is the same. Unlike DPF's feedback on masked
  weights, the masked channel's gradient also reaches the layers before it (their inputs get
  the gradient of channels that are absent from the forward pass). Off by default.
* ``per_example=True``: every backward pass also records each example's share of the mask
  gradient, ``g_nc = sum over positions of a_c * dL/dy_c`` for example ``n`` (``sum_n g_nc`` is
  ``theta.grad``); :meth:`ChannelGates.take_fisher` turns them into the Fisher salience
  ``0.5 * mean_n (N g_nc)^2`` (Theis et al. 2018: the loss increase of removing channel c to
  second order, with ``N g_nc`` the gradient of example n's own loss when the batch loss is the
  mean over the ``N`` examples and no layer couples the examples).
* Hard count of a group: the channels with ``theta > 0``.
"""

from __future__ import annotations

import torch
from torch import nn

from .resources import ResourceGraph

__all__ = ["ChannelGates", "channel_norms"]

#: modules a channel passes through unchanged in number (followed to find a layer's consumers)
_PASS_THROUGH = (nn.BatchNorm1d, nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.Dropout, nn.Identity)


def channel_norms(model: nn.Module, graph: ResourceGraph, group: int) -> torch.Tensor:
    """L2 norm of every channel's weights over the (non-depthwise) layers producing ``group``
    (DPF's structured importance): ``sqrt(sum_layers sum_j w[c, j]^2)``."""
    modules = dict(model.named_modules())
    total = torch.zeros(graph.group_sizes[graph.find(group)])
    for layer in graph.layers_of(group):
        w = modules[layer.name].weight.detach()
        total += w.reshape(w.shape[0], -1).pow(2).sum(dim=1)
    return total.sqrt()


class ChannelGates:
    """Mask vectors for the prunable channel groups of ``model`` (traced as ``graph``)."""

    def __init__(self, model: nn.Module, graph: ResourceGraph, groups: list[int] | None = None,
                 feedback: bool = False, per_example: bool = False):
        self.model = model
        self.graph = graph
        self.feedback = feedback
        self.per_example = per_example
        self._per_example: dict[int, torch.Tensor] = {}
        self.groups = list(graph.prunable_groups() if groups is None else groups)
        self.theta: dict[int, nn.Parameter] = {
            g: nn.Parameter(torch.ones(graph.group_sizes[g])) for g in self.groups}
        self._handles: list = []
        self.attach()

    # -- hooks --------------------------------------------------------------------------------
    def _placements(self) -> dict[int, list[tuple[str, str]]]:
        """Per group: ``(hooked module, folded module)`` names (module docstring, "Where")."""
        traced = torch.fx.symbolic_trace(self.model)
        modules = dict(self.model.named_modules())
        nodes = {n.target: n for n in traced.graph.nodes if n.op == "call_module"}
        uses = {}
        for n in traced.graph.nodes:
            if n.op == "call_module":
                uses[n.target] = uses.get(n.target, 0) + 1
        depthwise = {l.name: self.graph.find(l.out_group) for l in self.graph.layers
                     if l.depthwise and self.graph.find(l.in_group) == self.graph.find(l.out_group)}

        def terminal_users(node):
            out, todo = [], list(node.users)
            while todo:
                user = todo.pop()
                if user.op == "call_module" and isinstance(modules[user.target], _PASS_THROUGH):
                    todo.extend(user.users)
                else:
                    out.append(user)
            return out

        placements = {}
        for group in self.groups:
            chosen = []
            for layer in [l for l in self.graph.layers if self.graph.find(l.out_group) == group]:
                folded = layer.bn_name or layer.name
                ends = terminal_users(nodes[folded])
                if ends and all(u.op == "call_module" and depthwise.get(u.target) == group for u in ends):
                    continue  # a depthwise conv of the group continues it: its mask covers this layer too
                users = list(nodes[folded].users)
                hooked = folded
                if (len(users) == 1 and users[0].op == "call_module"
                        and isinstance(modules[users[0].target], nn.ReLU) and uses[users[0].target] == 1):
                    hooked = users[0].target  # after the ReLU: ReLU(m a) = m ReLU(a), and masked channels keep a gradient
                chosen.append((hooked, folded))
            placements[group] = chosen
        return placements

    def gated_modules(self, group: int) -> list[nn.Module]:
        """The modules whose output the mask of ``group`` multiplies."""
        modules = dict(self.model.named_modules())
        return [modules[hooked] for hooked, _ in self._placements()[group]]

    def attach(self) -> None:
        if self._handles:
            return
        modules = dict(self.model.named_modules())
        for group, places in self._placements().items():
            for hooked, _ in places:
                self._handles.append(modules[hooked].register_forward_hook(self._hook(group)))

    def detach(self) -> None:
        """Remove the hooks (the masks then have no effect on the model)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _hook(self, group: int):
        def multiply(module, inputs, output):
            mask = self.theta[group].view(1, -1, *([1] * (output.dim() - 2)))
            if not self.feedback:
                out = output * mask
            else:
                # forward: output * mask; backward: the output's gradient passes as if the mask were 1
                # (the masked channel's weights learn from the dense gradient), the mask's is unchanged
                out = output * mask + (output - output.detach()) * (1.0 - mask.detach())
            if self.per_example and out.requires_grad:
                activation = output.detach()

                def record(grad):
                    share = activation * grad
                    share = share.sum(dim=tuple(range(2, share.dim()))) if share.dim() > 2 else share
                    previous = self._per_example.get(group)
                    self._per_example[group] = share if previous is None else previous + share
                out.register_hook(record)
            return out
        return multiply

    def take_fisher(self) -> dict[int, torch.Tensor]:
        """Per group, the Fisher salience ``0.5 * mean_n (N g_nc)^2`` of the backward passes since
        the last call (module docstring; zeros for a group that got no gradient), then forget them."""
        out = {}
        for g in self.groups:
            share = self._per_example.get(g)
            if share is None:
                out[g] = torch.zeros_like(self.theta[g].detach())
            else:
                out[g] = 0.5 * (share * share.shape[0]).pow(2).mean(dim=0)
        self._per_example = {}
        return out

    # -- values -------------------------------------------------------------------------------
    def parameters(self) -> list[nn.Parameter]:
        return [self.theta[g] for g in self.groups]

    @torch.no_grad()
    def set(self, group: int, values: torch.Tensor) -> None:
        """Set the mask values of ``group`` (clamped to [0, 1])."""
        self.theta[group].copy_(values.clamp(0.0, 1.0))

    def hard_counts(self) -> dict[int, int]:
        return {g: int((self.theta[g] > 0).sum()) for g in self.groups}

    def closed(self) -> dict[int, list[int]]:
        """Indices of masked channels (``theta <= 0``) per group, only groups with some masked."""
        out = {}
        for g in self.groups:
            idx = torch.nonzero(self.theta[g].detach() <= 0).flatten().tolist()
            if idx:
                out[g] = idx
        return out

    @torch.no_grad()
    def fold(self) -> None:
        """Multiply the mask values into the gated modules' weights and biases, then detach.

        ``m * (w x + b) = (m w) x + m b``, and for a BatchNorm ``m * (gamma xhat + beta) =
        (m gamma) xhat + m beta``: the model computes the same function without hooks.
        """
        modules = dict(self.model.named_modules())
        self.detach()
        for group, places in self._placements().items():
            mask = self.theta[group].detach()
            for _, folded in places:
                module = modules[folded]
                shape = (-1,) + (1,) * (module.weight.dim() - 1)
                module.weight.mul_(mask.view(shape))
                if module.bias is not None:
                    module.bias.mul_(mask)

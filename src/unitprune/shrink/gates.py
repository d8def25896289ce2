"""Per-channel gates: the relaxed channel counts the differentiable resource model is evaluated on.

Every prunable channel group (:meth:`ResourceGraph.prunable_groups`) gets one parameter vector
``theta`` (one entry per channel, initialised to 1). The gate value is ``g = clamp(theta, 0, 1)``;
it multiplies the group's channels at the output of every layer producing the group (a depthwise
conv continuing the group included, so its bias cannot revive a closed channel): after the
BatchNorm that directly follows a conv/linear when there is one, else on the conv/linear output,
always before the nonlinearity. A forward hook does the multiplication, so the user's modules stay
standard ``nn`` layers (``detach()`` removes the hooks; ``fold()`` bakes the gate values into the
weights first).

* ``g == 1`` everywhere: the model computes exactly what it computed without gates.
* ``g == 0`` for a channel: the channel's output is exactly 0 before the nonlinearity (ReLU(0) = 0,
  max-pool of zeros = 0), so removing it (:mod:`.removal`) changes nothing. Once ``theta <= 0`` the
  clamp passes no gradient: a closed gate stays closed until it is removed.
* Soft channel count of a group: ``sum(g)``; hard count: the number of channels with ``theta > 0``.

Channel salience: the task loss's gradient with respect to a gate, ``dL/dg_c = sum(a_c * dL/da_c)``
over the channel's activations, is the first-order Taylor salience of the channel; the resource
penalty's gradient is the same for every channel of a group. A gate closes where the resource
pressure outweighs its salience, so the least salient channels close first.

Two forwards (``forward=``); by default (``"auto"``) one of them for the whole model:

* ``"soft"``: the hook multiplies by the gate value ``g``, so a channel fades out as its gate
  falls and the weights adapt while it does.
* ``"hard"``: the hook multiplies by the straight-through mask ``m = 1[theta > 0]`` (forward value
  exactly 0 or 1, gradient that of ``g``): the model computes exactly the pruned network at every
  step, and ``dL/dtheta_c = dL/dm_c`` is the first-order Taylor estimate of removing channel c.
* ``"auto"``: ``"hard"`` for every group when some group's every consumer (conv/linear reading the group, a
  depthwise conv continuing it aside) is followed by a BatchNorm, ``"soft"`` otherwise. There a
  gate's scale does not reach the loss: the next BatchNorm normalises it away in training, so
  the task loss cannot resist a soft gate that shrinks all channels of a group together, and the
  eval-mode statistics lag the moving scale (on DS-CNN the soft gates drove the model to chance
  accuracy, docs/shrink.md). The hard forward has neither problem. The choice is one for the
  whole model: with soft gates on the last DS-CNN group and hard ones before it, the fast hard
  groups took all the pressure and one of them fell to a single channel (docs/shrink.md).
"""

from __future__ import annotations

import torch
from torch import nn

from .resources import ResourceGraph

__all__ = ["ChannelGates", "normalized_downstream"]


def normalized_downstream(graph: ResourceGraph, group: int) -> bool:
    """Whether every conv/linear reading ``group`` (a depthwise conv continuing it aside) has a BatchNorm after it."""
    root = graph.find(group)
    consumers = [l for l in graph.layers if graph.find(l.in_group) == root and graph.find(l.out_group) != root]
    return bool(consumers) and all(l.bn_name is not None for l in consumers)


class ChannelGates:
    """Gate parameters for the prunable channel groups of ``model`` (traced as ``graph``)."""

    def __init__(self, model: nn.Module, graph: ResourceGraph, groups: list[int] | None = None,
                 forward: str = "auto"):
        if forward not in ("soft", "hard", "auto"):
            raise ValueError(f"ChannelGates forward must be 'soft', 'hard' or 'auto', got {forward!r}")
        self.model = model
        self.graph = graph
        self.groups = list(graph.prunable_groups() if groups is None else groups)
        if forward == "auto":
            forward = "hard" if any(normalized_downstream(graph, g) for g in self.groups) else "soft"
        #: per group: "soft" or "hard" (module docstring; one mode for the whole model today)
        self.forward = {g: forward for g in self.groups}
        self.theta: dict[int, nn.Parameter] = {
            g: nn.Parameter(torch.ones(graph.group_sizes[g])) for g in self.groups}
        self._handles: list = []
        self.attach()

    # -- hooks --------------------------------------------------------------------------------
    def gated_modules(self, group: int) -> list[nn.Module]:
        """The modules whose output the gate of ``group`` multiplies (BN if it follows, else the layer)."""
        modules = dict(self.model.named_modules())
        layers = [l for l in self.graph.layers if self.graph.find(l.out_group) == group]  # depthwise too
        return [modules[layer.bn_name or layer.name] for layer in layers]

    def attach(self) -> None:
        if self._handles:
            return
        for group in self.groups:
            for module in self.gated_modules(group):
                self._handles.append(module.register_forward_hook(self._hook(group)))

    def detach(self) -> None:
        """Remove the hooks (the gates then have no effect on the model)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _hook(self, group: int):
        def multiply(module, inputs, output):
            gate = self.value(group) if self.forward[group] == "soft" else self.mask(group)
            return output * gate.view(1, -1, *([1] * (output.dim() - 2)))
        return multiply

    # -- values -------------------------------------------------------------------------------
    def parameters(self) -> list[nn.Parameter]:
        return [self.theta[g] for g in self.groups]

    def value(self, group: int) -> torch.Tensor:
        return self.theta[group].clamp(0.0, 1.0)

    def mask(self, group: int) -> torch.Tensor:
        """Straight-through mask: 1 for an open channel, 0 for a closed one; gradient of ``value``."""
        value = self.value(group)
        hard = (self.theta[group] > 0).to(value.dtype)
        return hard + (value - value.detach())  # exactly 0 or 1 in the forward value

    def soft_counts(self) -> dict[int, torch.Tensor]:
        return {g: self.value(g).sum() for g in self.groups}

    def hard_counts(self) -> dict[int, int]:
        return {g: int((self.theta[g] > 0).sum()) for g in self.groups}

    def closed(self) -> dict[int, list[int]]:
        """Indices of closed gates (``theta <= 0``) per group, only groups with some closed."""
        out = {}
        for g in self.groups:
            idx = torch.nonzero(self.theta[g].detach() <= 0).flatten().tolist()
            if idx:
                out[g] = idx
        return out

    @torch.no_grad()
    def fold(self) -> None:
        """Multiply the gate values into the gated modules' weights and biases, then detach.

        ``g * (w x + b) = (g w) x + g b``, and for a BatchNorm ``g * (gamma xhat + beta) =
        (g gamma) xhat + g beta``: the model computes the same function without hooks.
        """
        for group in self.groups:
            gate = (self.value(group) if self.forward[group] == "soft" else self.mask(group)).detach()
            for module in self.gated_modules(group):
                shape = (-1,) + (1,) * (module.weight.dim() - 1)
                module.weight.mul_(gate.view(shape))
                if module.bias is not None:
                    module.bias.mul_(gate)
        self.detach()

"""The reference implementation of UnIT in vectorized PyTorch: the oracle for every backend.

It builds the keep mask of docs/semantics.md explicitly (``|Z| > approx(T, |C|)``), multiplies
only kept connections, and counts every connection by cause. Work is chunked over samples (and
output channels) so that at most ``config.chunk_elements`` mask elements exist at once.

Inputs are validated by the layers (:mod:`unitprune.layers`); these functions assume float32
tensors of consistent shapes and finite thresholds ``>= 0``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .approx import quotient
from .config import UnITConfig
from .counts import MacCounts
from .geometry import ConvGeometry, output_groups, unfold_columns


def linear_reference(x: Tensor, weight: Tensor, bias: Tensor | None, thresholds: Tensor,
                     config: UnITConfig) -> tuple[Tensor, MacCounts]:
    """UnIT linear layer on ``x`` of shape ``(*, in)``; returns ``(y, counts)``, ``y`` of shape ``(*, out)``.

    ``t[i] = approx(T, |x[i]|)`` once per sample, input (and threshold group); connection
    ``W[j, i] * x[i]`` is kept iff ``|W[j, i]| > t[i]``.
    """
    out_features, in_features = weight.shape
    rows = x.reshape(-1, in_features)
    num_rows = rows.shape[0]
    num_groups = thresholds.numel()
    group_of_output = output_groups(out_features, num_groups, config.group_size, weight.device)
    abs_weight = weight.abs()
    nonzero_per_column = (weight != 0).sum(dim=0)  # (in,)

    outputs = []
    executed = zero_activation = nonzero_inputs = 0
    rows_per_chunk = max(1, config.chunk_elements // max(1, out_features * in_features))
    for start in range(0, num_rows, rows_per_chunk):
        chunk = rows[start:start + rows_per_chunk]
        abs_x = chunk.abs()
        if num_groups == 1:
            per_input = quotient(config.approx, thresholds.expand_as(abs_x), abs_x, config.shift_start)
            keep = abs_weight.unsqueeze(0) > per_input.unsqueeze(1)  # (r, out, in)
        else:
            per_group = quotient(config.approx, thresholds.view(1, -1, 1).expand(abs_x.shape[0], -1, -1),
                                 abs_x.unsqueeze(1).expand(-1, num_groups, -1), config.shift_start)  # (r, G, in)
            keep = abs_weight.unsqueeze(0) > per_group[:, group_of_output, :]
        kept_weight = weight.unsqueeze(0) * keep
        outputs.append(torch.bmm(kept_weight, chunk.unsqueeze(2)).squeeze(2))
        executed += int(keep.sum())
        zero_inputs = (chunk == 0).sum(dim=0)  # (in,): how often each input was zero
        zero_activation += int((zero_inputs * nonzero_per_column).sum())
        nonzero_inputs += int((chunk != 0).sum())

    y = torch.cat(outputs) if outputs else rows.new_zeros((0, out_features))
    if bias is not None:
        y = y + bias
    dense = num_rows * out_features * in_features
    zero_weight = num_rows * int((weight == 0).sum())
    counts = MacCounts(
        dense=dense,
        zero_weight=zero_weight,
        zero_activation=zero_activation,
        threshold=dense - zero_weight - zero_activation - executed,
        executed=executed,
        compares=num_rows * in_features + nonzero_inputs * out_features,
        divisions=nonzero_inputs * num_groups,
    )
    return y.reshape(*x.shape[:-1], out_features), counts


# ----------------------------------------------------------------------------------------
# Convolution: control term = weight
# ----------------------------------------------------------------------------------------

def conv_quotients(weight: Tensor, thresholds: Tensor, config: UnITConfig) -> Tensor:
    """``tau[w] = approx(T, |w|)`` for every weight (``+inf`` where ``w == 0``), shape of ``weight``."""
    out_channels = weight.shape[0]
    group_of_output = output_groups(out_channels, thresholds.numel(), config.group_size, weight.device)
    per_output = thresholds[group_of_output].view(-1, *([1] * (weight.dim() - 1)))
    return quotient(config.approx, per_output.expand_as(weight).contiguous(), weight.abs(), config.shift_start)


def conv_reference(x: Tensor, weight: Tensor, bias: Tensor | None, tau: Tensor, geometry: ConvGeometry,
                   config: UnITConfig) -> tuple[Tensor, MacCounts]:
    """UnIT convolution on ``x`` of shape ``(N, C, H, W)`` with 4-D ``weight`` and its quotients ``tau``.

    Connection ``w * x`` is kept iff ``|x| > tau[w]``. Returns ``(y, counts)``, ``y`` of shape
    ``(N, O, H_out, W_out)``.
    """
    batch, channels, height, width = x.shape
    out_channels = weight.shape[0]
    groups = geometry.groups
    group_in = channels // groups
    group_out = out_channels // groups
    out_h, out_w = geometry.output_size(height, width)
    positions = out_h * out_w
    taps = group_in * geometry.kernel_size[0] * geometry.kernel_size[1]  # K: inputs per output
    weight_2d = weight.reshape(out_channels, taps)
    tau_2d = tau.reshape(out_channels, taps)
    nonzero_per_tap = (weight_2d != 0).reshape(groups, group_out, taps).sum(dim=1)  # (groups, K)

    y = x.new_empty((batch, out_channels, positions))
    executed = zero_activation = 0
    per_output_elements = max(1, taps * positions)
    outputs_per_chunk = max(1, min(group_out, config.chunk_elements // per_output_elements))
    samples_per_chunk = max(1, config.chunk_elements // (per_output_elements * outputs_per_chunk))
    for n0 in range(0, batch, samples_per_chunk):
        samples = slice(n0, n0 + samples_per_chunk)
        columns = unfold_columns(x[samples], geometry)  # (n, C*K, L), padding included as zeros
        for g in range(groups):
            group_columns = columns[:, g * taps:(g + 1) * taps, :]  # (n, K, L)
            zero_taps = (group_columns == 0).sum(dim=(0, 2))  # zero activations (incl. padding) per tap
            zero_activation += int((zero_taps * nonzero_per_tap[g]).sum())
            abs_columns = group_columns.abs().unsqueeze(1)  # (n, 1, K, L)
            for o0 in range(0, group_out, outputs_per_chunk):
                outputs = slice(g * group_out + o0, g * group_out + min(group_out, o0 + outputs_per_chunk))
                keep = abs_columns > tau_2d[outputs].unsqueeze(0).unsqueeze(-1)  # (n, o, K, L)
                kept_inputs = group_columns.unsqueeze(1) * keep
                y[samples, outputs] = torch.einsum("ok,nokl->nol", weight_2d[outputs], kept_inputs)
                executed += int(keep.sum())

    if bias is not None:
        y = y + bias.view(1, -1, 1)
    dense = batch * out_channels * positions * taps
    nonzero_weights = int((weight != 0).sum())
    zero_weight = batch * positions * (weight.numel() - nonzero_weights)
    counts = MacCounts(
        dense=dense,
        zero_weight=zero_weight,
        zero_activation=zero_activation,
        threshold=dense - zero_weight - zero_activation - executed,
        executed=executed,
        compares=batch * positions * nonzero_weights,
        divisions=0,
    )
    return y.view(batch, out_channels, out_h, out_w), counts

"""Which KWS input fits which chip: DS-CNN's SRAM at each log-mel size, from the resource model.

    PYTHONPATH=src python benchmarks/dscnn_budgets.py

For the full 80x124 log-mel map and the 2x2 / 4x2 pooled maps (``feature_pool``), on the SAMD21
(32 KB) and ATmega2560 (8 KB) presets: the base model's SRAM, the part no channel count changes
(input + int32 scratch + descriptors + output), the input buffer's share of the budget and the
widest *uniform* DS-CNN (the same channel count in every layer) that fits, layer by layer
(``execution="layers"``, what ``unitprune shrink`` budgets) and with the fused, row-streamed plan
(``execution="fused"``: the input is read row by row and only windows of rows are kept). Exact
integers from ``unitprune.shrink.trace_resources`` / ``unitprune.resources``; no training.
"""
import torch

from unitprune import resources
from unitprune.models import build_model
from unitprune.shrink import PRESETS, trace_resources
from unitprune.shrink.removal import remove_channels

CASES = [("samd21", (1, 80, 124)), ("samd21", (1, 40, 62)), ("atmega2560", (1, 40, 62)), ("atmega2560", (1, 20, 62))]


def fused_sram(shape, channels: int, target: str) -> int:
    """Fused-plan SRAM of DS-CNN at ``channels`` in every layer (the model physically narrowed)."""
    model = build_model("ds-cnn", input_shape=shape)
    graph = trace_resources(model, shape)
    if channels < 64:
        remove_channels(model, graph, {g: list(range(channels, 64)) for g in graph.prunable_groups()},
                        torch.zeros(1, *shape))
    return resources(model, shape, target=target, execution="fused").sram_bytes


print(f"{'preset':<11}{'input':>12}{'budget B':>10}{'base SRAM B':>13}{'fixed B':>9}{'input share':>13}"
      f"{'uniform ch':>12}{'its SRAM B':>12}{'its MACs':>11}{'base fused B':>14}{'uniform ch fused':>18}")
for preset, shape in CASES:
    budget = PRESETS[preset]
    graph = trace_resources(build_model("ds-cnn", input_shape=shape), shape)
    base = graph.exact(target=budget.target)
    fixed = base.input_bytes + base.scratch_bytes + base.descriptor_bytes + base.output_bytes
    fitting = [c for c in range(1, 65) if graph.exact({g: c for g in graph.prunable_groups()},
                                                      target=budget.target).sram_bytes <= budget.sram_bytes]
    widest = max(fitting) if fitting else 0
    r = graph.exact({g: widest for g in graph.prunable_groups()}, target=budget.target) if widest else None
    low, high = 0, 64  # the fused SRAM grows with the channels: bisection
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if fused_sram(shape, mid, budget.target) <= budget.sram_bytes else (low, mid - 1)
    print(f"{preset:<11}{'x'.join(map(str, shape[1:])):>12}{budget.sram_bytes:>10,}{base.sram_bytes:>13,}{fixed:>9,}"
          f"{100 * base.input_bytes / budget.sram_bytes:>12.1f}%{widest:>12}"
          f"{(r.sram_bytes if r else 0):>12,}{(r.macs if r else 0):>11,}"
          f"{fused_sram(shape, 64, budget.target):>14,}{low:>18}")

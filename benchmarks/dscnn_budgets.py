"""Which KWS input fits which chip: DS-CNN's SRAM at each log-mel size, from the resource model.

    PYTHONPATH=src python benchmarks/dscnn_budgets.py

For the full 80x124 log-mel map and the 2x2 / 4x2 pooled maps (``feature_pool``), on the SAMD21
(32 KB) and ATmega2560 (8 KB) presets: the base model's SRAM, the part no channel count changes
(input + int32 scratch + descriptors + output), the input buffer's share of the budget and the
widest *uniform* DS-CNN (the same channel count in every layer) that fits. Exact integers from
``unitprune.shrink.trace_resources``; no training.
"""
from unitprune.models import build_model
from unitprune.shrink import PRESETS, trace_resources

CASES = [("samd21", (1, 80, 124)), ("samd21", (1, 40, 62)), ("atmega2560", (1, 40, 62)), ("atmega2560", (1, 20, 62))]

print(f"{'preset':<11}{'input':>12}{'budget B':>10}{'base SRAM B':>13}{'fixed B':>9}{'input share':>13}"
      f"{'uniform ch':>12}{'its SRAM B':>12}{'its MACs':>11}")
for preset, shape in CASES:
    budget = PRESETS[preset]
    graph = trace_resources(build_model("ds-cnn", input_shape=shape), shape)
    base = graph.exact(target=budget.target)
    fixed = base.input_bytes + base.scratch_bytes + base.descriptor_bytes + base.output_bytes
    fitting = [c for c in range(1, 65) if graph.exact({g: c for g in graph.prunable_groups()},
                                                      target=budget.target).sram_bytes <= budget.sram_bytes]
    widest = max(fitting) if fitting else 0
    r = graph.exact({g: widest for g in graph.prunable_groups()}, target=budget.target) if widest else None
    print(f"{preset:<11}{'x'.join(map(str, shape[1:])):>12}{budget.sram_bytes:>10,}{base.sram_bytes:>13,}{fixed:>9,}"
          f"{100 * base.input_bytes / budget.sram_bytes:>12.1f}%{widest:>12}"
          f"{(r.sram_bytes if r else 0):>12,}{(r.macs if r else 0):>11,}")

"""Where Torch-Pruning's channel ranking takes DS-CNN's channels at the SAMD21 budget (no training).

From a trained DS-CNN base (``benchmarks/shrink_method.py``'s ``BASE_ROOT/seed-N/base.pt``), the
pruner steps alone, until the resource model says the model fits: the global ranking the
project's Torch-Pruning baseline used (``global_pruning=True``, 1% of the channels per step) and
the per-layer (local) ratios it uses now (20 steps up to the budget's uniform keep ratio). Prints
the channels per group (conv1+dw1, pw1+dw2, pw2+dw3, pw3+dw4, pw4) and the SRAM.

    python benchmarks/shrink_tp_allocation.py --base-root runs/dscnn-bases --seed 0
"""
import argparse
import copy

import torch
import torch_pruning as tp
from torch import nn

from unitprune.experiments.shrink_study.structured_baselines import uniform_keep_ratio
from unitprune.models import build_model
from unitprune.shrink import PRESETS
from unitprune.shrink.resources import trace_resources

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--base-root", required=True)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
shape, budget = (1, 40, 62), PRESETS["samd21"]
base = build_model("ds-cnn", seed=args.seed)
base.load_state_dict(torch.load(f"{args.base_root}/seed-{args.seed}/base.pt", weights_only=True))


def sram(model) -> int:
    return trace_resources(model, shape).exact(target=budget.target).sram_bytes


for label, global_pruning, steps in (("global, 1% per step", True, 100), ("local, 20 steps to the uniform ratio", False, 20)):
    model = copy.deepcopy(base)
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    ratio = 0.99 if global_pruning else 1.0 - uniform_keep_ratio(trace_resources(model, shape), budget)
    pruner = tp.pruner.MetaPruner(model, torch.zeros(1, *shape), importance=tp.importance.GroupMagnitudeImportance(p=2),
                                  global_pruning=global_pruning, pruning_ratio=ratio, iterative_steps=steps,
                                  ignored_layers=[last])
    done = 0
    while sram(model) > budget.sram_bytes and done < steps:
        pruner.step()
        done += 1
    graph = trace_resources(model, shape)
    print(f"{label}: {done} steps, channels {[graph.group_sizes[g] for g in graph.prunable_groups()]}, "
          f"SRAM {sram(model):,} B (budget {budget.sram_bytes:,})")

"""Accuracy of forced channel counts at a budget: the trained base pruned one-shot, then fine-tuned.

The diagnosis of ``unitprune shrink``'s allocation (docs/results/shrink.md): for each seed and each
count vector (``--counts 4/2/128 3/3/128``, one number per prunable group in the order of
:meth:`ResourceGraph.prunable_groups`), the trained base of ``BASE_ROOT/seed-N/base.pt`` (and the
splits of ``splits.pt``, as ``benchmarks/shrink_method.py`` stores them) keeps the channels of the
largest weight L2 norm per group (:func:`unitprune.shrink.gates.channel_norms`), the rest are
removed (:func:`unitprune.shrink.removal.remove_channels`), and the model is trained with Adam for
``--epochs`` epochs at ``--lr`` (``--schedule constant`` or ``cosine`` per step down to 0). Each run
appends one JSON line to ``--out``: the exact resources of the counts (the preset's layout), the
validation and test accuracy after every epoch, and the test accuracy of the best validation epoch.

    python benchmarks/shrink_forced_counts.py --base-root runs/bases --seeds 0 1 2 \\
        --counts 4/2/128 3/3/128 2/4/128 1/5/128 --epochs 8 --schedule constant cosine
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
from torch import nn

from unitprune.models import build_model
from unitprune.shrink import PRESETS
from unitprune.shrink.gates import channel_norms
from unitprune.shrink.removal import remove_channels
from unitprune.shrink.resources import trace_resources
from unitprune.training import batches, evaluate


def run(model: nn.Module, splits, counts: list[int], preset: str, epochs: int, lr: float, schedule: str,
        seed: int) -> dict:
    shape = tuple(splits.input_shape)
    graph = trace_resources(model, shape)
    groups = graph.prunable_groups()
    if len(counts) != len(groups):
        raise SystemExit(f"--counts needs {len(groups)} numbers (groups {groups}), got {counts}")
    drop = {}
    for g, n in zip(groups, counts):
        keep = set(torch.topk(channel_norms(model, graph, g), n).indices.tolist())
        drop[g] = [c for c in range(graph.group_sizes[g]) if c not in keep]
    remove_channels(model, graph, drop, torch.zeros(1, *shape))
    exact = graph.exact(**PRESETS[preset].resource_options())
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss()
    total = epochs * -(-len(splits.train) // 64)
    step, val, test, started = 0, [], [], time.perf_counter()
    for _ in range(epochs):
        model.train()
        for x, y in batches(splits.train, 64, generator):
            if schedule == "cosine":
                for group in optimizer.param_groups:
                    group["lr"] = 0.5 * lr * (1 + math.cos(math.pi * step / total))
            loss = loss_fn(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
        model.eval()
        val.append(evaluate(model, splits.val))
        test.append(evaluate(model, splits.test))
    best = max(range(epochs), key=lambda i: val[i])
    return {"counts": counts, "sram_bytes": exact.sram_bytes, "flash_bytes": exact.flash_bytes,
            "budget_sram_bytes": PRESETS[preset].sram_bytes, "epochs": epochs, "lr": lr, "schedule": schedule,
            "val": val, "test": test, "best_val_test": test[best], "seconds": round(time.perf_counter() - started, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mnist-wide")
    parser.add_argument("--preset", default="atmega2560", choices=sorted(PRESETS))
    parser.add_argument("--base-root", required=True, metavar="DIR", help="DIR/seed-N/base.pt and splits.pt")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--counts", nargs="+", required=True, metavar="A/B/C")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--schedule", nargs="+", choices=("constant", "cosine"), default=["constant"])
    parser.add_argument("--out", default="benchmarks/results/shrink_forced_counts.jsonl")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        base_dir = Path(args.base_root) / f"seed-{seed}"
        splits = torch.load(base_dir / "splits.pt", weights_only=False)
        state = torch.load(base_dir / "base.pt", weights_only=True)
        base = build_model(args.model, seed=seed, num_classes=splits.num_classes)
        base.load_state_dict(state)
        base_test = evaluate(base, splits.test)
        for text in args.counts:
            for schedule in args.schedule:
                model = build_model(args.model, seed=seed, num_classes=splits.num_classes)
                model.load_state_dict(state)
                row = {"model": args.model, "preset": args.preset, "seed": seed, "base_accuracy": base_test,
                       **run(model, splits, [int(v) for v in text.split("/")], args.preset, args.epochs, args.lr,
                             schedule, seed)}
                with out.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(f"seed {seed} counts {text} sram {row['sram_bytes']} {schedule}: test after each epoch "
                      f"{[round(100 * t, 1) for t in row['test']]}, best-val epoch {100 * row['best_val_test']:.1f}% "
                      f"(base {100 * base_test:.1f}%)")


if __name__ == "__main__":
    main()

"""One structured-pruning method on one seed from a trained base: test accuracy, SRAM, channels, wall time.

The same calls as ``unitprune shrink`` / ``benchmarks/shrink.py`` make for one method
(:func:`unitprune.experiments.shrink_study.shrink_experiment._run_method`'s arguments: the base
trained by ``unitprune.training.train`` for ``--epochs`` epochs without early stopping, then the
method for ``--epochs`` epochs), one method per process so that a shared machine can run methods
and seeds side by side. The base is trained once per ``--base-root``/seed-N and reused
(``base.pt``, its training time in ``base.json``, the loaded data splits in ``splits.pt``). Appends one JSON line per run to ``--out``.
``--shrink-config '{"reserve_fraction": 0.5}'`` runs the differentiable method with those
:class:`unitprune.shrink.ShrinkConfig` fields changed (the line's ``method`` is ``--label``).

    python benchmarks/shrink_method.py --model ds-cnn --data synth_speech --data-root runs/speech-{seed} \\
        --feature-pool 2x2 --preset samd21 --seed 0 --method differentiable --base-root runs/dscnn-bases
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import time
from pathlib import Path

import torch

from unitprune.data import load_dataset
from unitprune.experiments.shrink_study.shrink_experiment import (METHODS, ExperimentConfig, _fields, _machine,
                                                                  _run_method)
from unitprune.models import build_model
from unitprune.shrink import PRESETS, ShrinkConfig, parse_size, resources, shrink
from unitprune.training import TrainConfig, evaluate, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mnist-wide")
    parser.add_argument("--data", default="mnist")
    parser.add_argument("--data-root", metavar="PATTERN", help="{seed} is replaced by the seed")
    parser.add_argument("--feature-pool", metavar="BxF")
    parser.add_argument("--preset", default="atmega2560", choices=sorted(PRESETS))
    parser.add_argument("--sram", metavar="SIZE", help="peak SRAM budget instead of the preset's (e.g. 3234)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--method", required=True, choices=METHODS)
    parser.add_argument("--base-root", required=True, metavar="DIR", help="DIR/seed-N/base.pt (trained here if absent)")
    parser.add_argument("--out", default="benchmarks/results/shrink_method.jsonl")
    parser.add_argument("--shrink-config", metavar="JSON", help="ShrinkConfig fields of the differentiable method")
    parser.add_argument("--label", help="the line's method name (default: --method)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    pool = tuple(int(v) for v in args.feature_pool.lower().split("x")) if args.feature_pool else None
    root = args.data_root.format(seed=args.seed) if args.data_root else None
    base_dir = Path(args.base_root) / f"seed-{args.seed}"
    cached = base_dir / "splits.pt"  # the loaded splits (log-mel features of the speech set take minutes)
    if cached.exists():
        splits = torch.load(cached, weights_only=False)
    else:
        splits = load_dataset(args.data, root, seed=args.seed, **({"feature_pool": pool} if pool else {}))
        base_dir.mkdir(parents=True, exist_ok=True)
        torch.save(splits, cached)
    init = build_model(args.model, seed=args.seed, num_classes=splits.num_classes)
    base = copy.deepcopy(init)
    if (base_dir / "base.pt").exists():
        base.load_state_dict(torch.load(base_dir / "base.pt", weights_only=True))
    else:
        base_dir.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        train(base, splits, TrainConfig(epochs=args.epochs, patience=None, seed=args.seed, num_threads=1,
                                        progress=False))
        torch.save(base.state_dict(), base_dir / "base.pt")
        (base_dir / "base.json").write_text(json.dumps({"train_seconds": time.perf_counter() - started}))
    budget = PRESETS[args.preset]
    if args.sram:
        budget = budget.with_(sram_bytes=parse_size(args.sram))
    config = ExperimentConfig(model=args.model, data=args.data, budget=budget, epochs=args.epochs, seed=args.seed,
                              progress=False)
    if args.shrink_config:
        if args.method != "differentiable":
            parser.error("--shrink-config applies to --method differentiable only")
        overrides = json.loads(args.shrink_config)
        result = shrink(base, splits.train, splits.val, budget,
                        ShrinkConfig(**{"epochs": config.epochs, "prune_epochs": config.prune_epochs,
                                        "regrow": config.regrow, "seed": config.seed, "num_threads": 1,
                                        **overrides}))  # _run_method's call; overrides may set any field
        model, info = result.model, {"history": result.history, "channels": result.channels}
        fields = {**_fields(model, splits, result.after, result.train_seconds), "fits_budget": result.fits,
                  "shrink_config": overrides}
    else:
        model, fields, info = _run_method(args.method, config, budget, init, base, splits)
    shape = tuple(splits.input_shape)
    row = {"model": args.model, "preset": args.preset, "budget_sram_bytes": budget.sram_bytes, "seed": args.seed,
           "method": args.label or args.method, "base_accuracy": evaluate(base, splits.test),
           "base_sram_bytes": resources(base, shape, target=budget.target).sram_bytes, **fields,
           "channels": info.get("channels"), "machine": _machine(),
           "history": [{k: h[k] for k in ("epoch", "val_accuracy", "channels", "reopened")}
                       for h in info.get("history", [])]}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps({k: v for k, v in row.items() if k not in ("history", "machine")}))


if __name__ == "__main__":
    main()

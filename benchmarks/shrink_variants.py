"""Variants of the differentiable method on one trained base: gate forward, pressure, gate speed, start.

The ablation behind the defaults of :class:`unitprune.shrink.ShrinkConfig` (docs/shrink.md,
"KWS base"): each variant is one ``unitprune.shrink`` run with the same data split, the same base
and the same budget; the script writes, per variant, test and validation accuracy, the resources
of the result, the channels per group, the channels the end-of-pruning projection had to remove,
the wall time, and the per-epoch validation accuracy, SRAM and channels.

    # DS-CNN at the SAMD21 budget, from a trained base (unitprune shrink ... writes base.pt)
    PYTHONPATH=src python benchmarks/shrink_variants.py --model ds-cnn --data synth_speech \\
        --data-root DATA --feature-pool 2x2 --preset samd21 --weights runs/samd21-s0/base.pt \\
        --variants hard/rank/1.0 hard/rank/0.3 hard/least/1.0 hard/least/0.3 soft/rank/0.1 soft/least/0.1 \\
        --out-dir benchmarks/results --stem shrink_variants_dscnn

A variant is ``GATES/PRESSURE/LR``: ``GATES`` is ``soft``, ``hard`` or ``auto``
(``ShrinkConfig.gate_forward``), ``PRESSURE`` ``rank`` or ``least``, ``LR`` the gate learning rate
(``mask_lr`` for hard gates, ``gate_lr`` for soft ones; ``auto`` gets both). ``--start init``
prunes the untrained initialisation of the same seed instead of ``--weights``.
"""

from __future__ import annotations

import argparse
import logging
import time

import torch

from results_io import cpu_model, write_results
from unitprune.data import load_dataset
from unitprune.models import build_model
from unitprune.shrink import PRESETS, ShrinkConfig, shrink
from unitprune.training import evaluate


def parse_variant(text: str) -> dict:
    """``GATES/PRESSURE/LR`` -> ShrinkConfig keyword arguments."""
    try:
        gates, pressure, lr = text.split("/")
        rate = float(lr)
    except ValueError:
        raise argparse.ArgumentTypeError(f"variant {text!r}: expected GATES/PRESSURE/LR, e.g. hard/rank/1.0") from None
    if gates not in ("soft", "hard", "auto") or pressure not in ("rank", "least"):
        raise argparse.ArgumentTypeError(f"variant {text!r}: GATES is soft, hard or auto; PRESSURE rank or least")
    rates = {"gate_lr": rate} if gates == "soft" else {"mask_lr": rate} if gates == "hard" else \
        {"gate_lr": rate, "mask_lr": rate}
    return {"gate_forward": gates, "pressure": pressure, **rates}


def markdown(document: dict) -> str:
    lines = [f"# shrink variants: {document['model']} at {document['preset']}, start {document['start']}, "
             f"seed {document['seed']}, close only under pressure: {document['close_only_under_pressure']}", "",
             f"Base test accuracy: {100 * document['base_test_accuracy']:.2f}%" if document["base_test_accuracy"]
             is not None else "Start: the untrained initialisation", "",
             "| variant | test accuracy | val accuracy | SRAM (B) | flash (B) | MACs | channels | projected | s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in document["variants"].items():
        channels = "/".join(str(c) for c in r["channels"].values())
        lines.append(f"| {name} | {100 * r['test_accuracy']:.2f}% | {100 * r['val_accuracy']:.2f}% | "
                     f"{r['sram_bytes']:,} | {r['flash_bytes']:,} | {r['macs']:,} | {channels} | "
                     f"{r['projected_channels']} | {r['seconds']:.0f} |")
    lines += ["", f"Machine: {document['machine']}, torch {document['torch']}, 1 thread.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="ds-cnn")
    parser.add_argument("--data", default="synth_speech")
    parser.add_argument("--data-root")
    parser.add_argument("--feature-pool", default="2x2", help="BxF log-mel block average (speech sets), or none")
    parser.add_argument("--preset", default="samd21", choices=sorted(PRESETS))
    parser.add_argument("--weights", help="trained state_dict of --model (needed unless --start init)")
    parser.add_argument("--start", choices=("base", "init"), default="base")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--variants", nargs="+", type=parse_variant, metavar="GATES/PRESSURE/LR",
                        default=[parse_variant("auto/rank/1.0")])
    parser.add_argument("--close-only-under-pressure", action="store_true",
                        help="ShrinkConfig.close_only_under_pressure for every variant")
    parser.add_argument("--out-dir", default="benchmarks/results")
    parser.add_argument("--stem", default="shrink_variants")
    args = parser.parse_args()
    if args.start == "base" and not args.weights:
        parser.error("--start base needs --weights (a trained state_dict of --model)")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)

    options = {}
    if args.feature_pool and args.feature_pool != "none":
        options["feature_pool"] = tuple(int(v) for v in args.feature_pool.lower().split("x"))
    splits = load_dataset(args.data, args.data_root, seed=args.seed, **options)
    start = build_model(args.model, seed=args.seed, num_classes=splits.num_classes)
    base_accuracy = None
    if args.start == "base":
        start.load_state_dict(torch.load(args.weights, weights_only=True))
        base_accuracy = evaluate(start, splits.test)
    document = {"model": args.model, "data": args.data, "preset": args.preset, "start": args.start,
                "close_only_under_pressure": args.close_only_under_pressure,
                "seed": args.seed, "epochs": args.epochs, "base_test_accuracy": base_accuracy,
                "machine": cpu_model(), "torch": torch.__version__, "variants": {}}
    for variant in args.variants:
        name = "/".join(str(variant[k]) for k in ("gate_forward", "pressure"))
        name += "/" + "/".join(f"{k}={variant[k]:g}" for k in ("gate_lr", "mask_lr") if k in variant)
        t0 = time.perf_counter()
        result = shrink(start, splits.train, splits.val, PRESETS[args.preset],
                        ShrinkConfig(epochs=args.epochs, seed=args.seed,
                                     close_only_under_pressure=args.close_only_under_pressure, **variant))
        document["variants"][name] = {
            "test_accuracy": evaluate(result.model, splits.test), "val_accuracy": result.val_accuracy,
            **{k: getattr(result.after, k) for k in ("sram_bytes", "flash_bytes", "macs")},
            "channels": result.history[-1]["channels"], "projected_channels": result.projected_channels,
            "seconds": time.perf_counter() - t0,
            "history": [{k: h[k] for k in ("epoch", "phase", "val_accuracy", "sram_bytes", "channels")}
                        for h in result.history]}
        for path in write_results(args.out_dir, args.stem, document, markdown(document)):  # after each variant
            logging.info("wrote %s", path)


if __name__ == "__main__":
    main()

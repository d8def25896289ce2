"""``unitprune demo --task kws``: the keyword-spotting experiment on synthesized speech."""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

__all__ = ["cmd_kws_demo"]


def cmd_kws_demo(args: argparse.Namespace, sweep, executor, print_results) -> int:
    """Run :func:`unitprune.experiments.kws.run_kws_demo` with the demo options (``sweep``: the
    sweep options over :data:`unitprune.experiments.kws.KWS_SWEEP`; ``executor``: where its tasks run)."""
    from ..experiments.kws import KWSDemoConfig, run_kws_demo, with_synth_seed
    from .data_commands import synth_config_from_args

    t0 = time.perf_counter()
    run_dir = args.run_dir or "runs/kws"
    config = KWSDemoConfig(run_dir=run_dir, data_root=args.data_root, retrain=args.retrain, sweep=sweep,
                           workers=executor.workers, executor=executor, synth=synth_config_from_args(args))
    if args.epochs:
        config = replace(config, epochs=args.epochs)
    config = with_synth_seed(config, args.seed)
    results = run_kws_demo(config)
    print_results(results, Path(run_dir))
    training = results.get("training", {})
    trained = "cached checkpoint" if training.get("cached") else f"{training.get('train_seconds', 0):.0f} s"
    timing = results["timing_s"]
    print(f"wall time: {time.perf_counter() - t0:.0f} s (data: {timing['data_generation_or_check']:.0f} s, "
          f"features: {timing['features']:.0f} s, training: {trained}, sweep: {timing['total']:.0f} s)")
    return 0

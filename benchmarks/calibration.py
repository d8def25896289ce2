"""Exact calibration of the KWS model: the streaming selection against the sorted-multiset one.

For every UnIT layer of the Table-1 KWS model (``unitprune.models.kws_net``) the layer's inputs on
``--samples`` calibration clips are captured once; then the threshold at each ``--percentiles``
is computed by

* ``streaming``: :func:`unitprune.calibrate.product_percentile` over
  :func:`unitprune.calibrate.layer_products` (forms every product, two passes; the previous
  implementation of ``calibrate``), and
* ``sorted``: :func:`unitprune.selection.layer_percentile` (what ``calibrate`` uses now),

checks that both give the same float32 thresholds bit for bit, and writes wall times to
``benchmarks/results/calibration.json``. Inputs: the synthesized speech set in ``--data-root``
when given (else standard-normal log-mel-shaped inputs); weights: ``--weights`` (a KWS state_dict)
or a seeded random initialisation. One torch thread.

Usage: ``python benchmarks/calibration.py [--samples 256] [--data-root DIR] [--weights FILE]``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import unitprune
from unitprune import UnITConfig, convert
from unitprune.calibrate import layer_products, product_percentile
from unitprune.convert import unit_layers
from unitprune.models import build_model
from unitprune.selection import layer_percentile

from results_io import cpu_model

RESULTS = Path(__file__).resolve().parent / "results"




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--percentiles", type=float, nargs="+", default=[50.0, 80.0])
    parser.add_argument("--data-root", help="synthesized speech cache (unitprune data synth-speech)")
    parser.add_argument("--weights", help="KWS state_dict (default: seeded random initialisation)")
    parser.add_argument("--skip-streaming", action="store_true", help="time only the sorted selection")
    parser.add_argument("--output", default=str(RESULTS / "calibration.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)

    model = build_model("kws", seed=0)
    if args.weights:
        model.load_state_dict(torch.load(args.weights, weights_only=True))
    if args.data_root:
        from unitprune.data import load_dataset
        x = load_dataset("synth_speech", args.data_root).val.tensors[0][:args.samples]
        source = f"synth_speech validation clips from {args.data_root}"
    else:
        x = torch.randn(args.samples, 1, 80, 124, generator=torch.Generator().manual_seed(0))
        source = "standard-normal inputs (1, 80, 124)"
    unit_model = convert(model.eval(), UnITConfig())
    captured = {}
    hooks = [layer.register_forward_pre_hook(lambda module, a, name=name: captured.setdefault(name, [a[0].detach()])
                                             and None) for name, layer in unit_layers(unit_model)]
    with torch.no_grad():
        unit_model(x)
    for hook in hooks:
        hook.remove()

    rows = []
    for name, layer in unit_layers(unit_model):
        inputs = captured[name]
        for p in args.percentiles:
            t0 = time.perf_counter()
            fast = layer_percentile(layer, inputs, p)
            sorted_s = time.perf_counter() - t0
            row = {"layer": name, "percentile": p, "sorted_s": round(sorted_s, 3), "threshold": float(fast[0])}
            if not args.skip_streaming:
                t0 = time.perf_counter()
                slow = product_percentile(lambda: layer_products(layer, inputs), layer.num_threshold_groups, p)
                row["streaming_s"] = round(time.perf_counter() - t0, 3)
                row["identical"] = bool(torch.equal(slow, fast))
                if not row["identical"]:
                    raise SystemExit(f"{name} p={p}: streaming {slow.tolist()} != sorted {fast.tolist()}")
            rows.append(row)
            print(json.dumps(row))
    total = {"sorted_s": round(sum(r["sorted_s"] for r in rows), 3)}
    if not args.skip_streaming:
        total["streaming_s"] = round(sum(r["streaming_s"] for r in rows), 3)
        total["speedup"] = round(total["streaming_s"] / total["sorted_s"], 1)
    document = {"benchmark": "exact calibration of the KWS model", "samples": args.samples, "inputs": source,
                "weights": args.weights or "seeded random init (build_model('kws', seed=0))", "rows": rows,
                "total": total, "torch_threads": 1, "cpu": cpu_model(), "torch": torch.__version__,
                "unitprune": unitprune.__version__, "command": "python benchmarks/calibration.py " +
                " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
                         if v not in (None, False) and k != "output")}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(document, indent=2) + "\n")
    print(json.dumps(total))


if __name__ == "__main__":
    main()

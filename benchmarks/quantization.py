"""Accuracy of the int8 model against the float model on MNIST, dense and UnIT, and decision agreement.

For every seed: train the MNIST Table-1 model as ``unitprune demo`` does (same settings; input
normalisation folded into conv1, so black pixels are zeros), then measure on the test split:

* float dense vs quantized dense accuracy (``variant="dense"``);
* for each percentile: float UnIT (``unitprune.calibrate`` on the validation split, as the sweep
  does) vs quantized UnIT accuracy, the MACs each skips (``unitprune.mac_report``), and the
  per-layer agreement of the integer and float skip decisions (``decision_agreement``).

Quantization ranges come from the training split (``--quant-calibration train``, the default) or
the validation split. Everything runs on one thread (``nice`` it on a shared machine).

Writes ``benchmarks/results/quantization.json`` and ``benchmarks/results/quantization.md``.

``--configs`` lists ``approx:unit_decisions`` pairs: the float approximation and how the integer
UnIT tables are made (``integer``: docs/fixed_point.md's ``approx_int(T_q, .)``; ``float``:
tables reproducing the float decisions, ``QuantConfig(unit_decisions="float")``).

Usage: ``python benchmarks/quantization.py [--seeds 0 1 2] [--percentiles 20 50 80]
[--configs bitshift:integer bitshift:float exact:integer]``
"""

from __future__ import annotations

import argparse
import logging
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

import unitprune
from unitprune import UnITConfig
from unitprune.data import load_dataset
from unitprune.experiments.folding import fold_input_normalization
from unitprune.mcu import QuantConfig, decision_agreement, quantize
from unitprune.models import build_model
from unitprune.training import TrainConfig, train

from results_io import cpu_model, write_results

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
logger = logging.getLogger("benchmarks.quantization")




def accuracy(predict, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((predict(x).argmax(1) == y).float().mean())


def trained_model(seed: int, epochs: int):
    """The demo's model and data (DemoConfig defaults), input normalisation folded."""
    splits = load_dataset("mnist", seed=seed)
    model = build_model("mnist", seed=seed, num_classes=splits.num_classes)
    result = train(model, splits, TrainConfig(epochs=epochs, lr=2e-3, batch_size=64, patience=4, seed=seed,
                                              num_threads=1, progress=False))
    model.eval()
    model, splits = fold_input_normalization(model, splits)
    return model.eval(), splits, result


def run_seed(seed: int, args) -> dict:
    t0 = time.perf_counter()
    model, splits, result = trained_model(seed, args.epochs)
    train_seconds = time.perf_counter() - t0
    x_test, y_test = splits.test.tensors
    x_val = splits.val.tensors[0]
    x_quant = splits.train.tensors[0] if args.quant_calibration == "train" else x_val
    dense_q = quantize(model, x_quant, variant="dense")
    row = {"seed": seed, "train_seconds": round(train_seconds, 1), "epochs_run": result.epochs_run,
           "float_dense_accuracy": accuracy(model, x_test, y_test),
           "quantized_dense_accuracy": accuracy(dense_q, x_test, y_test), "unit": []}
    row["dense_delta_points"] = 100 * (row["quantized_dense_accuracy"] - row["float_dense_accuracy"])
    logger.info("seed %d: float %.4f, int8 dense %.4f", seed, row["float_dense_accuracy"],
                row["quantized_dense_accuracy"])
    for approx, decisions in args.configs:
        for percentile in args.percentiles:
            converted = unitprune.convert(model, UnITConfig(approx=approx))
            unitprune.calibrate(converted, x_val, percentile=percentile)
            table = approx == "exact" or decisions == "float"
            qmodel = quantize(converted, x_quant, QuantConfig(unit_decisions=decisions),
                              linear_quotient="table" if table else "bitshift")
            float_report = unitprune.mac_report(converted, x_test)
            int_report = unitprune.mac_report(qmodel, x_test)
            entry = {
                "approx": approx, "unit_decisions": decisions, "linear_quotient": qmodel.linear_quotient,
                "percentile": percentile,
                "float_unit_accuracy": accuracy(converted, x_test, y_test),
                "quantized_unit_accuracy": accuracy(qmodel, x_test, y_test),
                "float_skipped_fraction": float_report.skipped_fraction,
                "quantized_skipped_fraction": int_report.skipped_fraction,
                "float_threshold_skipped_fraction": float_report.total.threshold / float_report.total.dense,
                "quantized_threshold_skipped_fraction": int_report.total.threshold / int_report.total.dense,
                "quantized_per_layer": {name: c.to_dict() for name, c in int_report.per_layer.items()},
                "agreement": decision_agreement(converted, qmodel, x_test, detailed=True),
            }
            entry["unit_delta_points"] = 100 * (entry["quantized_unit_accuracy"] - entry["float_unit_accuracy"])
            row["unit"].append(entry)
            logger.info("seed %d %s/%s p%g: float %.4f int8 %.4f, skipped %.3f / %.3f, agreement %s", seed, approx,
                        decisions, percentile, entry["float_unit_accuracy"], entry["quantized_unit_accuracy"],
                        entry["float_skipped_fraction"], entry["quantized_skipped_fraction"],
                        {k: round(v["fraction"], 4) for k, v in entry["agreement"].items()})
    return row


def summary(rows: list[dict], args) -> dict:
    dense = [r["dense_delta_points"] for r in rows]
    out = {"dense_delta_points": {"mean": statistics.mean(dense), "worst": max(dense, key=abs)}, "unit": []}
    for approx, decisions in args.configs:
        for percentile in args.percentiles:
            entries = [e for r in rows for e in r["unit"]
                       if (e["approx"], e["unit_decisions"], e["percentile"]) == (approx, decisions, percentile)]
            deltas = [e["unit_delta_points"] for e in entries]
            layers = entries[0]["agreement"].keys()
            out["unit"].append({
                "approx": approx, "unit_decisions": decisions, "percentile": percentile,
                "unit_delta_points_mean": statistics.mean(deltas), "unit_delta_points_worst": max(deltas, key=abs),
                "float_skipped_fraction_mean": statistics.mean(e["float_skipped_fraction"] for e in entries),
                "quantized_skipped_fraction_mean": statistics.mean(e["quantized_skipped_fraction"] for e in entries),
                "agreement_min": {name: min(e["agreement"][name]["fraction"] for e in entries) for name in layers},
            })
    return out


def markdown(meta: dict, rows: list[dict], summ: dict) -> str:
    lines = ["# int8 quantization on MNIST: accuracy and UnIT decision agreement", "",
             f"Command: `{meta['command']}`  ", f"Date: {meta['date']}; machine: {meta['cpu']}; "
             f"python {meta['python']}, torch {meta['torch']}, numpy {meta['numpy']}; one thread.  ",
             f"Model: the demo's (mnist Table-1 CNN, {meta['epochs']} epochs max, input normalisation folded); "
             f"test split {meta['test_samples']} samples; thresholds calibrated on the validation split; "
             f"quantization ranges from the {meta['quant_calibration']} split.", "",
             "## Dense", "", "| seed | float acc | int8 dense acc | delta (points) |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['seed']} | {100 * r['float_dense_accuracy']:.2f} | "
                     f"{100 * r['quantized_dense_accuracy']:.2f} | {r['dense_delta_points']:+.2f} |")
    lines += ["", "## UnIT (same percentile, float vs int8)", "",
              "| seed | approx | int8 tables | pct | float UnIT acc | int8 UnIT acc | delta | MACs skipped float | "
              "int8 | agreement per layer |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for e in r["unit"]:
            agreement = ", ".join(f"{k} {100 * v['fraction']:.2f}%" for k, v in e["agreement"].items())
            lines.append(f"| {r['seed']} | {e['approx']} | {e['unit_decisions']} | {e['percentile']:g} | {100 * e['float_unit_accuracy']:.2f} | "
                         f"{100 * e['quantized_unit_accuracy']:.2f} | {e['unit_delta_points']:+.2f} | "
                         f"{100 * e['float_skipped_fraction']:.1f}% | {100 * e['quantized_skipped_fraction']:.1f}% | "
                         f"{agreement} |")
    lines += ["", "## Summary over seeds", "",
              f"Dense: mean delta {summ['dense_delta_points']['mean']:+.2f} points, largest "
              f"{summ['dense_delta_points']['worst']:+.2f}.", "",
              "| approx | int8 tables | pct | mean delta | largest delta | skipped float | skipped int8 | "
              "lowest agreement |", "|---|---|---|---|---|---|---|---|"]
    for s in summ["unit"]:
        agreement = ", ".join(f"{k} {100 * v:.2f}%" for k, v in s["agreement_min"].items())
        lines.append(f"| {s['approx']} | {s['unit_decisions']} | {s['percentile']:g} | {s['unit_delta_points_mean']:+.2f} | "
                     f"{s['unit_delta_points_worst']:+.2f} | {100 * s['float_skipped_fraction_mean']:.1f}% | "
                     f"{100 * s['quantized_skipped_fraction_mean']:.1f}% | {agreement} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--percentiles", type=float, nargs="+", default=[20.0, 50.0, 80.0])
    parser.add_argument("--configs", nargs="+", default=["bitshift:integer", "bitshift:float", "exact:integer"],
                        help="approx:unit_decisions pairs (QuantConfig.unit_decisions: integer or float)")
    parser.add_argument("--epochs", type=int, default=15, help="maximum training epochs (the demo's: 15)")
    parser.add_argument("--quant-calibration", choices=["train", "val"], default="train")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.configs = [tuple(item.split(":")) for item in args.configs]
    for approx, decisions in args.configs:
        UnITConfig(approx=approx), QuantConfig(unit_decisions=decisions)  # validate early
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    rows = [run_seed(seed, args) for seed in args.seeds]
    summ = summary(rows, args)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "command": " ".join(["python", "benchmarks/quantization.py", *sys.argv[1:]]),
            "cpu": cpu_model(), "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "epochs": args.epochs, "quant_calibration": args.quant_calibration,
            "test_samples": int(load_dataset("mnist", seed=args.seeds[0]).sizes()["test"]),
            "wall_seconds": round(time.perf_counter() - t0, 1)}
    written = write_results(args.output, "quantization", {"meta": meta, "summary": summ, "seeds": rows},
                            markdown(meta, rows, summ))
    print("wrote " + " and ".join(map(str, written)))


if __name__ == "__main__":
    main()

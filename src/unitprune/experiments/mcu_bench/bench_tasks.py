"""The tasks of ``mcu-bench``, run by :mod:`.executor` (here or on Ray).

1. One task per MCU method chooses its operating point (:func:`unitprune.experiments.mcu_bench.bench.select_operating_points`
   with that method and the ``dense`` reference; the same function on the same inputs as a run of
   all methods in one process, so the same point).
2. One task per method, target and batch of at most ``batch_samples`` test samples exports, builds
   and runs the firmware in the simulator (:func:`unitprune.experiments.mcu_bench.bench.measure_target`); its files
   go to ``work/METHOD-TARGET`` (one batch) or ``work/METHOD-TARGET-bN``. The per-layer firmware
   runs in the first batch only. A row merges its batches: the median over every sample's cycles,
   the samples checked added up, bit-exact if every batch is; flash and SRAM are the first batch's
   firmware (flash without its embedded samples). A row whose export or firmware does not fit the
   target (``ExportError``, ``FirmwareTooLarge``) is ``{"does_not_fit": why}``.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace
from pathlib import Path

from ..executor import ExecutorConfig, Task, fingerprint, open_runner

__all__ = ["bench_settings", "run_bench_tasks", "DEFAULT_BATCH_SAMPLES"]

#: Test samples per simulator task: large enough that a batch's build costs little next to its runs.
DEFAULT_BATCH_SAMPLES = 25


def _select_task(shared: dict, method: str):
    from .bench import select_operating_points

    config = replace(shared["config"], methods=("dense", method) if method != "dense" else ("dense",), progress=False)
    return select_operating_points(shared["model"], shared["splits"], config)[method]


def _measure_task(shared: dict, qmodel, target: str, start: int, stop: int, layer_samples: int, max_cycles: int, *,
                  workspace: Path) -> dict:
    from .bench import measure_target
    from ...mcu.export import ExportError
    from ...mcu.reference import quantize_input
    from ...mcu.targets import FirmwareTooLarge

    from .bench_plan import planned_for_target

    started = time.perf_counter()
    unplanned = qmodel
    qmodel, overrides, plan = planned_for_target(qmodel, target, shared["splits"])
    x_q = quantize_input(qmodel, shared["x_test"][start:stop])
    try:
        try:
            measured = measure_target(qmodel, target, x_q, workspace, layer_samples, max_cycles)
        except ExportError as error:
            if not plan:
                raise
            # a kernel plan runs layer by layer only (the fused rows call the per-position UnIT kernel);
            # where layer by layer does not fit the chip (KWS on AVR), the per-position kernels run fused
            measured = measure_target(unplanned, target, x_q, Path(workspace) / "per-position", layer_samples,
                                      max_cycles)
            overrides, plan = {}, {}
            measured["checks"]["unit_kernel_plan_refused"] = str(error)
    except (ExportError, FirmwareTooLarge) as error:  # a row the run reports as not fitting (e.g. KWS on MSP430)
        return {"does_not_fit": str(error), "seconds": time.perf_counter() - started}
    measured.update(overrides)
    if plan:
        measured["checks"]["unit_kernel_plan"] = plan
    measured["seconds"] = time.perf_counter() - started
    return measured


def _batches(samples: int, batch: int) -> list[tuple[int, int]]:
    return [(start, min(start + batch, samples)) for start in range(0, samples, batch)]


def _merge(target: str, parts: list[dict]) -> dict:
    """One row's measurements from its batches (module docstring)."""
    from ...mcu import targets

    first = parts[0]
    unfit = [part for part in parts if "does_not_fit" in part]
    if unfit:
        return unfit[0]
    cycles = [c for part in parts for c in part["checks"]["inference_cycles"]]
    checks = {k: v for k, v in first["checks"].items() if k != "inference_cycles"}
    if len(parts) == 1:
        return dict(first, checks=checks)
    checks.update(cycles_min=min(cycles), cycles_max=max(cycles), batches=len(parts),
                  host_vs_reference=all(p["checks"]["host_vs_reference"] for p in parts),
                  mcu_vs_host=all(p["checks"]["mcu_vs_host"] for p in parts))
    merged = dict(first, cycles=int(statistics.median_low(cycles)), checks=checks,
                  samples_checked=sum(p["samples_checked"] for p in parts),
                  bit_exact=all(p["bit_exact"] for p in parts), seconds=sum(p["seconds"] for p in parts),
                  sram_bytes=max(p["sram_bytes"] for p in parts))
    merged["energy_uj_estimate"] = targets.energy_uj_estimate(target, merged["cycles"])
    return merged


def bench_settings(model, splits, config, batch_samples: int) -> dict:
    """What an mcu-bench task folder must have been made with to be resumed (the manifest)."""
    settings = {"targets": list(config.targets), "methods": list(config.methods), "samples": config.samples,
                "layer_samples": config.layer_samples, "budget": config.budget, "max_cycles": config.max_cycles,
                "sweep": {k: v for k, v in config.sweep.to_dict().items() if k != "progress"}}
    return {"command": "mcu-bench", "config": settings, "batch_samples": batch_samples,
            "model_sha256": fingerprint(model), "data_sha256": fingerprint(splits.train, splits.val, splits.test)}


def run_bench_tasks(model, splits, config, run_dir: Path, executor: ExecutorConfig, threads: int = 1,
                    batch_samples: int = DEFAULT_BATCH_SAMPLES) -> tuple[dict, list[tuple[str, str, dict]]]:
    """Operating points and measured rows through ``executor``: ``(points by method, [(method, target,
    measured)] in the order of config.methods x config.targets)``."""
    from ..evaluation import dataset_tensors

    if batch_samples < config.layer_samples:
        raise ValueError(f"batch_samples ({batch_samples}) must be >= layer_samples ({config.layer_samples})")
    x_test, _ = dataset_tensors(splits.test)
    executor = replace(executor, threads=threads)
    settings = bench_settings(model, splits, config, batch_samples)
    shared = {"model": model, "splits": splits, "config": config, "x_test": x_test[:config.samples]}
    batches = _batches(config.samples, batch_samples)
    with open_runner(executor, shared, run_dir=run_dir, settings=settings, desc="mcu-bench") as runner:
        points = runner.run([Task(f"select-{m}", _select_task, (m,)) for m in config.methods])
        points = {key.removeprefix("select-"): value for key, value in points.items()}
        tasks = []
        for method in config.methods:
            for target in config.targets:
                for index, (start, stop) in enumerate(batches):
                    name = f"{method}-{target}" + (f"-b{index}" if len(batches) > 1 else "")
                    layer_samples = config.layer_samples if index == 0 else 0
                    tasks.append(Task(f"measure-{name}", _measure_task,
                                      (points[method].qmodel, target, start, stop, layer_samples, config.max_cycles),
                                      workspace=f"work/{name}", tools=(target,)))
        measured = runner.run(tasks)
    rows = []
    for number, (method, target) in enumerate((m, t) for m in config.methods for t in config.targets):
        keys = [task.key for task in tasks[number * len(batches):(number + 1) * len(batches)]]
        rows.append((method, target, _merge(target, [measured[key] for key in keys])))
    return points, rows

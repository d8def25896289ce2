"""The tasks of ``mcu-bench``, run by :mod:`..executor` (here or on Ray) as one graph without barriers.

1. **Operating points**, one task per method and knob value (the steps of
   :func:`unitprune.experiments.mcu_bench.bench.select_operating_points`, cut at the sweep's grain):

   * ``point-dense`` (always: the budget's reference) and ``point-zeroskip``: the model quantized,
     on validation and test.
   * ``point-METHOD=KNOB`` for a swept method: the sweep's float point at that knob
     (:data:`unitprune.experiments.methods.METHOD_RUNNERS` on a one-knob context, as the sweep's
     tasks do), its float model quantized and measured on validation.
   * what a method builds on: ``ttp-schedule-A`` (TTP's pruning and fine-tuning schedule with the
     allocation ``A``, sequential, one task per allocation the methods use: ``ttp`` and ``ttp+unit``
     the sweep's, ``ttp-macs`` and ``ttp-macs+unit`` ``macs``) before ``point-ttp=S`` and
     ``point-ttp+unit=P`` (``point-ttp-macs=S``, ``point-ttp-macs+unit=P``); every FATReLU knob's float point
     before ``point-fatrelu+unit=P`` (``point-fatrelu=P`` when fatrelu is measured too, else
     ``float-fatrelu=P``).

   As soon as ``point-dense`` and every knob of a method are in, this process chooses the method's
   point (:func:`unitprune.experiments.mcu_bench.bench.choose_candidate`) and submits its tasks:
   ``test-METHOD`` (the chosen int8 model on the test split) and the measure tasks below. Other
   methods' point tasks keep running meanwhile; no stage waits for every method.
2. **Measure**, one task per method, target and batch of at most ``batch_samples`` test samples:
   export, build and run the firmware in the simulator
   (:func:`unitprune.experiments.mcu_bench.bench.measure_target`); its files go to
   ``work/METHOD-TARGET`` (one batch) or ``work/METHOD-TARGET-bN``. The per-layer firmware runs in
   the first batch only. A row merges its batches: the median over every sample's cycles, the
   samples checked added up, bit-exact if every batch is; flash and SRAM are the first batch's
   firmware (flash without its embedded samples). A firmware too large with its batch's samples
   embedded is measured on halves of them, each its own firmware (``_measure_in_parts``); a UnIT
   plan that does not fit even with one sample gives up its flash-hungry kernels and is planned
   again: first the early-exit linear kernel (the unsorted UnIT linear instead), then the
   static-sparse candidates (:data:`STATIC_KERNELS`); the plan says which. A row whose export or firmware does not fit the
   target (``ExportError``, ``FirmwareTooLarge``) is ``{"does_not_fit": why}``.

Which ready task starts next (:meth:`_Graph.priority`): the operating-point tasks first (the
others wait for them), then the measure tasks, longest first (a target's expected seconds: the
mean of its landed measure tasks; a target without any yet first), ``test-METHOD`` last.

Every task computes what ``select_operating_points`` computes for it, on the same inputs, and the
choice and merges happen in this process, so the files are the same with any executor and worker
count. The task folder's manifest records this grain (:data:`TASK_GRAIN`): a folder cut otherwise
is not resumed.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..executor import ExecutorConfig, Task, fingerprint, open_runner

__all__ = ["bench_settings", "run_bench_tasks", "DEFAULT_BATCH_SAMPLES", "TASK_GRAIN"]

#: Test samples per simulator task: large enough that a batch's build costs little next to its runs.
DEFAULT_BATCH_SAMPLES = 25
#: UnIT plan kernels on TTP's static-sparse records (up to 4 bytes of flash per weight)
STATIC_KERNELS = ("static", "sparse_tau")
#: How the run is cut into tasks (recorded in the task folder's manifest; module docstring).
TASK_GRAIN = "operating point per method and knob value, measure per method, target and batch"


def _context(shared: dict, method: str | None = None, allocation: str | None = None):
    """The sweep context of ``method`` (an mcu-bench method: its TTP allocation) or of the TTP ``allocation``."""
    from ..methods import SweepContext
    from .bench import METHODS, method_sweep

    sweep = shared["config"].sweep
    if method is not None:
        sweep = method_sweep(METHODS[method], sweep)
    if allocation is not None:
        sweep = replace(sweep, ttp_allocation=allocation)
    return SweepContext(model=shared["model"], splits=shared["splits"], config=sweep)


def _fixed_point_task(shared: dict, method: str):
    from .bench import dense_float_val_accuracy, fixed_point

    context = _context(shared)
    return fixed_point(context, method, dense_float_val_accuracy(context))


def _ttp_schedule_task(shared: dict, allocation: str):
    """TTP's schedule with ``allocation``: its float points and the pruned models of its steps."""
    from ..sweep_tasks import knob_context
    from ..methods import METHOD_RUNNERS

    context = knob_context(_context(shared, allocation=allocation), None, None, {}, None)
    return METHOD_RUNNERS["ttp"](context), context._ttp_steps


def _knob_task(shared: dict, method: str, knob_field: str | None, knob, cache: dict, ttp_steps, quantize: bool):
    """``method`` (an mcu-bench method) at one knob value: ``(float point, int8 candidate or None)``."""
    from ..methods import METHOD_RUNNERS
    from ..sweep_tasks import knob_context
    from .bench import METHODS, quantized_candidate

    mcu_method = METHODS[method]
    context = knob_context(_context(shared, method), knob_field, knob, cache, ttp_steps)
    float_point = next(p for p in METHOD_RUNNERS[mcu_method.sweep_method](context) if p.knob == knob)
    return float_point, quantized_candidate(context, mcu_method, float_point) if quantize else None


def _test_task(shared: dict, qmodel):
    from .bench import int8_test

    return int8_test(qmodel, shared["splits"])


def _measure_task(shared: dict, qmodel, target: str, start: int, stop: int, layer_samples: int, max_cycles: int, *,
                  workspace: Path) -> dict:
    from ...mcu.export import ExportError, SamplesTooLarge
    from ...mcu.qmodel import QLinear
    from ...mcu.reference import quantize_input
    from ...mcu.targets import FirmwareTooLarge

    from .bench_plan import planned_for_target

    started = time.perf_counter()
    unplanned = qmodel
    qmodel, overrides, plan = planned_for_target(qmodel, target, shared["splits"])
    x_q = quantize_input(qmodel, shared["x_test"][start:stop])
    work_dir, options = Path(workspace), {}
    try:
        while True:
            try:
                measured = _measure_in_parts(qmodel, target, x_q, work_dir, layer_samples, max_cycles)
                break
            except (FirmwareTooLarge, SamplesTooLarge):
                # the plan's flash-hungry kernels did not fit even beside one embedded sample: give them up
                if options.get("early_exit", True) and any(isinstance(op, QLinear) and op.unit_kernel == "sorted"
                                                           for op in qmodel.ops):
                    options, key, folder = dict(options, early_exit=False), "early_exit", "early-exit-off"
                    why = "the sorted columns"
                elif options.get("static", True) and any(layer.get("kernel") in STATIC_KERNELS
                                                         for layer in plan.get("layers", {}).values()):
                    options, key, folder = dict(options, static=False), "static", "static-off"
                    why = "the static-sparse records"
                else:
                    raise
                qmodel, overrides, plan = planned_for_target(unplanned, target, shared["splits"], **options)
                plan[key] = f"off: the firmware with {why} did not fit the target's flash, even with one sample"
                work_dir = work_dir / folder
    except (ExportError, FirmwareTooLarge) as error:  # a row the run reports as not fitting (e.g. KWS on MSP430)
        return {"does_not_fit": str(error), "seconds": time.perf_counter() - started}
    measured.update(overrides)
    if plan:
        measured["checks"]["unit_kernel_plan"] = plan
    measured["seconds"] = time.perf_counter() - started
    return measured


def _measure_in_parts(qmodel, target: str, x_q, work_dir: Path, layer_samples: int, max_cycles: int) -> dict:
    """``measure_target`` on the samples ``x_q``; when the firmware does not fit the target with
    them embedded (``FirmwareTooLarge`` from the linker, ``SamplesTooLarge`` from the export's flash
    check: the kernels are chosen without the samples) but could without some, the samples are measured in two
    halves, each its own firmware (``work_dir/part0``, ``part1``; the per-layer one with the first),
    and joined as batches are (:func:`_merge`, the samples' cycles kept for the row's merge). A
    firmware that does not fit with one sample raises."""
    from .bench import measure_target
    from ...mcu.export import SamplesTooLarge
    from ...mcu.targets import FirmwareTooLarge

    try:
        return measure_target(qmodel, target, x_q, work_dir, layer_samples, max_cycles)
    except (FirmwareTooLarge, SamplesTooLarge):
        if len(x_q) < 2:
            raise
    half = (len(x_q) + 1) // 2
    parts = [_measure_in_parts(qmodel, target, x_q[:half], work_dir / "part0", min(layer_samples, half), max_cycles),
             _measure_in_parts(qmodel, target, x_q[half:], work_dir / "part1", 0, max_cycles)]
    joined = _merge(target, parts)
    checks = {k: v for k, v in joined["checks"].items() if k != "batches"}
    checks["inference_cycles"] = [c for part in parts for c in part["checks"]["inference_cycles"]]
    checks["sample_parts"] = sum(part["checks"].get("sample_parts", 1) for part in parts)
    return dict(joined, checks=checks)


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
                  bit_exact=all(p["bit_exact"] for p in parts), seconds=sum(p.get("seconds", 0.0) for p in parts),
                  sram_bytes=max(p["sram_bytes"] for p in parts))
    merged["energy_uj_estimate"] = targets.energy_uj_estimate(target, merged["cycles"])
    return merged


def bench_settings(model, splits, config, batch_samples: int) -> dict:
    """What an mcu-bench task folder must have been made with to be resumed (the manifest)."""
    settings = {"targets": list(config.targets), "methods": list(config.methods), "samples": config.samples,
                "layer_samples": config.layer_samples, "budget": config.budget, "max_cycles": config.max_cycles,
                "sweep": {k: v for k, v in config.sweep.to_dict().items() if k != "progress"}}
    return {"command": "mcu-bench", "config": settings, "batch_samples": batch_samples, "task_grain": TASK_GRAIN,
            "model_sha256": fingerprint(model), "data_sha256": fingerprint(splits.train, splits.val, splits.test)}


@dataclass
class _Graph:
    """This process's side of the task graph: which task a result enables (module docstring)."""

    config: object
    batches: list[tuple[int, int]]
    reference: object = None  # the dense operating point
    points: dict = field(default_factory=dict)  # method -> chosen OperatingPoint
    candidates: dict = field(default_factory=dict)  # method -> {knob: OperatingPoint}
    fatrelu_floats: dict = field(default_factory=dict)  # knob -> the float FATReLU point
    kinds: dict = field(default_factory=dict)  # task key -> (kind, method)
    seconds: dict = field(default_factory=dict)  # target -> the seconds of its landed measure tasks

    def priority(self, task: Task) -> tuple[int, float]:
        """Which ready task starts first (module docstring; :meth:`TaskRunner.run`)."""
        kind, _ = self.kinds[task.key]
        if kind == "measure":
            landed = self.seconds.get(task.args[1])
            return 1, statistics.fmean(landed) if landed else math.inf
        return (0, 0.0) if kind == "test" else (2, 0.0)

    def _task(self, kind: str, method: str, key: str, fn, args, **options) -> Task:
        self.kinds[key] = (kind, method)
        return Task(key, fn, args, **options)

    def _knob_tasks(self, method: str, cache: dict, steps, knobs=None, quantize: bool = True) -> list[Task]:
        from ..sweep_tasks import knob_values
        from .bench import METHODS

        knob_field, values = knob_values(METHODS[method].sweep_method, self.config.sweep)
        prefix = "point" if quantize else "float"
        return [self._task(prefix, method, f"{prefix}-{method}={value:g}", _knob_task,
                           (method, knob_field, value, cache, steps, quantize)) for value in knobs or values]

    def _knob_count(self, method: str) -> int:
        from ..sweep_tasks import knob_values
        from .bench import METHODS

        sweep, sweep_method = self.config.sweep, METHODS[method].sweep_method
        return len(sweep.ttp_sparsities) if sweep_method == "ttp" else len(knob_values(sweep_method, sweep)[1])

    def _ttp_allocation(self, method: str) -> str | None:
        """The TTP allocation of ``method``'s schedule (None: not built on TTP)."""
        from .bench import METHODS, TTP_SWEEP_METHODS, method_sweep

        if METHODS[method].sweep_method not in TTP_SWEEP_METHODS:
            return None
        return method_sweep(METHODS[method], self.config.sweep).ttp_allocation

    def first(self) -> list[Task]:
        from .bench import METHODS

        methods = self.config.methods
        tasks = [self._task("fixed", "dense", "point-dense", _fixed_point_task, ("dense",))]
        tasks += [self._task("fixed", m, f"point-{m}", _fixed_point_task, (m,))
                  for m in methods if m != "dense" and METHODS[m].sweep_method is None]
        allocations = dict.fromkeys(a for a in map(self._ttp_allocation, methods) if a is not None)
        tasks += [self._task("ttp-schedule", allocation, f"ttp-schedule-{allocation}", _ttp_schedule_task,
                             (allocation,)) for allocation in allocations]
        if "fatrelu+unit" in methods and "fatrelu" not in methods:
            tasks += self._knob_tasks("fatrelu", {}, None, quantize=False)
        tasks += [t for m in methods if METHODS[m].sweep_method not in (None, "ttp", "ttp+unit", "fatrelu+unit")
                  for t in self._knob_tasks(m, {}, None)]
        return tasks

    def then(self, task: Task, value) -> list[Task]:
        from .bench import record_test

        kind, method = self.kinds[task.key]
        methods = self.config.methods
        if kind == "fixed":
            if method == "dense":
                self.reference = value
            if method not in methods:
                return [t for m in methods for t in self._select(m)]
            self.points[method] = value
            return self._measure_tasks(method) + [t for m in methods for t in self._select(m)]
        if kind == "ttp-schedule":  # ``method`` is the schedule's allocation
            from .bench import METHODS

            float_points, steps = value
            cache = {"ttp": float_points}
            knobs = [p.knob for p in float_points]
            return [t for m in methods if self._ttp_allocation(m) == method
                    for t in self._knob_tasks(m, cache, steps, knobs if METHODS[m].sweep_method == "ttp" else None)]
        if kind in ("point", "float"):
            float_point, candidate = value
            tasks = []
            if method == "fatrelu" and "fatrelu+unit" in methods:
                self.fatrelu_floats[float_point.knob] = float_point
                if len(self.fatrelu_floats) == self._knob_count("fatrelu"):
                    cache = {"fatrelu": [self.fatrelu_floats[k] for k in self.config.sweep.fatrelu_percentiles]}
                    tasks += self._knob_tasks("fatrelu+unit", cache, None)
            if candidate is not None:
                self.candidates.setdefault(method, {})[candidate.knob] = candidate
                tasks += self._select(method)
            return tasks
        if kind == "test":
            record_test(self.points[method], self.reference, value)
        if kind == "measure":
            self.seconds.setdefault(task.args[1], []).append(value["seconds"])
        return []

    def _select(self, method: str) -> list[Task]:
        """The method's point once the reference and all its knobs are in; then its test and measure tasks."""
        from .bench import choose_candidate

        candidates = self.candidates.get(method, {})
        if (self.reference is None or method in self.points or not candidates
                or len(candidates) < self._knob_count(method)):
            return []
        point = self.points[method] = choose_candidate(self.reference, list(candidates.values()), self.config)
        return [self._task("test", method, f"test-{method}", _test_task, (point.qmodel,)), *self._measure_tasks(method)]

    def _measure_tasks(self, method: str) -> list[Task]:
        tasks = []
        for target in self.config.targets:
            for index, (start, stop) in enumerate(self.batches):
                name = _row_name(method, target, index, len(self.batches))
                layer_samples = self.config.layer_samples if index == 0 else 0
                tasks.append(self._task("measure", method, f"measure-{name}", _measure_task,
                                        (self.points[method].qmodel, target, start, stop, layer_samples,
                                         self.config.max_cycles), workspace=f"work/{name}", tools=(target,)))
        return tasks


def _row_name(method: str, target: str, index: int, batches: int) -> str:
    return f"{method}-{target}" + (f"-b{index}" if batches > 1 else "")


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
    graph = _Graph(config, batches)
    with open_runner(executor, shared, run_dir=run_dir, settings=settings, desc="mcu-bench") as runner:
        results = runner.run(graph.first(), graph.then, graph.priority)
    missing = [m for m in config.methods if m not in graph.points]
    if missing:  # every task ran, so a method without a point is a bug of the graph
        raise RuntimeError(f"mcu-bench: no operating point for {missing} after every task ran")
    rows = []
    for method in config.methods:
        for target in config.targets:
            keys = [f"measure-{_row_name(method, target, i, len(batches))}" for i in range(len(batches))]
            rows.append((method, target, _merge(target, [results[key] for key in keys])))
    return {m: graph.points[m] for m in config.methods}, rows

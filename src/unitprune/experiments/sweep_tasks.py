"""The tasks of a sweep: one per method and knob value, run by :mod:`.executor` (here or on Ray).

Most methods measure each knob value independently (a UnIT or FATReLU percentile, an autotune
budget): one task each. TTP's schedule is sequential (each step prunes and fine-tunes the last),
so it is one task that also returns its models. Three methods build on another's measurements:
``ttp+unit`` on the TTP schedule, ``fatrelu+unit`` on the FATReLU points and ``unit-autotuned``
on the global UnIT points of its approximation; they run after the rest, with what they need
passed in. Every task calls the sweep's own method function
(:data:`unitprune.experiments.methods.METHOD_RUNNERS`) on a context whose knob list holds its one
value; calibration and measurement of one knob do not depend on the others (calibration sets
every layer from scratch), so the points equal the serial sweep's.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

from .executor import ExecutorConfig, Task, fingerprint, open_runner
from .methods import METHOD_RUNNERS, SweepContext
from .sweep_config import UNIT_METHODS

logger = logging.getLogger(__name__)

__all__ = ["run_sweep_tasks", "sweep_settings", "knob_context", "knob_values", "DEPENDENCIES"]

#: The methods whose measurements a dependent method reuses (unit-autotuned: see ``_dependencies``).
DEPENDENCIES = {"ttp+unit": ("ttp",), "fatrelu+unit": ("fatrelu",)}


def _dependencies(method: str, config) -> tuple[str, ...]:
    if method == "unit-autotuned":
        combo = f"unit-{config.combo_approx}"
        return (combo,) if combo in config.methods else ()
    return DEPENDENCIES.get(method, ())


def knob_values(method: str, config) -> tuple[str | None, tuple]:
    """The SweepConfig field of ``method``'s knob values and the values (None: one task)."""
    if method in ("fatrelu",):
        return "fatrelu_percentiles", config.fatrelu_percentiles
    if method in UNIT_METHODS:
        return "unit_percentiles", config.unit_percentiles
    if method in ("ttp+unit", "fatrelu+unit"):
        return "combo_percentiles", config.percentiles_under_combos
    if method == "unit-autotuned":
        return "autotune_budgets", config.autotune_budgets
    return None, ()


def knob_context(shared: SweepContext, knob_field: str | None, knob, cache: dict, ttp_steps) -> SweepContext:
    """The context of one task: ``shared``'s with ``knob`` the only value of ``knob_field`` (none: all
    of them), the points (``cache``) and TTP models (``ttp_steps``) it builds on, no progress bars."""
    config = replace(shared.config, progress=False)
    if knob_field is not None:
        config = replace(config, **{knob_field: (knob,)})
    context = SweepContext(model=shared.model, splits=shared.splits, config=config,
                           baseline_val_accuracy=shared.baseline_val_accuracy)
    context._cache, context._ttp_steps = dict(cache), ttp_steps
    return context


def _method_task(shared: SweepContext, method: str, knob_field: str | None, knob, cache: dict, ttp_steps):
    """One method at one knob value (all of it without a knob field): (points, TTP steps, seconds)."""
    context = knob_context(shared, knob_field, knob, cache, ttp_steps)
    started = time.perf_counter()
    points = METHOD_RUNNERS[method](context)
    return points, (context._ttp_steps if method == "ttp" else None), time.perf_counter() - started


def _tasks(methods: list[str], config, cache: dict, ttp_steps) -> list[Task]:
    tasks = []
    for method in methods:
        field_name, values = knob_values(method, config)
        own_cache = {d: cache[d] for d in _dependencies(method, config) if d in cache}
        steps = ttp_steps if method == "ttp+unit" else None
        if field_name is None:
            tasks.append(Task(method, _method_task, (method, None, None, own_cache, steps)))
        else:
            tasks += [Task(f"{method}={value:g}", _method_task, (method, field_name, value, own_cache, steps))
                      for value in values]
    return tasks


def sweep_settings(context: SweepContext, methods: list[str], **names) -> dict:
    """What a sweep's task folder must have been made with to be resumed (the manifest)."""
    config = {k: v for k, v in context.config.to_dict().items() if k != "progress"}
    splits = context.splits
    return {"command": "sweep", "methods": list(methods), "config": config, **names,
            "model_sha256": fingerprint(context.model),
            "data_sha256": fingerprint(splits.train, splits.val, splits.test)}


def run_sweep_tasks(context: SweepContext, methods: list[str], executor: ExecutorConfig,
                    store_dir: str | Path | None = None, settings: dict | None = None) -> tuple[dict, dict]:
    """Run every method of ``methods`` at every knob value through ``executor``.

    ``store_dir``: the run folder whose ``tasks/`` keeps each result (and allows resuming).
    Returns ``(points by method, seconds by method)`` in the order of ``methods``; a method's
    seconds are the sum of its tasks' compute times.
    """
    shared = SweepContext(model=context.model, splits=context.splits, config=context.config,
                          baseline_val_accuracy=context.baseline_val_accuracy)
    config = context.config
    first = [m for m in methods if not any(d in methods for d in _dependencies(m, config))]
    second = [m for m in methods if m not in first]
    points, timing = {}, {}

    def gather(results: dict, tasks: list[Task]) -> None:
        for task in tasks:
            method = task.args[0]
            task_points, _, seconds = results[task.key]
            points.setdefault(method, []).extend(task_points)
            timing[method] = timing.get(method, 0.0) + seconds

    with open_runner(executor, shared, run_dir=store_dir, settings=settings, desc="sweep") as runner:
        tasks = _tasks(first, config, {}, None)
        results = runner.run(tasks)
        gather(results, tasks)
        ttp_steps = results["ttp"][1] if "ttp" in results else None
        tasks = _tasks(second, config, points, ttp_steps)
        gather(runner.run(tasks), tasks)
    for method in methods:
        timing[method] = round(timing[method], 2)
        logger.info("%s: %d points in %.1f s of compute", method, len(points[method]), timing[method])
    return {m: points[m] for m in methods}, {m: timing[m] for m in methods}

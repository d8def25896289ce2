"""The tasks of ``unitprune shrink``, run by :mod:`.executor` (here or on Ray).

The base training is one task; then every method at the budget is one task (with UnIT on top and
the MCU measurements of its result, whose exports and builds go to ``mcu/NAME``), the base's
measurement another, and every method at every extra SRAM budget of ``sweep_sram`` one more. The
tasks call the experiment's own functions (:func:`unitprune.experiments.shrink_study.shrink_experiment._run_method`,
:func:`unitprune.experiments.shrink_study.structured_baselines.unit_on_top`, :func:`unitprune.experiments.shrink_study.shrink_measure.measure_model`)
on the same inputs as the serial run: each gets the trained base as a state_dict and rebuilds it.
"""

from __future__ import annotations

import copy
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..executor import ExecutorConfig, Task, open_runner

__all__ = ["run_shrink_tasks"]


def _base(shared: dict, base_state):
    base = copy.deepcopy(shared["init"])
    base.load_state_dict(base_state)
    return base


def _train_base_task(shared: dict) -> dict:
    from ...training import TrainConfig, train

    config = shared["config"]
    base = copy.deepcopy(shared["init"])
    started = time.perf_counter()
    train(base, shared["splits"], TrainConfig(epochs=config.epochs, patience=None, seed=config.seed,
                                              num_threads=config.threads, progress=False))
    return {"state": base.state_dict(), "seconds": time.perf_counter() - started}


def _measure_base_task(shared: dict, base_state, measure_config, *, workspace: Path) -> dict:
    from .shrink_measure import measure_model

    return measure_model(_base(shared, base_state).eval(), shared["splits"], workspace, unit_percentile=None,
                         config=measure_config)


def _method_task(shared: dict, name: str, budget, base_state, unit: bool, measure_config, *,
                 workspace: Path | None = None) -> dict:
    from .structured_baselines import unit_on_top
    from .shrink_experiment import _run_method

    config, splits = replace(shared["config"], progress=False), shared["splits"]  # one bar: the runner's
    model, fields, info = _run_method(name, config, budget, shared["init"], _base(shared, base_state), splits)
    result: dict[str, Any] = {"model": model, "fields": fields, "info": info}
    if unit or measure_config:
        result["unit"] = unit_on_top(model, splits)
    if measure_config:
        from .shrink_measure import measure_model

        fields["measured"] = measure_model(model, splits, workspace, unit_percentile=result["unit"]["percentile"],
                                           config=measure_config)
    return result


def run_shrink_tasks(config, splits, init, base_state, measure_config, run_dir: Path, executor: ExecutorConfig,
                     settings: dict) -> dict:
    """Every task of the experiment; returns ``{"base": {"state", "seconds"}, "base_measured": ... or None,
    "methods": {name: {"model", "fields", "info"[, "unit"]}}, "sweep": [(sram, name, fields)]}``.
    ``base_state`` None: the base is trained (a task)."""
    measure_targets = tuple(measure_config.targets) if measure_config else ()
    shared = {"config": config, "splits": splits, "init": init}
    with open_runner(executor, shared, run_dir=run_dir, settings=settings, desc="shrink") as runner:
        if base_state is None:
            base = runner.run([Task("base", _train_base_task)])["base"]
        else:
            base = {"state": base_state, "seconds": 0.0}
        tasks = [Task(f"method-{name}", _method_task, (name, config.budget, base["state"], config.unit, measure_config),
                      workspace=f"mcu/{name}" if measure_config else None, tools=measure_targets)
                 for name in config.methods]
        if measure_config:
            tasks.append(Task("measure-base", _measure_base_task, (base["state"], measure_config),
                              workspace="mcu/base", tools=measure_targets))
        sweep = [(sram, name) for sram in config.sweep_sram for name in config.methods
                 if name != "ttp"]  # unstructured: the same model at every budget
        tasks += [Task(f"sweep-{sram}-{name}", _method_task,
                       (name, config.budget.with_(sram_bytes=sram), base["state"], False, None))
                  for sram, name in sweep]
        done = runner.run(tasks)
    return {"base": base, "base_measured": done.get("measure-base"),
            "methods": {name: done[f"method-{name}"] for name in config.methods},
            "sweep": [(sram, name, done[f"sweep-{sram}-{name}"]["fields"]) for sram, name in sweep]}

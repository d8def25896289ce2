"""Sweep methods in worker processes, with the same results as the serial sweep.

The methods of a sweep are independent except for three that build on another's measurements:
``ttp+unit`` on the TTP schedule, ``fatrelu+unit`` on the FATReLU points and ``unit-autotuned`` on
the global UnIT points of its approximation. :func:`run_methods` runs the independent methods
first, each in a worker (one task per method; the model, data and settings are sent once per
worker), then the dependent ones with the measurements they need passed in. Every method runs the
same function (:data:`unitprune.experiments.methods.METHOD_RUNNERS`) on the same inputs with the
same seeds and ``config.num_threads`` torch threads as in the serial sweep, so the points are the
same; only wall times differ.

Workers are started with ``spawn`` (a fresh interpreter: torch's thread pools are not fork-safe).
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor

import torch

from .methods import METHOD_RUNNERS, SweepContext

logger = logging.getLogger(__name__)

__all__ = ["run_methods", "DEPENDENCIES"]

#: The methods whose measurements a dependent method reuses (unit-autotuned: see ``_dependencies``).
DEPENDENCIES = {"ttp+unit": ("ttp",), "fatrelu+unit": ("fatrelu",)}

_WORKER_CONTEXT: SweepContext | None = None


def _dependencies(method: str, context: SweepContext) -> tuple[str, ...]:
    if method == "unit-autotuned":
        combo = f"unit-{context.config.combo_approx}"
        return (combo,) if combo in context.config.methods else ()
    return DEPENDENCIES.get(method, ())


def _init_worker(model, splits, config, baseline_val_accuracy: float) -> None:
    global _WORKER_CONTEXT
    torch.set_num_threads(config.num_threads)
    _WORKER_CONTEXT = SweepContext(model=model, splits=splits, config=config,
                                   baseline_val_accuracy=baseline_val_accuracy)


def _run_in_worker(method: str, cache: dict, ttp_steps):
    context = _WORKER_CONTEXT
    assert context is not None, "worker not initialised"
    context._cache = dict(cache)
    context._ttp_steps = ttp_steps
    started = time.perf_counter()
    points = METHOD_RUNNERS[method](context)
    own_steps = context._ttp_steps if method == "ttp" else None
    context._cache, context._ttp_steps = {}, None  # do not keep another task's state
    return points, own_steps, round(time.perf_counter() - started, 2)


def run_methods(context: SweepContext, methods: list[str], workers: int) -> tuple[dict, dict]:
    """Run ``methods`` (``unpruned`` first in the list) in ``workers`` processes.

    Returns ``(points by method, seconds by method)`` in the order of ``methods``.
    """
    points, timing, ttp_steps = {}, {}, None
    first = [m for m in methods if not any(d in methods for d in _dependencies(m, context))]
    second = [m for m in methods if m not in first]
    method_ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=method_ctx, initializer=_init_worker,
                             initargs=(context.model, context.splits, context.config,
                                       context.baseline_val_accuracy)) as pool:
        futures = {m: pool.submit(_run_in_worker, m, {}, None) for m in first}
        for method in first:
            points[method], steps, timing[method] = futures[method].result()
            ttp_steps = steps if steps is not None else ttp_steps
            logger.info("%s: %d points in %.1f s (worker)", method, len(points[method]), timing[method])
        futures = {m: pool.submit(_run_in_worker, m, {d: points[d] for d in _dependencies(m, context)},
                                  ttp_steps if m == "ttp+unit" else None) for m in second}
        for method in second:
            points[method], _, timing[method] = futures[method].result()
            logger.info("%s: %d points in %.1f s (worker)", method, len(points[method]), timing[method])
    return {m: points[m] for m in methods}, {m: timing[m] for m in methods}

"""Which task the executor starts next (``TaskRunner.run(..., priority)``), mcu-bench's order of its
tasks, and that mcu-bench in two local worker processes, its firmware built and simulated in the
workers' tasks, writes the serial run's mcu.json."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from unitprune.experiments.executor import ExecutorConfig, Task, open_runner
from unitprune.experiments.mcu_bench import bench_tasks
from unitprune.experiments.mcu_bench.bench import BenchConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _key(shared, key):
    return key


def test_the_ready_task_with_the_highest_priority_starts_next(tmp_path):
    """In this process (--workers 1) the start order is the landing order (``runner.ran``): by
    priority among the ready tasks, asked again after each result (``then`` adds ``d``, the highest,
    once ``b`` is in: it starts before ``c`` and ``a``, given earlier); ties in the order given."""
    ranks = {"a": 1, "b": 3, "c": 2, "d": 5, "e": 1}

    def then(task, value):
        return [Task("d", _key, ("d",))] if task.key == "b" else []

    with open_runner(ExecutorConfig(progress=False), None, run_dir=tmp_path, settings={"t": 1}) as runner:
        results = runner.run([Task(k, _key, (k,)) for k in "abce"], then, lambda task: ranks[task.key])
        assert runner.ran == ["b", "d", "c", "a", "e"]
    assert list(results) == ["a", "b", "c", "e", "d"]  # results in the order the tasks were given


def test_without_priority_the_tasks_start_in_the_order_given(tmp_path):
    with open_runner(ExecutorConfig(progress=False), None) as runner:
        runner.run([Task(k, _key, (k,)) for k in "cab"])
        assert runner.ran == ["c", "a", "b"]


def _graph():
    config = BenchConfig(targets=("avr", "msp430"), methods=("dense", "unit-bitshift"), samples=4, layer_samples=1)
    return bench_tasks._Graph(config, bench_tasks._batches(4, 2))


def test_mcu_bench_starts_the_points_then_the_longest_simulator_tasks_then_the_tests():
    graph = _graph()
    first = graph.first()
    assert [t.key for t in first][:2] == ["point-dense", "point-unit-bitshift=20"]
    assert {graph.priority(t) for t in first} == {(2, 0.0)}  # the operating points: every other task waits on them
    measure = graph.then(first[0], _dense_point())  # the dense point in: its simulator tasks
    assert [t.key for t in measure] == ["measure-dense-avr-b0", "measure-dense-avr-b1", "measure-dense-msp430-b0",
                                        "measure-dense-msp430-b1"]
    # nothing landed yet: every target unknown, all equal (then: the order given, b0 with its per-layer firmware first)
    assert {graph.priority(t) for t in measure} == {(1, math.inf)}
    graph.then(measure[0], {"seconds": 2.0})  # an avr task landed in 2 s
    assert graph.priority(measure[1]) == (1, 2.0)
    assert graph.priority(measure[2]) == (1, math.inf)  # msp430: none landed yet, so it starts before avr's
    graph.then(measure[2], {"seconds": 9.0})
    graph.then(measure[3], {"seconds": 7.0})
    assert graph.priority(measure[3]) == (1, 8.0) > graph.priority(measure[1])  # the longer target first
    test = graph._task("test", "dense", "test-x", bench_tasks._test_task, (None,))
    assert graph.priority(test) == (0, 0.0) < graph.priority(measure[1])


def _dense_point():
    from unitprune.experiments.mcu_bench.bench import METHODS, OperatingPoint

    return OperatingPoint(METHODS["dense"], None, qmodel=None, quantized_val_accuracy=0.5, quantized_accuracy=0.5,
                          macs_skipped_fraction=0.0)


def test_mcu_bench_in_two_worker_processes_writes_the_serial_mcu_json(tmp_path):
    """--workers 2 (the local pool): every simulator task (export, firmware builds, simulator run) in
    a worker process, its files in the run folder as the serial run writes them; mcu.json identical."""
    from tests.mcu_tools import bench_document, small_bench_args
    from unitprune.cli import main

    common = small_bench_args(tmp_path)
    assert main([*common, "--workers", "1", "--run-dir", str(tmp_path / "serial")]) == 0
    assert main([*common, "--workers", "2", "--run-dir", str(tmp_path / "pool")]) == 0
    assert bench_document(tmp_path / "pool") == bench_document(tmp_path / "serial")
    names = ("dense-avr-b0", "dense-avr-b1", "unit-bitshift-avr-b0", "unit-bitshift-avr-b1")
    for name in names:
        assert (tmp_path / "pool" / "tasks" / f"measure-{name}.pkl").is_file()
        assert (tmp_path / "pool" / "work" / name / "build-avr-inference" / "model.elf").is_file()


def test_the_data_package_imports_without_scipy_signal():
    """Unpickling a dataset (every worker of a run) imports ``unitprune.data``: without scipy.signal,
    which only the speech features need (imported when they run)."""
    code = "import sys, unitprune.data; print('scipy.signal' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"

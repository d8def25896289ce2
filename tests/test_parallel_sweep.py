"""Sweep methods in worker processes give exactly the serial sweep's measurements."""

from __future__ import annotations

import pytest

from unitprune.data import load_dataset
from unitprune.experiments import SweepConfig, run_sweep
from unitprune.models import build_model
from unitprune.training import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = dict(unit_percentiles=(20, 60), fatrelu_percentiles=(50,), ttp_sparsities=(0.5, 0.8), ttp_finetune_epochs=1,
             autotune_budgets=(1.0,), autotune_grid=(0, 40, 80), progress=False,
             methods=("unpruned", "ttp", "fatrelu", "unit-exact", "ttp+unit", "unit-autotuned"))


def measurements(results: dict) -> dict:
    """Everything measured (timings and the worker count left out)."""
    return {key: value for key, value in results.items() if key not in ("timing_s", "workers", "executor")}


def test_parallel_sweep_equals_serial():
    splits = load_dataset("digits", seed=0)
    model = build_model("digits", seed=0)
    train(model, splits, TrainConfig(epochs=4, lr=5e-3, patience=None, progress=False, num_threads=1))
    config = SweepConfig(**SMALL)
    serial = run_sweep(model, splits, config, dataset="digits", model_name="digits")
    parallel = run_sweep(model, splits, config, dataset="digits", model_name="digits", workers=2)
    assert parallel["workers"] == 2 and serial["workers"] == 1
    assert set(parallel["methods"]) == set(SMALL["methods"])
    assert measurements(parallel) == measurements(serial)
    # the dependent methods really built on the others' measurements
    assert parallel["methods"]["ttp+unit"][0]["details"]["ttp_sparsity"] in SMALL["ttp_sparsities"]


def test_workers_must_be_positive():
    splits = load_dataset("digits", seed=0)
    with pytest.raises(ValueError, match="workers"):
        run_sweep(build_model("digits", seed=0), splits, SweepConfig(**SMALL), workers=0)


def _square_or_die_once(marker_dir, value):
    """value squared; the first call for value 3 kills its worker process (os._exit)."""
    import os
    from pathlib import Path

    marker = Path(marker_dir) / "died"
    if value == 3 and not marker.exists():
        marker.write_text(str(os.getpid()))
        os._exit(3)
    return value * value


def test_local_pool_runs_the_tasks_of_a_dead_worker_again(tmp_path):
    import os

    from unitprune.experiments.executor import ExecutorConfig, Task, open_runner

    tasks = [Task(f"t{v}", _square_or_die_once, (v,)) for v in range(5)]
    with open_runner(ExecutorConfig(workers=2, progress=False), str(tmp_path), run_dir=tmp_path / "run") as runner:
        assert runner.run(tasks) == {f"t{v}": v * v for v in range(5)}
    assert int((tmp_path / "died").read_text()) != os.getpid()  # a worker died, the run still finished
    assert sorted(p.name for p in (tmp_path / "run" / "tasks").glob("*.pkl")) == [f"t{v}.pkl" for v in range(5)]


def _square(_shared, value):
    return value * value


def test_a_task_refused_by_a_broken_pool_is_run_again_not_lost(tmp_path, monkeypatch):
    """A worker that dies between two submissions breaks the pool, and the next ``submit`` raises
    BrokenProcessPool: the task being submitted must go back to the queue (it was lost: KeyError)."""
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    from unitprune.experiments import executor
    from unitprune.experiments.executor import ExecutorConfig, Task, open_runner

    submissions = []

    class PoolBrokenAtTheThirdSubmission(ProcessPoolExecutor):
        def submit(self, fn, *args, **kwargs):
            submissions.append(args[1])
            if len(submissions) == 3:
                raise BrokenProcessPool("a worker died")
            return super().submit(fn, *args, **kwargs)

    monkeypatch.setattr(executor, "ProcessPoolExecutor", PoolBrokenAtTheThirdSubmission)
    tasks = [Task(f"t{v}", _square, (v,)) for v in range(5)]
    with open_runner(ExecutorConfig(workers=2, progress=False), str(tmp_path), run_dir=tmp_path / "run") as runner:
        assert runner.run(tasks) == {f"t{v}": v * v for v in range(5)}
    assert submissions[2] == (2,)  # the refused task was t2, and it ran later
    assert submissions.count((2,)) == 2


class _NeedsTwoArguments(Exception):
    """An exception whose pickle does not load (its __init__ wants two arguments, pickle passes one)."""

    def __init__(self, message, extra):
        super().__init__(message)
        self.extra = extra


def _raise_firmware_too_large(shared, value):
    from unitprune.mcu.targets import FirmwareTooLarge

    raise FirmwareTooLarge(f"model.elf does not fit ({value})", "FRAM", 754)


def _raise_unpicklable(shared, value):
    raise _NeedsTwoArguments(f"bad input {value}", 1)


def test_a_task_error_in_a_worker_reaches_the_caller_as_itself_not_as_a_dead_worker(tmp_path):
    """A task's exception in a worker process comes back with its message (FirmwareTooLarge whole,
    region and bytes too); one whose pickle cannot load comes back as a RuntimeError naming it,
    instead of breaking the pool (which read as 'a worker process died' and ran every task again)."""
    from unitprune.experiments.executor import ExecutorConfig, Task, open_runner
    from unitprune.mcu.targets import FirmwareTooLarge

    config = ExecutorConfig(workers=2, progress=False)
    with open_runner(config, str(tmp_path)) as runner:
        with pytest.raises(FirmwareTooLarge, match=r"does not fit \(7\)") as error:
            runner.run([Task("a", _raise_firmware_too_large, (7,)), Task("b", _square_or_die_once, (2,))])
    assert (error.value.region, error.value.overflow_bytes) == ("FRAM", 754)
    with open_runner(config, str(tmp_path)) as runner:
        with pytest.raises(RuntimeError, match=r"_NeedsTwoArguments: bad input 5"):
            runner.run([Task("a", _raise_unpicklable, (5,)), Task("b", _square_or_die_once, (2,))])

"""The executor (unitprune.experiments.executor) on a local Ray instance: a sweep and an mcu-bench
write the same files as ``--workers 1``; a task whose worker process dies is run again and the run
still writes the same files; a run interrupted half-way resumes to the same files, running only
what was not finished (and refuses a folder made with other settings or cut into other tasks); a
node without a toolchain is an error naming the node and the Debian packages.

One Ray instance (2 CPUs) serves the module, and its two worker processes serve every test (the
toolchain test changes PATH inside a worker instead of starting one with another environment)."""

from __future__ import annotations

import functools
import json
import os
import socket
from pathlib import Path

import pytest

from unitprune.data import load_dataset
from unitprune.experiments import SweepConfig, run_sweep, sweep_tasks
from unitprune.experiments.executor import ExecutorConfig, NodeSetupError, RunFolderError, Task, open_runner
from unitprune.experiments.mcu_bench import bench_tasks
from unitprune.models import build_model
from unitprune.training import TrainConfig, train

ray = pytest.importorskip("ray", reason="Ray is in the dev extra: pip install -e '.[dev]'")

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = dict(unit_percentiles=(20, 60), fatrelu_percentiles=(50,), ttp_sparsities=(0.5, 0.8), ttp_finetune_epochs=1,
             autotune_budgets=(1.0,), autotune_grid=(0, 40, 80), progress=False,
             methods=("unpruned", "ttp", "fatrelu", "unit-exact", "ttp+unit", "unit-autotuned"))
#: The tasks of SMALL: one per method and knob value (TTP's schedule is one task), written out.
SMALL_TASKS = {"unpruned", "ttp", "fatrelu=50", "unit-exact=20", "unit-exact=60", "ttp+unit=20", "ttp+unit=60",
               "unit-autotuned=1"}


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def digits():
    splits = load_dataset("digits", seed=0)
    model = build_model("digits", seed=0)
    train(model, splits, TrainConfig(epochs=2, lr=5e-3, patience=None, progress=False, num_threads=1))
    return model.eval(), splits


@pytest.fixture(scope="module")
def serial_run(digits, tmp_path_factory):
    """The reference: the small sweep with --workers 1 (results.json as written)."""
    model, splits = digits
    run_dir = tmp_path_factory.mktemp("serial")
    run_sweep(model, splits, SweepConfig(**SMALL), dataset="digits", model_name="digits", run_dir=run_dir)
    return _measured(run_dir)


def _measured(run_dir: Path) -> dict:
    """results.json without what may differ between runs: wall times and the executor used."""
    results = json.loads((Path(run_dir) / "results.json").read_text())
    return {k: v for k, v in results.items() if k not in ("timing_s", "workers", "executor")}


def _task_files(run_dir: Path) -> set[str]:
    return {p.stem for p in (Path(run_dir) / "tasks").glob("*.pkl")}


def _dies_once(marker_dir: str, shared, method, *args):
    """The sweep's task, but the first attempt of fatrelu kills its worker process (os._exit)."""
    marker = Path(marker_dir) / f"died-{method}"
    if method == "fatrelu" and not marker.exists():
        marker.write_text(str(os.getpid()))
        os._exit(3)
    return _ORIGINAL_TASK(shared, method, *args)


def _fails_once(marker_dir: str, shared, method, knob_field, knob, *args):
    """The sweep's task; logs each call; unit-exact at 60 raises once (an interrupted run)."""
    with (Path(marker_dir) / "calls.txt").open("a") as log:
        log.write(f"{method}={knob}\n")
    marker = Path(marker_dir) / "failed"
    if method == "unit-exact" and knob == 60 and not marker.exists():
        marker.touch()
        raise KeyboardInterrupt("interrupted")
    return _ORIGINAL_TASK(shared, method, knob_field, knob, *args)


_ORIGINAL_TASK = sweep_tasks._method_task


def test_ray_sweep_with_a_killed_worker_writes_the_serial_files(local_ray, digits, serial_run, tmp_path, monkeypatch):
    """On Ray, the first attempt of one task kills its worker process: Ray runs it again, and the
    run folder holds the same results.json as --workers 1, one task file per method and knob."""
    model, splits = digits
    monkeypatch.setattr(sweep_tasks, "_method_task", functools.partial(_dies_once, str(tmp_path)))
    run_dir = tmp_path / "ray"
    results = run_sweep(model, splits, SweepConfig(**SMALL), dataset="digits", model_name="digits", run_dir=run_dir,
                        executor=ExecutorConfig(kind="ray", progress=False))
    killed = int((tmp_path / "died-fatrelu").read_text())
    assert killed != os.getpid()  # a Ray worker process died, not this one
    assert results["executor"]["kind"] == "ray"
    assert _measured(run_dir) == serial_run
    assert _task_files(run_dir) == SMALL_TASKS
    assert {p.name for p in run_dir.iterdir()} >= {"results.json", "results.csv", "report.md", "tasks"}


def test_interrupted_run_resumes_to_the_same_files(local_ray, digits, serial_run, tmp_path, monkeypatch):
    """Interrupted in this process (workers 1), resumed on Ray: the finished tasks are not run again."""
    model, splits = digits
    monkeypatch.setattr(sweep_tasks, "_method_task", functools.partial(_fails_once, str(tmp_path)))
    run_dir = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_sweep(model, splits, SweepConfig(**SMALL), dataset="digits", model_name="digits", run_dir=run_dir)
    done = _task_files(run_dir)
    assert done == {"unpruned", "ttp", "fatrelu=50", "unit-exact=20"}  # persisted as they landed
    assert not (run_dir / "results.json").exists()

    other = SweepConfig(**{**SMALL, "unit_percentiles": (20, 70)})
    with pytest.raises(RunFolderError, match="other settings.*unit_percentiles"):
        run_sweep(model, splits, other, dataset="digits", model_name="digits", run_dir=run_dir,
                  executor=ExecutorConfig(resume=True, progress=False))
    assert _task_files(run_dir) == done  # the refused resume touched nothing

    run_sweep(model, splits, SweepConfig(**SMALL), dataset="digits", model_name="digits", run_dir=run_dir,
              executor=ExecutorConfig(kind="ray", resume=True, progress=False))
    assert _measured(run_dir) == serial_run
    calls = (tmp_path / "calls.txt").read_text().split()
    assert sorted(calls) == sorted(["unpruned=None", "ttp=None", "fatrelu=50.0", "unit-exact=20.0",
                                    "unit-exact=60.0", "unit-exact=60.0", "ttp+unit=20.0", "ttp+unit=60.0",
                                    "unit-autotuned=1.0"])  # only the interrupted task ran twice


def _double(shared, value):
    return shared * value


def _with_path(path: str, *args):
    """``_ray_worker_task(*args)`` in a Ray worker whose PATH is ``path`` while it runs."""
    from unitprune.experiments.executor import _ray_worker_task

    previous = os.environ["PATH"]
    os.environ["PATH"] = path
    try:
        return _ray_worker_task(*args)
    finally:
        os.environ["PATH"] = previous


def test_node_without_the_toolchain_names_node_and_packages(local_ray, tmp_path):
    """A Ray worker whose PATH has no avr-gcc: the task fails before running, naming the node and
    the packages; with the tools on PATH the same task runs."""
    remote = ray.remote(max_retries=0)(_with_path)
    shared = [ray.put(2)]
    ref = remote.remote(str(tmp_path), shared, _double, (21,), 1, ("avr",), None, False)
    with pytest.raises(NodeSetupError) as error:
        try:
            ray.get(ref, timeout=120)
        except ray.exceptions.RayTaskError as exc:
            raise exc.cause from None
    message = str(error.value)
    assert socket.gethostname() in message and "gcc-avr" in message and "make mcu-tools" in message
    assert ray.get(remote.remote(os.environ["PATH"], shared, _double, (21,), 1, ("avr",), None, False)) == (42, None)
    with open_runner(ExecutorConfig(kind="ray", progress=False), 2) as runner:  # no tools needed
        assert runner.run([Task("a", _double, (21,))]) == {"a": 42}


_ORIGINAL_MEASURE = bench_tasks._measure_task


def _measure_interrupted_second(marker_dir: str, *args, **kwargs):
    """mcu-bench's measure task; the second call raises (an interrupted run)."""
    calls = Path(marker_dir) / "measure-calls"
    calls.write_text(calls.read_text() + "x" if calls.exists() else "x")
    if calls.read_text() == "xx":
        raise KeyboardInterrupt("interrupted")
    return _ORIGINAL_MEASURE(*args, **kwargs)


def _must_not_run(*args, **kwargs):
    raise AssertionError("an operating-point task finished before the interruption ran again")


def test_ray_mcu_bench_resumes_an_interrupted_run_to_the_serial_mcu_json(local_ray, tmp_path, monkeypatch):
    """mcu-bench with --workers 1; the same run interrupted at its second simulator task, then
    resumed on Ray: the operating points are not computed again, the firmware built on the Ray
    workers comes back into the run folder, and mcu.json is the serial run's. A folder cut into
    other tasks is not resumed."""
    from tests.mcu_tools import bench_document, small_bench_args
    from unitprune.cli import main

    common = small_bench_args(tmp_path)
    assert main([*common, "--workers", "1", "--run-dir", str(tmp_path / "serial")]) == 0

    run_dir = tmp_path / "ray"
    with monkeypatch.context() as patch:
        patch.setattr(bench_tasks, "_measure_task", functools.partial(_measure_interrupted_second, str(tmp_path)))
        assert main([*common, "--workers", "1", "--run-dir", str(run_dir)]) == 130
    done = _task_files(run_dir)
    assert done == {"point-dense", "point-unit-bitshift=20", "point-unit-bitshift=60", "measure-dense-avr-b0"}

    manifest = run_dir / "tasks" / "manifest.json"
    saved = manifest.read_text()
    other = json.loads(saved)
    other["settings"]["task_grain"] = "operating point per method"  # as a folder of another cut
    manifest.write_text(json.dumps(other))
    assert main([*common, "--executor", "ray", "--resume", "--run-dir", str(run_dir)]) == 2
    assert _task_files(run_dir) == done  # the refused resume touched nothing
    manifest.write_text(saved)

    with monkeypatch.context() as patch:
        patch.setattr(bench_tasks, "_fixed_point_task", _must_not_run)
        patch.setattr(bench_tasks, "_knob_task", _must_not_run)
        assert main([*common, "--executor", "ray", "--resume", "--run-dir", str(run_dir)]) == 0
    serial, on_ray = bench_document(tmp_path / "serial"), bench_document(run_dir)
    assert on_ray == serial
    assert [(r["method"], r["samples_checked"], r["bit_exact"]) for r in on_ray["rows"]] == [
        ("dense", 4, True), ("unit-bitshift", 4, True)]
    assert _task_files(run_dir) == done | {"test-unit-bitshift", "measure-dense-avr-b1", "measure-unit-bitshift-avr-b0",
                                           "measure-unit-bitshift-avr-b1"}
    for name in ("dense-avr-b0", "dense-avr-b1", "unit-bitshift-avr-b0", "unit-bitshift-avr-b1"):
        # the firmware built on a Ray worker came back into the run folder, as a local run writes it
        assert (run_dir / "work" / name / "build-avr-inference" / "model.elf").is_file()
    assert (run_dir / "work" / "unit-bitshift-avr-b0" / "build-avr-layers").is_dir()
    assert not (run_dir / "work" / "unit-bitshift-avr-b1" / "build-avr-layers").exists()

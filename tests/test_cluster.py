"""The executor (unitprune.experiments.executor) on a local Ray instance: a sweep and an mcu-bench
write the same files as ``--workers 1``; a task whose worker process dies is run again and the run
still writes the same files; a run interrupted half-way resumes to the same files (and refuses a
folder made with other settings); a node without a toolchain is an error naming the node and the
Debian packages.

One Ray instance (2 CPUs) serves the module; it starts in a few seconds."""

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
    train(model, splits, TrainConfig(epochs=4, lr=5e-3, patience=None, progress=False, num_threads=1))
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


def test_ray_sweep_writes_the_serial_files(local_ray, digits, serial_run, tmp_path):
    model, splits = digits
    run_dir = tmp_path / "ray"
    results = run_sweep(model, splits, SweepConfig(**SMALL), dataset="digits", model_name="digits", run_dir=run_dir,
                        executor=ExecutorConfig(kind="ray", progress=False))
    assert results["executor"]["kind"] == "ray"
    assert _measured(run_dir) == serial_run
    assert _task_files(run_dir) == SMALL_TASKS
    assert {p.name for p in run_dir.iterdir()} >= {"results.json", "results.csv", "report.md", "tasks"}


def test_ray_task_whose_worker_dies_is_retried(local_ray, digits, serial_run, tmp_path, monkeypatch):
    model, splits = digits
    monkeypatch.setattr(sweep_tasks, "_method_task", functools.partial(_dies_once, str(tmp_path)))
    run_dir = tmp_path / "run"
    run_sweep(model, splits, SweepConfig(**SMALL), dataset="digits", model_name="digits", run_dir=run_dir,
              executor=ExecutorConfig(kind="ray", progress=False))
    killed = int((tmp_path / "died-fatrelu").read_text())
    assert killed != os.getpid()  # a Ray worker process died, not this one
    assert _measured(run_dir) == serial_run


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


def test_node_without_the_toolchain_names_node_and_packages(local_ray, tmp_path):
    """A Ray worker whose PATH has no avr-gcc (only bash, which Ray starts workers with): the task
    fails before running, naming the node and the packages."""
    import shutil

    from unitprune.experiments.executor import _ray_worker_task

    (tmp_path / "bash").symlink_to(shutil.which("bash"))
    remote = ray.remote(max_retries=0)(_ray_worker_task).options(
        runtime_env={"env_vars": {"PATH": str(tmp_path)}})
    ref = remote.remote([ray.put(2)], _double, (21,), 1, ("avr",), None, False)
    with pytest.raises(NodeSetupError) as error:
        try:
            ray.get(ref, timeout=120)
        except ray.exceptions.RayTaskError as exc:
            raise exc.cause from None
    message = str(error.value)
    assert socket.gethostname() in message and "gcc-avr" in message and "make mcu-tools" in message
    with open_runner(ExecutorConfig(kind="ray", progress=False), 2) as runner:  # same node, tools not needed
        assert runner.run([Task("a", _double, (21,))]) == {"a": 42}


def _bench_document(run_dir: Path) -> dict:
    """mcu.json without the wall times."""
    document = json.loads((run_dir / "mcu.json").read_text())
    document.pop("seconds")
    for detail in document["details"]:
        detail.pop("seconds")
    return document


def test_ray_mcu_bench_writes_the_serial_mcu_json(local_ray, tmp_path):
    from tests.mcu_tools import require_target
    from unitprune.cli import main

    require_target("avr")
    import torch

    weights = tmp_path / "weights.pt"
    torch.save(build_model("digits", seed=0).state_dict(), weights)
    common = ["mcu-bench", "--model", "digits", "--weights", str(weights), "--data", "digits", "--targets", "avr",
              "--methods", "dense,unit-bitshift", "--unit-percentiles", "20,60", "--samples", "4",
              "--layer-samples", "1", "--batch-samples", "2", "--no-progress"]
    assert main([*common, "--workers", "1", "--run-dir", str(tmp_path / "serial")]) == 0
    assert main([*common, "--executor", "ray", "--run-dir", str(tmp_path / "ray")]) == 0
    serial, on_ray = _bench_document(tmp_path / "serial"), _bench_document(tmp_path / "ray")
    assert on_ray == serial
    assert [(r["method"], r["samples_checked"], r["bit_exact"]) for r in on_ray["rows"]] == [
        ("dense", 4, True), ("unit-bitshift", 4, True)]
    for name in ("dense-avr-b0", "dense-avr-b1", "unit-bitshift-avr-b0", "unit-bitshift-avr-b1"):
        # the firmware built on the Ray worker came back into the run folder, as a local run writes it
        assert (tmp_path / "ray" / "work" / name / "build-avr-inference" / "model.elf").is_file()
    assert (tmp_path / "ray" / "work" / "dense-avr-b0" / "build-avr-layers").is_dir()
    assert not (tmp_path / "ray" / "work" / "dense-avr-b1" / "build-avr-layers").exists()

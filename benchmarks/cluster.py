"""Ray and the local pool against ``--workers 1``: ``mcu-bench`` speed-up with identical ``mcu.json``; Ray's overhead.

1. ``unitprune mcu-bench`` with ``--samples N`` (default 100), run in this process (its imports
   done first, and the command's start in a fresh process timed apart: ``command_start_seconds``,
   added to both sides in ``speedup_with_command_start``) with ``--workers 1``, with
   ``--executor ray`` on a 2-CPU Ray instance and (unless ``--no-pool``) with ``--workers 2`` (the
   local process pool), one after the other, ``--repeats`` times (side by side in this one run:
   the machine may be shared). Reports each wall time, the speed-ups and whether ``mcu.json`` is
   identical to the ``--workers 1`` run's (wall times left out), for each workload of
   ``--workloads``: ``demo``, the demo's MNIST checkpoint (``make demo`` first; methods dense and
   unit-bitshift), the model the issue's target names; ``digits``, the small digits model trained
   here (seeded; methods dense, zeroskip, unit-bitshift, fatrelu+unit).
   ``--cluster started`` (default): one instance is started first with ``ray start --head
   --num-cpus 2`` (timed separately, as a cluster is started once and then used) and each Ray run
   connects to it with ``--ray-address``; ``--cluster in-run``: each Ray run starts its own local
   instance (``ray.init`` inside the timed run).
2. Ray's overhead on the small sweep of tests/test_cluster.py: ``ray.init`` of a local 2-CPU
   instance, ``ray.put`` of the sweep's shared objects (and their pickled size), the round trip of
   an empty task, and the sweep's wall time in this process (``--workers 1``) and on Ray.

The load average of the machine before and after each timed run is recorded: other processes
take CPU from both sides. ``--max-load L`` waits (up to ``--max-wait`` s) before each timed run
until the 1-minute load average is below ``L``. Writes ``OUT_DIR/cluster.json`` and the table
``OUT_DIR/cluster.md`` (default ``benchmarks/results``; docs/cluster.md: ``docs/results``).

Usage (docs/results; about 8 minutes expected on a quiet 2-core machine, 21 minutes with ``--repeats 1``
at load 5-8)::

    make demo   # once: the demo's checkpoint
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/cluster.py --repeats 2 --max-load 1.2 --out-dir docs/results
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pickle
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def _quiet(max_load: float | None, max_wait: float) -> float:
    """Wait until the 1-minute load average is below ``max_load`` (at most ``max_wait`` s); the seconds waited."""
    started = time.perf_counter()
    while max_load is not None and os.getloadavg()[0] >= max_load and time.perf_counter() - started < max_wait:
        time.sleep(5)
    return round(time.perf_counter() - started, 1)


def _trained_digits(weights: Path):
    from unitprune.data import load_dataset
    from unitprune.models import build_model
    from unitprune.training import TrainConfig, train

    splits = load_dataset("digits", seed=0)
    model = build_model("digits", seed=0)
    train(model, splits, TrainConfig(epochs=4, lr=5e-3, patience=None, progress=False, num_threads=1))
    torch.save(model.state_dict(), weights)
    return model.eval(), splits


def _without_wall_times(value):
    """``value`` with every ``seconds`` key left out, at any depth."""
    if isinstance(value, dict):
        return {k: _without_wall_times(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list):
        return [_without_wall_times(v) for v in value]
    return value


def _bench_document(run_dir: Path) -> dict:
    return _without_wall_times(json.loads((run_dir / "mcu.json").read_text()))


DEMO_CHECKPOINT = Path("runs/demo/train/model.pt")


def _start_cluster(root: Path):
    """``ray start --head --num-cpus 2 --block`` on a free port, as its own process (stopped by
    terminating it: ``ray stop`` would stop every Ray instance of this user), with token
    authentication as docs/cluster.md says (``RAY_AUTH_MODE=token`` and a fresh ``RAY_AUTH_TOKEN``,
    set in this process's environment too, for the runs that connect). Returns (the process, its
    address, seconds until ``ray status`` answered)."""
    import secrets
    import socket
    import subprocess

    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16))

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ray_cli = str(Path(sys.executable).with_name("ray"))
    address = f"127.0.0.1:{port}"
    started = time.perf_counter()
    head = subprocess.Popen([ray_cli, "start", "--head", "--block", "--num-cpus", "2", "--port", str(port),
                             "--node-ip-address", "127.0.0.1", "--include-dashboard", "false",
                             "--temp-dir", str(root / "ray-tmp"), "--disable-usage-stats"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    while subprocess.run([ray_cli, "status", "--address", address], capture_output=True).returncode != 0:
        if head.poll() is not None or time.perf_counter() - started > 120:
            _stop_cluster(head)
            raise RuntimeError(f"`ray start --head` on port {port} did not come up")
        time.sleep(0.5)
    return head, address, round(time.perf_counter() - started, 2)


def _stop_cluster(head) -> None:
    """Stop the head started by :func:`_start_cluster` and every process it started (its session)."""
    import signal
    import subprocess

    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(head.pid, sig)
        except ProcessLookupError:
            return
        try:
            head.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        time.sleep(2)  # its children leave after it


#: What ``unitprune mcu-bench`` imports (as the command starts): imported here before the timed runs,
#: so that the first run does not pay for it, and timed in a fresh process as the command's start.
COMMAND_IMPORTS = ("unitprune.cli", "unitprune.cli.mcu_bench_commands", "unitprune.cli.commands",
                   "unitprune.experiments.mcu_bench.bench", "unitprune.experiments.mcu_bench.bench_tasks",
                   "unitprune.experiments.mcu_bench.bench_report", "unitprune.experiments.mcu_bench.fastest",
                   "unitprune.experiments.executor", "unitprune.data")


def _command_start_seconds(extra: tuple[str, ...] = ()) -> float:
    """Wall time of a fresh Python process importing :data:`COMMAND_IMPORTS` and ``extra`` (median
    of 3): what every run of the command pays before its work (``--executor ray`` imports ray too)."""
    import importlib
    import subprocess

    for name in COMMAND_IMPORTS + extra:
        importlib.import_module(name)
    code = "; ".join(f"import {name}" for name in COMMAND_IMPORTS + extra)
    times = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - started)
    return round(statistics.median(times), 2)


#: The methods each workload measures unless ``--methods`` says otherwise.
WORKLOAD_METHODS = {"demo": ("dense", "unit-bitshift"), "digits": ("dense", "zeroskip", "unit-bitshift", "fatrelu+unit")}


def mcu_bench(root: Path, weights: Path | None, args, methods, ray_address: str | None, start: dict) -> dict:
    from unitprune.cli import main

    model = ["--model", "digits", "--weights", str(weights), "--data", "digits"] if weights else []
    common = ["mcu-bench", *model, "--targets", ",".join(args.targets), "--methods", ",".join(methods),
              "--samples", str(args.samples), "--no-progress"]
    on_ray = ["--executor", "ray", "--workers", "2"] + (["--ray-address", ray_address] if ray_address else [])
    root.mkdir(parents=True, exist_ok=True)
    kinds = [("workers1", ["--workers", "1"]), ("ray", on_ray)] + ([] if args.no_pool else [("pool", ["--workers", "2"])])
    runs = []
    for repeat in range(args.repeats):
        pair = {}
        for name, extra in kinds:
            run_dir = root / f"{name}-{repeat}"
            waited = _quiet(args.max_load, args.max_wait)
            before = _load()
            started = time.perf_counter()
            status = main([*common, *extra, "--run-dir", str(run_dir)])
            seconds = round(time.perf_counter() - started, 2)
            details = json.loads((run_dir / "mcu.json").read_text())["details"] if status in (0, 1) else []
            pair[name] = {"seconds": seconds, "exit_status": status,
                          "simulator_task_seconds": round(sum(d["seconds"] for d in details), 1),
                          "load_before": before, "load_after": _load(), "waited_for_load_seconds": waited,
                          "run_dir": str(run_dir)}
        serial = _bench_document(root / f"workers1-{repeat}")
        pair["identical_mcu_json"] = serial == _bench_document(root / f"ray-{repeat}")
        pair["speedup"] = round(pair["workers1"]["seconds"] / pair["ray"]["seconds"], 3)
        pair["speedup_with_command_start"] = round((pair["workers1"]["seconds"] + start["workers1"])
                                                   / (pair["ray"]["seconds"] + start["ray"]), 3)
        if "pool" in pair:
            pair["pool_identical_mcu_json"] = serial == _bench_document(root / f"pool-{repeat}")
            pair["pool_speedup"] = round(pair["workers1"]["seconds"] / pair["pool"]["seconds"], 3)
        runs.append(pair)
        logging.info("repeat %d: %s", repeat, pair)
        for name, _ in kinds:  # compared: their firmware builds (tens of MB a run) are not needed
            shutil.rmtree(root / f"{name}-{repeat}" / "work", ignore_errors=True)
    rows = json.loads((root / "workers1-0" / "mcu.json").read_text())["rows"]
    shown = " ".join(common).replace(str(weights), "DIGITS.pt") if weights else " ".join(common)  # not the temporary path
    result = {"command": shown, "runs": runs,
              "speedup_median": statistics.median(p["speedup"] for p in runs),
              "command_start_seconds": start,
              "speedup_with_command_start_median": statistics.median(p["speedup_with_command_start"] for p in runs),
              "all_identical": all(p["identical_mcu_json"] for p in runs),
              "rows": len(rows), "all_bit_exact": all(r["bit_exact"] for r in rows)}
    if not args.no_pool:
        result["pool_speedup_median"] = statistics.median(p["pool_speedup"] for p in runs)
        result["pool_all_identical"] = all(p["pool_identical_mcu_json"] for p in runs)
    return result


def _noop(shared, value):
    return value


def ray_overhead(model, splits) -> dict:
    import ray

    from unitprune.experiments import SweepConfig, run_sweep
    from unitprune.experiments.executor import ExecutorConfig, Task, open_runner
    from unitprune.experiments.methods import SweepContext

    small = dict(unit_percentiles=(20, 60), fatrelu_percentiles=(50,), ttp_sparsities=(0.5, 0.8),
                 ttp_finetune_epochs=1, autotune_budgets=(1.0,), autotune_grid=(0, 40, 80), progress=False,
                 methods=("unpruned", "ttp", "fatrelu", "unit-exact", "ttp+unit", "unit-autotuned"))
    config = SweepConfig(**small)
    shared = SweepContext(model=model, splits=splits, config=config)
    result: dict = {"shared_pickled_bytes": len(pickle.dumps(shared)), "load_before": _load()}
    started = time.perf_counter()
    serial = run_sweep(model, splits, config, dataset="digits", model_name="digits")
    result["sweep_workers1_seconds"] = round(time.perf_counter() - started, 2)

    started = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    result["ray_init_seconds"] = round(time.perf_counter() - started, 2)
    try:
        started = time.perf_counter()
        ray.get(ray.put(shared))
        result["ray_put_shared_seconds"] = round(time.perf_counter() - started, 3)
        with open_runner(ExecutorConfig(kind="ray", progress=False), None) as runner:
            started = time.perf_counter()
            runner.run([Task("first", _noop, (0,))])
            result["first_empty_task_seconds"] = round(time.perf_counter() - started, 3)
            started = time.perf_counter()
            runner.run([Task(f"t{i}", _noop, (i,)) for i in range(20)])
            result["empty_task_round_trip_seconds"] = round((time.perf_counter() - started) / 20, 4)
        started = time.perf_counter()
        on_ray = run_sweep(model, splits, config, dataset="digits", model_name="digits",
                           executor=ExecutorConfig(kind="ray", progress=False))
        result["sweep_ray_seconds"] = round(time.perf_counter() - started, 2)
        drop = ("timing_s", "workers", "executor")
        result["sweep_identical"] = ({k: v for k, v in serial.items() if k not in drop}
                                     == {k: v for k, v in on_ray.items() if k not in drop})
        result["sweep_task_compute_seconds"] = {k: v for k, v in on_ray["timing_s"].items() if k != "total"}
    finally:
        ray.shutdown()
    result["load_after"] = _load()
    return result


def markdown(document: dict) -> str:
    """The tables of docs/results/cluster.md."""
    machine = document["machine"]
    lines = ["# mcu-bench on Ray and the local pool against `--workers 1`", "",
             f"Generated by `{document['generated_by']}` (benchmarks/cluster.py).", "",
             f"Machine: {machine['cpu_model']}, {document['cpu_count']} CPUs, Python {machine['python']}, "
             f"torch {machine['packages']['torch']}, Ray {document['ray_version']}; cluster: `{document['cluster']}`"
             + (f" (`ray start --head --num-cpus 2` took {document['ray_start_seconds']} s, not in the runs)"
                if "ray_start_seconds" in document else "") + ".",
             "Wall times (not exact: the 1-minute load average before each run is listed; 2.0 means two other "
             "busy processes on the 2 cores). Speed-up: the `--workers 1` run's wall time over the other's, "
             "in the same repeat.", ""]
    for workload, result in document["workloads"].items():
        start = result["command_start_seconds"]
        pool = "pool_speedup_median" in result
        lines += [f"## {workload}", "", f"`unitprune {result['command']}`: {result['rows']} rows, every one "
                  f"bit-exact: {'yes' if result['all_bit_exact'] else 'NO'}.", ""]
        head = ["repeat", "`--workers 1`", "Ray, 2 CPUs", "speed-up", "with the command's start"]
        head += ["`--workers 2` (local pool)", "speed-up"] if pool else []
        head += ["`mcu.json` identical", "load before (serial / Ray" + (" / pool)" if pool else ")"),
                 "simulator tasks (serial / Ray, summed)"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for index, run in enumerate(result["runs"]):
            cells = [str(index + 1), f"{run['workers1']['seconds']:.1f} s", f"{run['ray']['seconds']:.1f} s",
                     f"{run['speedup']:.2f}x", f"{run['speedup_with_command_start']:.2f}x"]
            if pool:
                cells += [f"{run['pool']['seconds']:.1f} s", f"{run['pool_speedup']:.2f}x"]
            identical = run["identical_mcu_json"] and run.get("pool_identical_mcu_json", True)
            loads = [run[k]["load_before"][0] for k in ("workers1", "ray", "pool") if k in run]
            cells += ["yes" if identical else "NO", " / ".join(f"{v:.1f}" for v in loads),
                      f"{run['workers1']['simulator_task_seconds']:.1f} / {run['ray']['simulator_task_seconds']:.1f} s"]
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", f"Median speed-up: Ray {result['speedup_median']:.2f}x ({result['speedup_with_command_start_median']:.2f}x "
                  f"with a fresh process's start, {start['workers1']} s serial and {start['ray']} s with Ray's client, "
                  "added to both sides)" + (f", local pool {result['pool_speedup_median']:.2f}x" if pool else "") + ".", ""]
    overhead = document.get("ray_overhead_small_sweep")
    if overhead:
        lines += ["## Ray's overhead, the small sweep of tests/test_cluster.py", "",
                  f"`ray.init` of an in-process 2-CPU instance {overhead['ray_init_seconds']} s; `ray.put` of the shared "
                  f"objects ({overhead['shared_pickled_bytes'] / 1e3:.0f} KB pickled) {overhead['ray_put_shared_seconds']} s; "
                  f"the first (empty) task {overhead['first_empty_task_seconds']} s (a worker process starting); then "
                  f"{overhead['empty_task_round_trip_seconds']} s per empty task (20 at once). The sweep: "
                  f"{overhead['sweep_ray_seconds']} s on Ray, {overhead['sweep_workers1_seconds']} s with `--workers 1`; "
                  f"identical results: {'yes' if overhead['sweep_identical'] else 'NO'}. Load before: "
                  f"{overhead['load_before'][0]:.1f}.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--targets", nargs="+", default=["avr", "msp430"])
    parser.add_argument("--methods", nargs="+", help="for every workload (default: WORKLOAD_METHODS)")
    parser.add_argument("--workloads", nargs="+", choices=("demo", "digits"), default=["demo", "digits"],
                        help=f"demo: the demo's MNIST checkpoint ({DEMO_CHECKPOINT}); digits: trained here")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each executor, side by side")
    parser.add_argument("--no-pool", action="store_true", help="leave out the --workers 2 (local pool) runs")
    parser.add_argument("--out-dir", default="benchmarks/results", help="writes cluster.json and cluster.md here")
    parser.add_argument("--keep", metavar="DIR", help="keep the run folders here (default: a temporary folder)")
    parser.add_argument("--cluster", choices=("in-run", "started"), default="started",
                        help="started: `ray start --head` once first; in-run: each Ray run starts a local instance")
    parser.add_argument("--skip-overhead", action="store_true", help="leave out the small-sweep overhead part")
    parser.add_argument("--max-load", type=float, help="before each timed run, wait until the 1-minute load average "
                                                       "is below this (the machine is shared)")
    parser.add_argument("--max-wait", type=float, default=600, help="seconds to wait for --max-load at most")
    args = parser.parse_args()
    if "demo" in args.workloads and not DEMO_CHECKPOINT.is_file():
        parser.error(f"--workloads demo needs the demo's checkpoint {DEMO_CHECKPOINT}: run `make demo` first")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="unitprune-cluster-"))
    root.mkdir(parents=True, exist_ok=True)
    from importlib.metadata import version

    from results_io import write_results
    from unitprune.experiments.provenance import environment_record

    model, splits = _trained_digits(root / "digits.pt")
    document = {"generated_by": "OMP_NUM_THREADS=1 python benchmarks/cluster.py " + " ".join(sys.argv[1:]),
                "machine": environment_record(), "cpu_count": os.cpu_count(), "ray_version": version("ray"),  # not imported: `ray start` sets its token first
                "cluster": args.cluster, "samples": args.samples, "targets": args.targets,
                "note": "wall times on a machine shared with other processes; load averages recorded",
                "workloads": {}}
    head, ray_address = None, None
    if args.cluster == "started":
        head, ray_address, document["ray_start_seconds"] = _start_cluster(root)
    try:
        start = {"workers1": _command_start_seconds(), "ray": _command_start_seconds(("ray",))}
        for workload in args.workloads:
            methods = args.methods or WORKLOAD_METHODS[workload]
            weights = root / "digits.pt" if workload == "digits" else None
            document["workloads"][workload] = mcu_bench(root / workload, weights, args, methods, ray_address, start)
    finally:
        if head is not None:
            _stop_cluster(head)
    if not args.skip_overhead:
        document["ray_overhead_small_sweep"] = ray_overhead(model, splits)
    for path in write_results(Path(args.out_dir), "cluster", document, markdown(document)):
        print(f"wrote {path}")
    print(markdown(document))
    if not args.keep:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()

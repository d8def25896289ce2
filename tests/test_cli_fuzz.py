"""Fuzz the command line (issue 18): random flags, values and file contents for every subcommand.

Every run goes through ``unitprune.cli.main(argv)`` in-process, in a fresh temporary folder that
holds a user's files (a whole model, a state_dict, a data file, garbage, a TOML config with random
content, a results.json, a run folder with a user's file). Each run must

* exit 0 or 2 (nothing else: 1 would be a bug reported by the error boundary);
* on exit 2 print exactly one ``unitprune: error: ...`` line and no traceback, and change nothing;
* on exit 0 change only files under the paths it was asked to write (``--output``,
  ``--save-state-dict``, ``--run-dir``, ``--out-dir``, their defaults, ``data``'s ``--data-root``).

The heavy engines behind the commands (training, sweeps, the shrink methods, the host build of an
export, speech synthesis, the MCU benchmark) are replaced by stubs that write a file into the
output folder: this test is about the command line around them (options, inputs, the run-folder
guard, the error boundary); the engines have their own tests. ``calibrate``, ``report`` and the
validation and loading code of every command run for real. The tally is printed
(``pytest -s tests/test_cli_fuzz.py``).
"""

from __future__ import annotations

import collections
import contextlib
import io
import os
import tempfile
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unitprune.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CASES = 330

# ---------------------------------------------------------------------------------------------
# The user's folder
# ---------------------------------------------------------------------------------------------

_MODEL = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(108, 4)).eval()
_GEN = torch.Generator().manual_seed(0)
_DATA = {f"{x}_{split}": t for split in ("train", "val", "test") for x, t in
         (("x", torch.rand(12, 1, 8, 8, generator=_GEN)), ("y", torch.randint(0, 4, (12,), generator=_GEN)))}


def _populate(folder: Path, toml: str, garbage: bytes, results: str) -> None:
    torch.save(_MODEL, folder / "model.pt")
    from unitprune.models import build_model

    torch.save(build_model("digits", seed=0).state_dict(), folder / "state.pt")
    torch.save(_DATA, folder / "data.pt")
    np.savez(folder / "data.npz", **{k: v.numpy() for k, v in _DATA.items() if not k.endswith("train")})
    (folder / "garbage.pt").write_bytes(garbage)
    (folder / "config.toml").write_text(toml)
    (folder / "a_file").write_text("not a folder")
    run = folder / "run"
    run.mkdir()
    (run / "results.json").write_text(results)
    (run / "notes.txt").write_text("the user's notes")


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# ---------------------------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------------------------

FILES = ["model.pt", "state.pt", "data.pt", "data.npz", "garbage.pt", "missing.pt", "config.toml", "a_file",
         "a_file/x", "run", "run/results.json", "out", "out/sub", ".", ""]
WORDS = ["digits", "mnist", "cifar10", "mnist-wide", "exact", "bitshift", "bintree", "bitmask", "unit", "dense",
         "zeroskip", "table", "host", "avr", "msp430", "8KB", "-1KB", "256k", "1.5M", "plane", "min", "2x2", "0x3",
         "conv=20", "0=30", "x=", "ttp", "differentiable", "kws", "widar", "synth-speech", "atmega2560"]
NUMBERS = ["0", "1", "2", "3", "-1", "-5", "0.5", "20", "100", "101", "1e9", "nan", "inf", "-inf", "1e-9"]

VALUE_FLAGS = {
    "demo": ["--task", "--data-root", "--run-dir", "--epochs", "--seed", "--methods", "--unit-percentiles",
             "--threads", "--workers", "--budget", "--calibration-samples", "--combo-approx"],
    "train": ["--data", "--data-root", "--model", "--run-dir", "--epochs", "--lr", "--batch-size", "--patience",
              "--threads", "--seed"],
    "calibrate": ["--model", "--weights", "--model-file", "--data", "--data-root", "--seed", "--approx",
                  "--percentile", "--per-layer", "--group-size", "--output", "--save-state-dict", "--threads"],
    "sweep": ["--model", "--weights", "--model-file", "--data", "--run-dir", "--methods", "--unit-percentiles",
              "--ttp-sparsities", "--threads", "--workers", "--eval-batch-size", "--budget"],
    "report": [],
    "shrink": ["--model", "--weights", "--data", "--preset", "--sram", "--flash", "--macs", "--target",
               "--conv-block-rows", "--epochs", "--prune-epochs", "--methods", "--measure", "--measure-samples",
               "--sweep-sram", "--start", "--regrow", "--seed", "--threads", "--run-dir",
               "--feature-pool"],
    "data": ["--data-root", "--seed", "--repeats", "--synth-workers", "--voices"],
    "domain-shift": ["--task", "--run-dir", "--data-root", "--epochs", "--budget", "--val-fraction", "--workers",
                     "--threads", "--unit-percentiles"],
    "export": ["--model", "--weights", "--model-file", "--data", "--percentile", "--approx", "--variant",
               "--linear-quotient", "--target", "--conv-block-rows", "--samples", "--out-dir", "--threads"],
    "mcu-bench": ["--model", "--weights", "--model-file", "--data", "--targets", "--methods", "--samples",
                  "--layer-samples", "--budget", "--unit-percentiles", "--run-dir", "--threads"],
}
BOOL_FLAGS = {
    "demo": ["--retrain", "--overwrite", "--no-fold-input"], "train": ["--overwrite"],
    "calibrate": ["--trust-model-file", "--overwrite", "--fold-input"],
    "sweep": ["--trust-model-file", "--overwrite", "--fold-input"], "report": [],
    "shrink": ["--overwrite", "--unit"], "data": [], "domain-shift": ["--overwrite", "--retrain", "--no-augment"],
    "export": ["--trust-model-file", "--overwrite"], "mcu-bench": ["--trust-model-file", "--overwrite"],
}
#: A valid start for each command (drawn half of the time), so runs get past the first check.
BASES = {
    "demo": ["demo", "--run-dir", "out"],
    "train": ["train", "--data", "digits", "--run-dir", "out"],
    "calibrate": ["calibrate", "--model-file", "model.pt", "--trust-model-file", "--data", "data.pt"],
    "sweep": ["sweep", "--model-file", "model.pt", "--trust-model-file", "--data", "data.pt", "--run-dir", "out"],
    "report": ["report", "run"],
    "shrink": ["shrink", "--model", "digits", "--data", "digits", "--preset", "atmega2560", "--run-dir", "out"],
    "data": ["data", "synth-speech", "--data-root", "out"],
    "domain-shift": ["domain-shift", "--run-dir", "out", "--data-root", "out/speech"],
    "export": ["export", "--model-file", "model.pt", "--trust-model-file", "--data", "data.pt", "--out-dir", "out"],
    "mcu-bench": ["mcu-bench", "--model-file", "model.pt", "--trust-model-file", "--data", "data.pt",
                  "--targets", "avr", "--run-dir", "out"],
}
#: Where each command may write: option -> default (None: only when given).
OUTPUTS = {
    "demo": {"--run-dir": "runs/demo"}, "train": {"--run-dir": "runs/train-digits"},
    "calibrate": {"--output": None, "--save-state-dict": None}, "sweep": {"--run-dir": "runs/sweep"},
    "report": {}, "shrink": {"--run-dir": "runs/shrink"}, "data": {"--data-root": "data/synth_speech"},
    "domain-shift": {"--run-dir": "runs/domain_shift", "--data-root": "data/synth_speech_domain"},
    "export": {"--out-dir": "runs/export"}, "mcu-bench": {"--run-dir": "runs/mcu-bench"},
}

# random text stays a relative path inside the temporary folder (no "/x", "~", "..": a stub or a
# command must never write outside it)
_relative_text = st.text(max_size=6).filter(lambda t: not t.startswith(("/", "~")) and ".." not in t)
value = st.one_of(st.sampled_from(FILES), st.sampled_from(WORDS), st.sampled_from(NUMBERS),
                  st.integers(-3, 300).map(str), _relative_text)
toml_text = st.one_of(
    st.just(""), st.text(max_size=30),
    st.builds(lambda k, v: f"{k} = {v}\n", st.sampled_from(["threads", "percentile", "approx", "epochs", "run_dir",
                                                           "overwrite", "methods", "nonsense", "calibrate"]),
              st.sampled_from(["0", "2", "1.5", "\"x\"", "true", "[1, 2]", "[]", "{a = 1}", "nan"])))
results_text = st.one_of(st.just("{}"), st.text(max_size=20),
                         st.just('{"model": "m", "dataset": "d", "methods": {}}'),
                         st.just('{"model": "m", "dataset": "d", "methods": {"ttp": [{"x": 1}]}}'))


@st.composite
def argv_for(draw, command: str):
    argv = list(BASES[command]) if draw(st.booleans()) else [BASES[command][0]]
    if command == "data" and len(argv) == 1:
        argv.append(draw(st.sampled_from(["synth-speech", "other"])))
    if command == "report" and len(argv) == 1 and draw(st.booleans()):
        argv.append(draw(value))
    flags = VALUE_FLAGS[command] + ["--config"]
    for flag in draw(st.lists(st.sampled_from(flags), max_size=4)):
        argv += [flag, draw(value) if flag != "--config" else draw(st.sampled_from(["config.toml", "missing.toml"]))]
    for flag in draw(st.lists(st.sampled_from(BOOL_FLAGS[command] + ["-v", "--no-progress"]), max_size=2)):
        argv.append(flag)
    if draw(st.integers(0, 9)) == 0:  # a stray token
        argv.insert(draw(st.integers(1, len(argv))), draw(value))
    return argv


def _allowed_outputs(command: str, argv: list[str]) -> list[str]:
    allowed = []
    for option, default in OUTPUTS[command].items():
        given = [argv[i + 1] for i, token in enumerate(argv[:-1]) if token == option]
        given += [token.split("=", 1)[1] for token in argv if token.startswith(option + "=")]
        allowed += given or ([default] if default else [])
    return [os.path.normpath(path) for path in allowed if path]


def _inside(path: str, roots: list[str]) -> bool:
    return any(root == "." or path == root or path.startswith(root + os.sep) for root in roots)


# ---------------------------------------------------------------------------------------------
# Stubs for the heavy engines (each writes a file into its output folder)
# ---------------------------------------------------------------------------------------------

def _import_everything() -> None:
    """Import every unitprune module before stubbing: a module first imported while a stub is in
    place would keep the stub (``from ..training import train``) after the test."""
    import importlib
    import pkgutil

    import unitprune

    for info in pkgutil.walk_packages(unitprune.__path__, "unitprune."):
        if info.name.endswith("__main__"):
            continue
        try:
            importlib.import_module(info.name)
        except ImportError:  # the C kernels' shared library (ctypes, not a module), optional extras
            continue


def _stub_engines(monkeypatch) -> None:
    _import_everything()
    import unitprune.cli.commands as commands
    import unitprune.cli.kws_commands as kws_commands
    import unitprune.data.synth_speech as synth_speech
    import unitprune.experiments as experiments
    import unitprune.experiments.domain_shift as domain_shift
    import unitprune.experiments.mcu_bench.bench as bench
    import unitprune.experiments.shrink_study.shrink_tasks as shrink_tasks
    import unitprune.experiments.shrink_study.shrink_report as shrink_report
    import unitprune.mcu.export as export
    import unitprune.mcu.host_runner as host_runner
    import unitprune.mcu.reference as reference
    import unitprune.training as training

    def mark(folder, name="stub.txt"):
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / name).write_text("written by a stub")

    def run_demo(config, *args, **kwargs):
        mark(config.run_dir)
        return {"training": {"cached": True}}

    def kws_demo(args, sweep, workers, print_results):
        mark(args.run_dir or "runs/kws")
        return 0

    def train(model, splits, config, run_dir=None):
        if run_dir is not None:
            mark(run_dir, "model.pt")
        return types.SimpleNamespace(best_val_accuracy=0.5, best_epoch=1, test_accuracy=0.5, wall_time_s=0.0)

    def run_sweep(model, splits, config, run_dir=None, **kwargs):
        if run_dir is not None:
            mark(run_dir, "results.json")
        return {}

    def run_shrink_tasks(config, splits, init, base_state, measure_config, run_dir, executor, settings):
        fields = {"accuracy": 0.5, "flash_bytes": 1, "sram_bytes": 1, "macs": 1, "train_seconds": 0.0,
                  "fits_budget": True}
        return {"base": {"state": base_state or init.state_dict(), "seconds": 0.0}, "base_measured": {},
                "methods": {name: {"fields": dict(fields), "info": {}, "model": init} for name in config.methods},
                "sweep": []}

    def synth(root, config, progress=True):
        mark(root, "manifest.json")
        return types.SimpleNamespace(manifest={"counts": {"clips": 0, "speakers": 0, "per_class": {}},
                                               "espeak_ng_version": "stub", "generation_seconds": 0, "workers": 1})

    def run_domain(task, config, *args, **kwargs):
        mark(config.run_dir, "domain_shift.json")
        return {"rows": []}

    def run_bench(model, splits, config, run_dir=None, **kwargs):
        mark(run_dir, "mcu.md")
        return {"seconds": 0.0, "rows": []}

    exported = {}
    real_export_c = export.export_c

    def export_c(qmodel, out_dir, **kwargs):  # the real export; remembers the model for run_exported
        exported["qmodel"] = qmodel
        return real_export_c(qmodel, out_dir, **kwargs)

    def run_exported(out_dir, x):  # instead of building and running the C: the integer reference
        outputs, counts = reference.run_reference(exported["qmodel"], x)
        return outputs.reshape(len(x), -1), counts

    monkeypatch.setattr(experiments, "run_demo", run_demo)
    monkeypatch.setattr(experiments, "run_sweep", run_sweep)
    monkeypatch.setattr(commands, "_print_results", lambda results, run_dir: print("results"))
    monkeypatch.setattr(kws_commands, "cmd_kws_demo", kws_demo)
    monkeypatch.setattr(training, "train", train)
    monkeypatch.setattr(shrink_tasks, "run_shrink_tasks", run_shrink_tasks)
    monkeypatch.setattr(shrink_report, "write_report", lambda run_dir, document, details: mark(run_dir, "report.md"))
    monkeypatch.setattr(synth_speech, "generate_synth_speech", synth)
    monkeypatch.setattr(domain_shift, "run_domain_shift", run_domain)
    monkeypatch.setattr(bench, "run_bench", run_bench)
    monkeypatch.setattr(export, "export_c", export_c)
    monkeypatch.setattr(host_runner, "run_exported", run_exported)


# ---------------------------------------------------------------------------------------------
# The test
# ---------------------------------------------------------------------------------------------

def test_cli_fuzz_exits_0_or_2_with_one_line_and_touches_only_its_outputs(monkeypatch):
    _stub_engines(monkeypatch)
    tally = collections.Counter()
    failures = []
    start = os.getcwd()

    @settings(max_examples=CASES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(command=st.sampled_from(sorted(BASES)), data=st.data(), toml=toml_text,
           garbage=st.binary(max_size=64), results=results_text)
    def one_case(command, data, toml, garbage, results):
        argv = data.draw(argv_for(command), label="argv")
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            _populate(folder, toml, garbage, results)
            before = _snapshot(folder)
            out, err = io.StringIO(), io.StringIO()
            os.chdir(folder)
            try:
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                    try:
                        code = main(argv)
                    except SystemExit as exc:  # must not happen: main returns a status
                        code = f"SystemExit({exc.code})"
            finally:
                os.chdir(start)
            after = _snapshot(folder)
        changed = sorted(name for name in set(before) | set(after) if before.get(name) != after.get(name))
        errors = [line for line in err.getvalue().splitlines() if line.startswith("unitprune: ")]
        problem = None
        if code not in (0, 2):
            problem = f"exit {code}"
        elif "Traceback" in err.getvalue():
            problem = "traceback"
        elif code == 2 and (len(errors) != 1 or not errors[0].startswith("unitprune: error: ")):
            problem = f"error lines {errors}"
        elif code == 2 and changed:
            problem = f"refused run changed {changed}"
        elif code == 0 and [c for c in changed if not _inside(os.path.normpath(c), _allowed_outputs(command, argv))]:
            problem = f"changed files it was not asked to write: {changed}"
        tally["cases"] += 1
        tally[f"exit {code}" if code in (0, 2) else "other"] += 1
        tally[f"{command}"] += 1
        if problem:
            failures.append((argv, problem, err.getvalue()[-500:]))

    one_case()
    print(f"\nCLI fuzz tally: {dict(tally)}")
    distinct = {problem.split(":")[0] + err[-200:]: (argv, problem, err) for argv, problem, err in failures}
    assert not failures, list(distinct.values())[:8]
    assert tally["other"] == 0 and tally["cases"] == CASES
    assert tally["exit 0"] > 0 and tally["exit 2"] > 0

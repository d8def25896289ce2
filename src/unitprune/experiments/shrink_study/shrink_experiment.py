"""The ``unitprune shrink`` experiment: base training, every method at the same budget, the run folder.

``run_shrink_experiment(config)`` trains the base model from a seeded initialisation for
``config.epochs`` epochs (timed), runs the differentiable method for the same epochs (timed side
by side in this process: the overhead ratio), the baselines at the same budget (Torch-Pruning
magnitude and Taylor and TTP on the trained base, structured DPF), optionally UnIT on every
result, optionally the same methods at more SRAM budgets (for the accuracy-vs-resource plot), and
writes ``RUN_DIR``. The two methods that prune while training (differentiable, dpf) start from
the trained base (``config.start == "base"``, the default: every method then gets the base's
training plus ``epochs`` more) or from the base's initialisation (``"init"``).

* ``shrink.json``: ``budget`` {sram_bytes, flash_bytes, macs}; ``execution`` (the plan SRAM is
  counted for: ``layers`` or ``fused``, the budget's); ``base`` {accuracy, flash_bytes,
  sram_bytes, macs, train_seconds}; ``methods`` {name: the same fields + fits_budget}. Accuracy is
  test accuracy in [0, 1]; ``train_seconds`` is the wall time of that method's own training (the
  baselines that start from the trained base do not include the base's training).
* ``details.json``: the differentiable method's history, each method's details (channels, steps),
  UnIT on top, the sweep points, the machine and versions.
* ``base.pt`` (the trained base's state_dict) and ``METHOD.pt`` (each result, the whole module:
  its shapes differ from the base's; load with ``torch.load(..., weights_only=False)``).
* ``report.md``, ``training.png`` (resources and accuracy over the epochs), ``accuracy_vs_resources.png``.

With ``measure`` (CLI ``--measure avr msp430``) every result, and the base, is also quantized,
exported, built and run on the simulated MCUs (:mod:`unitprune.experiments.shrink_study.shrink_measure`): its shrink.json
entry gets a ``measured`` object (per target the firmware's flash and SRAM, cycles and latency
with the dense, zero-skipping and UnIT kernels, bit-exactness; or ``exported: false`` and why),
the exports and builds go to ``RUN_DIR/mcu/NAME``. ``measure`` implies ``unit`` (the UnIT firmware
runs at the percentile UnIT-on-top chose). :func:`add_measurements` does the same for the models
of a finished run folder.
"""

from __future__ import annotations

import copy
import json
import logging
import platform
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from ...run_folder import check_output_folder
from ...training import evaluate
from ..inputs import load_weights
from .structured_baselines import (BaselineResult, dpf_to_budget, tp_prune_to_budget, ttp_result,
                                   uniform_from_scratch, unit_on_top)
from ...shrink.budget import MCUBudget
from ...shrink.method import ShrinkConfig, shrink
from ...shrink.resources import RESOURCE_NAMES, trace_resources

__all__ = ["ExperimentConfig", "METHODS", "add_measurements", "run_shrink_experiment"]

logger = logging.getLogger(__name__)

#: Method names in shrink.json.
METHODS = ("differentiable", "tp-magnitude", "tp-taylor", "tp-bn-scale", "dpf", "uniform", "ttp")


@dataclass
class ExperimentConfig:
    """Settings of :func:`run_shrink_experiment` (the CLI options)."""

    model: str = "mnist-wide"
    data: str = "mnist"
    data_root: str | None = None
    feature_pool: tuple[int, int] | None = None  # speech sets: log-mel block average (unitprune.data.audio)
    weights: str | None = None
    budget: MCUBudget = field(default_factory=lambda: MCUBudget(sram_bytes=8192, flash_bytes=262144))
    epochs: int = 8
    prune_epochs: int | None = None
    methods: tuple[str, ...] = METHODS
    unit: bool = False
    sweep_sram: tuple[int, ...] = ()
    seed: int = 0
    threads: int = 1
    progress: bool = True
    start: str = "base"  # where differentiable and dpf start: "base" (the trained base) or "init"
    regrow: float = 0.05
    label_smoothing: float = ShrinkConfig.label_smoothing  # the training loss of every method (not TTP's)
    run_dir: str = "runs/shrink"
    overwrite: bool = False  # replace the files of a non-empty run_dir (unitprune.run_folder's rule)
    measure: tuple[str, ...] = ()
    measure_samples: int = 5


def _fields(model, splits, resources, seconds) -> dict[str, Any]:
    return {"accuracy": evaluate(model, splits.test), "flash_bytes": resources.flash_bytes,
            "sram_bytes": resources.sram_bytes, "macs": resources.macs, "train_seconds": round(seconds, 3)}


def _run_method(name: str, config: ExperimentConfig, budget: MCUBudget, init, base, splits) -> tuple[Any, dict]:
    """Run one method at ``budget``; return (model, shrink.json fields, details)."""
    prune_epochs = config.prune_epochs
    start = base if config.start == "base" else init  # the methods that prune while training
    if name == "differentiable":
        result = shrink(start, splits.train, splits.val, budget,
                        ShrinkConfig(epochs=config.epochs, prune_epochs=prune_epochs, regrow=config.regrow,
                                     seed=config.seed, num_threads=config.threads, progress=config.progress,
                                     label_smoothing=config.label_smoothing))
        fields = _fields(result.model, splits, result.after, result.train_seconds)
        fields["fits_budget"] = result.fits
        details = {"history": result.history, "channels": result.channels}
        return result.model, fields, details
    common = dict(epochs=config.epochs, seed=config.seed)
    loss = dict(label_smoothing=config.label_smoothing)  # the differentiable method's loss, for a fair comparison
    if name.startswith("tp-"):
        result: BaselineResult = tp_prune_to_budget(base, splits.train, splits.val, budget,
                                                    importance=name[3:], prune_epochs=prune_epochs, **common, **loss)
    elif name == "uniform":  # from scratch, for the base's training plus the pruning run's epochs
        result = uniform_from_scratch(init, splits, budget, epochs=2 * config.epochs, seed=config.seed, **loss)
    elif name == "dpf":
        result = dpf_to_budget(start, splits.train, splits.val, budget, prune_epochs=prune_epochs, **common, **loss)
    elif name == "ttp":
        result = ttp_result(base, splits, budget, **common)
    else:
        raise ValueError(f"unknown method {name!r}; valid: {', '.join(METHODS)}")
    fields = _fields(result.model, splits, result.resources, result.train_seconds)
    fields["fits_budget"] = result.fits
    return result.model, fields, result.details


def run_shrink_experiment(config: ExperimentConfig, executor=None) -> dict[str, Any]:
    """Run everything (module docstring) and write ``config.run_dir``; returns the shrink.json document.

    The work runs as tasks (:mod:`unitprune.experiments.shrink_study.shrink_tasks`: the base training, each
    method, each measurement, each extra budget) through ``executor``
    (:class:`unitprune.experiments.executor.ExecutorConfig`; default: in this process); with
    ``executor.resume`` an interrupted run in ``run_dir`` continues from its finished tasks."""
    from ...data import load_dataset
    from ..executor import ExecutorConfig
    from .shrink_tasks import run_shrink_tasks
    from ...models import build_model

    # Everything that can be refused is checked before any training or any write (no empty run folder,
    # no base.pt left behind by a run that was going to fail); --resume continues a non-empty folder.
    if config.start not in ("base", "init"):
        raise ValueError(f"ExperimentConfig.start must be 'base' or 'init', got {config.start!r}")
    unknown = [name for name in config.methods if name not in METHODS]
    if unknown:
        raise ValueError(f"unknown method {unknown[0]!r}; valid: {', '.join(METHODS)}")
    ShrinkConfig(epochs=config.epochs, prune_epochs=config.prune_epochs, regrow=config.regrow)
    executor = replace(executor or ExecutorConfig(progress=config.progress), threads=config.threads)
    run_dir = check_output_folder(config.run_dir, overwrite=config.overwrite or executor.resume, option="--run-dir")
    measure_config = _measure_config(config.measure, config.measure_samples,  # bad targets/tools fail first
                                     config.budget.conv_block_rows, config.budget.execution)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        data_options = {"feature_pool": config.feature_pool} if config.feature_pool else {}
        splits = load_dataset(config.data, config.data_root, seed=config.seed, **data_options)
        init = build_model(config.model, seed=config.seed, num_classes=splits.num_classes)
        input_shape = tuple(splits.input_shape)
        if tuple(getattr(init, "input_shape", input_shape)) != input_shape:
            raise ValueError(f"model {config.model!r} expects inputs {tuple(init.input_shape)}, dataset {config.data!r} "
                             f"gives {input_shape} (for ds-cnn on 80x124 log-mel: --feature-pool 2x2)")
        trace_resources(init, input_shape).exact(**config.budget.resource_options())  # e.g. a model fused cannot stream
        base_state = (load_weights(copy.deepcopy(init), config.weights, config.model).state_dict()
                      if config.weights else None)
        run_dir.mkdir(parents=True, exist_ok=True)  # every check passed
        settings = {"command": "shrink",
                    "config": _jsonable({k: v for k, v in asdict(config).items() if k not in ("progress", "run_dir", "overwrite")})}
        done = run_shrink_tasks(config, splits, init, base_state, measure_config, run_dir, executor, settings)
        base = copy.deepcopy(init)
        base.load_state_dict(done["base"]["state"])
        base_resources = trace_resources(base, input_shape).exact(**config.budget.resource_options())
        document = {
            "budget": {k: getattr(config.budget, k) for k in RESOURCE_NAMES},
            "execution": config.budget.execution,
            "base": _fields(base, splits, base_resources, done["base"]["seconds"]),
            "methods": {},
        }
        details: dict[str, Any] = {"config": _jsonable(asdict(config)), "machine": _machine(), "methods": {},
                                   "unit": {}, "sweep": []}
        if not config.weights:
            torch.save(base.state_dict(), run_dir / "base.pt")
        if measure_config:
            document["base"]["measured"] = done["base_measured"]
        for name in config.methods:
            result = done["methods"][name]
            fields = result["fields"]
            document["methods"][name] = fields
            details["methods"][name] = result["info"]
            torch.save(result["model"], run_dir / f"{name}.pt")  # the whole (smaller) module
            if "unit" in result:
                details["unit"][name] = result["unit"]
            details["sweep"].append({"method": name, **{k: v for k, v in fields.items() if k != "measured"},
                                     "budget_sram_bytes": config.budget.sram_bytes})
        for sram, name, fields in done["sweep"]:
            details["sweep"].append({"method": name, **fields, "budget_sram_bytes": sram})
    finally:
        torch.set_num_threads(previous_threads)
    _write(run_dir, document, details)
    from .shrink_report import write_report

    write_report(run_dir, document, details)
    return document


def _measure_config(measure_targets, samples: int, conv_block_rows=None, execution: str = "layers"):
    """The :class:`~.measure.MeasureConfig` of ``--measure`` (None without targets); checks the tools.
    ``conv_block_rows`` and ``execution``: the budget's conv accumulator rule and plan, so the
    firmware is the model counted (``layers``: fused only when layer by layer does not fit the chip)."""
    if not measure_targets:
        return None
    from ...mcu import targets
    from .shrink_measure import MeasureConfig

    config = MeasureConfig(targets=tuple(measure_targets), samples=samples, conv_block_rows=conv_block_rows,
                           execution="fused" if execution == "fused" else "auto")
    for target in config.targets:
        targets.check_tools(target)  # ToolMissing names the Debian packages, before any training
    return config


def _measure(model, splits, run_dir: Path, name: str, percentile, measure_config) -> dict[str, Any]:
    from .shrink_measure import measure_model

    logger.info("measuring %s on %s", name, ", ".join(measure_config.targets))
    return measure_model(model, splits, run_dir / "mcu" / name, unit_percentile=percentile, config=measure_config)


def add_measurements(run_dir, measure_targets=("avr", "msp430"), samples: int = 5) -> dict[str, Any]:
    """Add ``measured`` to the base and every method of a finished run folder (module docstring).

    Loads ``base.pt`` and ``METHOD.pt``, the data split of the run's seed and the UnIT percentiles
    of ``details.json`` (a run without ``--unit`` gets them computed now, as ``--unit`` would);
    entries that already hold ``measured`` are kept. Rewrites shrink.json (the existing keys
    unchanged), details.json and report.md; returns the document.
    """
    from ...data import load_dataset
    from ...models import build_model

    run_dir = Path(run_dir)
    if not (run_dir / "shrink.json").is_file():
        raise FileNotFoundError(f"{run_dir} holds no shrink.json (not a finished unitprune shrink run)")
    document = json.loads((run_dir / "shrink.json").read_text())
    details = json.loads((run_dir / "details.json").read_text())
    settings = details["config"]
    measure_config = _measure_config(measure_targets, samples, settings["budget"].get("conv_block_rows"),
                                     settings["budget"].get("execution", "layers"))
    splits = load_dataset(settings["data"], settings["data_root"], seed=settings["seed"])
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(int(settings.get("threads", 1)))
    try:
        if "measured" not in document["base"]:
            base = build_model(settings["model"], seed=settings["seed"], num_classes=splits.num_classes)
            weights = settings["weights"] or run_dir / "base.pt"
            base.load_state_dict(torch.load(weights, weights_only=True))
            document["base"]["measured"] = _measure(base.eval(), splits, run_dir, "base", None, measure_config)
            _write(run_dir, document, details)
        for name, fields in document["methods"].items():
            if "measured" in fields:
                continue
            model = torch.load(run_dir / f"{name}.pt", weights_only=False).eval()
            if name not in details["unit"]:
                details["unit"][name] = unit_on_top(model, splits)
            fields["measured"] = _measure(model, splits, run_dir, name, details["unit"][name]["percentile"],
                                          measure_config)
            _write(run_dir, document, details)
    finally:
        torch.set_num_threads(previous_threads)
    from .shrink_report import write_report

    write_report(run_dir, document, details)
    return document


def _write(run_dir: Path, document: dict, details: dict) -> None:
    (run_dir / "shrink.json").write_text(json.dumps(document, indent=2))
    (run_dir / "details.json").write_text(json.dumps(_jsonable(details), indent=2))


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _machine() -> dict[str, str]:
    import torch_pruning

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "python": platform.python_version(), "torch": torch.__version__,
            "torch_pruning": getattr(torch_pruning, "__version__", "?"), "threads": str(torch.get_num_threads())}

"""The domain-shift study (the paper's section 4.2 and Table 2): train in one context, test in another.

Protocol, modelled on WiDaR's cross-room / cross-user split: a task provides two or more disjoint
*contexts* (:class:`unitprune.data.synth_speech.SpeechContext`: speakers and acoustic room for
``kws``; users and room for ``widar``), each split into train / val / test. For every training
context ``S``:

1. the Table-1 model is trained on ``S``'s training split (early stopping on ``S``'s validation
   split; cached in ``<run_dir>/train-S/model.pt``);
2. every method is measured at every knob value, thresholds calibrated (UnIT, FATReLU) and
   fine-tuning done (TTP) on ``S``'s data only: unpruned, TTP (weight sparsity), FATReLU and UnIT
   (calibration percentile), UnIT with autotuned per-layer percentiles
   (:func:`unitprune.experiments.autotune_percentiles`, knob: its validation accuracy budget in
   points), and UnIT on the TTP model chosen below;
3. each method's setting is chosen on ``S``'s **validation** data: the most aggressive knob whose
   validation macro F1 is within ``budget`` points of the unpruned model's (TTP + UnIT: UnIT's
   percentile on the chosen TTP model, same rule);
4. the chosen settings are measured on the test split of every context (``S`` itself: held-out
   speakers of the same room; the others: new speakers in a new room), inputs standardised with
   ``S``'s training statistics.

Outputs (``run_dir``): ``domain_shift.json`` (``rows``: one per training context, test context and
method with ``train_context``, ``test_context``, ``method``, ``knob``, ``f1``, ``accuracy``,
``macs_skipped_fraction``; ``points``: every measured knob on validation and, with
``test_every_point``, also on every test split: a diagnosis of the choice, never used for it),
``report.md`` with the Table-2 style table and ``domain_shift.png``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ..baselines import TTPConfig, calibrate_fatrelu, iterative_magnitude_pruning, with_fatrelu
from ..calibrate import calibrate
from ..config import UnITConfig
from ..convert import convert
from ..training import Augment
from .autotune import DEFAULT_AUTOTUNE_GRID, AutotuneConfig, autotune_percentiles
from .evaluation import evaluate_unit_model
from .executor import ExecutorConfig, Task, open_runner
from .sweep import torch_threads

logger = logging.getLogger(__name__)

__all__ = ["DomainShiftConfig", "run_domain_shift", "macro_f1", "DOMAIN_METHODS", "render_domain_report",
           "render_diagnosis"]

#: Methods of the table, in column order.
DOMAIN_METHODS = ("unpruned", "ttp", "fatrelu", "unit", "unit-autotuned", "ttp+unit")


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Unweighted mean of the per-class F1 over the classes present in ``y_true`` or ``y_pred``.

    Same definition as ``sklearn.metrics.f1_score(average="macro")`` (a class never predicted
    and never true is left out; a class with no true positives has F1 0).
    """
    y_true, y_pred = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    if len(y_true) != len(y_pred) or len(y_true) == 0:
        raise ValueError(f"macro_f1: need equally long non-empty label arrays, got {len(y_true)} and {len(y_pred)}")
    classes = np.union1d(y_true, y_pred)
    scores = []
    for c in classes:
        tp = np.sum((y_true == c) & (y_pred == c))
        fp = np.sum((y_true != c) & (y_pred == c))
        fn = np.sum((y_true == c) & (y_pred != c))
        scores.append(0.0 if tp == 0 else 2.0 * tp / (2.0 * tp + fp + fn))
    return float(np.mean(scores))


@dataclass(frozen=True)
class DomainShiftConfig:
    """Settings of :func:`run_domain_shift`.

    Attributes:
        run_dir: output folder.
        unit_percentiles / fatrelu_percentiles / ttp_sparsities: knob values.
        autotune_budgets: validation accuracy budgets (points) of the per-layer percentile search
            (``unit-autotuned``; its knob); autotune_grid: the percentiles a layer may take there.
        ttp_finetune_epochs / ttp_lr: TTP fine-tuning.
        budget: validation macro-F1 budget in points for choosing each method's setting.
        epochs / lr / batch_size / patience / seed: training of the model of each context.
        augment: training-time augmentation (:class:`unitprune.training.Augment`; ``None``: off;
            the ``domain-shift --task kws`` command uses :data:`unitprune.experiments.kws.KWS_AUGMENT`).
        retrain: train even when a checkpoint exists.
        eval_batch_size / num_threads / progress: as in :class:`unitprune.experiments.SweepConfig`.
        workers: training contexts run in parallel worker processes (same results).
        test_every_point: also measure every knob on every context's test split and store it in
            ``points`` (to show how validation and test curves differ; the choice never reads it).
    """

    run_dir: str = "runs/domain_shift"
    unit_percentiles: tuple[float, ...] = (30.0, 40.0, 45.0, 50.0, 55.0, 60.0, 65.0, 70.0)
    fatrelu_percentiles: tuple[float, ...] = (30.0, 50.0, 70.0)
    ttp_sparsities: tuple[float, ...] = (0.5, 0.7, 0.8, 0.9)
    autotune_budgets: tuple[float, ...] = (1.0,)
    autotune_grid: tuple[float, ...] = DEFAULT_AUTOTUNE_GRID
    ttp_finetune_epochs: int = 2
    ttp_lr: float = 1e-3
    budget: float = 1.0
    epochs: int = 15
    lr: float = 2e-3
    batch_size: int = 64
    patience: int | None = 4
    seed: int = 0
    augment: Augment | None = None
    retrain: bool = False
    eval_batch_size: int = 500
    num_threads: int = 1
    progress: bool = True
    workers: int = 1
    test_every_point: bool = True

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass
class _Measured:
    """One method at one knob: validation F1 (to choose) and the converted, calibrated model."""

    method: str
    knob: float | None
    val_f1: float
    val_accuracy: float
    model: nn.Module = field(repr=False)
    details: dict = field(default_factory=dict)


def _scores(unit_model: nn.Module, data, batch_size: int) -> dict:
    evaluation = evaluate_unit_model(unit_model, data, batch_size, keep_logits=True)
    y_pred = evaluation.logits.argmax(dim=1).numpy()
    y_true = data.tensors[1].numpy()
    return {"f1": macro_f1(y_true, y_pred), "accuracy": evaluation.accuracy,
            "macs_skipped_fraction": evaluation.total.skipped_fraction}


def _choose(points: list[_Measured], reference_f1: float, budget: float) -> _Measured:
    """The most aggressive knob within ``budget`` validation F1 points (else the mildest knob)."""
    ordered = sorted(points, key=lambda p: p.knob)
    within = [p for p in ordered if 100.0 * (reference_f1 - p.val_f1) <= budget + 1e-9]
    return within[-1] if within else ordered[0]


def _measure(config: DomainShiftConfig, splits, method: str, knob, unit_model: nn.Module, details=None,
             tests: dict | None = None) -> _Measured:
    """Validation scores of one method at one knob (and, for diagnosis only, scores on ``tests``)."""
    val = _scores(unit_model, splits.val, config.eval_batch_size)
    logger.info("%s knob=%s: val F1 %.4f accuracy %.4f skipped %.4f", method, knob, val["f1"], val["accuracy"],
                val["macs_skipped_fraction"])
    details = dict(details or {}, val_macs_skipped_fraction=val["macs_skipped_fraction"])
    if config.test_every_point and tests:
        details["test"] = {name: _scores(unit_model, data, config.eval_batch_size) for name, data in tests.items()}
    return _Measured(method, knob, val["f1"], val["accuracy"], unit_model, details)


def _unit_points(config, splits, base: nn.Module, method: str, tests: dict | None) -> list[_Measured]:
    points = []
    for percentile in config.unit_percentiles:
        unit_model = convert(base, UnITConfig())
        calibrate(unit_model, splits.val.tensors[0], percentile=percentile)
        points.append(_measure(config, splits, method, percentile, unit_model, tests=tests))
    return points


def _autotuned_points(config, splits, base: nn.Module, reference_accuracy: float, tests: dict | None
                      ) -> list[_Measured]:
    """UnIT with per-layer percentiles searched on validation, one point per accuracy budget."""
    points = []
    for budget in config.autotune_budgets:
        unit_model = convert(base, UnITConfig())
        result = autotune_percentiles(unit_model, splits.val, reference_accuracy,
                                      AutotuneConfig(budget=budget, grid=config.autotune_grid,
                                                     batch_size=config.eval_batch_size))
        points.append(_measure(config, splits, "unit-autotuned", budget, unit_model,
                               {"percentiles": result.percentiles, "autotune_evaluations": result.evaluations},
                               tests=tests))
    return points


def _context_methods(config: DomainShiftConfig, model: nn.Module, splits, tests: dict | None = None
                     ) -> tuple[dict, list[dict]]:
    """Chosen setting of every method on ``splits`` (one training context) and all validation points.

    ``tests`` (``{context: test TensorDataset}``) is only measured, for the diagnosis in ``points``.
    """
    unpruned = _measure(config, splits, "unpruned", None, convert(model, UnITConfig()), tests=tests)
    reference = unpruned.val_f1
    chosen = {"unpruned": unpruned}
    all_points = [unpruned]
    steps = iterative_magnitude_pruning(model, splits, TTPConfig(
        schedule=config.ttp_sparsities, finetune_epochs=config.ttp_finetune_epochs, lr=config.ttp_lr,
        seed=config.seed, num_threads=config.num_threads, progress=False))
    ttp = [_measure(config, splits, "ttp", s.target_sparsity, convert(s.model, UnITConfig()),
                    {"weight_sparsity": s.sparsity}, tests) for s in steps]
    chosen["ttp"] = _choose(ttp, reference, config.budget)
    fatrelu = []
    for percentile in config.fatrelu_percentiles:
        relu_model = with_fatrelu(model)
        calibrate_fatrelu(relu_model, splits.val.tensors[0], percentile)
        fatrelu.append(_measure(config, splits, "fatrelu", percentile, convert(relu_model, UnITConfig()),
                                tests=tests))
    chosen["fatrelu"] = _choose(fatrelu, reference, config.budget)
    unit = _unit_points(config, splits, model, "unit", tests)
    chosen["unit"] = _choose(unit, reference, config.budget)
    autotuned = _autotuned_points(config, splits, model, unpruned.val_accuracy, tests)
    chosen["unit-autotuned"] = _choose(autotuned, reference, config.budget)
    ttp_model = next(s.model for s in steps if s.target_sparsity == chosen["ttp"].knob)
    combo = _unit_points(config, splits, ttp_model, "ttp+unit", tests)
    for point in combo:
        point.details["ttp_sparsity"] = chosen["ttp"].knob
    chosen["ttp+unit"] = _choose(combo, reference, config.budget)
    all_points += ttp + fatrelu + unit + autotuned + combo
    records = [{"method": p.method, "knob": p.knob, "val_f1": p.val_f1, "val_accuracy": p.val_accuracy,
                **p.details} for p in all_points]
    return chosen, records


def _run_context(config: DomainShiftConfig, task, name: str, contexts: dict, train_dir: Path | None = None
                 ) -> tuple[list[dict], list[dict], dict]:
    """Train on context ``name`` (checkpoint in ``train_dir``, default ``run_dir/train-NAME``), choose
    every method's setting there, test on every context."""
    from .demo import DemoConfig, train_or_load

    own = task.splits(contexts[name])
    from .sweep_config import SweepConfig

    train_dir = Path(config.run_dir) / f"train-{name}" if train_dir is None else train_dir
    demo = DemoConfig(run_dir=str(train_dir), retrain=config.retrain,
                      dataset=task.name, model=task.model, epochs=config.epochs, lr=config.lr,
                      batch_size=config.batch_size, patience=config.patience, seed=config.seed,
                      fold_input_normalization=False, augment=config.augment,
                      sweep=SweepConfig(num_threads=config.num_threads, progress=config.progress))
    tests = {test_name: own.test if test_name == name else task.splits(contexts[name], contexts[test_name]).test
             for test_name in contexts}
    with torch_threads(config.num_threads):
        model, train_info = train_or_load(demo, own)
        chosen, points = _context_methods(config, model, own, tests)
        rows = []
        for test_name, test_data in tests.items():
            for method in DOMAIN_METHODS:
                point = chosen[method]
                scores = _scores(point.model, test_data, config.eval_batch_size)
                rows.append({"train_context": name, "test_context": test_name, "method": method, "knob": point.knob,
                             **scores, "val_f1": point.val_f1, "num_test_samples": len(test_data)})
    for record in points:
        record["train_context"] = name
    return rows, points, train_info


def _context_task(shared: dict, name: str, *, workspace: Path):
    """One training context as an executor task; its checkpoint folder is ``train-NAME``."""
    config = replace(shared["config"], progress=False)  # one bar: the runner's
    rows, points, train_info = _run_context(config, shared["task"], name, shared["contexts"], train_dir=workspace)
    train_info["checkpoint"] = str(Path(config.run_dir) / f"train-{name}" / "model.pt")  # where it lands
    return rows, points, train_info


def run_domain_shift(task, config: DomainShiftConfig | None = None, executor: ExecutorConfig | None = None) -> dict:
    """Run the study for ``task`` (an object with ``name``, ``model``, ``contexts()`` and
    ``splits(train, test=None)``, see :mod:`unitprune.experiments.domain_tasks`); write the outputs.

    One task per training context (:mod:`.executor`; ``executor`` default: ``config.workers``
    local processes); each result is kept in ``run_dir/tasks`` for ``executor.resume``."""
    config = config or DomainShiftConfig()
    started = time.perf_counter()
    contexts = task.contexts()
    names = list(contexts)
    if len(names) < 2:
        raise ValueError(f"domain shift needs at least two contexts, the task has {names}")
    executor = replace(executor or ExecutorConfig(workers=config.workers, progress=config.progress),
                       threads=config.num_threads)
    settings = {"command": "domain-shift", "task": task.name, "contexts": task.describe(contexts),
                "config": {k: v for k, v in config.to_dict().items() if k not in ("progress", "workers", "run_dir")}}
    settings = json.loads(json.dumps(settings, default=str))  # as the manifest stores it
    shared = {"config": config, "task": task, "contexts": contexts}
    with open_runner(executor, shared, run_dir=config.run_dir, settings=settings, desc="domain-shift") as runner:
        done = runner.run([Task(f"context-{n}", _context_task, (n,), workspace=f"train-{n}", keep_workspace=True)
                           for n in names])
    results = {n: done[f"context-{n}"] for n in names}
    rows = [row for n in names for row in results[n][0]]
    points = [p for n in names for p in results[n][1]]
    document = {
        "task": task.name, "model": task.model, "contexts": task.describe(contexts), "budget_f1_points": config.budget,
        "selection": "each method's knob: the most aggressive within budget validation macro-F1 points of the "
                     "unpruned model, on the training context's validation split",
        "rows": rows, "points": points, "training": {n: results[n][2] for n in names},
        "config": config.to_dict(), "timing_s": {"total": round(time.perf_counter() - started, 2)},
    }
    write_domain_shift(document, Path(config.run_dir))
    return document


# ----------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------

def _cell_rows(document: dict) -> list[tuple[str, str, dict]]:
    cells: dict[tuple[str, str], dict] = {}
    for row in document["rows"]:
        cells.setdefault((row["train_context"], row["test_context"]), {})[row["method"]] = row
    return [(train, test, methods) for (train, test), methods in cells.items()]


def render_domain_report(document: dict) -> str:
    """Markdown with the Table-2 style table (macro F1 and MACs skipped per cell and method)."""
    methods = [m for m in DOMAIN_METHODS if any(r["method"] == m for r in document["rows"])]
    lines = [f"# Domain shift: {document['task']} ({document['model']} model)", "",
             "Trained in one context, tested in the same context (held-out speakers/users) and in the other. "
             f"Settings chosen on the training context's validation data: {document['selection']} "
             f"(budget {document['budget_f1_points']:g} points).", "",
             "Contexts: " + "; ".join(f"**{k}**: {v}" for k, v in document["contexts"].items()), "",
             "![F1 vs MACs skipped](domain_shift.png)", "",
             "## Macro F1 (%) / MACs skipped (%)", ""]
    header = ["train -> test"] + methods
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for train, test, cell in _cell_rows(document):
        values = [f"{100 * cell[m]['f1']:.2f} / {100 * cell[m]['macs_skipped_fraction']:.1f}" for m in methods]
        lines.append(f"| {train} -> {test} | " + " | ".join(values) + " |")
    lines += ["", "## F1 change vs unpruned (points) and chosen knobs", ""]
    lines += ["| train -> test | " + " | ".join(f"{m} (knob)" for m in methods[1:]) + " |",
              "|" + "---|" * len(methods)]
    for train, test, cell in _cell_rows(document):
        base = cell["unpruned"]["f1"]
        values = [f"{100 * (cell[m]['f1'] - base):+.2f} ({cell[m]['knob']:g})" for m in methods[1:]]
        lines.append(f"| {train} -> {test} | " + " | ".join(values) + " |")
    lines += render_diagnosis(document)
    lines += ["", f"Wall time: {document['timing_s']['total']:.0f} s.", ""]
    return "\n".join(lines)


def render_diagnosis(document: dict) -> list[str]:
    """Markdown lines: every knob's F1 change on validation (what the choice saw) and on each test split.

    Empty when the points were not measured on test (``test_every_point=False``). Changes are in
    points against the unpruned model on the same split; ``*`` marks the chosen knob.
    """
    points = document["points"]
    if not points or "test" not in points[0]:
        return []
    chosen = {(r["train_context"], r["method"]): r["knob"] for r in document["rows"]}
    lines = ["", "## Diagnosis: validation curve (used for the choice) and test curves (never used)", "",
             "F1 change vs unpruned (points) / MACs skipped (%) at every knob; * = chosen on validation.", ""]
    for train in dict.fromkeys(p["train_context"] for p in points):
        own = [p for p in points if p["train_context"] == train]
        base = next(p for p in own if p["method"] == "unpruned")
        tests = list(base["test"])
        header = ["method", "knob", f"val {train}"] + [f"test {t}" for t in tests]
        lines += [f"Trained on {train}:", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for p in own:
            if p["method"] == "unpruned":
                continue
            mark = "*" if chosen.get((train, p["method"])) == p["knob"] else ""
            cells = [p["method"], f"{p['knob']:g}{mark}",
                     f"{100 * (p['val_f1'] - base['val_f1']):+.2f} / {100 * p['val_macs_skipped_fraction']:.1f}"]
            cells += [f"{100 * (p['test'][t]['f1'] - base['test'][t]['f1']):+.2f} / "
                      f"{100 * p['test'][t]['macs_skipped_fraction']:.1f}" for t in tests]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def plot_domain_shift(document: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = _cell_rows(document)
    fig, axes = plt.subplots(1, len(cells), figsize=(3.2 * len(cells), 3.4), dpi=120, sharey=True, squeeze=False)
    for ax, (train, test, cell) in zip(axes[0], cells):
        for method, row in cell.items():
            ax.scatter(100 * row["macs_skipped_fraction"], 100 * row["f1"], label=method, s=40)
        ax.set_title(f"train {train} -> test {test}", fontsize=9)
        ax.set_xlabel("MACs skipped (%)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("macro F1 (%)")
    axes[0][-1].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_domain_shift(document: dict, run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "domain_shift.json").write_text(json.dumps(document, indent=2) + "\n")
    (run_dir / "report.md").write_text(render_domain_report(document))
    plot_domain_shift(document, run_dir / "domain_shift.png")

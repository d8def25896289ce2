"""The keyword-spotting experiment: synthesized speech, the Table-1 KWS model, the full sweep.

``unitprune demo --task kws`` runs :func:`run_kws_demo`: synthesize (or reuse) the offline speech
set (:mod:`unitprune.data.synth_speech`, room A, split by speaker), train the Table-1 KWS CNN
(cached in ``<run_dir>/train/model.pt``), run every method of the sweep (workers in parallel) and
write the usual run folder (``report.md``, ``results.json``, ``results.csv``, the figure). The
generation, training and sweep wall times are recorded in ``timing_s``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..data.synth_speech import SynthSpeechConfig, generate_synth_speech, load_synth_speech
from ..training import Augment
from .sweep_config import SweepConfig
from .demo import DemoConfig, train_or_load
from .run_report import write_run
from .sweep import run_sweep

logger = logging.getLogger(__name__)

__all__ = ["KWSDemoConfig", "run_kws_demo", "KWS_SWEEP", "KWS_AUGMENT"]

#: Sweep settings of the KWS demo, sized so that the whole demo (data generation included) fits in
#: 15 minutes on 2 cores: every method, every approximation and the autotuner, on coarser grids
#: than the defaults (each evaluation of the KWS model costs ~25x the MNIST model's; see
#: docs/experiments.md for the measured phase times). The UnIT grid starts low (10-40) so the
#: points within half a point of the unpruned accuracy exist.
KWS_SWEEP = SweepConfig(
    unit_percentiles=(10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0),
    fatrelu_percentiles=(10.0, 20.0, 30.0, 40.0, 50.0),
    ttp_sparsities=(0.5, 0.7, 0.8, 0.9),
    ttp_finetune_epochs=1,
    combo_percentiles=(10.0, 20.0, 30.0, 40.0),
    autotune_budgets=(0.5, 1.0),
    autotune_grid=(0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0),
)

#: Training-time augmentation of the KWS demo (without it the model over-fits the synthesized
#: speakers; docs/results/experiments.md): a random shift of up to 10 frames (80 ms) and SpecAugment-style masks, 2 of up to 10 frames and 2 of up
#: to 8 mel bands, filled with 0 (the mean of the standardised features).
KWS_AUGMENT = Augment(time_shift=10, time_masks=2, time_mask_width=10, freq_masks=2, freq_mask_width=8)


@dataclass(frozen=True)
class KWSDemoConfig:
    """Settings of :func:`run_kws_demo`.

    Attributes:
        run_dir: output folder (``train/`` holds the checkpoint).
        data_root: synthesized speech cache (generated when absent).
        synth: what to synthesize (its seed is the demo's seed unless set explicitly).
        room: acoustic room of the clips (see :data:`unitprune.data.synth_speech.ROOMS`).
        retrain / epochs / lr / batch_size / patience / seed / weight_decay: training, as in
            :class:`DemoConfig`.
        augment: training-time augmentation (default :data:`KWS_AUGMENT`; ``None``: off).
        sweep: what to measure; workers: sweep worker processes.
    """

    run_dir: str = "runs/kws"
    data_root: str = "data/synth_speech"
    synth: SynthSpeechConfig = field(default_factory=SynthSpeechConfig)
    room: str = "A"
    retrain: bool = False
    epochs: int = 16
    lr: float = 2e-3
    batch_size: int = 64
    patience: int | None = 4
    seed: int = 0
    weight_decay: float = 0.0
    augment: Augment | None = KWS_AUGMENT
    sweep: SweepConfig = KWS_SWEEP
    workers: int = 2


def run_kws_demo(config: KWSDemoConfig | None = None) -> dict:
    """Synthesize, train (or load), sweep, report; return the results document."""
    config = config or KWSDemoConfig()
    t0 = time.perf_counter()
    cache = generate_synth_speech(config.data_root, config.synth, progress=config.sweep.progress)
    generated = time.perf_counter() - t0
    t1 = time.perf_counter()
    splits = load_synth_speech(config.data_root, seed=config.seed, config=config.synth, room=config.room,
                               progress=config.sweep.progress)
    features = time.perf_counter() - t1
    logger.info("%s", splits.describe())
    demo = DemoConfig(run_dir=config.run_dir, retrain=config.retrain, dataset="synth_speech", model="kws",
                      epochs=config.epochs, lr=config.lr, batch_size=config.batch_size, patience=config.patience,
                      seed=config.seed, fold_input_normalization=False, sweep=config.sweep,
                      weight_decay=config.weight_decay, augment=config.augment)
    model, train_info = train_or_load(demo, splits)
    results = run_sweep(model, splits, config.sweep, dataset="synth_speech", model_name="kws", run_dir=None,
                        workers=config.workers)
    results["training"] = train_info
    results["data"] = {"root": str(cache.root), "counts": cache.manifest["counts"], "room": config.room,
                       "espeak_ng_version": cache.manifest["espeak_ng_version"], "splits": splits.sizes(),
                       "generation_seconds_when_made": cache.manifest["generation_seconds"]}
    results["timing_s"].update(data_generation_or_check=round(generated, 2), features=round(features, 2),
                               training=train_info.get("train_seconds", 0.0),
                               demo_total=round(time.perf_counter() - t0, 2))
    write_run(results, Path(config.run_dir))
    return results


def with_synth_seed(config: KWSDemoConfig, seed: int) -> KWSDemoConfig:
    """``config`` with the demo seed also used for synthesis."""
    return replace(config, seed=seed, synth=replace(config.synth, seed=seed))

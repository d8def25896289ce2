"""``mcu-bench``'s measurement of a model that does not fit the chip's SRAM layer by layer: the
export falls back to the fused, row-streamed plan (``execution="auto"``), the firmware runs
bit-exactly, and the per-layer cycles add each layer's per-step regions up per sample."""

from __future__ import annotations

import numpy as np

from unitprune.experiments.mcu_bench.bench import measure_target
from unitprune.mcu.export import ExportError, export_c
from unitprune.mcu.qmodel import QFlatten, QuantizedModel

from . import qmodels
from .mcu_tools import require_target


def test_measure_target_runs_a_model_too_big_for_avr_fused(tmp_path):
    import pytest

    require_target("avr")
    rng = np.random.default_rng(13)
    # conv 1->8 k3 on 1x40x40 (12,800 bytes of output): beyond the ATmega2560's 8 KB layer by layer
    conv = qmodels.conv(rng, "conv", (1, 40, 40), 8, (3, 3), padding=(1, 1, 1, 1))
    pool = qmodels.maxpool("pool", qmodels.output_shape(conv), kernel=(4, 4))
    qmodel = QuantizedModel(ops=[conv, pool, QFlatten("flatten", 800), qmodels.linear(rng, "fc", 800, 4)],
                            input_shape=(1, 40, 40), input_scale=1.0, output_scale=1.0)
    x_q = qmodels.random_input(rng, 2, qmodel.input_shape, boundary=np.unique(conv.tau))
    with pytest.raises(ExportError, match="SRAM"):
        export_c(qmodel, tmp_path / "layers", target="avr", samples=x_q)
    row = measure_target(qmodel, "avr", x_q, tmp_path / "work", layer_samples=2)
    assert row["checks"]["execution"] == "fused"
    assert row["bit_exact"] is True and row["samples_checked"] == 2
    assert list(row["cycles_per_layer"]) == ["conv", "pool", "fc"]
    # one value per sample and layer: the sum of the layer's steps, within the inference's cycles
    assert sum(row["cycles_per_layer"].values()) <= row["checks"]["cycles_max"]
    assert row["cycles_per_layer"]["conv"] > row["cycles_per_layer"]["pool"] > 0
    assert row["sram_bytes"] < 8192


def test_cli_task_kws_without_its_checkpoint_names_the_demo(tmp_path, monkeypatch, capsys):
    """``mcu-bench --task kws`` measures the KWS demo's checkpoint; without it, a clear error."""
    from unitprune.cli import main

    require_target("avr")
    monkeypatch.chdir(tmp_path)
    assert main(["mcu-bench", "--task", "kws", "--targets", "avr", "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "runs/kws/train/model.pt" in err and "make demo-kws" in err

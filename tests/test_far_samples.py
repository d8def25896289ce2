"""Test samples embedded beyond the first 32 KB of a far-tables AVR export (layer by layer):
avr-gcc adds an integer to a ``__memx`` pointer in 16 bits, so a sample offset past 32,767 must go
through ``unit_table_offset_s8``; every sample's outputs and the counters equal the reference's."""

from __future__ import annotations

import numpy as np

from unitprune.mcu.qmodel import QFlatten, QuantizedModel
from unitprune.mcu.reference import run_reference

from . import qmodels


def test_layers_samples_beyond_32_kb_bit_exact_on_avr(tmp_path):
    from tests.test_export import run_counted_avr_firmware

    rng = np.random.default_rng(12)
    # one Linear 1600 -> 48: a 76,800-byte weight table (far tables); 21 samples of 1,600 bytes:
    # samples 20 and 21 start at 32,000 and 33,600 (the last one wholly beyond 32,767)
    fc = qmodels.linear(rng, "fc", 1600, 48)
    qmodel = QuantizedModel(ops=[QFlatten("flatten", 1600), fc], input_shape=(1, 40, 40), input_scale=1.0,
                            output_scale=1.0)
    x = qmodels.random_input(rng, 22, qmodel.input_shape)
    result, emitted, counts = run_counted_avr_firmware(tmp_path, qmodel, x, variant="dense")
    outputs, expected = run_reference(qmodel, x, variant="dense")
    assert result.far_tables and result.execution == "layers"
    assert x.size > 32767 + 1600
    assert np.array_equal(emitted, outputs.reshape(len(x), -1))
    assert counts == {name: list(expected[name].to_dict().values()) for name in result.layers}

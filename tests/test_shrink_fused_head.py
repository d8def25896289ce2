"""Shrink budgets for the fused plan of a model with an MLP head (mnist-wide's shape: ... -> fc1 ->
ReLU -> fc2): the SRAM term as a function of the channel counts (the head's hidden width is a
count) equals ``unitprune.resources(..., execution="fused")`` of the smaller model, its gradient
is the slope of the exact values where the streamed chain and where the head's vectors bind the
arena, mnist-wide itself is counted, and a model shrunk under a fused budget exports with the
counted SRAM (memory plan and the firmware's RAM symbols) and runs bit-exact in simavr."""

from __future__ import annotations

import json
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from unitprune.shrink.budget import MCUBudget
from unitprune.shrink.resources import resources, trace_resources

from .test_shrink_fused import gradient_and_slopes


def _head(c1: int, c2: int, hidden: int, shape=(1, 12, 12)) -> nn.Sequential:
    """conv 3x3, conv 3x3, max-pool 2, flatten, fc1 (hidden) + ReLU + dropout, fc2 10: mnist-wide, small."""
    torch.manual_seed(c1 * 1000 + c2 * 100 + hidden)
    out = (shape[1] - 4) // 2
    return nn.Sequential(nn.Conv2d(shape[0], c1, 3), nn.ReLU(), nn.Conv2d(c1, c2, 3), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(c2 * out * out, hidden), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(hidden, 10)).eval()


def _groups(graph) -> list[int]:
    """The prunable groups in layer order (conv1, conv2, fc1)."""
    groups = []
    for layer in graph.layers:
        if layer.out_group in graph.prunable_groups() and layer.out_group not in groups:
            groups.append(layer.out_group)
    return groups


@pytest.mark.parametrize("target", ["avr", "host"])
def test_fused_sram_of_the_counts_equals_resources_of_the_smaller_mlp_head_model(target):
    """For count tuples where the windows bind the arena and where fc1's vector does (a wide hidden
    layer on narrow convs), the full model's graph gives resources(execution="fused") of the model
    built at those widths, term by term."""
    graph = trace_resources(_head(6, 8, 200), (1, 12, 12))
    groups = _groups(graph)
    assert len(groups) == 3
    for counts in [(6, 8, 200), (1, 1, 1), (2, 2, 190), (3, 2, 40), (6, 1, 7), (3, 8, 1)]:
        expected = resources(_head(*counts), (1, 12, 12), target=target, execution="fused")
        assert graph.exact(dict(zip(groups, counts)), target=target, execution="fused") == expected, counts
        assert expected.output_bytes == 10 and expected.input_bytes == 0


def test_fused_sram_gradient_of_an_mlp_head_is_the_slope_of_the_exact_values():
    """Where the streamed chain binds the arena (3/2/40) a hidden unit costs fc1's int32 sum (4 B);
    where fc1's int8 vector binds it (2/2/190: 190 B against the windows' and row's 112 B) one more
    byte, and the convs' channels cost nothing. The tensor term's gradient equals these exact slopes."""
    graph = trace_resources(_head(6, 8, 200), (1, 12, 12))
    groups = _groups(graph)
    slopes_at = {counts: gradient_and_slopes(graph, groups, dict(zip(groups, counts)))
                 for counts in [(3, 2, 40), (2, 2, 190)]}
    # conv1's channels: conv2's 3-row window of 10 columns and the widest row (10 B); conv2's: the
    # pool's 2-row window of 8 columns (its 8-wide row is not the widest)
    assert slopes_at[(3, 2, 40)] == [3 * 10 + 10, 2 * 8, 4]
    assert slopes_at[(2, 2, 190)] == [0, 0, 4 + 1]


def test_mnist_wide_fused_is_counted_and_the_head_no_longer_refused():
    """mnist-wide's fused SRAM by hand: conv1's 3-row window of the 28-wide input (84 B), conv2's
    3-row window of conv1's 32 x 26 rows (2,496 B), the
    pool's 2-row window of conv2's 64 x 24 rows (3,072 B), the widest row (conv1's 32 x 26 = 832 B
    against conv2's 64 x 24 = 1,536 B: 1,536 B), 2 x 4 B of counters for 3 stages (24 B); fc1's 128
    int8 outputs (the tail's vector) fit over them; scratch: the widest conv row 4 x 26 (104 B) and
    fc1's sums 4 x 128 (512 B); the output 10 B; the AVR descriptors 192 B."""
    from unitprune.models import build_model

    r = resources(build_model("mnist-wide", seed=0), (1, 28, 28), target="avr", execution="fused")
    assert r.arena_bytes == 3 * 28 + 3 * 32 * 26 + 2 * 64 * 24 + 64 * 24 + 24
    assert r.scratch_bytes == 4 * 26 + 4 * 128
    assert (r.output_bytes, r.input_bytes, r.descriptor_bytes) == (10, 0, 192)
    assert r.sram_bytes == r.arena_bytes + r.scratch_bytes + 192 + 10 == 8030
    assert MCUBudget(sram_bytes=8030, execution="fused").resource_options()["execution"] == "fused"


@pytest.mark.usefixtures("one_torch_thread")
def test_mlp_head_shrunk_under_a_fused_budget_runs_in_firmware_with_the_counted_sram(tmp_path):
    """A small MNIST model with an MLP head shrunk under a fused budget (AVR layout): the result fits,
    its resources are resources(execution="fused") of the returned model; exported fused for the
    AVR its memory plan is those resources, the firmware's model RAM symbols add up to the plan,
    and it runs bit-exact in simavr."""
    from torch.utils.data import TensorDataset

    import unitprune
    from tests.mcu_tools import require_target
    from tests.test_shrink_fused import _ram_symbols
    from unitprune.data import load_dataset
    from unitprune.experiments.mcu_bench.bench import measure_target
    from unitprune.mcu.quantize import quantize
    from unitprune.mcu.reference import quantize_input
    from unitprune.shrink import ShrinkConfig

    require_target("avr")
    torch.manual_seed(0)
    model = nn.Sequential(OrderedDict([  # named layers: their descriptors are the firmware's RAM symbols
        ("conv1", nn.Conv2d(1, 6, 5)), ("relu1", nn.ReLU()), ("pool1", nn.MaxPool2d(2)), ("conv2", nn.Conv2d(6, 8, 5)),
        ("relu2", nn.ReLU()), ("pool2", nn.MaxPool2d(2)), ("flatten", nn.Flatten()), ("fc1", nn.Linear(8 * 4 * 4, 32)),
        ("relu3", nn.ReLU()), ("fc2", nn.Linear(32, 10))]))
    full = resources(model, (1, 28, 28), target="avr", execution="fused")
    splits = load_dataset("mnist", seed=0)
    train = TensorDataset(*(t[:256] for t in splits.train.tensors))
    budget = MCUBudget(sram_bytes=full.sram_bytes - 300, flash_bytes=full.flash_bytes // 2, target="avr",
                       execution="fused")
    result = unitprune.shrink.shrink(model, train, splits.val, budget,
                                     ShrinkConfig(epochs=1, prune_epochs=1, remove_every=5))
    shrunk = result.model.eval()
    assert result.fits and result.after.sram_bytes <= budget.sram_bytes
    assert result.after == resources(shrunk, (1, 28, 28), target="avr", execution="fused")
    qmodel = quantize(shrunk, splits.val.tensors[0][:100], variant="dense")
    x_q = quantize_input(qmodel, splits.test.tensors[0][:1])
    row = measure_target(qmodel, "avr", x_q, tmp_path, 0, execution="fused", fused_rows=1)
    assert row["bit_exact"] and row["checks"]["execution"] == "fused"
    plan = json.loads((tmp_path / "export" / "memory_plan.json").read_text())["memory"]
    assert plan["peak_sram_with_io_bytes"] == result.after.sram_bytes and plan["tail_bytes"] > 0
    ram = _ram_symbols("avr", tmp_path / "build-avr-inference" / "model.elf", [op.name for op in qmodel.ops])
    assert sum(ram.values()) == plan["peak_sram_bytes"], ram
    assert np.isfinite(result.val_accuracy)

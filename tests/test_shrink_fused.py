"""Shrink budgets for the fused, row-streamed plan (``MCUBudget(execution="fused")``,
``unitprune shrink --execution fused``): the SRAM term as a function of the channel counts equals
``unitprune.resources(..., execution="fused")`` of the smaller model (the exporter's own plan), its
gradient is the slope of the exact values, the integer fit keeps more channels than layer by
layer at the same budget, and a model shrunk under a fused budget runs in firmware with the SRAM
the resource model gave."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from unitprune.shrink.allocation import fit_counts
from unitprune.shrink.budget import PRESETS, MCUBudget
from unitprune.shrink.resources import resources, trace_resources


def _chain(c1: int, c2: int, c3: int, shape=(1, 12, 10)) -> nn.Sequential:
    """conv 3x3 (padding) + BN + ReLU, max-pool, conv 3x3 + ReLU, a 1x1 conv (read in place), Linear."""
    torch.manual_seed(c1 * 100 + c2 * 10 + c3)
    model = nn.Sequential(nn.Conv2d(shape[0], c1, 3, padding=1), nn.BatchNorm2d(c1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(c1, c2, 3), nn.ReLU(), nn.Conv2d(c2, c3, 1), nn.ReLU(), nn.Flatten())
    with torch.no_grad():
        flat = model(torch.zeros(1, *shape)).shape[1]
    model.append(nn.Linear(flat, 4))
    return model.eval()


def _ds_cnn_like(c1: int, c2: int) -> nn.Sequential:
    """conv + BN + ReLU, depthwise 3x3 + BN + ReLU (coupled to conv1), pointwise + BN + ReLU, global pool, Linear."""
    torch.manual_seed(c1 + 7 * c2)
    return nn.Sequential(nn.Conv2d(1, c1, (4, 3), stride=2, padding=1, bias=False), nn.BatchNorm2d(c1), nn.ReLU(),
                         nn.Conv2d(c1, c1, 3, padding=1, groups=c1, bias=False), nn.BatchNorm2d(c1), nn.ReLU(),
                         nn.Conv2d(c1, c2, 1, bias=False), nn.BatchNorm2d(c2), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c2, 4)).eval()


def _conv_groups(graph) -> list[int]:
    """The prunable groups in the order of the convs that open them."""
    groups = []
    for layer in graph.layers:
        if layer.kind == "conv" and layer.out_group in graph.prunable_groups() and layer.out_group not in groups:
            groups.append(layer.out_group)
    return groups


@pytest.mark.parametrize("shape", [(1, 12, 10), (1, 6, 24)])
@pytest.mark.parametrize("target", ["avr", "rv32ec", "host"])
def test_fused_sram_of_the_counts_equals_resources_of_the_smaller_model(shape, target):
    """For every count tuple, the full model's graph at those counts gives resources(execution="fused")
    of the model built at those widths, term by term; both streamed axes occur."""
    graph = trace_resources(_chain(6, 8, 5, shape), shape)
    groups = _conv_groups(graph)
    axes = set()
    for counts in [(6, 8, 5), (1, 1, 1), (2, 8, 1), (6, 1, 3), (3, 5, 5)]:
        expected = resources(_chain(*counts, shape), shape, target=target, execution="fused")
        got = graph.exact(dict(zip(groups, counts)), target=target, execution="fused")
        assert got == expected, counts
        # (not always below the layer-by-layer plan: there the convs before a max-pool write the pooled
        # plane, unitprune.mcu.export.pooled_conv; at (6, 1, 3) it takes 728 B on AVR)
        assert got.input_bytes == 0
        axes.add(graph.fused.terms(lambda g: dict(zip(groups, counts)).get(g, graph.group_sizes[g]))["axis"])
    assert axes == ({"height"} if shape[1] >= shape[2] else {"width"})


def test_fused_sram_of_depthwise_blocks_and_a_global_pool():
    graph = trace_resources(_ds_cnn_like(6, 8), (1, 12, 10))
    groups = _conv_groups(graph)
    assert len(groups) == 2  # the depthwise conv is coupled to conv1
    for counts in [(6, 8), (1, 1), (3, 7)]:
        expected = resources(_ds_cnn_like(*counts), (1, 12, 10), target="avr", execution="fused")
        assert graph.exact(dict(zip(groups, counts)), target="avr", execution="fused") == expected, counts


def gradient_and_slopes(graph, groups: list[int], at: dict[int, int]) -> list[int]:
    """The fused SRAM's exact change for one more channel of each group at ``at``, asserted equal to
    the gradient of the tensor term (and its value to the exact one)."""
    params = {g: torch.tensor(float(n), requires_grad=True) for g, n in at.items()}
    value = graph.evaluate(params, target="avr", execution="fused")["sram_bytes"]
    base = graph.exact(at, target="avr", execution="fused").sram_bytes
    assert float(value.detach()) == base
    grads = torch.autograd.grad(value, [params[g] for g in groups], allow_unused=True)
    slopes = [graph.exact({**at, g: at[g] + 1}, target="avr", execution="fused").sram_bytes - base for g in groups]
    assert [0.0 if grad is None else float(grad) for grad in grads] == slopes, at
    return slopes


def test_fused_sram_gradient_is_the_slope_of_the_exact_values():
    """The continuous term's gradient in each count equals the exact change of one channel (the term
    is piecewise linear; away from a kink one channel moves along one piece)."""
    shape = (1, 12, 10)
    graph = trace_resources(_chain(6, 8, 5, shape), shape)
    groups = _conv_groups(graph)
    slopes = gradient_and_slopes(graph, groups, {groups[0]: 4, groups[1]: 5, groups[2]: 3})
    # conv1's channels are in the pool's 2-row and conv2's 3-row windows and in the widest row (two
    # row buffers: the 1x1 conv reads its row in place); conv2's and conv3's rows are narrower and
    # the 1x1 conv keeps no window: they cost nothing fused
    assert slopes[0] == 2 * 10 + 3 * 5 + 2 * 10 and slopes[1] == 0 and slopes[2] == 0


def test_fused_budget_keeps_more_channels_than_layers_at_the_same_budget():
    """The Table-1 MNIST model twice as wide (12 and 32 channels) at the CH32V003 preset's SRAM
    (rv32ec): the integer fit (same saliences) keeps more channels fused than layer by layer, each
    fit meets its budget exactly and no group can take one more channel."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 12, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(12, 32, 5), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 4 * 4, 10))
    graph = trace_resources(model, (1, 28, 28))
    groups = _conv_groups(graph)
    generator = torch.Generator().manual_seed(0)
    salience = {g: torch.rand(graph.group_sizes[g], generator=generator) for g in groups}
    limit = PRESETS["ch32v003"].sram_bytes
    assert graph.exact(target="rv32ec", execution="fused").sram_bytes > limit  # the budget binds fused too
    kept = {}
    for execution in ("layers", "fused"):
        budget = MCUBudget(sram_bytes=limit, target="rv32ec", conv_block_rows="min", execution=execution)
        full = {g: float(graph.group_sizes[g]) for g in groups}
        ints = fit_counts(graph, full, salience, budget)
        exact = graph.exact(ints, **budget.resource_options())
        assert exact.sram_bytes <= limit
        for g in groups:  # maximal: one more channel anywhere breaks the budget
            if ints[g] < graph.group_sizes[g]:
                assert graph.exact({**ints, g: ints[g] + 1}, **budget.resource_options()).sram_bytes > limit
        kept[execution] = ints
    assert sum(kept["fused"].values()) > sum(kept["layers"].values())
    assert all(kept["fused"][g] >= kept["layers"][g] for g in groups)
    # the hand count behind it: layer by layer conv1's 24x24 output plane (576 B a channel) and the
    # 784-byte input leave room for one conv1 channel; fused a conv1 channel costs its rows in the
    # pool's window (2 x 24 B), conv2's window (5 x 12 B) and the widest row (24 B): 132 B
    assert kept["layers"][groups[0]] == 1 and kept["fused"][groups[0]] > 1



class _Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x):
        y = torch.relu(self.conv1(x))
        return self.fc(torch.flatten(y + torch.relu(self.conv2(y)), 1))


def test_budget_execution_is_checked_and_refusals_name_the_layer():
    with pytest.raises(ValueError, match="execution"):
        MCUBudget(sram_bytes=1000, execution="streamed")
    graph = trace_resources(_Residual(), (1, 8, 8))  # an MLP head is the fused plan's tail; an add is not a chain
    assert graph.exact().sram_bytes > 0  # layer by layer is fine
    with pytest.raises(ValueError, match="add"):
        graph.exact(execution="fused")
    assert PRESETS["ch32v003"].with_(execution="fused").resource_options()["execution"] == "fused"


def test_cli_shrink_execution_option():
    from unitprune.cli.parser import build_parser
    from unitprune.cli.shrink_commands import _budget
    from unitprune.cli.user_errors import CLIError

    parser = build_parser()
    args = parser.parse_args(["shrink", "--preset", "ch32v003", "--execution", "fused"])
    budget = _budget(args)
    assert budget.execution == "fused" and budget.sram_bytes == PRESETS["ch32v003"].sram_bytes
    assert _budget(parser.parse_args(["shrink", "--sram", "4KB"])).execution == "layers"
    with pytest.raises(CLIError, match="--execution"):
        parser.parse_args(["shrink", "--preset", "ch32v003", "--execution", "auto"])


def _ram_symbols(target: str, elf: Path, layers: list[str]) -> dict[str, int]:
    """Sizes of the firmware's RAM symbols (data/bss) defined by the exported model (``nm -S``): the
    runner's buffers and the layers' descriptors (in RAM on AVR, in flash on rv32ec)."""
    nm = {"avr": "avr-nm", "rv32ec": "riscv64-unknown-elf-nm"}[target]
    listing = subprocess.run([nm, "-S", str(elf)], capture_output=True, text=True, check=True).stdout
    return {parts[3]: int(parts[1], 16) for parts in (line.split() for line in listing.splitlines())
            if len(parts) == 4 and parts[2] in "bBdD" and (parts[3].startswith("unit_model_")
                                                            or parts[3].rsplit("_", 1)[0] in layers)}


@pytest.mark.usefixtures("one_torch_thread")
def test_model_shrunk_under_a_fused_budget_runs_in_firmware_with_the_counted_sram(tmp_path):
    """A small MNIST model shrunk under a fused 800-byte budget (rv32ec): the result fits, its
    resources are resources(execution="fused") of the returned model, and exported fused (one row
    per conv step) for AVR and rv32ec its memory plan is those resources, the firmware's model RAM
    symbols add up to the plan, and it runs bit-exact in the simulators."""
    from torch.utils.data import TensorDataset

    import unitprune
    from tests.mcu_tools import require_target
    from unitprune.data import load_dataset
    from unitprune.experiments.mcu_bench.bench import measure_target
    from unitprune.mcu.quantize import quantize
    from unitprune.mcu.reference import quantize_input
    from unitprune.models import build_model
    from unitprune.shrink import ShrinkConfig

    for target in ("avr", "rv32ec"):
        require_target(target)
    splits = load_dataset("mnist", seed=0)
    train = TensorDataset(*(t[:256] for t in splits.train.tensors))
    budget = MCUBudget(sram_bytes=800, flash_bytes=16 * 1024, target="rv32ec", execution="fused")
    result = unitprune.shrink.shrink(build_model("mnist", seed=0), train, splits.val, budget,
                                     ShrinkConfig(epochs=1, prune_epochs=1, remove_every=5))
    model = result.model.eval()
    assert result.fits and result.after.sram_bytes <= 800
    assert result.after == resources(model, (1, 28, 28), target="rv32ec", execution="fused")
    layers = resources(model, (1, 28, 28), target="rv32ec")
    assert layers.sram_bytes > 800  # the same model would not fit layer by layer
    qmodel = quantize(model, splits.val.tensors[0][:100], variant="dense")
    x_q = quantize_input(qmodel, splits.test.tensors[0][:1])
    for target in ("avr", "rv32ec"):
        counted = resources(model, (1, 28, 28), target=target, execution="fused")
        row = measure_target(qmodel, target, x_q, tmp_path / target, 0, execution="fused", fused_rows=1)
        assert row["bit_exact"] and row["checks"]["execution"] == "fused" and row["checks"]["fused_rows"] == 1
        plan = json.loads((tmp_path / target / "export" / "memory_plan.json").read_text())["memory"]
        assert plan["peak_sram_with_io_bytes"] == counted.sram_bytes
        ram = _ram_symbols(target, tmp_path / target / f"build-{target}-inference" / "model.elf",
                           [op.name for op in qmodel.ops])
        assert sum(ram.values()) == plan["peak_sram_bytes"], ram
        assert row["sram_bytes"] == row["checks"]["sram_static_bytes"] + row["checks"]["stack_bytes"]
    assert np.isfinite(result.val_accuracy)

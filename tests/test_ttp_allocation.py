"""TTP's MAC-aware allocation (``TTPConfig(allocation="macs")``): the masks against a ranking
computed by hand on a tiny conv + linear model, and the MACs per weight against a hand count."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from unitprune.baselines import TTPConfig, global_magnitude_prune, iterative_magnitude_pruning
from unitprune.baselines.ttp import mac_aware_prune, mac_sparsity, macs_per_weight

CONV = [0.8, -0.4, 0.2, 1.2, 0.1, -0.6, 0.9, 0.3]  # 2 output channels x 1 x 2 x 2
LINEAR = [0.02, -0.04, 0.06] + [0.5 + 0.01 * i for i in range(12)] + [-0.08]  # 2 x 8, no ties


def tiny() -> nn.Sequential:
    """Conv2d(1, 2, 2) on 1x3x3 (2x2 outputs: 4 MACs per conv weight), Linear(8, 2) (1 MAC per weight):
    24 weights, 48 MACs."""
    model = nn.Sequential(nn.Conv2d(1, 2, 2), nn.Flatten(), nn.Linear(8, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor(CONV).reshape(2, 1, 2, 2))
        model[2].weight.copy_(torch.tensor(LINEAR).reshape(2, 8))
    return model


def kept(model: nn.Sequential) -> tuple[set[int], set[int]]:
    return ({i for i, w in enumerate(model[0].weight.detach().flatten().tolist()) if w != 0},
            {i for i, w in enumerate(model[2].weight.detach().flatten().tolist()) if w != 0})


def test_macs_per_weight_is_the_positions_of_a_conv_weight_and_one_for_a_linear_weight():
    assert macs_per_weight(tiny(), torch.zeros(1, 1, 3, 3)) == [4, 1]
    with pytest.raises(ValueError, match="one sample"):
        macs_per_weight(tiny(), torch.zeros(2, 1, 3, 3))


def test_mac_aware_masks_equal_the_hand_ranking_of_w_per_mac():
    """|w|/m by hand, ascending: linear 0.02 (1 MAC, total 1), conv[4] 0.1/4 (5), linear 0.04 (6),
    conv[2] 0.2/4 (10), linear 0.06 (11), conv[7] 0.3/4 (15), linear 0.08 (16), conv[1] 0.4/4 (20),
    conv[5] 0.6/4 (24: half of the 48 MACs reached), conv[0] 0.8/4 (28), conv[6] 0.9/4 (32),
    conv[3] 1.2/4 (36: three quarters), then the linear 0.5 and above."""
    model = tiny()
    mac_aware_prune(model, 0.5, [4, 1])
    assert kept(model) == ({0, 3, 6}, set(range(3, 15)))
    assert mac_sparsity(model, [4, 1]) == 0.5
    mac_aware_prune(model, 0.75, [4, 1])  # incremental: the earlier masks stay
    assert kept(model) == (set(), set(range(3, 15)))
    with pytest.raises(ValueError, match="cannot lower"):
        mac_aware_prune(model, 0.5, [4, 1])
    # the global allocation prunes the same number of weights (9) by |w| alone: a different set
    other = tiny()
    global_magnitude_prune(other, 9 / 24)
    assert kept(other) == ({0, 3, 5, 6}, set(range(4, 15)))


def test_a_target_between_two_weights_takes_the_one_that_reaches_it():
    model = tiny()
    mac_aware_prune(model, 7 / 48, [4, 1])  # 7 MACs: linear 0.02, conv[4], linear 0.04 reach 6, conv[2] 10
    assert kept(model) == ({0, 1, 3, 5, 6, 7}, set(range(2, 16)))


def test_the_layer_floor_keeps_each_channels_largest_weight_and_a_share_of_the_uniform_allocation():
    """layer_floor 1.0 at 0.5: each layer keeps its largest |w| up to half its weights (the uniform
    allocation's), by hand conv {3: 1.2, 6: 0.9, 0: 0.8, 5: 0.6} and linear {7..14} (0.54..0.61, also
    each row's largest: 7 and 14); the other 8 conv + linear weights cost 4*4 + 8 = 24 MACs, exactly
    the target. Without a floor the same target takes conv[5] instead of linear 3..6 (the ranking above)."""
    model = tiny()
    mac_aware_prune(model, 0.5, [4, 1], layer_floor=1.0)
    assert kept(model) == ({0, 3, 5, 6}, set(range(7, 15)))
    assert mac_sparsity(model, [4, 1]) == 0.5
    # floor 0: each output channel's largest weight alone (conv 3 and 6, linear 7 and 14), at 0.75 and
    # beyond (the target out of reach: every other weight masked, no error)
    for sparsity in (0.75, 0.95):
        model = tiny()
        mac_aware_prune(model, sparsity, [4, 1], layer_floor=0.0)
        assert kept(model)[0] == {3, 6} and {7, 14} <= kept(model)[1]
    model = tiny()
    mac_aware_prune(model, 0.95, [4, 1], layer_floor=0.0)
    assert kept(model) == ({3, 6}, {7, 14})
    with pytest.raises(ValueError, match="layer_floor"):
        TTPConfig(layer_floor=1.5)


def test_iterative_pruning_with_the_macs_allocation():
    """Default floor (0.25 of the uniform allocation, one weight per output channel): at 0.5 the
    ranking's masks (the floor binds nowhere); at 0.75 conv keeps each channel's largest (3, 6) where
    the unfloored allocation masks all of it, so the 12 more MACs come from conv[0] (4) and linear
    3, 4, 5, 6, 8, 9, 10, 11 (each row's largest, 7 and 14, kept)."""
    steps = iterative_magnitude_pruning(tiny(), None, TTPConfig(schedule=(0.5, 0.75), finetune_epochs=0,
                                                                allocation="macs"),
                                        example_input=torch.zeros(1, 1, 3, 3))
    assert [kept(step.model) for step in steps] == [({0, 3, 6}, set(range(3, 15))), ({3, 6}, {7, 12, 13, 14})]
    assert [step.sparsity for step in steps] == [9 / 24, 18 / 24]  # weight sparsity, measured
    unfloored = iterative_magnitude_pruning(tiny(), None, TTPConfig(schedule=(0.5, 0.75), finetune_epochs=0,
                                                                    allocation="macs", layer_floor=None),
                                            example_input=torch.zeros(1, 1, 3, 3))
    assert [kept(step.model) for step in unfloored] == [({0, 3, 6}, set(range(3, 15))), (set(), set(range(3, 15)))]
    with pytest.raises(ValueError, match="allocation"):
        TTPConfig(allocation="lamp")
    with pytest.raises(ValueError, match="example_input"):
        iterative_magnitude_pruning(tiny(), None, TTPConfig(schedule=(0.5,), finetune_epochs=0, allocation="macs"))


def test_the_sweep_and_mcu_bench_take_the_allocation():
    from unitprune.cli.mcu_bench_commands import _bench_config
    from unitprune.cli.parser import build_parser
    from unitprune.experiments import SweepConfig
    from unitprune.experiments.methods import SweepContext, ttp_steps
    from torch.utils.data import TensorDataset

    from unitprune.data import DatasetSplits

    assert SweepConfig().ttp_allocation == "global"
    with pytest.raises(ValueError, match="ttp_allocation"):
        SweepConfig(ttp_allocation="lamp")
    args = build_parser().parse_args(["mcu-bench", "--ttp-allocation", "macs"])
    assert _bench_config(args).sweep.ttp_allocation == "macs"
    assert build_parser().parse_args(["sweep", "--ttp-allocation", "macs"]).ttp_allocation == "macs"
    # the sweep's TTP step prunes by MACs: on the tiny model, 50 % of the MACs is 9 of the 24 weights
    # (the hand ranking above); the global allocation would prune 12
    inputs = TensorDataset(torch.rand(6, 1, 3, 3), torch.arange(6) % 2)
    splits = DatasetSplits(name="tiny", train=inputs, val=inputs, test=inputs, num_classes=2, input_shape=(1, 3, 3),
                           class_names=("a", "b"))
    for allocation, pruned in (("macs", 9), ("global", 12)):
        context = SweepContext(model=tiny(), splits=splits, config=SweepConfig(
            ttp_sparsities=(0.5,), ttp_finetune_epochs=0, ttp_allocation=allocation, progress=False))
        step, = ttp_steps(context)
        assert step.sparsity == pruned / 24


def test_the_bound_fit_recovers_hand_made_layer_costs():
    """benchmarks/ttp_allocation_mcu.py's bound: layer cycles made as fixed + per-MAC x kept MACs by
    hand (conv1 1000 + 8/MAC, conv2 500 + 12/MAC, fc 40 + 20/MAC, pools 300) are fitted back; with
    no MAC left the model costs 1840 cycles, so a 9,200-cycle dense model is 5x at most, and 3x
    leaves (9200/3 - 1840) / 10 = 122.7 kept conv MACs (10: the mean of the conv slopes)."""
    from tests.mcu_tools import load_benchmark

    bench = load_benchmark("ttp_allocation_mcu")
    points = []
    for conv1, conv2, fc in ((100, 50, 5), (40, 80, 9), (10, 20, 2)):
        layers = {"conv1": 1000 + 8 * conv1, "pool1": 200, "conv2": 500 + 12 * conv2, "pool2": 100, "fc": 40 + 20 * fc}
        points.append({"kept_macs": {"conv1": conv1, "conv2": conv2, "fc": fc},
                       "targets": {"avr": {"cycles_per_layer": layers}}})
    bound = bench.fit(points, {"cycles": 9200}, "avr")
    assert bound["layers"]["conv1"] == {"fixed_cycles": pytest.approx(1000), "cycles_per_kept_mac": pytest.approx(8)}
    assert bound["layers"]["fc"]["cycles_per_kept_mac"] == pytest.approx(20)
    assert bound["fixed_cycles"] == pytest.approx(1840)
    assert bound["ceiling_speedup"] == pytest.approx(5)
    assert bound["kept_macs_for_3x"] == pytest.approx((9200 / 3 - 1840) / 10)

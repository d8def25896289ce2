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


def test_iterative_pruning_with_the_macs_allocation():
    steps = iterative_magnitude_pruning(tiny(), None, TTPConfig(schedule=(0.5, 0.75), finetune_epochs=0,
                                                                allocation="macs"),
                                        example_input=torch.zeros(1, 1, 3, 3))
    assert [kept(step.model) for step in steps] == [({0, 3, 6}, set(range(3, 15))), (set(), set(range(3, 15)))]
    assert [step.sparsity for step in steps] == [9 / 24, 12 / 24]  # weight sparsity, measured
    with pytest.raises(ValueError, match="allocation"):
        TTPConfig(allocation="lamp")
    with pytest.raises(ValueError, match="example_input"):
        iterative_magnitude_pruning(tiny(), None, TTPConfig(schedule=(0.5,), finetune_epochs=0, allocation="macs"))

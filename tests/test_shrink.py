"""Tests of unitprune.shrink: the resource model against hand counts and torch's flop counter,
gates and physical channel removal against the unpruned function, the budget schedule, budget
errors, and a tiny end-to-end shrink run."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from unitprune.models import build_model, ds_cnn_net
from unitprune.shrink import resources, trace_resources


class Residual(nn.Module):
    """conv-bn-relu, then two convs whose outputs are added to it (one coupled channel group)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.a = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.b = nn.Conv2d(8, 8, 1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(8 * 5 * 5, 4)

    def forward(self, x):
        x = torch.relu(self.bn(self.stem(x)))
        y = x + self.a(x)
        y = torch.relu(y)
        z = y + self.b(y)
        return self.fc(torch.flatten(self.pool(z), 1))


def depthwise_net() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 6, 3), nn.BatchNorm2d(6), nn.ReLU(),
        nn.Conv2d(6, 6, 3, groups=6), nn.ReLU(),  # depthwise 3x3
        nn.Conv2d(6, 10, 1), nn.ReLU(),  # pointwise
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(10 * 2 * 2, 5))


def flop_macs(model: nn.Module, shape) -> int:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.eval()(torch.zeros(1, *shape))
    return counter.get_total_flops() // 2


# ---------------------------------------------------------------------------------------------
# Resource model
# ---------------------------------------------------------------------------------------------

# descriptors in RAM on AVR (16-bit pointers, byte alignment): unit_conv2d_params (17 int32, the
# last one block_rows) + unit_requant_s8 (3 pointers + 2 int32) per conv, unit_requant_s8 per linear
CONV_DESCRIPTOR, LINEAR_DESCRIPTOR = 68 + 14, 14


def test_mnist_wide_hand_count():
    model = build_model("mnist-wide", seed=0)
    r = resources(model, (1, 28, 28))
    weights = 32 * 9 + 64 * 32 * 9 + 128 * 9216 + 10 * 128
    outputs = 32 + 64 + 128 + 10
    assert r.weight_bytes == weights == sum(m.weight.numel() for m in model.modules() if hasattr(m, "weight"))
    assert r.bias_bytes == 4 * outputs and r.requant_bytes == 5 * outputs and r.tau_bytes == 0
    assert r.flash_bytes == weights + 9 * outputs
    # conv2 runs with its input (32x26x26) and its max-pooled output (64x12x12: the pool is taken on
    # its accumulators, unitprune.mcu.export.pooled_conv) in the arena
    assert r.arena_bytes == 32 * 26 * 26 + 64 * 12 * 12 and r.peak_op == "conv2"
    # conv1 keeps one output row of int32 sums (4 * 26), conv2 the pool's two rows (4 * 2 * 24): fc1's
    # 128 int32 accumulators are the largest scratch
    assert r.scratch_bytes == 4 * 128
    assert r.descriptor_bytes == 2 * CONV_DESCRIPTOR + 2 * LINEAR_DESCRIPTOR
    assert r.input_bytes == 784 and r.output_bytes == 10
    assert r.sram_bytes == r.arena_bytes + r.scratch_bytes + r.descriptor_bytes + 784 + 10 == 32_346
    assert r.macs == 11_992_448 == flop_macs(model, (1, 28, 28))
    with_tau = resources(model, (1, 28, 28), unit_tables=True)
    assert with_tau.tau_bytes == 32 * 9 + 64 * 32 * 9
    assert with_tau.flash_bytes == r.flash_bytes + with_tau.tau_bytes
    # UnIT's weight-stationary convs accumulate a block of rows: conv1's int32 output plane
    assert with_tau.scratch_bytes == 4 * 26 * 26 and with_tau.sram_bytes == 62_186
    host = resources(model, (1, 28, 28), target="host")  # 8-byte pointers, 8-byte alignment
    assert host.descriptor_bytes == 2 * (68 + 32) + 2 * 32
    # the Cortex-M0+/RV32 dense kernel keeps a channel pair's rows (2 x 4 x 26), still under fc1's
    assert resources(model, (1, 28, 28), target="m0plus").scratch_bytes == 4 * 128
    # row-blocked conv accumulators (UnIT): conv1 4 * B * 26, conv2 4 * B * 24; fc1's 4 * 128 is then the
    # largest; the dense export's scratch is fc1's for every option
    for option, scratch in (("plane", 4 * 26 * 26), ("min", 4 * 128), (1, 4 * 128), (5, 4 * 5 * 26),
                            (30, 4 * 26 * 26)):
        blocked = resources(model, (1, 28, 28), conv_block_rows=option, unit_tables=True)
        assert blocked.scratch_bytes == scratch, option
        assert blocked.sram_bytes == with_tau.sram_bytes - with_tau.scratch_bytes + scratch
        # (UnIT's convs keep the separate max-pool: conv2's whole 64x24x24 output in the arena)
        assert (blocked.arena_bytes, blocked.flash_bytes, blocked.macs) == \
            (with_tau.arena_bytes, with_tau.flash_bytes, r.macs) == (32 * 26 * 26 + 64 * 24 * 24, with_tau.flash_bytes,
                                                                     r.macs)
        assert resources(model, (1, 28, 28), conv_block_rows=option) == r, option
    with pytest.raises(ValueError, match="conv_block_rows must be"):
        resources(model, (1, 28, 28), conv_block_rows="rows")


def test_network_input_and_output_are_not_in_the_arena():
    model = build_model("mnist", seed=0)
    r = resources(model, (1, 28, 28))
    # conv1 writes its max-pooled output (6x12x12, the pool on its accumulators: the pool works in
    # place); conv2 (6x12x12 -> 16x4x4 pooled); fc writes the caller's output. Each conv's scratch
    # holds the pool's 2 rows of accumulators.
    assert r.arena_bytes == max(6 * 144, 6 * 144 + 16 * 16, 16 * 16)
    assert r.peak_op == "conv2" and r.scratch_bytes == 4 * 2 * 24
    assert r.sram_bytes == r.arena_bytes + 4 * 2 * 24 + 2 * CONV_DESCRIPTOR + LINEAR_DESCRIPTOR + 784 + 10
    # the Cortex-M0+ exports keep the separate pool (their dense convolution is the _mcu32 kernel, two rows)
    core = resources(model, (1, 28, 28), target="m0plus")
    assert core.arena_bytes == 6 * 576 + 6 * 144 and core.peak_op == "pool1" and core.scratch_bytes == 4 * 2 * 24


def test_residual_hand_count_and_coupled_group():
    model = Residual()
    r = resources(model, (1, 10, 10))
    assert r.macs == flop_macs(model, (1, 10, 10)) == 100 * (8 * 9 + 8 * 8 * 9 + 8 * 8) + 4 * 200
    assert r.weight_bytes == 8 * 9 + 8 * 8 * 9 + 8 * 8 + 4 * 200
    assert r.bias_bytes == 4 * (8 + 8 + 8 + 4)  # every layer stores a bias (zeros for conv a)
    # "y = x + a(x)": x (800, still read by the add), a(x) (800) and the add's output (800) are live
    assert r.arena_bytes == 2400 and r.scratch_bytes == 4 * 10  # one output row of a dense conv's int32 sums
    graph = trace_resources(model, (1, 10, 10))
    # stem, a and b outputs are one group (the adds couple them); fc's output is the network output
    assert len(graph.prunable_groups()) == 1
    (group,) = graph.prunable_groups()
    assert sorted(l.name for l in graph.layers_of(group)) == ["a", "b", "stem"]


def test_depthwise_hand_count_and_coupling():
    model = depthwise_net()
    r = resources(model, (3, 8, 8))
    assert r.macs == flop_macs(model, (3, 8, 8)) == 36 * 6 * 27 + 16 * 6 * 9 + 16 * 10 * 6 + 5 * 40
    assert r.weight_bytes == 6 * 27 + 6 * 9 + 60 + 200
    graph = trace_resources(model, (3, 8, 8))
    groups = graph.prunable_groups()
    assert len(groups) == 2  # conv0 + depthwise (coupled), pointwise
    first = [g for g in groups if any(l.name == "0" for l in graph.layers_of(g))][0]
    halved = graph.exact({first: 3})
    assert halved.macs == 36 * 3 * 27 + 16 * 3 * 9 + 16 * 10 * 3 + 5 * 40


def test_ds_cnn_hand_count_groups_and_global_average_pool():
    model = build_model("ds-cnn", seed=0)
    r = resources(model, (1, 40, 62))
    plane = 20 * 31  # conv1 (10x4, stride 2, padding (4, 1)) output, kept by every block
    weights = 64 * 40 + 4 * (64 * 9 + 64 * 64) + 12 * 64
    outputs = 9 * 64 + 12  # conv1, 4 depthwise, 4 pointwise (biases folded from BatchNorm), fc
    assert r.weight_bytes == weights == 22_016
    assert r.bias_bytes == 4 * outputs and r.requant_bytes == 5 * outputs
    assert r.macs == plane * 64 * 40 + 4 * plane * (64 * 9 + 64 * 64) + 64 * 12 == 13_174_528
    assert r.macs == flop_macs(model, (1, 40, 62))
    # dw1 reads conv1's output and writes its own: both 64 planes live (ReLUs in place, BN folded)
    assert r.arena_bytes == 2 * 64 * plane and r.peak_op == "dw1"
    # the dense convs keep one output row of int32 sums; UnIT's weight-stationary ones the plane
    assert r.scratch_bytes == 4 * 31 and r.input_bytes == 40 * 62 and r.output_bytes == 12
    assert resources(model, (1, 40, 62), unit_tables=True).scratch_bytes == 4 * plane
    assert r.descriptor_bytes == 9 * CONV_DESCRIPTOR + LINEAR_DESCRIPTOR
    assert r.sram_bytes == 2 * 64 * plane + 4 * 31 + 9 * CONV_DESCRIPTOR + LINEAR_DESCRIPTOR + 2480 + 12 == 82_728
    # Cortex-M (4-byte pointers, 4-byte alignment): unit_conv2d_params 68 (17 int32) + unit_requant_s8 20
    assert resources(model, (1, 40, 62), target="cortex-m").descriptor_bytes == 9 * (68 + 20) + 20
    graph = trace_resources(model, (1, 40, 62))
    groups = graph.prunable_groups()
    # each depthwise conv continues its producer's group: conv1+dw1, pw1+dw2, pw2+dw3, pw3+dw4, pw4
    assert sorted(sorted(l.name for l in graph.layers if graph.find(l.out_group) == g) for g in groups) == \
        [["conv1", "dw1"], ["dw2", "pw1"], ["dw3", "pw2"], ["dw4", "pw3"], ["pw4"]]
    # the global average pool is a buffer of one value per channel, live with pw4's output
    (last,) = [g for g in groups if [l.name for l in graph.layers_of(g)] == ["pw4"]]
    smaller = graph.exact({last: 10})
    assert smaller.macs == r.macs - 54 * plane * 64 - 54 * 12
    assert graph.evaluate({last: 10})["arena_bytes"] == 2 * 64 * plane  # the peak stays at dw1
    pool_op = graph.op_names.index("pool")
    pool_live = [b for b in graph.buffers if b.born <= pool_op <= b.dies and not b.io]
    assert sorted(b.per_channel for b in pool_live) == [1, plane]


@pytest.mark.parametrize("name", ["mnist", "cifar10", "widar", "digits", "mnist-wide", "ds-cnn"])
def test_macs_equal_flop_counter_on_builtin_models(name):
    model = build_model(name, seed=0)
    assert resources(model, model.input_shape).macs == flop_macs(model, model.input_shape)


def test_soft_counts_are_differentiable_and_match_exact_at_integers():
    model = build_model("mnist-wide", seed=0)
    graph = trace_resources(model, (1, 28, 28))
    groups = graph.prunable_groups()
    assert len(groups) == 3  # conv1, conv2, fc1 outputs
    soft = {g: torch.tensor(float(n), requires_grad=True) for g, n in zip(groups, (5, 7, 11))}
    values = graph.evaluate(soft)
    exact = graph.exact(dict(zip(groups, (5, 7, 11))))
    for key in ("flash_bytes", "sram_bytes", "macs"):
        assert float(values[key].detach()) == getattr(exact, key)
    total = values["flash_bytes"] + values["sram_bytes"] + values["macs"]
    total.backward()
    assert all(t.grad is not None and t.grad > 0 for t in soft.values())


def test_unsupported_op_is_named():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Sigmoid(), nn.Flatten(), nn.Linear(2 * 36, 3))
    with pytest.raises(ValueError, match=r"Sigmoid"):
        resources(model, (1, 8, 8))


# ---------------------------------------------------------------------------------------------
# Gates and physical removal
# ---------------------------------------------------------------------------------------------

from unitprune.shrink.gates import ChannelGates  # noqa: E402
from unitprune.shrink.removal import remove_channels  # noqa: E402


def bn_chain() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(1, 6, 3), nn.BatchNorm2d(6), nn.ReLU(), nn.Conv2d(6, 8, 3), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 2 * 2, 7), nn.ReLU(), nn.Linear(7, 3))


def _randomize_bn(model):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)


CASES = {"chain": (bn_chain, (1, 8, 8)), "residual": (Residual, (1, 10, 10)),
         "depthwise": (depthwise_net, (3, 8, 8)),
         "ds-cnn": (lambda: ds_cnn_net(num_classes=5, width=8, blocks=2), (1, 12, 16))}


@pytest.mark.parametrize("case", sorted(CASES))
def test_open_gates_are_exact_and_closed_gates_remove_exactly(case):
    build, shape = CASES[case]
    torch.manual_seed(0)
    model = build().eval()
    _randomize_bn(model)
    x = torch.randn(5, *shape)
    reference = model(x)
    graph = trace_resources(model, shape)
    gates = ChannelGates(model, graph)
    assert torch.equal(model(x), reference)  # all gates open: bit-identical
    # close two channels of every group, then remove them physically
    drop = {g: [0, graph.group_sizes[g] - 1] for g in gates.groups}
    with torch.no_grad():
        for g, idx in drop.items():
            gates.theta[g][idx] = 0.0
    gated = model(x)
    assert not torch.allclose(gated, reference)
    assert gates.closed() == drop
    gates.detach()
    assert torch.equal(model(x), reference)  # detach leaves the original function
    remove_channels(model, graph, drop, x[:1])
    torch.testing.assert_close(model(x), gated, rtol=1e-5, atol=1e-6)
    # the graph's updated sizes are what a fresh trace of the smaller model counts
    assert graph.exact() == resources(model, shape)
    assert resources(model, shape).macs == flop_macs(model, shape)


def test_fold_keeps_the_function_with_fractional_gates():
    torch.manual_seed(1)
    model = bn_chain().eval()
    _randomize_bn(model)
    x = torch.randn(4, 1, 8, 8)
    graph = trace_resources(model, (1, 8, 8))
    gates = ChannelGates(model, graph)
    with torch.no_grad():
        for g in gates.groups:
            gates.theta[g].uniform_(0.1, 0.9)
    gated = model(x)
    gates.fold()
    assert not gates._handles
    torch.testing.assert_close(model(x), gated, rtol=1e-5, atol=1e-6)


def test_a_masked_channel_gets_the_taylor_salience_and_reopens_when_it_ranks_above_an_open_one():
    """The mask gradient of a masked channel (mask 0) is the first-order gain of adding it back
    (checked against a finite difference of the loss); once its running salience passes an open
    channel's, the ranked mask of the same count opens it and masks the other."""
    from unitprune.shrink.allocation import ranked_mask
    from unitprune.shrink.method import _update_salience

    torch.manual_seed(3)
    model = bn_chain().train()
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 3, (16,))
    graph = trace_resources(model, (1, 8, 8))
    gates = ChannelGates(model, graph)
    group = gates.groups[0]  # conv1 + BN, 6 channels
    salience = {g: torch.zeros(graph.group_sizes[g]) for g in gates.groups}
    salience[group] = torch.tensor([0.6, 0.5, 0.4, 0.3, 1e-4, 0.0])  # channel 5 ranks last
    gates.set(group, ranked_mask(4.0, salience[group]))
    assert gates.theta[group].tolist() == [1, 1, 1, 1, 0, 0]
    loss_fn = nn.CrossEntropyLoss()
    loss = loss_fn(model(x), y)
    loss.backward()
    gradient = float(gates.theta[group].grad[5])
    with torch.no_grad():  # oracle: the loss change when channel 5's mask moves from 0 to eps
        eps = 1e-3
        gates.theta[group][5] = eps
        plus = float(loss_fn(model(x), y))
        gates.theta[group][5] = 0.0
    assert gradient != 0.0
    assert gradient == pytest.approx((plus - float(loss.detach())) / eps, rel=0.05, abs=1e-6)
    salience[group][5] = 0.0
    with torch.no_grad():
        gates.theta[group].grad.fill_(0.0)
        gates.theta[group].grad[5] = 10.0  # channel 5 now matters most
    _update_salience(gates, salience, decay=0.9, kind="taylor")
    assert gates.theta[group].grad is None and salience[group][5] == pytest.approx(1.0)
    reopened = ranked_mask(4.0, salience[group])
    assert reopened.tolist() == [1, 1, 1, 0, 0, 1]  # 5 reopened, 3 (now the least salient open) masked
    gates.detach()


def test_feedback_masks_pass_the_dense_gradient_to_a_masked_channels_weights():
    """With ``feedback=True`` a masked channel's output is still 0 in the forward pass, but its conv
    weights get the gradient of the loss at the masked output as if the channel were open (the
    oracle: the network split after the ReLU, the rest run from the masked activation as a leaf,
    its gradient pushed back through conv1/BN/ReLU by hand); without feedback they get none. The
    mask's own gradient (the salience) is the same with and without."""
    torch.manual_seed(5)
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 3, (16,))
    loss_fn = nn.CrossEntropyLoss()
    model = bn_chain().train()
    graph = trace_resources(model, (1, 8, 8))
    results = {}
    for feedback in (False, True):
        gates = ChannelGates(model, graph, feedback=feedback)
        group = gates.groups[0]  # conv1 + BN (+ ReLU), 6 channels
        gates.set(group, torch.tensor([1.0, 0.0, 1.0, 0.5, 1.0, 0.0]))
        model.zero_grad()
        out = model(x)
        loss_fn(out, y).backward()
        results[feedback] = (out.detach(), model[0].weight.grad.clone(), gates.theta[group].grad.clone())
        gates.detach()
    torch.testing.assert_close(results[True][0], results[False][0], rtol=0, atol=0)
    torch.testing.assert_close(results[True][2], results[False][2])
    assert results[False][1][[1, 5]].abs().max() == 0  # no feedback: masked channels learn nothing
    mask = torch.tensor([1.0, 0.0, 1.0, 0.5, 1.0, 0.0]).view(1, -1, 1, 1)
    model.zero_grad()
    activation = model[2](model[1](model[0](x)))  # conv1 -> BN -> ReLU (the batch statistics, as in training)
    masked = (activation * mask).detach().requires_grad_()
    loss_fn(model[3:](masked), y).backward()
    oracle = torch.autograd.grad(activation, model[0].weight, grad_outputs=masked.grad)[0]
    assert oracle[[1, 5]].abs().max() > 0
    torch.testing.assert_close(results[True][1], oracle, rtol=1e-4, atol=1e-6)


def test_keep_bonus_lets_a_masked_channel_reopen_only_when_it_is_that_much_more_salient():
    from unitprune.shrink.allocation import ranked_mask
    from unitprune.shrink.method import _ranking

    model = bn_chain()
    gates = ChannelGates(model, trace_resources(model, (1, 8, 8)))
    group = gates.groups[0]
    gates.set(group, torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0, 0.0]))
    salience = {g: torch.zeros(graph_size) for g, graph_size in ((h, gates.theta[h].numel()) for h in gates.groups)}
    salience[group] = torch.tensor([0.5, 0.4, 0.7, 0.1, 0.0, 0.0])  # masked channel 2 is 1.4x open channel 1
    assert ranked_mask(2.0, _ranking(gates, salience, 0.0)[group]).tolist() == [1, 0, 1, 0, 0, 0]
    assert ranked_mask(2.0, _ranking(gates, salience, 1.0)[group]).tolist() == [1, 1, 0, 0, 0, 0]
    salience[group][2] = 0.81  # now more than twice channel 1's salience
    assert ranked_mask(2.0, _ranking(gates, salience, 1.0)[group]).tolist() == [1, 0, 1, 0, 0, 0]
    gates.detach()


def test_ranked_mask_opens_the_most_salient_channels_and_one_partly():
    from unitprune.shrink.allocation import marginal_value, ranked_mask
    salience = torch.tensor([0.3, 0.1, 0.5, 0.2])
    assert ranked_mask(2.25, salience).tolist() == [1.0, 0.0, 1.0, 0.25]  # ranks 1, 3, 0, 2
    assert ranked_mask(4.0, salience).tolist() == [1.0] * 4
    assert ranked_mask(1.0, salience).tolist() == [0.0, 0.0, 1.0, 0.0]
    assert marginal_value(2.25, salience) == pytest.approx(0.2)  # the partly open channel
    assert marginal_value(2.0, salience) == pytest.approx(0.3)


@pytest.mark.parametrize("regrow", [0.0, 0.5])
def test_nothing_is_removed_at_a_budget_the_model_already_meets(regrow):
    """At a budget the model already meets, no channel may go, whatever the regrowth speed."""
    from unitprune.data import load_digits
    splits = load_digits(seed=0)
    torch.manual_seed(0)
    model = tiny_digits_net()
    before = resources(model, (1, 8, 8))
    budget = MCUBudget(sram_bytes=before.sram_bytes, flash_bytes=before.flash_bytes)
    result = shrink(model, splits.train, splits.val, budget,
                    ShrinkConfig(epochs=2, prune_epochs=2, regrow=regrow, remove_every=5), input_shape=(1, 8, 8))
    assert result.after == before


def test_removal_slices_optimizer_state():
    torch.manual_seed(2)
    model = bn_chain()
    x = torch.randn(8, 1, 8, 8)
    graph = trace_resources(model, (1, 8, 8))
    gates = ChannelGates(model, graph)

    def make(params, extra):
        return torch.optim.Adam([{"params": params}, {"params": extra, "lr": 0.1}], lr=1e-3)

    optimizer = make(list(model.parameters()), gates.parameters())
    model(x).sum().backward()
    optimizer.step()
    conv2 = model[3]
    fc1 = model[7]
    old_conv2 = optimizer.state[conv2.weight]["exp_avg"].clone()
    old_fc1 = optimizer.state[fc1.weight]["exp_avg_sq"].clone()
    conv2_group = graph.find(graph.layers[1].out_group)
    first_group = graph.find(graph.layers[0].out_group)
    old_gate_state = optimizer.state[gates.theta[first_group]]["exp_avg"].clone()
    gates.detach()
    drop = {first_group: [1, 4], conv2_group: [0, 2, 7]}
    sliced, optimizer = remove_channels(model, graph, drop, x[:1], optimizer=optimizer, make_optimizer=make,
                                        extra_parameters=gates.theta)
    keep_out, keep_in = [1, 3, 4, 5, 6], [0, 2, 3, 5]
    new_conv2 = optimizer.state[conv2.weight]["exp_avg"]
    assert torch.equal(new_conv2, old_conv2[keep_out][:, keep_in])
    # fc1 reads conv2's channels flattened: channel c is features 4c..4c+3
    features = [4 * c + s for c in keep_out for s in range(4)]
    assert torch.equal(optimizer.state[fc1.weight]["exp_avg_sq"], old_fc1[:, features])
    assert torch.equal(optimizer.state[sliced[first_group]]["exp_avg"], old_gate_state[keep_in])
    assert conv2.weight.shape == (5, 4, 3, 3) and fc1.weight.shape == (7, 20)
    model(x).sum().backward()
    optimizer.step()  # the new optimizer works on the new parameters


def test_removing_a_whole_group_is_refused():
    model = bn_chain()
    graph = trace_resources(model, (1, 8, 8))
    group = graph.prunable_groups()[0]
    with pytest.raises(ValueError, match="cannot remove all 6 channels"):
        remove_channels(model, graph, {group: list(range(6))}, torch.zeros(1, 1, 8, 8))


# ---------------------------------------------------------------------------------------------
# Budget, schedule, the method end to end
# ---------------------------------------------------------------------------------------------

from unitprune.shrink import BudgetError, MCUBudget, ShrinkConfig, cubic_budget, parse_count, parse_size, shrink  # noqa: E402
from unitprune.shrink.budget import check_feasible  # noqa: E402


def test_projection_gets_past_a_tied_sram_peak():
    """DS-CNN's equal-width blocks tie at the arena peak (dw1, pw1, dw2, pw2 all hold 2 x 8 planes):
    no single channel removal lowers it; the continuous projection and the integer fit must still
    reach the budget, with the tied groups shrunk together, not one of them cut to a sliver."""
    from unitprune.shrink.allocation import fit_counts, project_counts

    model = ds_cnn_net(num_classes=5, width=8, blocks=2)
    shape = (1, 12, 16)
    graph = trace_resources(model, shape)
    groups = graph.prunable_groups()
    full = graph.exact()
    one_less = [graph.exact({g: 7}).sram_bytes for g in groups]
    assert min(one_less) == full.sram_bytes  # the tie: removing any single channel saves no SRAM
    budget = MCUBudget(sram_bytes=full.sram_bytes - 4 * 48)  # 4 planes of 6x8 less
    widths = {g: 8.0 for g in groups}
    counts = project_counts(graph, widths, {g: 1.0 for g in groups}, budget.limits(), budget)
    assert float(graph.evaluate({g: torch.tensor(k) for g, k in counts.items()})["sram_bytes"]) \
        <= budget.sram_bytes * (1 + 1e-5)
    ints = fit_counts(graph, counts, {g: torch.linspace(1.0, 0.1, 8) for g in groups}, budget)
    assert graph.exact(ints).sram_bytes <= budget.sram_bytes
    assert max(ints.values()) - min(ints.values()) <= 2, ints


def test_fit_counts_meets_the_budget_exactly_and_prefers_salient_cheap_channels():
    """mnist-wide at an 8 KB-class budget: the integer counts fit (checked on the physically pruned
    model, traced afresh), and no group can take one more channel without going over."""
    from unitprune.shrink.allocation import fit_counts

    model = build_model("mnist-wide", seed=0)
    shape = (1, 28, 28)
    graph = trace_resources(model, shape)
    groups = graph.prunable_groups()  # conv1, conv2, fc1
    budget = MCUBudget(sram_bytes=7808, flash_bytes=256 * 1024)
    salience = {g: torch.linspace(1.0, 0.01, graph.group_sizes[g]) for g in groups}
    ints = fit_counts(graph, {groups[0]: 3.4, groups[1]: 3.6, groups[2]: 100.2}, salience, budget)
    for g in groups:
        if ints[g] < graph.group_sizes[g]:
            bigger = graph.exact({**ints, g: ints[g] + 1})
            assert bigger.sram_bytes > budget.sram_bytes or bigger.flash_bytes > budget.flash_bytes, (g, ints)
    drop = {g: list(range(ints[g], graph.group_sizes[g])) for g in groups if ints[g] < graph.group_sizes[g]}
    remove_channels(model, graph, drop, torch.zeros(1, *shape))
    pruned = resources(model, shape)
    assert pruned.sram_bytes <= budget.sram_bytes and pruned.flash_bytes <= budget.flash_bytes
    assert [model.conv1.out_channels, model.conv2.out_channels] == [ints[groups[0]], ints[groups[1]]]


def test_fit_counts_keeps_the_most_salience_that_fits_brute_force():
    """On a tiny DS-CNN (3 groups of 6 channels, peak-SRAM budgets between the smallest and the full
    model, random saliences) the integer fit keeps as much salience as the best of all 216 count
    vectors that fit (the oracle: exhaustive search with the exact resource model)."""
    import itertools

    from unitprune.shrink.allocation import fit_counts

    model = ds_cnn_net(num_classes=5, width=6, blocks=2)
    graph = trace_resources(model, (1, 12, 16))
    groups = graph.prunable_groups()
    sram = {c: graph.exact(dict(zip(groups, c))).sram_bytes for c in itertools.product(range(1, 7), repeat=3)}
    low, full = sram[(1, 1, 1)], sram[(6, 6, 6)]
    for seed in range(40):
        generator = torch.Generator().manual_seed(seed)
        salience = {g: torch.rand(6, generator=generator) ** 3 * (1 + 4 * torch.rand(1, generator=generator))
                    for g in groups}
        budget = MCUBudget(sram_bytes=int(low + (full - low) * (0.05 + 0.9 * torch.rand(1, generator=generator).item())))

        def kept(counts):
            return sum(float(torch.sort(salience[g], descending=True).values[:n].sum()) for g, n in counts.items())

        best = max(kept(dict(zip(groups, c))) for c, used in sram.items() if used <= budget.sram_bytes)
        ints = fit_counts(graph, {g: 6.0 for g in groups}, salience, budget)
        assert graph.exact(ints).sram_bytes <= budget.sram_bytes
        assert kept(ints) == pytest.approx(best, rel=1e-9), (seed, ints)


def test_cubic_schedule_tightens_from_initial_to_target():
    values = [cubic_budget(1000.0, 100.0, t, 10) for t in range(13)]
    assert values[0] == 1000.0 and values[10] == values[12] == 100.0
    assert all(a > b for a, b in zip(values[:11], values[1:11]))  # strictly tightening until the end
    assert values[5] == pytest.approx(100 + 900 * 0.5 ** 3)
    # fast first, slow near the target: the first half removes 7/8 of the gap
    assert (1000 - values[5]) / 900 == pytest.approx(7 / 8)
    assert cubic_budget(50.0, 100.0, 3, 10) == 100.0  # already within budget: constant


def test_sizes_and_counts_parse():
    assert parse_size("8KB") == 8192 and parse_size("256 KiB") == 262144 and parse_size("1000") == 1000
    assert parse_count("500k") == 500_000 and parse_count("1.2M") == 1_200_000
    with pytest.raises(ValueError, match="8 bytes"):
        parse_size("8 bytes")


def test_impossible_budget_names_resource_and_excess():
    model = build_model("mnist-wide", seed=0)
    graph = trace_resources(model, (1, 28, 28))
    smallest = graph.exact({g: 1 for g in graph.prunable_groups()})
    budget = MCUBudget(sram_bytes=smallest.sram_bytes - 100, flash_bytes=1 << 20)
    with pytest.raises(BudgetError) as info:
        check_feasible(graph, budget)
    message = str(info.value)
    assert "sram_bytes" in message and "by 100 " in message and "flash_bytes" not in message
    # shrink refuses before any training
    data = torch.utils.data.TensorDataset(torch.zeros(4, 1, 28, 28), torch.zeros(4, dtype=torch.long))
    with pytest.raises(BudgetError, match="sram_bytes"):
        shrink(model, data, data, budget, ShrinkConfig(epochs=1))


def test_samd21_preset_and_cli_data_options_are_checked(tmp_path, capsys):
    from unitprune.cli import main
    from unitprune.shrink import PRESETS

    samd21 = PRESETS["samd21"]
    from unitprune.mcu.targets.specs import FLASH_CODE_RESERVE, STACK_RESERVE

    assert (samd21.sram_bytes, samd21.flash_bytes, samd21.target) == (
        32 * 1024 - STACK_RESERVE, 256 * 1024 - FLASH_CODE_RESERVE, "cortex-m")
    base = ["shrink", "--model", "ds-cnn", "--data", "digits", "--preset", "samd21", "--epochs", "1"]
    assert main(base + ["--feature-pool", "2", "--run-dir", str(tmp_path / "a")]) == 2
    assert "--feature-pool: expected BxF" in capsys.readouterr().err
    # ds-cnn is registered for 40x62 inputs: other data is refused before any training, naming both shapes
    assert main(base + ["--run-dir", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "expects inputs (1, 40, 62)" in err and "(1, 8, 8)" in err
    assert not (tmp_path / "b" / "shrink.json").exists()


def tiny_digits_net() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(1, 12, 3), nn.ReLU(), nn.Conv2d(12, 16, 3), nn.ReLU(), nn.Flatten(),
                         nn.Linear(16 * 4 * 4, 10))


def test_shrink_tiny_model_meets_the_budget():
    from unitprune.data import load_digits
    splits = load_digits(seed=0)
    torch.manual_seed(0)
    model = tiny_digits_net()
    before = resources(model, (1, 8, 8))
    budget = MCUBudget(sram_bytes=before.sram_bytes // 2, flash_bytes=before.flash_bytes // 3)
    import unitprune

    # unitprune.shrink is the subpackage and, called, the method
    result = unitprune.shrink.shrink(model, splits.train, splits.val, budget,
                              ShrinkConfig(epochs=4, prune_epochs=3, remove_every=5), input_shape=(1, 8, 8))
    assert result.before == before
    assert result.after == resources(result.model, (1, 8, 8))  # the returned model is what is reported
    assert result.after.sram_bytes <= budget.sram_bytes and result.after.flash_bytes <= budget.flash_bytes
    assert result.fits and len(result.history) == 4
    assert [h["phase"] for h in result.history] == ["prune"] * 3 + ["finetune"]
    assert all(type(m) in (nn.Conv2d, nn.ReLU, nn.Flatten, nn.Linear) for m in result.model)  # plain layers
    assert not any(m._forward_hooks for m in result.model.modules())
    assert result.val_accuracy > 0.5  # it still classifies (10 classes: chance is 0.1)
    assert model[0].out_channels == 12  # the caller's model is untouched


def test_cli_shrink_writes_the_run_folder_and_never_overwrites(tmp_path, capsys):
    import json

    from unitprune.cli import main

    run_dir = tmp_path / "run"
    argv = ["shrink", "--model", "digits", "--data", "digits", "--sram", "450", "--flash", "1KB", "--epochs", "2",
            "--prune-epochs", "1", "--methods", "differentiable", "tp-magnitude", "--run-dir", str(run_dir),
            "--no-progress"]
    assert main(argv) == 0
    document = json.loads((run_dir / "shrink.json").read_text())
    assert set(document) == {"budget", "execution", "base", "methods"} and document["execution"] == "layers"
    assert document["budget"] == {"sram_bytes": 450, "flash_bytes": 1024, "macs": None}
    fields = {"accuracy", "flash_bytes", "sram_bytes", "macs", "train_seconds"}
    assert set(document["base"]) == fields
    assert set(document["methods"]) == {"differentiable", "tp-magnitude"}
    for name, m in document["methods"].items():
        assert set(m) == fields | {"fits_budget"}, name
        assert m["fits_budget"] and m["sram_bytes"] <= 450 and m["flash_bytes"] <= 1024
    # digits: arena 6x3x3 (the conv writes its max-pooled plane), two int32 rows of 6 (the pool's,
    # above fc's 10 accumulators), descriptors, input 64, output 10
    assert document["base"]["sram_bytes"] == 54 + 4 * 2 * 6 + CONV_DESCRIPTOR + LINEAR_DESCRIPTOR + 64 + 10
    for name in ("report.md", "details.json", "training.png", "accuracy_vs_resources.png"):
        assert (run_dir / name).is_file(), name
    assert "| differentiable |" in (run_dir / "report.md").read_text()
    before = (run_dir / "shrink.json").read_text()
    assert main(argv) == 2  # a non-empty run folder is not overwritten
    assert "not empty" in capsys.readouterr().err
    assert (run_dir / "shrink.json").read_text() == before
    assert main(["shrink", "--model", "digits", "--data", "digits", "--run-dir", str(tmp_path / "x")]) == 2
    assert "give a budget" in capsys.readouterr().err


def test_resources_equal_the_exporters_memory_plan_and_flash(tmp_path):
    export = pytest.importorskip("unitprune.mcu.export", reason="the MCU exporter (unitprune.mcu.export) is not "
                                 "in this tree yet; the resource model follows its documented memory plan")
    from unitprune.mcu.quantize import quantize
    from unitprune.mcu.reference import quantize_input

    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 6, 3), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(6 * 5 * 5, 12), nn.ReLU(), nn.Linear(12, 3)).eval()
    _randomize_bn(model)
    x = torch.randn(16, 1, 14, 14)
    for variant, unit_tables, block_rows in (("dense", False, None), ("unit", True, None), ("unit", True, 1),
                                             ("dense", False, 3)):
        qmodel = quantize(model, x, variant=variant)
        result = export.export_c(qmodel, tmp_path / f"{variant}-{block_rows}", target="host",
                                 samples=quantize_input(qmodel, x[:2]), conv_block_rows=block_rows)
        r = resources(model, (1, 14, 14), unit_tables=unit_tables, target="host", conv_block_rows=block_rows)
        plan = result.memory
        assert (r.arena_bytes, r.scratch_bytes, r.descriptor_bytes) == \
            (plan.arena_bytes, plan.scratch_bytes, plan.descriptor_bytes)
        assert (r.input_bytes, r.output_bytes) == (plan.input_bytes, plan.output_bytes)
        assert r.sram_bytes == plan.peak_sram_with_io_bytes
        assert r.flash_bytes == result.flash_table_bytes


def test_budget_and_cli_count_sram_for_the_conv_block_rows():
    from unitprune.cli import build_parser
    from unitprune.cli.shrink_commands import _budget
    from unitprune.shrink import BudgetError, MCUBudget
    from unitprune.shrink.budget import check_feasible

    graph = trace_resources(build_model("mnist-wide", seed=0), (1, 28, 28))
    ones = {g: 1 for g in graph.prunable_groups()}
    plane, rows = graph.exact(ones, unit_tables=True), graph.exact(ones, conv_block_rows="min", unit_tables=True)
    # one channel per layer, UnIT's weight-stationary convs: conv1's 4 * 26 * 26 plane is the scratch;
    # one row leaves conv1's 4 * 26
    assert plane.scratch_bytes == 4 * 26 * 26 and rows.scratch_bytes == 4 * 26
    # the dense export's convs: one row whatever the option, conv2 the two rows of its max-pool (taken on
    # the accumulators: unitprune.mcu.export.pooled_conv)
    assert graph.exact(ones).scratch_bytes == 4 * 2 * 24
    between = (plane.sram_bytes + rows.sram_bytes) // 2
    with pytest.raises(BudgetError, match="sram_bytes"):
        check_feasible(graph, MCUBudget(sram_bytes=between, unit_tables=True))
    check_feasible(graph, MCUBudget(sram_bytes=between, conv_block_rows="min", unit_tables=True))
    check_feasible(graph, MCUBudget(sram_bytes=between))
    with pytest.raises(ValueError, match="MCUBudget.conv_block_rows must be"):
        MCUBudget(sram_bytes=between, conv_block_rows=-1)
    parse = build_parser().parse_args
    assert _budget(parse(["shrink", "--sram", "6KB", "--conv-block-rows", "min"])).conv_block_rows == 1
    assert _budget(parse(["shrink", "--preset", "atmega2560", "--conv-block-rows", "4"])).conv_block_rows == 4
    assert _budget(parse(["shrink", "--sram", "6KB"])).conv_block_rows is None


# ---------------------------------------------------------------------------------------------
# --measure: the shrunk model exported, built and run on the simulated MCUs (unitprune.experiments.shrink_study.shrink_measure)
# ---------------------------------------------------------------------------------------------

def _elf_objects(elf) -> list[tuple[str, str, int]]:
    """(section, name, size) of every data object of ``elf``, from ``avr-objdump -t`` (the compiler's own sizes)."""
    import subprocess

    from tests.mcu_tools import require_program

    objdump = require_program("avr-objdump", "binutils-avr")
    table = subprocess.run([objdump, "-t", str(elf)], capture_output=True, text=True, check=True).stdout
    objects = []
    for line in table.splitlines():
        words = line.split()
        if len(words) >= 5 and words[-3] in (".text", ".data", ".bss") and words[-4] == "O":
            objects.append((words[-3], words[-1], int(words[-2], 16)))
    return objects


@pytest.mark.parametrize("case", ["shrunk", "wide-table", "far-tables"])
def test_measured_firmware_equals_the_resource_model(tmp_path, case):
    """The shrunk model's resource figures are what the exported firmware holds and the harness measures.
    ``wide-table``: a model with one 38,400-byte table, above the 32,767 bytes avr-gcc allows a C
    object (the exporter writes it as assembler data), on the AVR. ``far-tables``: 81,110 bytes of
    tables, beyond the AVR's 64 KB of near flash reads: far tables, counted by the ``avr-far`` layout."""
    import json

    from tests.mcu_tools import require_target
    from unitprune.data import load_digits
    from unitprune.mcu.targets.specs import STACK_RESERVE
    from unitprune.experiments.shrink_study.shrink_measure import MeasureConfig, measure_model

    chips = ("avr", "msp430") if case == "shrunk" else ("avr",)
    for target in chips:
        require_target(target)
    splits = load_digits(seed=0)
    torch.manual_seed(0)
    if case == "shrunk":
        model = tiny_digits_net()
        before = resources(model, (1, 8, 8))
        budget = MCUBudget(sram_bytes=before.sram_bytes // 2, flash_bytes=before.flash_bytes // 3)
        shrunk = shrink(model, splits.train, splits.val, budget, ShrinkConfig(epochs=2, prune_epochs=1,
                                                                              remove_every=5),
                        input_shape=(1, 8, 8)).model
    else:
        hidden = 150 if case == "wide-table" else 300
        shrunk = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(256, hidden),
                               nn.ReLU(), nn.Linear(hidden, 10)).eval()
    layout = {"avr": "avr", "msp430": "msp430"}  # "avr" counts the far layout by itself past 64 KB of tables
    if case == "far-tables":
        assert resources(shrunk, (1, 8, 8), target="avr") == resources(shrunk, (1, 8, 8), target="avr-far")
    measured = measure_model(shrunk, splits, tmp_path, unit_percentile=50,
                             config=MeasureConfig(targets=chips, samples=2, zeroskip=False))
    linears = sum(isinstance(m, nn.Linear) for m in shrunk.modules())
    for target in chips:
        entry = measured["targets"][target]
        assert entry["exported"] and entry["why"] is None, target
        dense, unit = entry["dense"], entry["unit"]
        assert dense["bit_exact"] and unit["bit_exact"], target  # firmware = host build = NumPy reference
        assert all(dense["checks"].values()) and all(unit["checks"].values())
        r = resources(shrunk, (1, 8, 8), target=layout[target])
        r_unit = resources(shrunk, (1, 8, 8), target=layout[target], unit_tables=True)
        assert dense["plan_sram_bytes"] == r.sram_bytes
        # UnIT's weight-stationary convs need their planes' accumulators, the dense ones a row's
        assert r_unit.sram_bytes - r_unit.scratch_bytes == r.sram_bytes - r.scratch_bytes
        assert r_unit.scratch_bytes >= r.scratch_bytes
        assert dense["flash_tables_bytes"] == r.flash_bytes
        # UnIT kernels: + the conv tau tables (counted with unit_tables) + each linear layer's 129-byte
        # quotient table (approx exact -> linear_quotient 'table', not in the resource model)
        assert unit["flash_tables_bytes"] == r_unit.flash_bytes + 129 * linears
        for v in (dense, unit):  # the harness: static data+bss plus the stack high-water mark
            assert v["sram_peak_bytes"] == v["sram_static_bytes"] + v["stack_bytes"]
            assert 0 < v["stack_bytes"] <= STACK_RESERVE  # the exporter's stack reserve holds
            assert v["sram_peak_bytes"] <= 8192 and v["samples"] == 2
        if target == "msp430":  # const descriptors live in FRAM there: RAM is the rest, exactly
            assert dense["sram_static_bytes"] == r.sram_bytes - r.descriptor_bytes
    # AVR: the ELF's own objects. RAM: arena, scratch, input, output, descriptors = sram_bytes; flash:
    # every constant table but the embedded samples = flash_bytes
    elf = tmp_path / "avr-dense" / "n2" / "build-avr-inference" / "model.elf"
    objects = _elf_objects(elf)
    r = resources(shrunk, (1, 8, 8), target=layout["avr"])
    if case != "shrunk":  # the assembler table is one object of its full size, in flash
        assert (".text", "l_3_weight_t", 256 * hidden) in objects
    plan = json.loads((elf.parents[1] / "export" / "memory_plan.json").read_text())
    assert plan["far_tables"] == (case == "far-tables") == (r.flash_bytes > 65_024)
    assert sum(size for section, _, size in objects if section in (".data", ".bss")) == r.sram_bytes
    assert sum(size for section, name, size in objects
               if section == ".text" and name != "unit_model_samples") == r.flash_bytes
    # the rest of .data is the runner's label strings ("inference", "error"), independent of the model
    assert 0 <= measured["targets"]["avr"]["dense"]["sram_static_bytes"] - r.sram_bytes <= 32
    assert measured["variants"]["unit"]["macs_skipped_fraction"] > 0


def test_model_beyond_the_msp430_fram_with_its_code_is_recorded_with_the_excess(tmp_path):
    """64 x 560 weights: 46,570 bytes of tables pass the exporter's check against the 49,024 bytes of
    simulated FRAM, but with the code they do not fit: the link fails and the reason says by how much."""
    import re

    from tests.mcu_tools import require_target
    from unitprune.data import load_digits
    from unitprune.experiments.shrink_study.shrink_measure import MeasureConfig, measure_model

    require_target("msp430")
    splits = load_digits(seed=0)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 560), nn.ReLU(), nn.Linear(560, 10)).eval()
    measured = measure_model(model, splits, tmp_path, unit_percentile=None,
                             config=MeasureConfig(targets=("msp430",), samples=1, zeroskip=False))
    msp430 = measured["targets"]["msp430"]
    assert set(msp430) == {"exported", "why"} and not msp430["exported"]
    found = re.search(r"need ([\d,]+) bytes, ([\d,]+) bytes more than the 49,024 bytes of FRAM", msp430["why"])
    assert found, msp430["why"]
    need, excess = (int(group.replace(",", "")) for group in found.groups())
    assert need == 49_024 + excess and excess > 0
    assert need > 46_570 + 64  # the tables and the embedded sample, plus the code
    assert "ld.lld" not in msp430["why"] and "overflowed" not in msp430["why"]  # not the raw linker message


def test_model_beyond_the_exporters_limits_is_recorded_as_not_exported(tmp_path):
    from tests.mcu_tools import require_target
    from unitprune.data import load_digits
    from unitprune.experiments.shrink_study.shrink_measure import MeasureConfig, measure_model

    for target in ("avr", "msp430"):
        require_target(target)
    splits = load_digits(seed=0)
    torch.manual_seed(0)
    # layer 1: 64 x 4,200 = 268,800 int8 weights: beyond the ATmega2560's 256 KB of flash (even with far
    # tables), and above the simulated MSP430's 49,024 bytes of FRAM (the exporter refuses both)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 4200), nn.ReLU(), nn.Linear(4200, 10)).eval()
    measured = measure_model(model, splits, tmp_path, unit_percentile=None,
                             config=MeasureConfig(targets=("avr", "msp430"), samples=1))
    avr, msp430 = measured["targets"]["avr"], measured["targets"]["msp430"]
    assert not avr["exported"] and "layer 1's constant tables end at byte" in avr["why"] and "262144" in avr["why"]
    assert not msp430["exported"] and "49024" in msp430["why"].replace(",", "")
    assert set(avr) == set(msp430) == {"exported", "why"}
    assert set(measured["variants"]) == {"dense"}  # nothing else quantized once no target takes the model
    assert not any(p.name.startswith("build") for p in tmp_path.rglob("*"))  # refused before any build


def test_cli_shrink_measure_adds_measured_and_keeps_the_keys(tmp_path, capsys):
    import json

    from tests.mcu_tools import require_target
    from unitprune.cli import main

    require_target("avr")
    run_dir = tmp_path / "run"
    assert main(["shrink", "--model", "digits", "--data", "digits", "--sram", "450", "--flash", "1KB", "--epochs", "2",
                 "--prune-epochs", "1", "--methods", "differentiable", "--measure", "avr", "--measure-samples", "1",
                 "--run-dir", str(run_dir), "--no-progress"]) == 0
    document = json.loads((run_dir / "shrink.json").read_text())
    fields = {"accuracy", "flash_bytes", "sram_bytes", "macs", "train_seconds"}
    assert set(document["base"]) == fields | {"measured"}
    m = document["methods"]["differentiable"]
    assert set(m) == fields | {"fits_budget", "measured"}  # the existing keys unchanged, one added
    avr = m["measured"]["targets"]["avr"]
    assert avr["exported"] and avr["dense"]["bit_exact"] and avr["dense"]["flash_tables_bytes"] == m["flash_bytes"]
    assert avr["dense"]["plan_sram_bytes"] == m["sram_bytes"] and avr["dense"]["samples"] == 1
    assert set(m["measured"]["targets"]) == {"avr"}
    assert "## Measured on simulated MCUs" in (run_dir / "report.md").read_text()
    assert "differentiable on avr: cycles dense" in capsys.readouterr().out


def test_fisher_salience_is_half_the_mean_squared_per_example_mask_gradient():
    """``per_example=True`` gates: the examples' shares of the mask gradient sum to ``theta.grad``
    (train mode, BatchNorm coupling the examples), and in eval mode (no coupling) the Fisher
    salience equals ``0.5 * mean_n (dCE_n/dm)^2`` with each example's loss differentiated alone
    (the oracle: one backward pass per example, on gates without the per-example record)."""
    torch.manual_seed(3)
    x, y = torch.randn(6, 1, 8, 8), torch.randint(0, 3, (6,))
    loss_fn = nn.CrossEntropyLoss()
    model = bn_chain()
    _randomize_bn(model)
    graph = trace_resources(model, (1, 8, 8))
    values = torch.tensor([1.0, 0.0, 1.0, 0.5, 1.0, 0.3])
    model.train()
    gates = ChannelGates(model, graph, per_example=True)
    group = gates.groups[0]
    gates.set(group, values)
    loss_fn(model(x), y).backward()
    shares = gates._per_example[group]
    assert shares.shape == (6, 6)
    torch.testing.assert_close(shares.sum(0), gates.theta[group].grad)
    gates.take_fisher()
    assert gates._per_example == {}
    gates.detach()

    model.eval()
    gates = ChannelGates(model, graph, per_example=True)
    gates.set(group, values)
    loss_fn(model(x), y).backward()
    fisher = gates.take_fisher()[group]
    gates.detach()
    oracle = ChannelGates(model, graph)
    oracle.set(group, values)
    per_example = []
    for n in range(6):
        oracle.theta[group].grad = None
        loss_fn(model(x[n:n + 1]), y[n:n + 1]).backward()
        per_example.append(oracle.theta[group].grad.clone())
    oracle.detach()
    expected = 0.5 * torch.stack(per_example).pow(2).mean(0)
    assert expected[[1, 5]].abs().max() > 0  # masked channels get a salience too
    torch.testing.assert_close(fisher, expected)


def test_channel_norms_are_the_l2_norms_of_the_producing_layers_rows():
    from unitprune.shrink.gates import channel_norms
    torch.manual_seed(4)
    model = ds_cnn_net(num_classes=4, width=8, blocks=2, input_shape=(1, 20, 16))
    graph = trace_resources(model, (1, 20, 16))
    group = graph.find(graph.layers[0].out_group)  # conv1 (+ dw1, which does not count)
    expected = model.conv1.weight.detach().reshape(8, -1).norm(dim=1)
    torch.testing.assert_close(channel_norms(model, graph, group), expected)


@pytest.mark.parametrize("fraction, kept", [(0.1, 6), (0.5, 6), (1.0, 8), (2.0, 12)])
def test_removal_keeps_the_reserve_fraction_of_top_ranked_channels_beyond_the_open_ones(fraction, kept):
    """With 4 open channels of 20, the removal keeps ``4 + max(2, ceil(fraction * 4))`` channels,
    the top-ranked ones (the oracle: ``torch.topk`` of the ranking and the conv's original rows)."""
    from unitprune.shrink.method import _remove_beyond_reserve

    torch.manual_seed(6)
    model = nn.Sequential(nn.Conv2d(1, 20, 3), nn.ReLU(), nn.Conv2d(20, 8, 3), nn.ReLU(), nn.Flatten(),
                          nn.Linear(8 * 4 * 4, 3))
    graph = trace_resources(model, (1, 8, 8))
    gates = ChannelGates(model, graph)
    first = graph.find(graph.layers[0].out_group)
    ranking = {g: torch.rand(graph.group_sizes[g]) for g in gates.groups}
    counts = {g: float(graph.group_sizes[g]) for g in gates.groups}
    counts[first] = 4.0
    weight = model[0].weight.detach().clone()

    def make(params, extra):
        return torch.optim.Adam(params, lr=1e-3)

    salience = {g: v.clone() for g, v in ranking.items()}
    _, salience = _remove_beyond_reserve(model, graph, gates, torch.zeros(1, 1, 8, 8), make(list(model.parameters()), []),
                                         make, salience, ranking, counts, 2, fraction)
    expected = sorted(torch.topk(ranking[first], kept).indices.tolist())
    assert model[0].out_channels == kept and model[2].in_channels == kept
    torch.testing.assert_close(model[0].weight, weight[expected])
    torch.testing.assert_close(salience[first], ranking[first][expected])
    assert model[2].out_channels == 8  # the group at its full count keeps everything
    gates.detach()


def test_rank_by_norm_ranks_the_masks_by_the_channels_weight_norms():
    """``rank_by="norm"``: the masks' ranking is each channel's weight L2 norm (hand-computed from
    conv1's rows), times ``1 + keep_bonus`` for an open channel; ``"salience"`` ranks by the salience."""
    from unitprune.shrink.allocation import ranked_mask
    from unitprune.shrink.method import _order

    torch.manual_seed(7)
    model = bn_chain()
    gates = ChannelGates(model, trace_resources(model, (1, 8, 8)))
    group = gates.groups[0]
    gates.set(group, torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0, 0.0]))
    salience = {g: torch.rand(gates.theta[g].numel()) for g in gates.groups}
    norms = model[0].weight.detach().reshape(6, -1).norm(dim=1)
    order = _order(gates, salience, ShrinkConfig(rank_by="norm", keep_bonus=0.5))
    torch.testing.assert_close(order[group], norms * torch.tensor([1.5, 1.5, 1, 1, 1, 1]))
    expected = torch.zeros(6)
    expected[torch.topk(norms, 3).indices] = 1.0
    assert ranked_mask(3.0, _order(gates, salience, ShrinkConfig(rank_by="norm", keep_bonus=0.0))[group]).tolist() \
        == expected.tolist()
    torch.testing.assert_close(_order(gates, salience, ShrinkConfig(keep_bonus=0.0))[group], salience[group])
    gates.detach()


@pytest.mark.parametrize("preset", ["atmega2560"])
def test_a_model_filling_the_presets_flash_budget_links_on_the_chip(tmp_path, preset):
    """The resource model counts the constant tables only: a preset's flash budget keeps room for the
    firmware's code (FLASH_CODE_RESERVE), so the largest model it admits builds and runs on the chip.
    With the chip's whole 256 KB as the table budget, such a model overflowed the flash at link time."""
    from tests.mcu_tools import require_target
    from unitprune.data import load_digits
    from unitprune.experiments.shrink_study.shrink_measure import MeasureConfig, measure_model
    from unitprune.shrink import PRESETS
    from unitprune.shrink.resources import resources

    require_target("avr")
    budget = PRESETS[preset]

    def mlp(hidden: int) -> nn.Module:  # most weights in the middle Linear, small vectors in SRAM
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 400), nn.ReLU(), nn.Linear(400, hidden), nn.ReLU(),
                             nn.Linear(hidden, 10)).eval()

    def flash(hidden: int) -> int:
        return resources(mlp(hidden), (1, 8, 8), target=budget.target).flash_bytes

    low, high = 1, 2048  # the widest hidden layer whose tables fit the preset's flash budget
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if flash(mid) <= budget.flash_bytes else (low, mid)
    assert flash(low) <= budget.flash_bytes < flash(low + 1)
    assert budget.flash_bytes - flash(low) < 1024  # it fills the budget (to one hidden unit)
    torch.manual_seed(0)
    measured = measure_model(mlp(low), load_digits(seed=0), tmp_path, unit_percentile=None,
                             config=MeasureConfig(targets=("avr",), samples=1))
    avr = measured["targets"]["avr"]
    assert avr["exported"], avr["why"]
    assert avr["dense"]["bit_exact"]

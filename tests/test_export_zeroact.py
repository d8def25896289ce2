"""A zeroskip export whose plan (unitprune.mcu.zeroact_plan) has convolutions skip zero activations:
those layers call unit_conv2d_sparse_zeroact_s8, memory_plan.json records the choice with its
predictions and the row table, the flash tables and the RAM (the kernel's scratch counted exactly)
equal the AVR ELF's symbols, and the firmware is bit-exact with the reference's outputs and counters
(counted build). Without a plan, the layers keep unit_conv2d_sparse_s8."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from tests import qmodels
from tests.test_export import needs_cc
from tests.test_export_sparse import check_avr_export, ttp_like
from tests.test_sparse_zeroact_s8 import blob_input
from unitprune.kernels.sparse_zeroact_s8 import row_starts_bytes
from unitprune.mcu import kernel_choice, zeroact_plan
from unitprune.mcu.export import export_c
from unitprune.mcu.reference import run_reference


def test_a_planned_zeroact_export_counts_its_tables_and_scratch_and_is_bit_exact(tmp_path):
    from tests.mcu_tools import require_program, require_target

    require_target("avr")
    require_program("make", "make")
    rng = np.random.default_rng(11)
    qmodel = zeroact_plan.plan_zero_activation(ttp_like(rng), blob_input(rng, qmodels.random_input(rng, 4, (1, 12, 10))),
                                               None, plan="zeroact")
    x = blob_input(rng, qmodels.random_input(rng, 2, qmodel.input_shape))
    expected, expected_counts = run_reference(qmodel, x)
    result = export_c(qmodel, tmp_path, target="avr", samples=x, counters=True)
    plan = json.loads((tmp_path / "memory_plan.json").read_text())
    chosen = plan["kernels"]["layers"]
    assert {name: chosen[name]["kernel"] for name in chosen} == {
        "conv1": "unit_conv2d_sparse_zeroact_s8", "conv2": "unit_conv2d_sparse_zeroact_s8",
        "fc": "unit_linear_sparse_s8"}
    assert plan["zeroact_plan"]["layers"]["conv1"]["kernel"] == "zeroact"
    for op in (o for o in qmodel.ops if o.name in ("conv1", "conv2")):
        group_in = op.in_channels // op.groups
        assert plan["flash"]["per_layer"][op.name]["row_starts"] == row_starts_bytes(op.out_channels, group_in,
                                                                                     op.kernel_height)
        # 15*OW + 1 + 4*C*H + 4*G + O, rounded up to 4 (unit_conv2d_sparse_zeroact_s8_scratch_size)
        want = (15 * op.out_width + 1 + 4 * op.in_channels * op.in_height + 4 * group_in * op.kernel_height
                + op.out_channels + 3) // 4 * 4
        assert next(m for m in plan["memory"]["ops"] if m["name"] == op.name)["scratch_bytes"] == want
    check_avr_export(tmp_path, plan, result, expected.reshape(len(x), -1), expected_counts)


def test_without_a_plan_the_convolutions_keep_the_sparse_kernel(tmp_path):
    rng = np.random.default_rng(3)
    qmodel = ttp_like(rng)
    export_c(qmodel, tmp_path, target="host")
    plan = json.loads((tmp_path / "memory_plan.json").read_text())
    # (its max-pool taken on the accumulators: the pooled static-sparse kernel, pooled_conv.py)
    assert plan["kernels"]["layers"]["conv1"]["kernel"] == "unit_conv2d_sparse_pool_s8"
    assert "zeroact_plan" not in plan


def test_msp430_exports_keep_room_for_the_zeroact_code(tmp_path):
    """An MNIST-shaped zeroskip model with every weight nonzero, conv1 planned on the zero-activation
    kernel and conv2 not (both conv kernels linked), for the MSP430: the export keeps
    TargetSpec.zeroact_code_bytes of the FRAM for that kernel's code beside the static-sparse tables
    (chosen without the embedded samples), and the firmware with one sample links. With 10 samples
    (7,840 B) it does not: the linker's FirmwareTooLarge says to embed fewer (mcu-bench measures
    such a firmware on halves of its samples). The reserve covers the kernel's code as clang-14
    compiles it (llvm-size-14)."""
    import dataclasses

    from tests.mcu_tools import require_target
    from unitprune.experiments.mcu_bench.bench import _build
    from unitprune.mcu.targets import msp430
    from unitprune.mcu.targets.specs import EXPORT_TARGETS

    require_target("msp430")
    rng = np.random.default_rng(0)
    qmodel = qmodels.mnist_like(rng, variant="zeroskip")
    ops = [dataclasses.replace(op, weight=np.where(op.weight == 0, 1, op.weight).astype(np.int8))
           if hasattr(op, "weight") else op for op in qmodel.ops]
    qmodel = dataclasses.replace(qmodel, ops=ops)
    x = qmodels.random_input(rng, 10, qmodel.input_shape)
    planned = zeroact_plan.plan_zero_activation(qmodel, x[:2], "msp430", plan="zeroact")
    planned.source["zeroact_plan"]["layers"]["conv2"]["kernel"] = "sparse"
    assert zeroact_plan.plans_zeroact(planned) and not zeroact_plan.plans_zeroact(qmodel)
    export_c(planned, tmp_path / "export", target="msp430", samples=x[:1])
    chosen = json.loads((tmp_path / "export" / "memory_plan.json").read_text())["kernels"]["layers"]
    assert {name: layer["kernel"] for name, layer in chosen.items()} == {
        "conv1": "unit_conv2d_sparse_zeroact_s8", "conv2": "unit_conv2d_sparse_pool_s8", "fc": "unit_linear_sparse_s8"}
    spec = EXPORT_TARGETS["msp430"]
    tables = sum(kernel_choice.sparse_tables(op).flash_bytes for op in planned.ops if hasattr(op, "weight"))
    assert tables + spec.code_reserve_bytes + spec.zeroact_code_bytes <= spec.flash_read_limit
    firmware = _build("msp430", tmp_path / "export", tmp_path / "build", markers=False)
    assert firmware.flash_bytes <= 49_024
    export_c(planned, tmp_path / "export10", target="msp430", samples=x)  # the same kernels, 10 samples
    chosen10 = json.loads((tmp_path / "export10" / "memory_plan.json").read_text())["kernels"]["layers"]
    assert chosen10 == chosen
    with pytest.raises(msp430.FirmwareTooLarge, match="fewer of them"):
        _build("msp430", tmp_path / "export10", tmp_path / "build10", markers=False)

    code = 0
    for name in ("unit_conv2d_sparse_zeroact_s8.c", "unit_conv2d_sparse_zeroact_s8_scratch_size.c"):
        source = tmp_path / "export" / "kernels" / name
        obj = tmp_path / f"{name}.o"
        subprocess.run(["clang-14", *msp430.COMPILE_FLAGS, "-O2", *msp430.C_FLAGS, "-DUNIT_MSP430_HWMULT=1",
                        f"-I{source.parent}", "-c", str(source), "-o", str(obj)], check=True)
        sizes = subprocess.run(["llvm-size-14", "-A", str(obj)], capture_output=True, text=True, check=True).stdout
        code += sum(int(line.split()[1]) for line in sizes.splitlines() if line.startswith((".text", ".rodata")))
    assert 0 < code <= EXPORT_TARGETS["msp430"].zeroact_code_bytes, code


@needs_cc
def test_cli_export_plans_the_zeroact_kernels(tmp_path):
    """`unitprune export --variant zeroskip`: --zeroact-kernels zeroact puts every static-sparse conv on
    the zero-activation kernel (memory_plan.json's kernels and zeroact_plan), the host build bit-exact;
    auto on the host (no cycle model) keeps the sparse kernel."""
    import torch

    from unitprune.cli import main
    from unitprune.models import build_model

    torch.save(build_model("digits", seed=0).state_dict(), tmp_path / "weights.pt")
    common = ["export", "--model", "digits", "--weights", str(tmp_path / "weights.pt"), "--data", "digits",
              "--variant", "zeroskip"]
    assert main([*common, "--out-dir", str(tmp_path / "zeroact"), "--zeroact-kernels", "zeroact"]) == 0
    plan = json.loads((tmp_path / "zeroact" / "memory_plan.json").read_text())
    convs = [name for name, layer in plan["zeroact_plan"]["layers"].items()]
    assert convs and all(plan["kernels"]["layers"][name]["kernel"] == "unit_conv2d_sparse_zeroact_s8" for name in convs)
    assert json.loads((tmp_path / "zeroact" / "host_check.json").read_text())["bit_exact"]
    assert main([*common, "--out-dir", str(tmp_path / "auto")]) == 0
    plan = json.loads((tmp_path / "auto" / "memory_plan.json").read_text())
    assert {layer["kernel"] for layer in plan["zeroact_plan"]["layers"].values()} == {"sparse"}
    assert "unit_conv2d_sparse_zeroact_s8" not in {layer["kernel"] for layer in plan["kernels"]["layers"].values()}

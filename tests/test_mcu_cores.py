"""The Cortex-M0+ and RV32 targets (m0plus, m0plus-smallmul, rv32ec, rv32imc) of unitprune.mcu.targets:

* the timing table against hand counts of small assembly listings (tests/mcu_firmware/listing_*.S,
  counted below line by line from ARM DDI 0484C Table 3.1, and the RV32 instruction count/model);
* an exported int8 model bit-exact against the NumPy integer reference on every target, with
  exact, repeatable instruction and cycle counts;
* the instruction-set check: the same ELF under QEMU's strict Cortex-M0 / RV32E-without-M CPU gives
  the same outputs and instruction counts, and an instruction the core lacks is caught there
  (unicorn alone runs it);
* missing tools name their Debian packages; a firmware beyond the flash is FirmwareTooLarge.
(The arith firmware of tests/test_mcu_targets.py also runs bit-exact on these targets.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.mcu_tools import require_target
from unitprune.data import load_dataset
from unitprune.mcu import targets
from unitprune.experiments.mcu_bench.bench import _build
from unitprune.mcu.export import export_c
from unitprune.mcu.quantize import quantize
from unitprune.mcu.reference import quantize_input, run_reference
from unitprune.mcu.targets import cortexm_timing
from unitprune.models import build_model

FIRMWARE = Path(__file__).parent / "mcu_firmware"
CORES = ("m0plus", "m0plus-smallmul", "rv32ec", "rv32imc")

# listing_arm.S by hand (Table 3.1): push {r4,lr} 1+2, movs 1, subs x5 = 5, bne 4 taken x 2 + 1,
# ldr 2, ldrsb 2, muls M, str 2, ldm r1!,{r2,r3} 1+2, b 2, pop {r4,pc} 3+2 = 34 + M; the region
# adds the start stub's bx lr (2), the bl into the listing (3) and the bl of the stop marker (3).
ARM_LISTING = {"m0plus": 2 + 3 + 34 + 1 + 3, "m0plus-smallmul": 2 + 3 + 34 + 32 + 3}
ARM_LISTING_INSTRUCTIONS = 1 + 1 + (2 + 5 + 5 + 7) + 1  # bx, bl, the listing's 19, bl
# listing_riscv.S: li, addi x5, bnez x5, la (auipc+addi), lw, sw, j, ret = 17 instructions; model:
# +4 taken branches, +1 load, +1 j, +1 ret; the region adds ret (start stub), jal, jal: 3 more
# instructions, each a jump (+1 cycle).
RISCV_LISTING_INSTRUCTIONS = 17 + 3
RISCV_LISTING_MODEL = 17 + 4 + 1 + 1 + 1 + 3 * 2


_LISTINGS: dict = {}


def _listing(target: str, tmp_path_factory) -> tuple[targets.Firmware, targets.RunResult]:
    """The listing firmware of ``target`` and its run, built once per module (the timing and the
    strict-QEMU tests share it)."""
    if target not in _LISTINGS:
        require_target(target)
        asm = FIRMWARE / ("listing_arm.S" if target.startswith("m0plus") else "listing_riscv.S")
        firmware = targets.build(target, [FIRMWARE / "listing_main.c", asm],
                                 build_dir=tmp_path_factory.mktemp(f"listing-{target}"))
        _LISTINGS[target] = (firmware, targets.run(firmware, max_cycles=10_000_000))
    return _LISTINGS[target]


@pytest.mark.parametrize("target", CORES)
def test_timing_table_matches_the_hand_counted_listing(target, tmp_path_factory):
    _, result = _listing(target, tmp_path_factory)
    empty, listing = result.region("empty"), result.region("listing")
    if target.startswith("m0plus"):
        assert (empty.cycles, empty.instructions) == (5, 2)  # BX LR 2 + BL 3 (unit_mcu.h)
        assert (listing.cycles, listing.instructions) == (ARM_LISTING[target], ARM_LISTING_INSTRUCTIONS)
        assert "DDI 0484C" in result.cycle_source
    else:
        assert (empty.cycles, empty.instructions) == (4, 2)  # RET + JAL, each a jump in the model
        assert (listing.cycles, listing.instructions) == (RISCV_LISTING_MODEL, RISCV_LISTING_INSTRUCTIONS)
        assert "MODEL" in result.cycle_source
    assert result.instructions > listing.instructions and result.total_cycles > listing.cycles


def test_decoder_classes_by_hand():
    """Single encodings (from arm-none-eabi-as) against Table 3.1."""
    cases = {  # halfwords -> (bytes, cycles with MULS 1, kind)
        (0x4358, 0): (2, 1, "other"),      # muls r0, r3
        (0x56F5, 0): (2, 2, "other"),      # ldrsb r5, [r6, r3]
        (0xB570, 0): (2, 5, "other"),      # push {r4, r5, r6, lr}
        (0xBD70, 0): (2, 7, "branch"),     # pop {r4, r5, r6, pc}
        (0xD1F8, 0): (2, 1, "cond"),       # bne (taken: +1 by the emulator)
        (0xE7FC, 0): (2, 2, "branch"),     # b
        (0x4770, 0): (2, 2, "branch"),     # bx lr
        (0xF000, 0xF88B): (4, 3, "branch"),  # bl
        (0xF3BF, 0x8F5F): (4, 3, "other"),   # dmb sy
        (0xC90C, 0): (2, 3, "other"),      # ldmia r1!, {r2, r3}
        (0x46F7, 0): (2, 2, "branch"),     # mov pc, lr
        (0xFB00, 0xF000): (4, 1, "undefined"),  # mul.w (ARMv7-M, not ARMv6-M)
    }
    for (first, second), expected in cases.items():
        assert cortexm_timing.decode(first, second, 1) == expected, hex(first)
    assert cortexm_timing.decode(0x4358, 0, 32)[1] == 32


@pytest.fixture(scope="module")
def digits_dense():
    """A random-weight digits model, dense int8, and 2 test inputs with the reference outputs."""
    splits = load_dataset("digits", seed=0)
    model = build_model("digits", seed=0).eval()
    qmodel = quantize(model, splits.val.tensors[0], variant="dense")
    x_q = quantize_input(qmodel, splits.test.tensors[0][:2])
    expected, _ = run_reference(qmodel, x_q)
    return qmodel, x_q, expected.reshape(len(x_q), -1)


_MODEL_RUNS: dict = {}


def _model_run(target, digits_dense, tmp_path_factory):
    if target not in _MODEL_RUNS:
        require_target(target)
        qmodel, x_q, _ = digits_dense
        work = tmp_path_factory.mktemp(f"model-{target}")
        export_c(qmodel, work / "export", target=target, samples=x_q)
        firmware = _build(target, work / "export", work / "build", markers=False)
        _MODEL_RUNS[target] = (firmware, targets.run(firmware), targets.run(firmware))
    return _MODEL_RUNS[target]


@pytest.mark.parametrize("target", CORES)
def test_exported_model_bit_exact_and_counts_exact(target, digits_dense, tmp_path_factory):
    firmware, first, second = _model_run(target, digits_dense, tmp_path_factory)
    _, _, expected = digits_dense
    outputs = np.stack([np.frombuffer(r.data, dtype=np.int8) for r in first.regions if r.data])
    assert np.array_equal(outputs, expected)
    assert [r.label for r in first.regions] == ["inference"] * len(expected)
    assert [(r.cycles, r.instructions) for r in first.regions] == [(r.cycles, r.instructions) for r in second.regions]
    assert all(r.cycles >= r.instructions > 1000 for r in first.regions)
    spec = targets.CORE_TARGETS[target]
    assert 0 < firmware.sram_static_bytes and firmware.sram_static_bytes + first.stack_bytes <= spec.sram.length
    assert firmware.flash_bytes > firmware.sections["text"] > 0


def test_small_multiplier_costs_31_cycles_per_muls(digits_dense, tmp_path_factory):
    """The two Arm targets run the same instruction count per inference only if gcc made the same
    code; with -mcpu=cortex-m0plus.small-multiply it avoids MULS for constants, so only the
    inequality holds in general: the small multiplier is slower."""
    _, fast, _ = _model_run("m0plus", digits_dense, tmp_path_factory)
    _, slow, _ = _model_run("m0plus-smallmul", digits_dense, tmp_path_factory)
    assert all(s.cycles > f.cycles for s, f in zip(slow.regions, fast.regions) if f.cycles)


@pytest.mark.parametrize("target", ["m0plus", "rv32ec"])
def test_strict_qemu_cpu_agrees_on_outputs_and_instruction_counts(target, digits_dense, tmp_path_factory):
    firmware, result, _ = _model_run(target, digits_dense, tmp_path_factory)
    summary = targets.check_isa(firmware, result)
    assert summary["agree"] and summary["instructions"] == result.instructions
    assert summary["regions"] == len(result.regions)


@pytest.mark.parametrize("target", ["m0plus", "rv32imc"])
def test_strict_qemu_agrees_on_the_listing(target, tmp_path_factory):
    firmware, result = _listing(target, tmp_path_factory)
    assert targets.check_isa(firmware, result)["instructions"] == result.instructions


def test_instruction_the_core_lacks_is_caught_by_the_strict_cpu(tmp_path):
    """A Cortex-M3 instruction (UDIV) runs in unicorn but faults on QEMU's Cortex-M0; an RV32IMC
    build (MUL) faults on QEMU's RV32E without M."""
    require_target("m0plus")
    source = tmp_path / "udiv.c"
    source.write_text('#include "unit_mcu.h"\nvolatile unsigned a = 100, b = 7, q;\nint main(void) {\n'
                      '    unsigned x = a, y = b, r;\n'
                      '    __asm__ volatile(".cpu cortex-m3\\n udiv %0, %1, %2\\n .cpu cortex-m0plus" '
                      ': "=r"(r) : "r"(x), "r"(y));\n    q = r;\n    unit_mcu_label("q");\n'
                      '    unit_mcu_emit((const void *)&q, 4);\n    unit_mcu_done();\n}\n')
    firmware = targets.build("m0plus", [source], build_dir=tmp_path / "arm")
    result = targets.run(firmware)
    assert result.region("q").data == (14).to_bytes(4, "little")  # unicorn does not enforce ARMv6-M
    with pytest.raises(targets.FirmwareError, match="strict QEMU|did not|faulted"):
        targets.check_isa(firmware, result)

    require_target("rv32imc")
    source = tmp_path / "mul.c"
    source.write_text('#include "unit_mcu.h"\nvolatile int a = 100, b = 7, p;\nint main(void) {\n    p = a * b;\n'
                      '    unit_mcu_label("p");\n    unit_mcu_emit((const void *)&p, 4);\n    unit_mcu_done();\n}\n')
    imc = targets.build("rv32imc", [source], build_dir=tmp_path / "imc")
    imc_result = targets.run(imc)
    assert imc_result.region("p").data == (700).to_bytes(4, "little")  # (rv32imc's own strict CPU runs
    # MUL: test_strict_qemu_agrees_on_the_listing[rv32imc])
    as_ec = targets.Firmware("rv32ec", imc.elf, imc.build_dir, imc.sections, imc.flash_bytes, imc.sram_static_bytes,
                             imc.symbols)
    with pytest.raises(targets.FirmwareError):
        targets.check_isa(as_ec, imc_result)


def test_missing_tools_name_the_packages(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(targets.ToolMissing, match="gcc-arm-none-eabi picolibc-arm-none-eabi"):
        targets.check_tools("m0plus")
    with pytest.raises(targets.ToolMissing, match="gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf"):
        targets.check_tools("rv32ec")


def test_firmware_beyond_the_flash_is_too_large(tmp_path):
    require_target("rv32ec")
    source = tmp_path / "huge.c"
    source.write_text('#include <stdint.h>\n#include "unit_mcu.h"\n'
                      'const int8_t huge[300 * 1024] = {1};\nvolatile int i = 3;\n'
                      'int main(void) {\n    volatile int8_t v = huge[i];\n    (void)v;\n    unit_mcu_done();\n}\n')
    with pytest.raises(targets.FirmwareTooLarge) as raised:
        targets.build("rv32ec", [source], build_dir=tmp_path / "build")
    assert raised.value.region == "FLASH" and 44 * 1024 < raised.value.overflow_bytes < 48 * 1024


@pytest.mark.parametrize("target", ["m0plus", "rv32ec"])
def test_resources_predict_the_export_plan(target, digits_dense, tmp_path):
    """unitprune.resources(target=...) against the exporter's own plan for the same target (4-byte
    pointers and alignment): SRAM parts and flash tables equal."""
    from unitprune import resources
    from unitprune.models import build_model

    qmodel, x_q, _ = digits_dense
    model = build_model("digits", seed=0).eval()
    predicted = resources(model, tuple(qmodel.input_shape), target=target)
    result = export_c(qmodel, tmp_path / "export", target=target, samples=x_q)
    plan = result.memory
    assert predicted.descriptor_bytes == plan.descriptor_bytes
    assert predicted.sram_bytes == plan.peak_sram_with_io_bytes
    assert predicted.flash_bytes == sum(layer.total for layer in result.flash)


def test_energy_figures_of_the_new_chips_are_the_cited_table_values():
    """The datasheet values docs/mcu.md cites (SAMD21 DS40001882 37.7; CH32V003DS0 Table 3-6-1;
    ESP32-C3 datasheet Table 5-8), at the clocks and voltages of those tables."""
    cited = {"m0plus": (3.37e-3, 48e6, "37.7"), "m0plus-smallmul": (3.37e-3, 48e6, "37.7"),
             "rv32ec": (4.0e-3, 48e6, "Table 3-6-1"), "rv32imc": (23e-3, 160e6, "Table 5-8")}
    for target, (current, clock, table) in cited.items():
        model = targets.ENERGY_MODELS[target]
        assert (model.current_a, model.clock_hz, model.voltage_v) == (current, clock, 3.3) and table in model.citation
        assert targets.energy_uj_estimate(target, 48_000_000) == pytest.approx(current * 3.3 * 48e6 / clock * 1e6)


def test_presets_of_the_new_chips():
    from unitprune.mcu.targets.specs import FLASH_CODE_RESERVE_RV32EC, STACK_RESERVE
    from unitprune.shrink.budget import PRESETS

    assert (PRESETS["ch32v003"].sram_bytes, PRESETS["ch32v003"].flash_bytes, PRESETS["ch32v003"].target) == (
        2048 - STACK_RESERVE, 16 * 1024 - FLASH_CODE_RESERVE_RV32EC, "rv32ec")
    assert (PRESETS["rp2040"].sram_bytes, PRESETS["rp2040"].target) == (264 * 1024 - STACK_RESERVE, "m0plus")


#: (C, H, W, O, KH, KW, stride, groups, act_min): no padding (the fast path) with strides, groups,
#: an odd channel count, kernel widths 1..8, a 9-wide kernel (the portable fallback), no fused ReLU.
#: Small: the strict-QEMU check single-steps every instruction (the portable kernel on rv32ec calls
#: __mulsi3 per MAC, about 100 instructions).
CONV_CASES = [(1, 12, 12, 3, 5, 5, 1, 1, 0), (4, 9, 10, 6, 3, 3, 2, 2, 0), (3, 7, 11, 5, 2, 8, 1, 1, -128),
              (2, 6, 6, 4, 1, 1, 1, 1, 0), (2, 5, 12, 2, 3, 9, 1, 1, 0), (6, 7, 7, 4, 5, 5, 1, 1, 0)]


def _conv_cases_header(rng) -> str:
    from unitprune.mcu.codegen import c_array

    parts, params, requants, xs, ws, sizes = [], [], [], [], [], []
    max_y = max_scratch = 0
    for i, (c, h, w, o, kh, kw, stride, groups, act_min) in enumerate(CONV_CASES):
        oh, ow = (h - kh) // stride + 1, (w - kw) // stride + 1
        x = rng.integers(-128, 128, size=c * h * w)
        weight = rng.integers(-127, 128, size=o * (c // groups) * kh * kw)
        bias = rng.integers(-3000, 3000, size=o)
        multiplier = rng.integers(1 << 29, (1 << 31) - 1, size=o)
        shift = rng.integers(-12, -6, size=o)
        parts += [c_array("int8_t", f"x{i}", x), c_array("int8_t", f"w{i}", weight), c_array("int32_t", f"b{i}", bias),
                  c_array("int32_t", f"m{i}", multiplier), c_array("int8_t", f"s{i}", shift)]
        params.append(f"{{1, {c}, {h}, {w}, {o}, {kh}, {kw}, {stride}, {stride}, 1, 1, 0, 0, 0, 0, {groups}, 0}}")
        requants.append(f"{{b{i}, m{i}, s{i}, {act_min}, 127}}")
        xs.append(f"x{i}")
        ws.append(f"w{i}")
        sizes.append(str(o * oh * ow))
        max_y, max_scratch = max(max_y, o * oh * ow), max(max_scratch, oh * ow)
    return ("#include <stdint.h>\n#include \"unit_kernels_s8.h\"\n"
            f"#define CONV_CASES {len(CONV_CASES)}\n#define CONV_MAX_Y {max_y}\n#define CONV_MAX_SCRATCH {max_scratch}\n"
            + "".join(parts)
            + f"static const unit_conv2d_params conv_params[] = {{{', '.join(params)}}};\n"
            + f"static const unit_requant_s8 conv_requant[] = {{{', '.join(requants)}}};\n"
            + f"static const int8_t *const conv_x[] = {{{', '.join(xs)}}};\n"
            + f"static const int8_t *const conv_w[] = {{{', '.join(ws)}}};\n"
            + f"static const int32_t conv_y_size[] = {{{', '.join(sizes)}}};\n")


@pytest.mark.parametrize("target", ["m0plus", "rv32ec", "host"])
def test_mcu32_convolution_equals_the_portable_one(target, tmp_path):
    """unit_conv2d_dense_s8_mcu32 (Thumb-1 on m0plus, the quarter-square C form on rv32ec, the plain
    C form on the host) gives the outputs of unit_conv2d_dense_s8 bit for bit on every case, and on
    the Cortex-M0+ and RV32EC in fewer cycles on the fast-path cases."""
    from unitprune.mcu.export.build_files import CSRC

    require_target(target)
    (tmp_path / "conv_cases.h").write_text(_conv_cases_header(np.random.default_rng(3)))
    sources = [FIRMWARE / "conv_m0plus.c", *[CSRC / f"{name}.c" for name in (
        "unit_conv2d_dense_s8", "unit_conv2d_dense_s8_mcu32")]]
    firmware = targets.build(target, sources, include_dirs=[tmp_path, CSRC], defines={"UNIT_S8_COUNTS": 0},
                             build_dir=tmp_path / "build")
    result = targets.run(firmware, max_cycles=50_000_000)
    for i, case in enumerate(CONV_CASES):
        reference, ours = result.region(f"ref{chr(97 + i)}"), result.region(f"m0{chr(97 + i)}")
        assert len(reference.data) > 1 and ours.data == reference.data, f"case {i} {case}"
        if target != "host" and case[5] <= 8:
            assert ours.cycles < reference.cycles, f"case {i} {case}: {ours.cycles} vs {reference.cycles}"
    if target != "host":
        assert targets.check_isa(firmware, result)["agree"]


def test_ch32v003_preset_model_runs_bit_exact_within_the_chip(tmp_path):
    """A small MNIST model shrunk under the ch32v003 preset (conv accumulators one row at a time) is
    exported for rv32ec and runs bit-exact there; the ELF's static SRAM plus the measured stack fit
    the chip's 2 KB and its flash (code, tables and the embedded sample) its 16 KB; the kernels'
    descriptors are in flash, as the resource model now counts them on this target."""
    import torch
    from torch.utils.data import TensorDataset

    import unitprune
    from unitprune.mcu.targets.specs import CH32V003
    from unitprune.shrink import ShrinkConfig
    from unitprune.shrink.budget import PRESETS

    require_target("rv32ec")
    splits = load_dataset("mnist", seed=0)
    train = TensorDataset(*(t[:256] for t in splits.train.tensors))
    budget = PRESETS["ch32v003"].with_(conv_block_rows="min")
    torch.manual_seed(0)
    result = unitprune.shrink.shrink(build_model("mnist", seed=0), train, splits.val, budget,
                                     ShrinkConfig(epochs=1, prune_epochs=1, remove_every=5))
    assert result.fits and result.after.sram_bytes <= budget.sram_bytes and result.after.descriptor_bytes == 0
    model = result.model.eval()
    qmodel = quantize(model, splits.val.tensors[0][:100], variant="dense")
    x_q = quantize_input(qmodel, splits.test.tensors[0][:1])
    expected, _ = run_reference(qmodel, x_q)
    work = tmp_path
    export = export_c(qmodel, work / "export", target="rv32ec", samples=x_q, conv_block_rows="min")
    assert export.memory.descriptor_bytes == 0 and export.memory.peak_sram_with_io_bytes == result.after.sram_bytes
    firmware = _build("rv32ec", work / "export", work / "build", markers=False)
    run = targets.run(firmware)
    outputs = np.stack([np.frombuffer(r.data, dtype=np.int8) for r in run.regions if r.data])
    assert np.array_equal(outputs, expected.reshape(1, -1))
    assert firmware.sram_static_bytes + run.stack_bytes <= CH32V003["sram_bytes"]
    assert firmware.flash_bytes <= CH32V003["flash_bytes"]
    flash = targets.CORE_TARGETS["rv32ec"].flash
    assert flash.origin <= firmware.symbols["conv1_params"] < flash.origin + flash.length


@pytest.mark.parametrize("target", CORES)
def test_a_stack_that_runs_into_the_static_data_is_an_error(target, tmp_path):
    """tests/mcu_firmware/stack_overflow.c recurses until its frame lies ~1,000 B inside its 2,000 B
    of .bss, whatever the target's SRAM (32 KB; 400 KB on rv32imc): crt0's paint between __bss_end
    and the SRAM top is all touched, so the stack bytes in r0 / a0 cover every free byte and the run
    raises FirmwareError naming the stack overflow, the free bytes and the static data (the stack
    ends inside the static data, not below the SRAM, which unicorn would report as a fault)."""
    require_target(target)
    spec = targets.CORE_TARGETS[target]
    firmware = targets.build(target, [FIRMWARE / "stack_overflow.c"], build_dir=tmp_path)
    assert 2000 < firmware.sram_static_bytes < 2100
    free = firmware.symbols["__stack_top"] - firmware.symbols["__bss_end"]
    assert free == spec.sram.length - firmware.sram_static_bytes
    message = rf"all {free} bytes of SRAM above the static data \({firmware.sram_static_bytes} bytes\): a stack overflow"
    with pytest.raises(targets.FirmwareError, match=message):
        targets.run(firmware, max_cycles=50_000_000)

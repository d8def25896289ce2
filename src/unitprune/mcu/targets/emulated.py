"""The Cortex-M0+ and RV32 targets (:data:`unitprune.mcu.targets.specs.CORE_TARGETS`): build with the target's
gcc + picolibc (headers, libc, libgcc) and the project's crt0/io/link.ld, run in the unicorn
emulator counting every executed instruction per basic block, with cycles from the Cortex-M0+
TRM table (Arm) or the documented model (RISC-V).

The run: the ELF's loadable segments go to their load addresses (flash image, as a programmer
writes it), the core starts at reset (Arm: the vector table's SP and reset handler; RISC-V: the
entry point). A hook per basic block adds its instructions and cycles; the taken cycle of a
conditional branch is added when the next block does not start right after it. Hooks on the
marker stubs (crt0.S) read the counters: a region runs from the entry of ``__unit_mcu_start``
to the entry of ``__unit_mcu_stop``, the totals from reset to ``__unit_mcu_done``; at ``__unit_mcu_label``/``__unit_mcu_emit`` the label
(r0 / a0) or the bytes (r0, r1 / a0, a1) are read and the stub returns at once (its
semihosting body is for QEMU; neither side counts it); ``__unit_mcu_end`` ends the run with the
stack bytes in r0 / a0 (crt0 painted the free SRAM and found the lowest touched word).
"""

from __future__ import annotations

import struct
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from . import cortexm_timing, riscv_timing
from .common import INCLUDE_DIR, check_stack, define_flags, firmware_from_elf, include_flags, source_paths
from .specs import CORE_TARGETS, UNICORN_HINT, CoreTarget
from .records import Firmware, Recorder, RunResult
from .tools import FirmwareError, FirmwareTooLarge, ToolMissing, find_tool, run_tool, tool_version

BASE_FLAGS = ["-std=c99", "-Wall", "-Wextra", "-ffunction-sections", "-fdata-sections", "-nostartfiles",
              "--specs=picolibc.specs", "-Wl,--gc-sections"]
IO_SOURCE = INCLUDE_DIR / "unit_mcu_io.c"  # the label/emit/exit stubs (semihosting under QEMU)
MAX_LABEL = 128
PT_LOAD = 1
OVERFLOW = ("region `FLASH' overflowed by ", "region `SRAM' overflowed by ")


def check_tools(target: str) -> dict[str, str]:
    """The target's gcc (with picolibc) and unicorn; ToolMissing naming the packages."""
    spec = CORE_TARGETS[target]
    compiler = find_tool(spec.compiler, target)
    probe = run_tool([compiler, *spec.cpu_flags, "--specs=picolibc.specs", "-E", "-x", "c", "-", "-include", "string.h",
                      "-o", "/dev/null"], 60, f"{spec.compiler} probe", check=False)
    if probe.returncode != 0:
        raise ToolMissing(f"{spec.compiler} cannot use picolibc ({probe.stderr.strip()[:200]}); install with: "
                          f"apt-get install -y --no-install-recommends {spec.packages}")
    try:
        import unicorn  # noqa: F401  (optional dependency: the dev extra)
    except ImportError:
        raise ToolMissing(f"the unicorn emulator (Python) is not installed (needed for the {target} target); "
                          f"{UNICORN_HINT}") from None
    return {"compiler": compiler, "compiler_version": tool_version([compiler, "--version"], target),
            "emulator": f"unicorn {unicorn.__version__}"}


def build(target: str, sources: Sequence[Path | str], include_dirs: Sequence[Path | str] | None,
          defines: Mapping | Sequence | None, build_dir: Path, opt: str = "O2", cflags: Sequence[str] = (),
          name: str = "firmware") -> Firmware:
    spec = CORE_TARGETS[target]
    tools = check_tools(target)
    (build_dir / "memory.ld").write_text(spec.memory_ld())
    elf = build_dir / f"{name}.elf"
    support = spec.support_dir
    command = [tools["compiler"], *spec.cpu_flags, f"-{opt}", *BASE_FLAGS, *cflags, *include_flags(include_dirs),
               *define_flags(defines), str(support / "crt0.S"), str(IO_SOURCE),
               *map(str, source_paths(sources)), f"-L{build_dir}", f"-T{support / 'link.ld'}", "-o", str(elf)]
    try:
        run_tool(command, 300, f"{spec.compiler} ({elf.name}, target {target})")
    except FirmwareError as error:
        too_large = _too_large(spec, elf.name, str(error))
        if too_large is None:
            raise
        raise too_large from None
    return firmware_from_elf(target, elf, build_dir, [command], tools["compiler_version"])


def _too_large(spec: CoreTarget, name: str, message: str) -> FirmwareTooLarge | None:
    overflows = []
    for region, memory in (("FLASH", spec.flash), ("SRAM", spec.sram)):
        marker = f"region `{region}' overflowed by "
        for part in message.split(marker)[1:]:
            overflows.append((int(part.split()[0]), region, memory))
    if "too little SRAM left for the stack" in message:
        overflows.append((0, "SRAM", spec.sram))
    if not overflows:
        return None
    excess, region, memory = max(overflows, key=lambda item: item[0])
    what = (f"{excess:,} bytes more than its {memory.length:,} bytes of {region}" if excess else
            f"less than the {spec.stack_reserve} bytes of stack reserve left in its {memory.length:,} bytes of SRAM")
    return FirmwareTooLarge(f"{name} does not fit the {spec.name} target ({spec.chip}): {what} (GNU ld); a smaller "
                            "model is needed", region, excess)


def load_segments(elf: Path) -> list[tuple[int, bytes, int]]:
    """(load address, file bytes, memory size) of each PT_LOAD segment of a 32-bit little-endian ELF."""
    blob = Path(elf).read_bytes()
    if blob[:4] != b"\x7fELF" or blob[4] != 1 or blob[5] != 1:
        raise FirmwareError(f"{elf} is not a 32-bit little-endian ELF file")
    phoff, = struct.unpack_from("<I", blob, 0x1C)
    phentsize, phnum = struct.unpack_from("<HH", blob, 0x2A)
    segments = []
    for index in range(phnum):
        kind, offset, _vaddr, paddr, filesz, memsz = struct.unpack_from("<6I", blob, phoff + index * phentsize)
        if kind == PT_LOAD and memsz:
            segments.append((paddr, blob[offset:offset + filesz], memsz))
    return segments


class _Counter:
    """Instructions and cycles of the blocks executed so far (module docstring)."""

    def __init__(self, timing) -> None:
        self.timing = timing  # (code, address) -> [(address, cycles, kind), ...]
        self.cache: dict[tuple[int, int], tuple] = {}
        self.instructions = 0
        self.cycles = 0
        self.block: tuple = ((), 0, 0)  # the current block: (instructions, its cycles, its address)
        self.fallthrough = -1  # after a conditional branch ending the last block: where not-taken goes

    def enter(self, uc, address: int, size: int) -> None:
        if self.fallthrough >= 0 and address != self.fallthrough:
            self.cycles += 1  # the conditional branch was taken
        info = self.cache.get((address, size))
        if info is None:
            instructions = self.timing(bytes(uc.mem_read(address, size)), address)
            cond = instructions[-1][2] == "cond"
            info = (instructions, sum(c for _, c, _ in instructions), address + size if cond else -1)
            self.cache[(address, size)] = info
        instructions, cycles, self.fallthrough = info
        self.block = (instructions, cycles, address)
        self.instructions += len(instructions)
        self.cycles += cycles

    def before(self, address: int) -> tuple[int, int]:
        """(instructions, cycles) executed before the instruction at ``address`` of the current block."""
        instructions, cycles, _ = self.block
        remaining = [(a, c) for a, c, _ in instructions if a >= address]
        return self.instructions - len(remaining), self.cycles - sum(c for _, c in remaining)

    def leave_block_at(self, address: int) -> None:
        """The rest of the current block from ``address`` on is not executed (a stub returns at once)."""
        self.instructions, self.cycles = self.before(address)
        self.fallthrough = -1


def _read_string(uc, address: int, limit: int) -> bytes:
    """Up to ``limit`` bytes from ``address``, stopping at the first NUL or the end of mapped memory
    (a label on the stack may end a few bytes below the top of SRAM)."""
    import unicorn

    text = b""
    while len(text) < limit and b"\0" not in text:
        try:
            text += bytes(uc.mem_read(address + len(text), 1))
        except unicorn.UcError:
            break
    return text


def run(firmware: Firmware, max_cycles: int, timeout: float) -> RunResult:
    """Runs ``firmware`` (built for a core target) in unicorn; see the module docstring."""
    spec = CORE_TARGETS[firmware.target]
    check_tools(firmware.target)
    import unicorn
    from unicorn import arm_const, riscv_const

    stubs = {}
    for stub in ("start", "stop", "label", "emit", "done", "end", "fault"):
        address = firmware.symbols.get(f"__unit_mcu_{stub}")
        if address is None:
            raise FirmwareError(f"{firmware.elf} has no __unit_mcu_{stub}: not linked with unitprune's {spec.arch} crt0")
        stubs[address & ~1] = stub
    paint_start, paint_end = (firmware.symbols.get(name) for name in ("__bss_end", "__stack_top"))
    if paint_start is None or paint_end is None:
        raise FirmwareError(f"{firmware.elf} has no __bss_end/__stack_top: not linked with unitprune's {spec.arch} link.ld")
    if spec.arch == "arm":
        uc = unicorn.Uc(unicorn.UC_ARCH_ARM, unicorn.UC_MODE_THUMB | unicorn.UC_MODE_MCLASS)
        uc.ctl_set_cpu_model(arm_const.UC_CPU_ARM_CORTEX_M0)
        regs = {"a0": arm_const.UC_ARM_REG_R0, "a1": arm_const.UC_ARM_REG_R1, "ra": arm_const.UC_ARM_REG_LR,
                "pc": arm_const.UC_ARM_REG_PC, "sp": arm_const.UC_ARM_REG_SP}
        mul = spec.mul_cycles

        def timing(code, address):
            return cortexm_timing.block_timing(code, address, mul)
    else:
        uc = unicorn.Uc(unicorn.UC_ARCH_RISCV, unicorn.UC_MODE_RISCV32)
        regs = {"a0": riscv_const.UC_RISCV_REG_A0, "a1": riscv_const.UC_RISCV_REG_A1, "ra": riscv_const.UC_RISCV_REG_RA,
                "pc": riscv_const.UC_RISCV_REG_PC, "sp": riscv_const.UC_RISCV_REG_SP}
        timing = riscv_timing.block_timing
    for memory in (spec.flash, spec.sram):
        uc.mem_map(memory.origin, (memory.length + 0xFFF) & ~0xFFF)
    for address, data, _size in load_segments(firmware.elf):
        uc.mem_write(address, data)  # the flash image (.data at its load address; crt0 copies it)

    counter = _Counter(timing)
    cycles_recorder, instructions_recorder = Recorder(), Recorder()
    state = {"stack": None, "error": None, "deadline": time.monotonic() + timeout, "blocks": 0}

    def on_block(uc, address, size, _data):
        counter.enter(uc, address, size)
        state["blocks"] += 1
        if counter.cycles > max_cycles or (state["blocks"] & 0xFFFF == 0 and time.monotonic() > state["deadline"]):
            state["error"] = (f"{firmware.elf} ran more than max_cycles={max_cycles} cycles" if counter.cycles >
                              max_cycles else f"{firmware.elf} did not finish within {timeout:.0f} s")
            uc.emu_stop()

    def on_stub(uc, address, _size, _data):
        stub = stubs[address]
        instructions, cycles = counter.before(address)
        if stub in ("start", "stop"):
            getattr(cycles_recorder, stub)(cycles)
            getattr(instructions_recorder, stub)(instructions)
            return
        if stub == "done":  # totals end here (the stack scan after it is not the program's)
            cycles_recorder.done(cycles)
            instructions_recorder.done(instructions)
            return
        if stub == "end":
            state["stack"] = uc.reg_read(regs["a0"])
            uc.emu_stop()
            return
        if stub == "fault":
            state["error"] = f"{firmware.elf} took a fault (HardFault/NMI or a fault loop at {address:#x})"
            uc.emu_stop()
            return
        first, second = uc.reg_read(regs["a0"]), uc.reg_read(regs["a1"])
        if stub == "label":
            text = _read_string(uc, first, MAX_LABEL)
            if b"\0" not in text:
                state["error"] = f"{firmware.elf}: label longer than {MAX_LABEL - 1} characters: {text[:40]!r}..."
                uc.emu_stop()
                return
            label = text.split(b"\0")[0].decode("ascii", "replace")
            cycles_recorder.label(label)
            instructions_recorder.label(label)
        elif second:
            data = bytes(uc.mem_read(first, second))
            cycles_recorder.data(data)
            instructions_recorder.data(data)
        counter.leave_block_at(address)  # the stub's body is QEMU's (semihosting): return at once
        uc.reg_write(regs["pc"], uc.reg_read(regs["ra"]))

    uc.hook_add(unicorn.UC_HOOK_BLOCK, on_block)
    for address in stubs:
        uc.hook_add(unicorn.UC_HOOK_CODE, on_stub, begin=address, end=address)
    if spec.arch == "arm":
        stack_top, reset = struct.unpack("<II", bytes(uc.mem_read(spec.flash.origin, 8)))
        uc.reg_write(regs["sp"], stack_top)
        entry = reset
    else:
        entry = firmware.symbols["__unit_reset"]
    try:
        uc.emu_start(entry, -1)
    except unicorn.UcError as error:
        pc = uc.reg_read(regs["pc"])
        raise FirmwareError(f"unicorn run of {firmware.elf} stopped at pc={pc:#x}: {error}") from None
    if state["error"]:
        raise FirmwareError(state["error"])
    if not cycles_recorder.finished or state["stack"] is None:
        raise FirmwareError(f"unicorn run of {firmware.elf} did not reach unit_mcu_done() (main returned?)")
    # crt0 painted the words from __bss_end to __stack_top (the top of the target's SRAM); r0 / a0 at
    # __unit_mcu_end is the distance from the top to the lowest touched word
    check_stack(firmware, "unicorn", state["stack"], paint_end - paint_start)
    regions = [region.with_instructions(counted.cycles)
               for region, counted in zip(cycles_recorder.regions, instructions_recorder.regions)]
    return RunResult(firmware.target, regions, cycles_recorder.done_at, state["stack"],
                     instructions=instructions_recorder.done_at, cycle_source=spec.cycle_source)

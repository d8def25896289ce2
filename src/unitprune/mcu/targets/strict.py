"""The instruction-set check of the Cortex-M0+ and RV32 targets: the same ELF under QEMU's strict
CPU (``qemu-system-arm -M microbit``: a Cortex-M0, ARMv6-M; ``qemu-system-riscv32 -M virt`` with
exactly the target's extensions, e.g. rv32ec: E and C, no M), which traps on any instruction the
core does not have (unicorn does not: it runs Cortex-M3 code on its "M0").

QEMU runs the firmware single-stepped with its execution log (``-d exec,nochain -singlestep``:
one line per executed instruction, with its PC); the label/emit stubs print through semihosting
(``L<label>``, ``D<hex bytes>``, ``S<stack bytes>`` lines). From the log: the instructions from
reset to ``__unit_mcu_done`` and per region (start stub to stop stub), outside the io stubs'
address range, exactly as the emulator counts them. :func:`check` compares them and the emitted
bytes with an emulator run: equal, or :class:`~unitprune.mcu.targets.tools.FirmwareError`.

The log has one line per instruction: meant for small firmwares (tests, one sample): about
1-2 M instructions/s here.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from .specs import CORE_TARGETS
from .records import Firmware, Recorder, RunResult
from .tools import FirmwareError, find_tool

INSTRUCTIONS_PER_SECOND = 300_000  # conservative, for the timeout


def run_strict(firmware: Firmware, max_instructions: int = 20_000_000) -> RunResult:
    """Runs ``firmware`` under the strict QEMU CPU of its target; regions carry instruction
    counts (``cycles`` None); ``stack_bytes`` is QEMU's (the io stubs' semihosting uses stack
    that the emulator's never does)."""
    spec = CORE_TARGETS.get(firmware.target)
    if spec is None:
        raise ValueError(f"no strict QEMU check for target {firmware.target!r} (one of {', '.join(CORE_TARGETS)})")
    qemu = find_tool(spec.qemu_command[0], firmware.target)
    symbols = firmware.symbols
    stubs = {symbols[f"__unit_mcu_{s}"] & ~1: s for s in ("start", "stop", "label", "emit", "done", "end", "fault")}
    io_begin, io_end = symbols["__unit_mcu_io_begin"], symbols["__unit_mcu_io_end"]
    load = (["-kernel", str(firmware.elf)] if spec.arch == "arm" else
            ["-device", f"loader,file={firmware.elf},cpu-num=0"])  # virt: start at the ELF's entry
    with tempfile.TemporaryDirectory(prefix="unitprune-qemu-") as directory:
        log, console = Path(directory) / "exec.log", Path(directory) / "semihosting.txt"
        command = [qemu, *spec.qemu_command[1:], "-chardev", f"file,id=semihosting,path={console}",
                   "-semihosting-config", "enable=on,target=native,chardev=semihosting", *load,
                   "-d", "exec,nochain", "-singlestep", "-D", str(log)]
        timeout = 30 + max_instructions / INSTRUCTIONS_PER_SECOND
        try:
            process = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise FirmwareError(f"{' '.join(command[:3])} ... did not finish {firmware.elf.name} within {timeout:.0f} s "
                                "(an instruction the strict CPU lacks traps into a fault loop)") from None
        if process.returncode != 0:
            raise FirmwareError(f"QEMU ({spec.qemu_command[0]}) failed on {firmware.elf} (exit {process.returncode}): "
                                f"{process.stderr.strip()[-600:]}")
        printed = [line for line in console.read_text().splitlines() if line[:1] in ("L", "D", "S")]
        recorder = Recorder()
        count, stack = 0, None
        messages = iter(printed)
        with open(log) as lines:
            for line in lines:
                at = line.find("[")
                if at < 0:
                    continue
                pc = int(line[at + 1:].split("/", 2)[1], 16)
                stub = stubs.get(pc)
                if stub is not None:
                    if stub in ("start", "stop"):
                        getattr(recorder, stub)(count)
                    elif stub == "label":
                        recorder.label(_message(messages, "L", firmware))
                    elif stub == "emit":
                        recorder.data(bytes.fromhex(_message(messages, "D", firmware)))
                    elif stub == "fault":
                        raise FirmwareError(f"{firmware.elf} faulted under the strict QEMU CPU after {count} "
                                            "instructions (an instruction or access the core does not have)")
                    elif stub == "done":
                        recorder.done(count)
                    else:
                        stack = int(_message(messages, "S", firmware), 16)
                        break
                if not io_begin <= pc < io_end:
                    count += 1
    if not recorder.finished or stack is None:
        raise FirmwareError(f"{firmware.elf} did not reach __unit_mcu_end under QEMU (exit {process.returncode})")
    return RunResult(firmware.target, recorder.regions, None, stack, instructions=recorder.done_at,
                     cycle_source=f"instruction count under {spec.qemu_command[0]} (strict CPU)")


def _message(messages, kind: str, firmware: Firmware) -> str:
    for line in messages:
        if line.startswith(kind):
            return line[1:]
    raise FirmwareError(f"{firmware.elf}: QEMU printed no {kind!r} record where the execution log reached its stub")


def check(firmware: Firmware, emulated: RunResult) -> dict:
    """Runs ``firmware`` under QEMU's strict CPU and compares emitted bytes and instruction counts
    (total and per region) with ``emulated`` (its unicorn run); FirmwareError naming the first
    difference, else a summary."""
    strict = run_strict(firmware, max_instructions=max(emulated.instructions or 0, 1) * 2)
    ours = [(r.label, r.instructions, r.data) for r in emulated.regions]
    theirs = [(r.label, r.cycles, r.data) for r in strict.regions]  # Recorder put the counts in "cycles"
    if ours != theirs or emulated.instructions != strict.instructions:
        for index, (a, b) in enumerate(zip(ours, theirs)):
            if a != b:
                raise FirmwareError(f"{firmware.elf}: region {index} differs between unicorn and the strict QEMU CPU: "
                                    f"{a[0]!r} {a[1]} instructions, {a[2].hex()[:32]} vs {b[0]!r} {b[1]} instructions, "
                                    f"{b[2].hex()[:32]}")
        raise FirmwareError(f"{firmware.elf}: unicorn ran {emulated.instructions} instructions in {len(ours)} regions, "
                            f"the strict QEMU CPU {strict.instructions} in {len(theirs)}")
    return {"qemu": CORE_TARGETS[firmware.target].qemu_command[0], "instructions": strict.instructions,
            "regions": len(theirs), "agree": True}

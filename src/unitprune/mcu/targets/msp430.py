"""The MSP430 targets: clang-14 --target=msp430 + ld.lld-14 with the project's own crt0, linker
script (an MSP430FR5994-like map in the simulator's 64 KB) and runtime helpers, run in mspdebug's
simulator under a timeout.

``msp430``: software multiply helpers (the paper's no-multiplier setting); ``msp430-hwmult``: the
same compiled code linked with helpers that use the 16-bit hardware multiplier, simulated by
``simio add hwmult``. A run drives one interactive ``mspdebug -n sim`` session: breakpoints on
crt0's marker stubs (``__unit_mcu_start``/``stop``/``label``/``emit``/``done``/``end``); at each
stop the MCLK count of the ``tracer`` device (``simio info``), the registers (R12, R13) and the
memory they point to (``md``) give the record; ``run`` resumes. The run ends at ``__unit_mcu_end``
with the stack bytes in R12. (The tracer's verbose event log would also timestamp port writes, but
it logs every hardware-multiplier access too: millions of lines for a model.)
"""

from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from .common import check_stack, define_flags, firmware_from_elf, include_flags, source_paths
from .records import Firmware, Recorder, RunResult
from .specs import MSP430_C_FLAGS, MSP430_COMPILE_FLAGS, MSP430_REGIONS, MSP430_RUNTIME_FLAGS
from .tools import FirmwareError, FirmwareTooLarge, cache_dir, content_key, find_tool, run_tool, tool_version

HERE = Path(__file__).resolve().parent / "msp430"
RUNTIME_DIR = HERE / "runtime"
LINKER_SCRIPT = HERE / "link.ld"
CRT0 = HERE / "crt0.S"
LIBC_INCLUDE = HERE / "include"  # string.h: the memory functions of the runtime
#: The library's kernel sources (their compiled objects are cached: ``object_key``).
CSRC = Path(__file__).resolve().parents[2] / "csrc"
COMPILE_FLAGS = [*MSP430_COMPILE_FLAGS, "-isystem", str(LIBC_INCLUDE)]
C_FLAGS = list(MSP430_C_FLAGS)
RUNTIME_FLAGS = list(MSP430_RUNTIME_FLAGS)
STUBS = ("start", "stop", "label", "emit", "done", "end")  # crt0.S: __unit_mcu_<stub>
PROMPT = b"(mspdebug) "
REGISTER = re.compile(r"\(\s*(PC|SP|SR|R\d+):\s*([0-9a-fA-F]+)\)")
MCLK = re.compile(r"^MCLK:\s+(\d+)", re.MULTILINE)
DUMP = re.compile(r"^\s*[0-9a-fA-F]+:((?: [0-9a-fA-F]{2})+)", re.MULTILINE)
MAX_LABEL = 128  # bytes read for a label (with its NUL); a longer one is an error
#: The memory regions of link.ld: name -> (bytes, what must fit in them).
REGIONS = MSP430_REGIONS
OVERFLOW = re.compile(r"section '[^']*' will not fit in region '(\w+)': overflowed by (\d+) bytes")


def check_tools() -> dict[str, str]:
    tools = {name: find_tool(name, "msp430") for name in ("clang-14", "ld.lld-14", "mspdebug")}
    tools["compiler_version"] = tool_version([tools["clang-14"], "--version"], "msp430")
    return tools


def runtime_objects(hwmult: bool) -> tuple[Path, list[Path]]:
    """(crt0.o, the helper objects) for the variant, compiled once per source/flags into the cache.
    Every helper is linked; --gc-sections drops the unreferenced ones (each is in its own section),
    so they cost no flash."""
    tools = check_tools()
    sources = sorted(RUNTIME_DIR.glob("*.[cS]"))
    flags = [*COMPILE_FLAGS, *C_FLAGS, *RUNTIME_FLAGS, f"-DUNIT_MSP430_HWMULT={int(hwmult)}"]
    key = content_key([*sources, *RUNTIME_DIR.glob("*.h"), CRT0], *flags, tools["compiler_version"])
    directory = cache_dir() / f"msp430-runtime-{'hwmult' if hwmult else 'soft'}-{key}"
    names = []
    for source in sources:
        # an assembly entry (mpyll.S) and its C part (mpyll.c) must not share an object name
        names.append(f"{source.stem}{'_entry' if source.suffix == '.S' else ''}.o")
    if not (directory / "crt0.o").exists():
        partial = Path(tempfile.mkdtemp(prefix=directory.name + ".partial-", dir=directory.parent))
        for source, name in [*zip(sources, names), (CRT0, "crt0.o")]:
            run_tool([tools["clang-14"], *flags, "-c", str(source), "-o", str(partial / name)], 120,
                     f"compiling {source.name}")
        try:
            os.replace(partial, directory)  # atomic: a cache directory that exists is complete
        except OSError:  # another process finished the same build first
            shutil.rmtree(partial, ignore_errors=True)
    return directory / "crt0.o", [directory / name for name in names]


def build(sources: Sequence[Path | str], include_dirs: Sequence[Path | str] | None, defines: Mapping | Sequence | None,
          build_dir: Path, hwmult: bool, opt: str = "O2", cflags: Sequence[str] = (),
          name: str = "firmware") -> Firmware:
    tools = check_tools()
    crt0, runtime = runtime_objects(hwmult)
    objects_dir = build_dir / f"{name}.obj"
    objects_dir.mkdir(exist_ok=True)
    commands, objects = [], []
    for index, source in enumerate(source_paths(sources)):
        obj = objects_dir / f"{index:02d}_{source.stem}.o"
        flags = [*COMPILE_FLAGS, f"-{opt}", *C_FLAGS, *cflags, *include_flags(include_dirs), *define_flags(defines)]
        command = [tools["clang-14"], *flags, "-c", str(source), "-o", str(obj)]
        _compile(command, source, object_key(source, flags, include_dirs, tools["compiler_version"]), obj)
        commands.append(command)
        objects.append(str(obj))
    elf = build_dir / f"{name}.elf"
    link = [tools["ld.lld-14"], "-m", "msp430elf", "-T", str(LINKER_SCRIPT), "--gc-sections", str(crt0), *objects,
            *map(str, runtime), "-o", str(elf)]
    try:
        run_tool(link, 120, f"ld.lld-14 ({elf.name}; code and constants must fit 0x4000-0xFF7F, data+bss+256 bytes of "
                            f"stack the 8 KB SRAM)")
    except FirmwareError as error:  # a region overflow becomes FirmwareTooLarge, without the raw linker lines
        too_large = _too_large(elf.name, str(error))
        if too_large is None:
            raise
        raise too_large from None
    commands.append(link)
    return firmware_from_elf("msp430-hwmult" if hwmult else "msp430", elf, build_dir, commands,
                             tools["compiler_version"])


def object_key(source: Path, flags: Sequence[str], include_dirs: Sequence[Path | str] | None,
               compiler_version: str) -> str | None:
    """The cache key of compiling ``source`` with ``flags``, or None where it is not cached. Only the
    library's kernel sources (csrc/) are: their quoted includes are all in csrc/ (tests/test_msp430_objects.py)
    and their system ones in the C library stand-in or the compiler. The key covers the source, every
    header of csrc/, of the C library stand-in and of the include folders (where one could stand in
    for a system header), the flags, the folders and the compiler version."""
    if source.resolve().parent != CSRC or any(flag.startswith(("-include", "-imacros", "@")) for flag in flags):
        return None
    folders = sorted({CSRC, LIBC_INCLUDE, *(Path(folder).resolve() for folder in include_dirs or ())})
    headers = [header for folder in folders for header in sorted(folder.glob("*.h"))]
    return content_key([source, *headers], *flags, *map(str, folders), compiler_version)


def _compile(command: list[str], source: Path, key: str | None, obj: Path) -> None:
    """Runs ``command`` (clang-14 ... -c source -o obj), or copies the object that the same
    compilation (``key``) left in the cache: a firmware built from the same kernels many times (the
    benchmarks, the tests) compiles each kernel once."""
    cached = None if key is None else cache_dir() / "msp430-objects" / f"{source.stem}-{key}.o"
    if cached is not None and cached.exists():
        shutil.copyfile(cached, obj)
        return
    run_tool(command, 300, f"clang-14 --target=msp430 ({source.name})")
    if cached is not None:
        cached.parent.mkdir(exist_ok=True)
        handle, partial = tempfile.mkstemp(prefix=cached.name + ".partial-", dir=cached.parent)
        os.close(handle)
        shutil.copyfile(obj, partial)
        os.replace(partial, cached)  # atomic: a cached object that exists is complete


def _too_large(name: str, linker_message: str) -> FirmwareTooLarge | None:
    """The link failure as FirmwareTooLarge when ld.lld reports a region overflow (it reports each
    section that ends beyond the region; the largest overflow is the whole excess), else None."""
    overflows: dict[str, int] = {}
    for region, excess in OVERFLOW.findall(linker_message):
        overflows[region] = max(overflows.get(region, 0), int(excess))
    if not overflows:
        return None
    region, excess = max(overflows.items(), key=lambda item: item[1])
    size, what = REGIONS.get(region, (None, region))
    room = f"the {size:,} bytes of {region}" if size else f"region {region}"
    need = f" need {size + excess:,} bytes," if size else ""
    return FirmwareTooLarge(f"{name} does not fit the simulated MSP430: {what}{need} {excess:,} bytes more than "
                            f"{room} of unitprune.mcu.targets' link.ld (the simulator models a 64 KB address space; "
                            "clang-14's small memory model); a smaller model is needed, or, where the firmware embeds test "
                            "samples, fewer of them", region, excess)


class Session:
    """One interactive ``mspdebug -n sim`` process: send a command, read its output up to the next
    prompt, everything under one deadline (the run's timeout)."""

    def __init__(self, mspdebug: str, deadline: float) -> None:
        self.deadline = deadline
        self.log: list[str] = []
        self.process = subprocess.Popen([mspdebug, "-n", "sim"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT)
        self._read()

    def _read(self) -> str:
        buffer = bytearray()
        descriptor = self.process.stdout.fileno()
        while not buffer.endswith(PROMPT):
            remaining = self.deadline - time.monotonic()
            ready = select.select([descriptor], [], [], max(remaining, 0))[0] if remaining > 0 else []
            if not ready:
                raise FirmwareError("mspdebug timed out (the firmware never reached its next marker); "
                                    f"last output:\n{self.tail(buffer)}")
            chunk = os.read(descriptor, 1 << 16)
            if not chunk:
                raise FirmwareError(f"mspdebug exited unexpectedly; last output:\n{self.tail(buffer)}")
            buffer += chunk
        text = buffer[:-len(PROMPT)].decode("ascii", "replace")
        self.log.append(text)
        return text

    def tail(self, buffer: bytes | bytearray = b"") -> str:
        text = "".join(self.log[-3:]) + bytes(buffer).decode("ascii", "replace")
        return "\n".join(text.strip().splitlines()[-12:])

    def command(self, line: str) -> str:
        self.process.stdin.write(line.encode() + b"\n")
        self.process.stdin.flush()
        return self._read()

    def memory(self, address: int, length: int) -> bytes:
        data = bytearray()
        for match in DUMP.finditer(self.command(f"md {address:#x} {length}")):
            data.extend(bytes.fromhex(match[1].replace(" ", "")))
        if len(data) < length:
            raise FirmwareError(f"mspdebug md {address:#x} {length} returned {len(data)} bytes")
        return bytes(data[:length])

    def cycles(self) -> int:
        match = MCLK.search(self.command("simio info trace"))
        if match is None:
            raise FirmwareError(f"no MCLK count in mspdebug's tracer output:\n{self.tail()}")
        return int(match[1])

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.close()
                self.process.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()


def run(firmware: Firmware, max_cycles: int, timeout: float) -> RunResult:
    tools = check_tools()
    stubs = {}
    for stub in STUBS:
        address = firmware.symbols.get(f"__unit_mcu_{stub}")
        if address is None:
            raise FirmwareError(f"{firmware.elf} has no __unit_mcu_{stub}: not linked with unitprune's msp430 crt0")
        stubs[address] = stub
    paint_start, paint_end = (firmware.symbols.get(name) for name in ("__stack_paint_start", "__stack_top"))
    if paint_start is None or paint_end is None:
        raise FirmwareError(f"{firmware.elf} has no __stack_paint_start/__stack_top: not linked with unitprune's "
                            "msp430 link.ld")
    session = Session(tools["mspdebug"], time.monotonic() + timeout)
    try:
        session.command(f"prog {firmware.elf}")
        if firmware.target == "msp430-hwmult":
            session.command("simio add hwmult mult")
        session.command("simio add tracer trace")
        for address in stubs:
            session.command(f"setbreak {address:#06x}")
        recorder, stack = Recorder(), None
        while stack is None:
            stop = session.command("run")
            registers = {name: int(value, 16) for name, value in REGISTER.findall(stop)}
            stub = stubs.get(registers.get("PC", -1))
            if stub is None:
                raise FirmwareError(f"mspdebug stopped outside the markers (PC {registers.get('PC', -1):#06x}): "
                                    f"{firmware.elf} crashed?\n{session.tail()}")
            if stub in ("start", "stop", "done"):
                cycle = session.cycles()
                getattr(recorder, stub)(cycle)
                if cycle > max_cycles:
                    raise FirmwareError(f"{firmware.elf} ran {cycle} cycles, more than max_cycles={max_cycles}")
            elif stub == "label":
                text = session.memory(registers["R12"], MAX_LABEL)
                if b"\0" not in text:
                    raise FirmwareError(f"{firmware.elf}: label longer than {MAX_LABEL - 1} characters: {text[:40]!r}...")
                recorder.label(text.split(b"\0")[0].decode("ascii", "replace"))
            elif stub == "emit" and registers["R13"]:
                recorder.data(session.memory(registers["R12"], registers["R13"]))
            elif stub == "end":
                stack = registers["R12"]
    finally:
        session.close()
    if not recorder.finished or recorder.done_at is None:
        raise FirmwareError(f"mspdebug run of {firmware.elf} did not reach unit_mcu_done() (main returned)")
    # crt0 painted the words from __stack_paint_start (link.ld: the end of .bss) to __stack_top (the top of
    # the 8 KB SRAM); R12 at __unit_mcu_end is the distance from the top to the lowest touched word
    check_stack(firmware, "mspdebug", stack, paint_end - paint_start)
    return RunResult(firmware.target, recorder.regions, recorder.done_at, stack, "".join(session.log))

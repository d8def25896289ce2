"""Step 4 of the export: the build files. The kernel sources ``model.c`` needs (the transitive
closure of the public functions it calls and the headers they include, copied from
``unitprune/csrc``), the target's support files (the marker header; the MSP430's crt0, linker
script and runtime), the fixed C of ``c_templates/`` (the runners' ``main`` and the fixed part of
``model.c``) and the ``Makefile`` with the exact build commands.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..targets.specs import HOST_CFLAGS, MSP430_C_FLAGS, MSP430_COMPILE_FLAGS, MSP430_RUNTIME_FLAGS, TargetSpec
from .core_targets import CORE_EXPORT_TARGETS, core_makefile_rules, core_support_files
from .export_types import FAR_DEFINES, ExportError

__all__ = ["CSRC", "TEMPLATES", "kernel_files", "makefile", "support_files", "template_files"]

CSRC = Path(__file__).resolve().parents[2] / "csrc"
#: The fixed C of an export (the runners' main and the fixed part of model.c).
TEMPLATES = Path(__file__).resolve().parent / "c_templates"
#: The MCU targets' support files (unitprune.mcu.targets): the marker header, MSP430 crt0/linker/runtime.
TARGET_SUPPORT = Path(__file__).resolve().parents[1] / "targets"
UNIT_MCU_H = TARGET_SUPPORT / "include" / "unit_mcu.h"
MSP430_SUPPORT = TARGET_SUPPORT / "msp430"


def template_files(target: str, streamed: bool = False) -> dict[str, Path]:
    """The fixed C files of ``c_templates/`` an export of ``target`` copies (export name -> source);
    ``streamed``: the MCU runner reads the samples from flash row by row (a fused export)."""
    files = {"unit_model_internal.h": TEMPLATES / "unit_model_internal.h"}
    if target == "host":
        files["main.c"] = TEMPLATES / "main_host.c"
    else:
        files["main.c"] = TEMPLATES / ("main_mcu_stream.c" if streamed else "main_mcu.c")
        files["main_host.c"] = TEMPLATES / "main_host.c"
    for name, path in files.items():
        if not path.is_file():
            raise ExportError(f"{path} is missing (unitprune.mcu.export is incomplete): cannot write {name}")
    return files


_CALL = re.compile(r"\b(unit_[a-z0-9_]+)\s*\(")

_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.MULTILINE)



def kernel_files(functions: set[str], csrc: Path = CSRC) -> list[str]:
    """The csrc files (names) the given public functions need: their .c files (one per public
    function, named after it), the .c files of the public functions those call, their assembly
    variants (``<name>_<target>.S``), and every header they include, transitively."""
    sources, headers = set(), set()
    pending = sorted(functions)
    while pending:
        name = pending.pop()
        path = csrc / f"{name}.c"
        if name in sources:
            continue
        if not path.is_file():
            raise ExportError(f"the kernel source {path.name} is missing from {csrc} (the int8 kernels are not built "
                              f"into this installation of unitprune)")
        sources.add(name)
        text = path.read_text()
        pending += [call for call in _CALL.findall(text) if call not in sources and (csrc / f"{call}.c").is_file()]
        headers |= set(_INCLUDE.findall(text))
    pending_headers = sorted(headers | {"unit_kernels_s8.h", "unit_types.h"})
    headers = set()
    while pending_headers:
        header = pending_headers.pop()
        if header in headers or not (csrc / header).is_file():
            continue
        headers.add(header)
        pending_headers += _INCLUDE.findall((csrc / header).read_text())
    # a kernel's assembly variants (csrc/<name>_<target>.S, each empty on other targets)
    variants = sorted(path.name for name in sources for path in csrc.glob(f"{name}_*.S"))
    return sorted(f"{name}.c" for name in sources) + variants + sorted(headers)


def support_files(target: str) -> dict[str, Path]:
    """Files of unitprune.mcu.targets an MCU export copies (export name -> source path)."""
    if target == "host":
        return {}
    if not UNIT_MCU_H.is_file():
        raise ExportError(f"target {target}: the marker header {UNIT_MCU_H} is missing (unitprune.mcu.targets is not "
                          "part of this installation)")
    files = {"unit_mcu.h": UNIT_MCU_H}
    if target in CORE_EXPORT_TARGETS:
        files.update(core_support_files(target))
    if target == "msp430":
        for path in [MSP430_SUPPORT / "crt0.S", MSP430_SUPPORT / "link.ld",
                     *sorted((MSP430_SUPPORT / "runtime").glob("*.[chS]")),
                     *sorted((MSP430_SUPPORT / "include").glob("*.h"))]:
            if not path.is_file():
                raise ExportError(f"target msp430: {path} is missing (unitprune.mcu.targets is incomplete)")
            files[str(path.relative_to(MSP430_SUPPORT.parent))] = path
    return files


def makefile(spec: TargetSpec, kernel_sources: list[str], support: list[str], counters: bool,
              source: str, far: bool = False, defines: dict | None = None) -> tuple[str, list[str]]:
    extra = "".join(f" -D{name}={value}" for name, value in (defines or {}).items())  # e.g. portable kernels
    kernels = " ".join(f"kernels/{name}" for name in kernel_sources)
    host_main = "main.c" if spec.name == "host" else "main_host.c"
    host = f"cc {' '.join(HOST_CFLAGS)} -I. -Ikernels -DUNIT_S8_COUNTS=1 {host_main} model.c {kernels} -o model_host"
    commands = [host]
    lines = [f"# Makefile: build commands of this export (target {spec.name}).",
             f"# Generated by unitprune (unitprune.mcu.export) from {source}. Do not edit: regenerate.",
             "", f"KERNELS = {kernels}", ""]
    if spec.name == "host":
        lines += ["all: model_host", ""]
    elif spec.name == "avr":
        # far tables: avr-gcc's __memx address space is GNU C; -Waddr-space-convert flags a far pointer
        # converted to a 16-bit one
        language = ("-std=gnu99 " + " ".join(f"-D{k}={v}" for k, v in FAR_DEFINES.items()) + " -Waddr-space-convert"
                    if far else "-std=c99")
        flags = (f"-mmcu={spec.chip} {language} -O2 -DUNIT_SKIP_BRANCH=1 -Wall -Wextra -ffunction-sections "
                 f"-fdata-sections -Wl,--gc-sections -I. -Ikernels -DUNIT_S8_COUNTS={int(counters)}{extra}")
        avr = f"avr-gcc {flags} main.c model.c $(KERNELS) -o model.elf"
        layers = f"avr-gcc {flags} -DUNIT_MODEL_MARKERS=1 main.c model.c $(KERNELS) -o model_layers.elf"
        commands += [avr.replace("$(KERNELS)", kernels), layers.replace("$(KERNELS)", kernels)]
        lines += ["all: model.elf model_layers.elf", "",
                  "# one region per inference", "model.elf: main.c model.c model.h unit_model_internal.h samples.h unit_mcu.h $(KERNELS)",
                  f"\t{avr}", "",
                  "# one region per layer",
                  "model_layers.elf: main.c model.c model.h unit_model_internal.h samples.h unit_mcu.h $(KERNELS)", f"\t{layers}", ""]
    elif spec.name == "msp430":
        lines += _msp430_rules(kernel_sources, support, counters, commands, extra)
    elif spec.name in CORE_EXPORT_TARGETS:
        lines += core_makefile_rules(spec.name, kernels, counters, commands)
    else:
        raise ExportError(f"target {spec.name}: no build rules")
    lines += ["# the host runner (counters on): ./model_host INPUT.bin OUTPUT.bin",
              f"model_host: {host_main} model.c model.h unit_model_internal.h $(KERNELS)",
              f"\t{host.replace(kernels, '$(KERNELS)')}", "",
              "clean:", "\trm -rf model_host model.elf model_layers.elf model_hwmult.elf build-msp430", "",
              ".PHONY: all clean", ""]
    return "\n".join(lines), commands


def _msp430_rules(kernel_sources: list[str], support: list[str], counters: bool, commands: list[str],
                  extra: str = "") -> list[str]:
    """Makefile rules of the MSP430 firmware, as unitprune.mcu.targets builds it: clang-14 objects,
    the runtime helpers (software multiply, or the 16-bit hardware multiplier) as objects, ld.lld-14
    with the export's crt0 and linker script."""
    # msp430/include: the runtime's <string.h> (memcpy & co.), as unitprune.mcu.targets compiles
    base = f"{' '.join(MSP430_COMPILE_FLAGS)} -isystem msp430/include {' '.join(MSP430_C_FLAGS)}"
    model_flags = f"{base} -O2 -DUNIT_SKIP_BRANCH=1 -I. -Ikernels -DUNIT_S8_COUNTS={int(counters)}{extra}"
    runtime_flags = f"{base} {' '.join(MSP430_RUNTIME_FLAGS)}"
    runtime = [name for name in support if name.startswith("msp430/runtime/") and name[-2:] in (".c", ".S")]
    model_sources = ["main.c", "model.c", *[f"kernels/{name}" for name in kernel_sources]]
    lines = ["all: model.elf model_layers.elf model_hwmult.elf", "",
             f"MSP430_CFLAGS = {model_flags}", f"MSP430_RUNTIME_CFLAGS = {runtime_flags}", ""]
    objects: dict[str, list[str]] = {}
    for kind, defines in (("inference", ""), ("layers", " -DUNIT_MODEL_MARKERS=1")):
        objects[kind] = []
        for src in model_sources:
            obj = f"build-msp430/{kind}/{Path(src).stem}.o"
            command = f"clang-14 $(MSP430_CFLAGS){defines} -c {src} -o {obj}"
            lines += [f"{obj}: {src} model.h unit_model_internal.h unit_mcu.h", "\t@mkdir -p build-msp430/" + kind, f"\t{command}"]
            objects[kind].append(obj)
            commands.append(command.replace("$(MSP430_CFLAGS)", model_flags))
    runtime_objects = {}
    for mult, hw in (("soft", 0), ("hwmult", 1)):
        objs = []
        for src in runtime:
            suffix = "_entry" if src.endswith(".S") else ""  # mpyll.S and mpyll.c must not share a name
            obj = f"build-msp430/rt-{mult}/{Path(src).stem}{suffix}.o"
            command = f"clang-14 $(MSP430_RUNTIME_CFLAGS) -DUNIT_MSP430_HWMULT={hw} -c {src} -o {obj}"
            lines += [f"{obj}: {src}", f"\t@mkdir -p build-msp430/rt-{mult}", f"\t{command}"]
            objs.append(obj)
            commands.append(command.replace("$(MSP430_RUNTIME_CFLAGS)", runtime_flags))
        runtime_objects[mult] = " ".join(objs)
    lines += ["build-msp430/crt0.o: msp430/crt0.S", "\t@mkdir -p build-msp430",
              f"\tclang-14 $(MSP430_RUNTIME_CFLAGS) -c msp430/crt0.S -o build-msp430/crt0.o", ""]
    commands.append(f"clang-14 {runtime_flags} -c msp430/crt0.S -o build-msp430/crt0.o")
    for elf, kind, mult in (("model.elf", "inference", "soft"), ("model_layers.elf", "layers", "soft"),
                            ("model_hwmult.elf", "inference", "hwmult")):
        # every runtime helper is linked; --gc-sections drops the unused ones (one section each)
        link = (f"ld.lld-14 -m msp430elf -T msp430/link.ld --gc-sections build-msp430/crt0.o "
                f"{' '.join(objects[kind])} {runtime_objects[mult]} -o {elf}")
        lines += [f"# {kind} regions, {'software multiply' if mult == 'soft' else '16-bit hardware multiplier'}",
                  f"{elf}: build-msp430/crt0.o {' '.join(objects[kind])} {runtime_objects[mult]} msp430/link.ld",
                  f"\t{link}", ""]
        commands.append(link)
    return lines

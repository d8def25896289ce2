"""What :func:`unitprune.mcu.export.export_c` needs for the Cortex-M0+ and RV32 targets
(:data:`unitprune.mcu.targets.specs.CORE_TARGETS`; their export facts are in ``EXPORT_TARGETS``
there): the kernel variants they call, the support files an export
copies (crt0.S and link.ld of the architecture, the io stubs unit_mcu_io.c, and the memory.ld written from the target's
map) and the Makefile rules, which are the commands :func:`unitprune.mcu.targets.build` runs.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..targets.emulated import BASE_FLAGS, IO_SOURCE
from ..targets.specs import CORE_TARGETS

__all__ = ["CORE_EXPORT_TARGETS", "KERNEL_VARIANTS", "core_kernels", "core_makefile_rules", "core_memory_ld",
           "core_support_files"]

CORE_EXPORT_TARGETS = tuple(CORE_TARGETS)
#: Kernels a target calls instead of the portable ones (same arguments and results; measured:
#: docs/mcu.md, benchmarks/cores_mcu.py).
KERNEL_VARIANTS = {target: {"unit_conv2d_dense_s8": "unit_conv2d_dense_s8_mcu32"} for target in CORE_TARGETS}
_CALL = re.compile(r"\b(unit_[a-z0-9_]+)\s*\(")


def core_kernels(target: str, model_c: str, functions: set[str]) -> tuple[str, set[str]]:
    """model.c and its kernel functions with ``target``'s kernel variants (KERNEL_VARIANTS) called."""
    variants = KERNEL_VARIANTS.get(target, {})
    if not variants:
        return model_c, functions
    model_c = _CALL.sub(lambda match: variants.get(match[1], match[1]) + "(", model_c)
    return model_c, {variants.get(name, name) for name in functions}


def core_support_files(target: str) -> dict[str, Path]:
    """Export name -> source path of the architecture's startup, semihosting stubs and linker script."""
    spec = CORE_TARGETS[target]
    folder = spec.support_dir
    files = {f"{folder.name}/{name}": folder / name for name in ("crt0.S", "link.ld")}
    files["unit_mcu_io.c"] = IO_SOURCE
    return files


def core_memory_ld(target: str) -> tuple[str, str]:
    """(export name, text) of the memory.ld the linker script includes."""
    spec = CORE_TARGETS[target]
    return f"{spec.support_dir.name}/memory.ld", spec.memory_ld()


def core_makefile_rules(target: str, kernels: str, counters: bool, commands: list[str]) -> list[str]:
    """Makefile rules of the firmware (one region per inference, and one per layer), as
    unitprune.mcu.targets builds it; appends the commands to ``commands`` (``kernels``: the
    kernel sources, the Makefile's $(KERNELS))."""
    spec = CORE_TARGETS[target]
    folder = spec.support_dir.name
    flags = " ".join([*spec.cpu_flags, "-O2", *BASE_FLAGS, "-DUNIT_SKIP_BRANCH=1", "-I.", "-Ikernels",
                      f"-DUNIT_S8_COUNTS={int(counters)}"])
    sources = f"{folder}/crt0.S unit_mcu_io.c main.c model.c $(KERNELS)"
    link = f"-L{folder} -T{folder}/link.ld"
    lines = ["all: model.elf model_layers.elf", "", f"CORE_CFLAGS = {flags}", ""]
    for elf, defines, what in (("model.elf", "", "one region per inference"),
                               ("model_layers.elf", " -DUNIT_MODEL_MARKERS=1", "one region per layer")):
        command = f"{spec.compiler} $(CORE_CFLAGS){defines} {sources} {link} -o {elf}"
        lines += [f"# {what} ({spec.chip}; run: unitprune.mcu.targets.run)",
                  f"{elf}: main.c model.c model.h unit_model_internal.h samples.h unit_mcu.h unit_mcu_io.c {folder}/crt0.S "
                  f"{folder}/link.ld {folder}/memory.ld $(KERNELS)", f"\t{command}", ""]
        commands.append(command.replace("$(CORE_CFLAGS)", flags).replace("$(KERNELS)", kernels))
    return lines

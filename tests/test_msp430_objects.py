"""The MSP430 build's cache of compiled kernel objects (unitprune.mcu.targets.msp430.object_key):
the key sees every file the compilation reads, a firmware built from cached objects is byte for byte
the one built by compiling, and only the library's kernel sources are cached."""

from __future__ import annotations

import re
import shutil

import pytest

from tests.mcu_tools import require_target
from unitprune.mcu import targets
from unitprune.mcu.targets import msp430

KERNELS = sorted(msp430.CSRC.glob("*_s8*.c"))[:4]
FLAGS = ["--target=msp430", "-O2", "-I", str(msp430.CSRC)]


def test_every_quoted_include_of_the_kernels_is_in_their_folder():
    """The key hashes csrc/'s headers for the quoted includes: a kernel source or header that
    included a file from elsewhere would make a stale object possible."""
    sources = [*msp430.CSRC.glob("*.[chS]")]
    assert len(sources) > 50
    for source in sources:
        for name in re.findall(r'^\s*#\s*include\s+"([^"]+)"', source.read_text(), re.MULTILINE):
            assert (msp430.CSRC / name).is_file(), (source.name, name)


def test_the_key_changes_with_the_source_flags_folders_and_a_standing_in_header(tmp_path):
    source = KERNELS[0]
    key = msp430.object_key(source, FLAGS, [msp430.CSRC], "clang 14")
    assert isinstance(key, str)
    assert msp430.object_key(source, FLAGS, [msp430.CSRC], "clang 14") == key
    assert msp430.object_key(KERNELS[1], FLAGS, [msp430.CSRC], "clang 14") != key
    assert msp430.object_key(source, [*FLAGS, "-DUNIT_S8_COUNTS=1"], [msp430.CSRC], "clang 14") != key
    assert msp430.object_key(source, FLAGS, [msp430.CSRC], "clang 15") != key
    folder = tmp_path / "include"
    folder.mkdir()
    with_folder = msp430.object_key(source, FLAGS, [msp430.CSRC, folder], "clang 14")
    assert with_folder != key
    (folder / "string.h").write_text("/* stands in for the C library's */\n")  # -I comes before -isystem
    assert msp430.object_key(source, FLAGS, [msp430.CSRC, folder], "clang 14") != with_folder


def test_only_the_library_kernels_are_cached(tmp_path):
    copy = tmp_path / KERNELS[0].name
    shutil.copyfile(KERNELS[0], copy)
    assert msp430.object_key(copy, FLAGS, [msp430.CSRC], "clang 14") is None
    assert msp430.object_key(KERNELS[0], [*FLAGS, "-include", "x.h"], [msp430.CSRC], "clang 14") is None


def test_a_firmware_from_cached_objects_is_the_compiled_one(tmp_path, monkeypatch):
    require_target("msp430")
    monkeypatch.setenv("UNITPRUNE_CACHE_DIR", str(tmp_path / "cache"))
    main = tmp_path / "main.c"
    main.write_text("int main(void) { return 0; }\n")
    compiled, ours = [], set(map(str, [main, *KERNELS]))  # (the runtime helpers compile on first use too)
    real_run_tool = msp430.run_tool

    def counting(command, *args, **kwargs):
        if "-c" in command and command[command.index("-c") + 1] in ours:
            compiled.append(command[command.index("-c") + 1])
        return real_run_tool(command, *args, **kwargs)

    monkeypatch.setattr(msp430, "run_tool", counting)
    cold = targets.build("msp430", [main, *KERNELS], include_dirs=[msp430.CSRC], build_dir=tmp_path / "cold")
    assert sorted(compiled) == sorted(map(str, [main, *KERNELS]))
    assert len(list((tmp_path / "cache" / "msp430-objects").glob("*.o"))) == len(KERNELS)
    compiled.clear()
    warm = targets.build("msp430", [main, *KERNELS], include_dirs=[msp430.CSRC], build_dir=tmp_path / "warm")
    assert compiled == [str(main)]  # every kernel object from the cache
    assert warm.elf.read_bytes() == cold.elf.read_bytes()

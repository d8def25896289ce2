"""Tool discovery, subprocesses with timeouts, the build and cache directories of the MCU targets.

Every external program runs through :func:`run_tool` (a timeout, captured output, an error that
names the command); a missing program raises :class:`ToolMissing` naming the Debian packages.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .specs import ARM_PACKAGES, RISCV_PACKAGES

AVR_PACKAGES = "gcc-avr avr-libc binutils-avr simavr libsimavr-dev libelf-dev pkg-config"
MSP430_PACKAGES = "clang-14 lld-14 mspdebug"
HOST_PACKAGES = "gcc (or any C compiler as cc)"
PACKAGES = {"host": HOST_PACKAGES, "avr": AVR_PACKAGES, "msp430": MSP430_PACKAGES, "msp430-hwmult": MSP430_PACKAGES,
            "m0plus": ARM_PACKAGES, "m0plus-smallmul": ARM_PACKAGES, "rv32ec": RISCV_PACKAGES,
            "rv32imc": RISCV_PACKAGES}
BUILD_MARKER = ".unitprune-build"  # a build directory this package created (and may overwrite)


class ToolMissing(RuntimeError):
    """A compiler, linker or simulator a target needs is not installed."""


class FirmwareError(RuntimeError):
    """A firmware failed to build or to run to its done marker."""


class FirmwareTooLarge(FirmwareError):
    """A firmware does not fit the target's memory: the linker found a region too small (the
    message names the region and by how many bytes; ``region`` and ``overflow_bytes`` hold them)."""

    def __init__(self, message: str, region: str, overflow_bytes: int) -> None:
        super().__init__(message)
        self.region = region
        self.overflow_bytes = overflow_bytes

    def __reduce__(self):  # pickled whole (a worker process's error reaches the parent intact)
        return type(self), (str(self), self.region, self.overflow_bytes)


def install_hint(target: str) -> str:
    return f"apt-get install -y --no-install-recommends {PACKAGES[target]}"


def find_tool(name: str, target: str) -> str:
    """The path of program ``name``; ToolMissing naming ``target``'s Debian packages if absent."""
    path = shutil.which(name)
    if path is None:
        raise ToolMissing(f"{name} not found (needed for the {target} target); install with: {install_hint(target)}")
    return path


def run_tool(command: list[str], timeout: float, what: str, cwd: Path | None = None,
             check: bool = True) -> subprocess.CompletedProcess:
    """Runs ``command`` with a timeout; FirmwareError with its output if it fails or times out."""
    try:
        process = subprocess.run([str(part) for part in command], capture_output=True, text=True, timeout=timeout,
                                 cwd=cwd)
    except subprocess.TimeoutExpired as error:
        raise FirmwareError(f"{what}: timed out after {timeout:.0f} s: {' '.join(map(str, command))}") from error
    if check and process.returncode != 0:
        shown = " ".join(map(str, command))
        shown = shown if len(shown) <= 400 else shown[:400] + " ..."
        raise FirmwareError(f"{what} failed (exit {process.returncode}): {shown}\n"
                            f"{(process.stderr or process.stdout).strip()}")
    return process


def prepare_build_dir(build_dir: Path | None, prefix: str) -> Path:
    """A directory for build outputs. None: a new temporary directory (kept: the firmware lives
    there). An existing directory is used only if it is empty or was made by this package
    (it holds BUILD_MARKER); anything else is refused rather than overwritten."""
    if build_dir is None:
        path = Path(tempfile.mkdtemp(prefix=prefix))
    else:
        path = Path(build_dir)
        if path.exists():
            if not path.is_dir():
                raise FirmwareError(f"build directory {path} exists and is not a directory")
            if any(path.iterdir()) and not (path / BUILD_MARKER).exists():
                raise FirmwareError(f"build directory {path} is not empty and was not made by unitprune "
                                    f"(no {BUILD_MARKER}); choose an empty or new directory")
        path.mkdir(parents=True, exist_ok=True)
    (path / BUILD_MARKER).write_text("made by unitprune.mcu.targets; its contents are overwritten by rebuilds\n")
    return path


def cache_dir() -> Path:
    """Where built harnesses and runtime libraries are cached: $UNITPRUNE_CACHE_DIR, else
    $XDG_CACHE_HOME/unitprune, else ~/.cache/unitprune."""
    root = os.environ.get("UNITPRUNE_CACHE_DIR")
    if not root:
        root = str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "unitprune")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def content_key(files: list[Path], *extra: str) -> str:
    """A short hash of the files' contents and the extra strings (compiler flags, versions)."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    for item in extra:
        digest.update(item.encode())
    return digest.hexdigest()[:16]


def tool_version(command: list[str], target: str) -> str:
    """First line of ``command``'s version output."""
    process = run_tool(command, 30, f"{command[0]} version ({target})")
    return (process.stdout or process.stderr).strip().splitlines()[0]

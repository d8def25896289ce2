"""Build an exported model with the host C compiler and run it on a batch (:func:`run_exported`).

The export folder's host runner (``main.c`` for host exports, ``main_host.c`` for MCU exports) is
compiled together with the same ``model.c`` and kernel sources, with the MAC counters on
(``-DUNIT_S8_COUNTS=1``), into ``build_dir`` (default ``OUT_DIR/build-host``). The batch is
written as int8 bytes, the program's outputs read back, and its ``counts`` lines parsed into
:class:`~unitprune.counts.MacCounts` per layer (summed over the batch, as ``mac_report`` does).
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import numpy as np

from ..counts import MacCounts
from .targets.specs import HOST_CFLAGS
from .export import ExportError

logger = logging.getLogger(__name__)

__all__ = ["run_exported", "host_compiler", "HOST_FLAGS"]

#: Flags of the host build (the exported Makefile's model_host rule uses the same).
HOST_FLAGS = [*HOST_CFLAGS, "-I.", "-Ikernels", "-DUNIT_S8_COUNTS=1"]


def host_compiler() -> str:
    """``$CC``, else ``cc``, ``gcc`` or ``clang`` from PATH; ExportError naming them if none is found."""
    candidates = [os.environ["CC"]] if os.environ.get("CC") else ["cc", "gcc", "clang"]
    for name in candidates:
        found = shutil.which(shlex.split(name)[0]) if name else None
        if found:
            return name
    raise ExportError(f"no host C compiler found (tried {', '.join(candidates)}; set CC or install gcc)")


def _manifest(out_dir: Path) -> dict:
    path = out_dir / "memory_plan.json"
    if not path.is_file():
        raise ExportError(f"{out_dir} is not an export folder (no memory_plan.json; write one with unitprune.export_c)")
    manifest = json.loads(path.read_text())
    if manifest.get("generator") != "unitprune.mcu.export":
        raise ExportError(f"{path} was not written by unitprune.export_c")
    return manifest


def build_host(out_dir, build_dir=None, extra_flags=()) -> Path:
    """Compile the export's host runner; returns the executable. Raises ExportError with the compiler's
    messages if the build fails."""
    out_dir = Path(out_dir).resolve()
    manifest = _manifest(out_dir)
    build_dir = Path(build_dir).resolve() if build_dir else out_dir / "build-host"
    build_dir.mkdir(parents=True, exist_ok=True)
    sources = manifest["host_sources"]
    executable = build_dir / "model_host"
    command = [*shlex.split(host_compiler()), *HOST_FLAGS, *extra_flags, *sources, "-o", str(executable)]
    result = subprocess.run(command, cwd=out_dir, capture_output=True, text=True)
    if result.returncode != 0:
        raise ExportError(f"building {out_dir} failed ({shlex.join(command)}):\n{result.stderr}")
    if result.stderr.strip():
        logger.warning("host build of %s: compiler warnings:\n%s", out_dir, result.stderr)
    return executable


def run_exported(out_dir, x, build_dir=None, timeout: float = 600.0) -> tuple[np.ndarray, dict[str, MacCounts]]:
    """Build the exported project ``out_dir`` for the host (counters on) and run it on the batch ``x``.

    Args:
        out_dir: a folder written by :func:`unitprune.export_c` (any target: MCU exports carry a
            host runner for the same ``model.c``).
        x: int8 inputs, shape ``(N, *input_shape)`` or ``(N, input_size)``.
        build_dir: where to compile (default ``out_dir/build-host``).
        timeout: seconds the run may take.

    Returns:
        ``(outputs, counts)``: int8 outputs ``(N, output_size)`` and the MAC counters of every
        conv/linear layer by name, summed over the batch.
    """
    out_dir = Path(out_dir)
    manifest = _manifest(out_dir)
    x = np.asarray(x)
    if x.dtype != np.int8:
        raise ExportError(f"run_exported: expected int8 inputs (quantized), got {x.dtype}")
    size = manifest["input_size"]
    if x.ndim < 1 or x.size != len(x) * size:
        raise ExportError(f"run_exported: inputs of shape {x.shape} do not hold whole samples of "
                          f"{tuple(manifest['input_shape'])}")
    executable = build_host(out_dir, build_dir)
    work = executable.parent
    (work / "input.bin").write_bytes(np.ascontiguousarray(x).tobytes())
    result = subprocess.run([str(executable), str(work / "input.bin"), str(work / "output.bin")],
                            capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise ExportError(f"the exported model failed on the host (exit {result.returncode}): {result.stderr.strip()}")
    outputs = np.frombuffer((work / "output.bin").read_bytes(), dtype=np.int8)
    outputs = outputs.reshape(len(x), manifest["output_size"])
    counts: dict[str, MacCounts] = {}
    layers = manifest["layers"]
    samples = None
    for line in result.stdout.splitlines():
        words = line.split()
        if words[:1] == ["samples"]:
            samples = int(words[1])
        elif words[:1] == ["counts"]:
            index = int(words[1])
            counts[layers[index]] = MacCounts(*map(int, words[3:10]))
    if samples != len(x) or len(counts) != len(layers):
        raise ExportError(f"the host runner's report is incomplete ({samples} samples, {len(counts)} of "
                          f"{len(layers)} layers):\n{result.stdout}")
    return outputs, counts

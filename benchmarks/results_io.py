"""What every benchmark script does at the end: write its JSON document and its Markdown table.

Import it from a script in this folder (``python benchmarks/NAME.py`` puts the folder on
``sys.path``). The machine description comes from the library
(:func:`unitprune.experiments.provenance.cpu_model`), so a benchmark and a sweep name the CPU the
same way.
"""

from __future__ import annotations

import json
from pathlib import Path

from unitprune.experiments.provenance import cpu_model

__all__ = ["core_target_provenance", "cpu_model", "write_results"]


def write_results(output_dir: Path, stem: str, document: dict, markdown: str | None = None) -> list[Path]:
    """Write ``output_dir/stem.json`` (and ``stem.md`` when ``markdown`` is given); return the paths."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    written = [output_dir / f"{stem}.json"]
    written[0].write_text(json.dumps(document, indent=1) + "\n")
    if markdown is not None:
        written.append(output_dir / f"{stem}.md")
        written[1].write_text(markdown)
    return written


def core_target_provenance(target: str, started: float) -> dict:
    """``machine``, ``tools`` (the Cortex-M0+ / RV32 ``target``'s compiler and emulator) and
    ``seconds`` since ``started`` (a ``time.perf_counter()`` value) for a benchmark document."""
    import platform
    import time

    from unitprune.mcu import targets

    tools = targets.check_tools(target)
    return {"machine": f"{cpu_model()}, Python {platform.python_version()}",
            "tools": f"{tools['compiler_version']}, {tools['emulator']}", "seconds": round(time.perf_counter() - started, 1)}

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

__all__ = ["cpu_model", "write_results"]


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

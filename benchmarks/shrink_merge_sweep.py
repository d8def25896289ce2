"""Merge the sweep points of a second ``unitprune shrink`` run into a first run and re-render its report.

    python benchmarks/shrink_merge_sweep.py runs/shrink-s0 runs/shrink-s0-sweep

The first run keeps its own main-budget points; the second run's points (its main budget and its
``--sweep-sram`` budgets) are appended to ``details.json["sweep"]``, then ``report.md`` and the
plots are rewritten. Used when the sweep is run as a separate command (e.g. from ``--weights``).
"""
import json
import sys
from pathlib import Path
from unitprune.experiments.shrink_study.shrink_report import write_report
main, extra = Path(sys.argv[1]), Path(sys.argv[2])
document = json.loads((main / "shrink.json").read_text())
details = json.loads((main / "details.json").read_text())
more = json.loads((extra / "details.json").read_text())["sweep"]
details["sweep"] = [p for p in details["sweep"] if p["budget_sram_bytes"] == document["budget"]["sram_bytes"]] + more
(main / "details.json").write_text(json.dumps(details, indent=2))
write_report(main, document, details)

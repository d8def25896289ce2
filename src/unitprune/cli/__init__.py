"""The ``unitprune`` command line.

Commands (``unitprune COMMAND --help`` for each):

* ``demo``: train the paper's MNIST model on the bundled digits (cached), run every method,
  write ``runs/demo/report.md`` and print a summary table.
* ``train``: train a Table-1 model on a built-in dataset; writes ``model.pt`` (a state_dict).
* ``calibrate``: convert a model to UnIT, calibrate thresholds on validation data, print the MACs
  skipped and the accuracy on test; optionally save the thresholds / the converted state_dict.
* ``sweep``: every method at every knob value on your model and data; writes a run folder.
* ``shrink``: make a model fit an MCU budget (peak SRAM, flash, MACs) by differentiable structured
  pruning, against Torch-Pruning, DPF and TTP at the same budget; writes a run folder.
* ``report``: re-render ``report.md``, ``results.csv`` and the figure from a run's ``results.json``.

Options can also come from a TOML file (``--config FILE``): top-level keys and keys of a table
named after the command (``[sweep]``) are option names (``unit_percentiles`` or
``unit-percentiles``); flags given on the command line win. Errors in paths or options exit with
status 2 and a one-line message. See docs/cli.md.
"""

from __future__ import annotations

import logging
import sys

from .config_file import parse_args
from .option_checks import check_option_values
from .user_errors import CLIError, run_guarded
from .parser import build_parser

logger = logging.getLogger("unitprune.cli")

__all__ = ["main", "build_parser", "CLIError"]


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit status (0 ok, 2 user error, 1 a bug; see :mod:`.user_errors`)."""
    try:
        args = parse_args(argv)
    except CLIError as exc:
        print(f"unitprune: error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help / --version
        return int(exc.code or 0)
    logging.basicConfig(level=max(logging.DEBUG, logging.WARNING - 10 * args.verbose),
                        format="%(levelname)s %(name)s: %(message)s")
    return run_guarded(lambda: _run(args))


def _run(args) -> int:
    check_option_values(args)
    return args.handler(args)

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
from .user_errors import CLIError
from .parser import build_parser

logger = logging.getLogger("unitprune.cli")

__all__ = ["main", "build_parser", "CLIError"]


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit status (0 ok, 2 user error)."""
    from ..data import DatasetFormatError, DatasetNotFoundError
    from ..experiments.inputs import InputError

    try:
        args = parse_args(argv)
    except CLIError as exc:
        print(f"unitprune: error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help / --version
        return int(exc.code or 0)
    logging.basicConfig(level=max(logging.DEBUG, logging.WARNING - 10 * args.verbose),
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.handler(args)
    except (CLIError, InputError, DatasetNotFoundError, DatasetFormatError, FileNotFoundError, ValueError) as exc:
        logger.debug("error details", exc_info=True)
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"unitprune: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("unitprune: interrupted", file=sys.stderr)
        return 130

"""Range checks of options, shared by every command (run before the command's work).

argparse checks types; this module checks ranges, so ``--threads 0``, ``--lr nan`` or an empty
value such as ``--data-root ''`` (an unset shell variable: ``Path('')`` is the current folder, where
the command would otherwise write) is a one-line error (exit 2) before anything is loaded or
written, whichever command it is given to.
"""

from __future__ import annotations

import argparse
import math

from .user_errors import CLIError

__all__ = ["MINIMUMS", "check_option_values"]

#: Smallest allowed value of integer options, by argparse destination (any command that has them).
MINIMUMS = {
    "threads": 1, "workers": 1, "synth_workers": 1, "epochs": 1, "prune_epochs": 1, "batch_size": 1,
    "eval_batch_size": 1, "calibration_samples": 1, "samples": 1, "measure_samples": 1, "layer_samples": 1,
    "group_size": 1, "repeats": 1, "unknown_per_speaker": 0, "patience": 0, "ttp_epochs": 0,
    "ttp_finetune_epochs": 0, "seed": 0,
}

#: Float options that must be > 0 (a learning rate, a penalty weight).
POSITIVE = {"lr"}


def _option(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def check_option_values(args: argparse.Namespace) -> None:
    """Raise :class:`CLIError` for a value out of its range: empty or blank strings, non-finite
    floats, integers below :data:`MINIMUMS`, non-positive :data:`POSITIVE` options."""
    for dest, value in vars(args).items():
        values = value if isinstance(value, list) else [value]
        for item in values:
            if isinstance(item, str) and not item.strip():
                raise CLIError(f"{_option(dest)} is empty ({item!r}): give a value (an unset shell variable?)")
            if isinstance(item, bool) or not isinstance(item, (int, float)):
                continue
            if isinstance(item, float) and not math.isfinite(item):
                raise CLIError(f"{_option(dest)} must be a finite number, got {item}")
            if dest in MINIMUMS and item < MINIMUMS[dest]:
                raise CLIError(f"{_option(dest)} must be >= {MINIMUMS[dest]}, got {item}")
            if dest in POSITIVE and item <= 0:
                raise CLIError(f"{_option(dest)} must be > 0, got {item}")

"""The command line's error boundary: every user error becomes one line on stderr and exit status 2.

:func:`run_guarded` runs a command's handler and maps what it raises:

* user errors (:func:`user_error_types`: :class:`CLIError`, ``ValueError`` and its subclasses (bad
  input files, options, budgets, output paths, exports), ``OSError`` (missing files, unwritable
  folders, a full disk), a missing pip extra, missing MCU tools or C compiler) -> ``unitprune:
  error: MESSAGE`` (the first line of the message), exit status 2;
* ``KeyboardInterrupt`` -> ``unitprune: interrupted``, 130;
* anything else is a bug of unitprune: one line naming the exception, exit status 1.

No traceback is printed; ``-vv`` logs it (``logging.DEBUG``).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

__all__ = ["CLIError", "user_error_types", "error_line", "run_guarded"]

logger = logging.getLogger("unitprune.cli")


class CLIError(Exception):
    """A user error: printed as one line, exit status 2."""


def user_error_types() -> tuple[type[BaseException], ...]:
    """The exception types reported as user errors (exit status 2)."""
    from ..extras import MissingExtraError
    from ..kernels.loading import KernelsUnavailableError
    from ..mcu.targets.tools import ToolMissing

    return (CLIError, ValueError, OSError, MissingExtraError, ToolMissing, KernelsUnavailableError)


def error_line(exc: BaseException) -> str:
    """The one line shown for ``exc``: its message's first non-empty line, else its type name."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        return f"{exc.strerror}: {exc.filename}"
    return lines[0] if lines else type(exc).__name__


def run_guarded(handler: Callable[[], int]) -> int:
    """Run ``handler()`` and return its exit status, mapping exceptions as the module says."""
    try:
        return handler()
    except KeyboardInterrupt:
        print("unitprune: interrupted", file=sys.stderr)
        return 130
    except user_error_types() as exc:
        logger.debug("error details", exc_info=True)
        print(f"unitprune: error: {error_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001  (the boundary: a bug still gets one line, not a traceback)
        logger.debug("error details", exc_info=True)
        print(f"unitprune: internal error: {type(exc).__name__}: {error_line(exc)} (a bug in unitprune; "
              "rerun with -vv for the traceback and report it)", file=sys.stderr)
        return 1

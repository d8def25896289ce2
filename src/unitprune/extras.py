"""Optional dependencies (pyproject extras): import them where they are used, with an error that
names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MissingExtraError", "require"]


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message names the pip extra that brings it."""


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import and return ``module``; if it is missing, raise :class:`MissingExtraError` saying that
    ``feature`` needs ``pip install 'unitprune[extra]'``."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module.split(".")[0]:
            raise
        raise MissingExtraError(f"{feature} needs the Python package {module.split('.')[0]!r}, which is not "
                                f"installed: pip install 'unitprune[{extra}]'") from None

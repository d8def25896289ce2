"""Errors raised by the dataset loaders.

Nothing in :mod:`unitprune.data` downloads anything. When a file is missing the loaders raise
:class:`DatasetNotFoundError` naming the exact path that was expected, where to get the data and
where to put it. When a file is present but unreadable (bad magic number, truncated, wrong
layout) they raise :class:`DatasetFormatError` naming the file and what was wrong.
"""

from __future__ import annotations

__all__ = ["DatasetNotFoundError", "DatasetFormatError"]


class DatasetNotFoundError(FileNotFoundError):
    """A dataset folder or file is missing. The message says what to download and where to put it."""


class DatasetFormatError(ValueError):
    """A dataset file exists but does not have the expected format (corrupt, truncated, wrong shape)."""

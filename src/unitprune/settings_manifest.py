"""Settings manifests: a folder made by unitprune records the settings that made it, and is reused
only with the same settings (the synthesized speech cache, the task results of a run folder).

:func:`check_manifest` reads ``manifest.json`` and compares its ``settings`` with the wanted ones;
:func:`write_atomic` writes a file so that a reader (or a crash) never sees half of it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["check_manifest", "write_atomic"]


def check_manifest(path: Path, wanted: dict[str, Any], format_version: int, error: type[Exception], what: str,
                   remedy: str) -> dict[str, Any]:
    """The manifest at ``path`` if its format is ``format_version`` and its ``settings`` equal ``wanted``.

    Raises ``error`` otherwise: for an unreadable file, another format, or other settings (naming
    up to three differing keys with both values, ``what`` the folder and ``remedy`` what to do).
    """
    try:
        manifest = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise error(f"cannot read {path}: {exc}") from exc
    if manifest.get("format") != format_version:
        raise error(f"{path} has format {manifest.get('format')!r}, this unitprune writes {format_version}: {remedy}")
    saved = manifest.get("settings", {})
    differing = sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))
    if differing:
        shown = ", ".join(f"{k}: cached {saved.get(k)!r} vs requested {wanted.get(k)!r}" for k in differing[:3])
        raise error(f"{what} was made with other settings ({shown}); it is not reused. {remedy}")
    return manifest


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode() if isinstance(data, str) else data
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise

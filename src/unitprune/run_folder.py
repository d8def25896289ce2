"""Output folders and files: one rule for every command that writes, and writes that never leave half a result.

The rule (every ``unitprune`` command that writes follows it, and so do the library functions the
commands call):

* An output folder (``--run-dir``, ``--out-dir``) may be missing or empty. A non-empty one is
  refused unless the caller passes ``overwrite`` (CLI ``--overwrite``); names listed in
  ``reusable`` (glob patterns of a command's own cache, e.g. the demo's ``train``) do not count
  as content.
* An output file (``--output``, ``--save-state-dict``) may be missing; an existing one is
  replaced only with ``overwrite``.
* Everything is checked *before* any work or any write (:func:`check_output_folder`,
  :func:`check_output_file`): a refused command leaves nothing behind, not even an empty folder.
* With ``overwrite``, only files the command writes are replaced; other files in the folder are
  left alone. Files an earlier run listed (e.g. an export's ``memory_plan.json``) are removed
  only through :func:`member_path`, which refuses absolute paths, ``..`` and symlinks.
* A folder written as a whole (the C export) is built in a temporary sibling folder and renamed
  into place (:func:`staged_folder`): a failure (disk full, a bug) leaves the target as it was,
  and a retry works. Single files are written to a temporary sibling and renamed
  (:func:`atomic_write_text`, :func:`atomic_write_bytes`, :func:`atomic_save`).

Errors are :class:`OutputPathError`, a user error (the CLI prints one line, exit status 2).
"""

from __future__ import annotations

import os
import shutil
from fnmatch import fnmatch
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["OutputPathError", "check_output_folder", "create_output_folder", "check_output_file",
           "atomic_write_text", "atomic_write_bytes", "atomic_save", "member_path", "remove_members",
           "staged_folder"]


class OutputPathError(ValueError):
    """An output folder or file that may not (or cannot) be written; the message names it."""


def _writable_ancestor(path: Path, option: str) -> None:
    """Raise OutputPathError unless ``path`` could be created: its nearest existing ancestor is a
    writable folder (nothing is written)."""
    ancestor = path.absolute()
    while not ancestor.exists():
        if ancestor.parent == ancestor:
            break
        ancestor = ancestor.parent
    if ancestor != path.absolute() and not ancestor.is_dir():
        raise OutputPathError(f"{option} {path}: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputPathError(f"{option} {path}: {ancestor} is not writable")


def check_output_folder(path, *, overwrite: bool, option: str = "output folder",
                        reusable: Iterable[str] = ()) -> Path:
    """Check (without writing) that ``path`` may be written as an output folder (module rule)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"{option} {path} is a file, not a folder")
    _writable_ancestor(path, option)
    if path.is_dir():
        keep = tuple(reusable)
        content = sorted(p.name for p in path.iterdir() if not any(fnmatch(p.name, pattern) for pattern in keep))
        if content and not overwrite:
            shown = ", ".join(content[:3]) + (", ..." if len(content) > 3 else "")
            raise OutputPathError(f"{option} {path} is not empty ({shown}); nothing was written (pass --overwrite "
                                  "to replace the files this command writes, or choose another folder)")
    return path


def create_output_folder(path) -> Path:
    """Create ``path`` (and parents); an OS failure becomes an :class:`OutputPathError`."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputPathError(f"cannot create the folder {path}: {exc.strerror or exc}") from None
    return path


def check_output_file(path, *, overwrite: bool, option: str = "output file") -> Path:
    """Check (without writing) that ``path`` may be written as an output file (module rule)."""
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{option} {path} is a folder, not a file")
    if path.exists() and not overwrite:
        raise OutputPathError(f"{option} {path} already exists; nothing was written (pass --overwrite to replace "
                              "it, or choose another path)")
    _writable_ancestor(path.parent if str(path.parent) else Path("."), option)
    return path


def atomic_save(path, write: Callable[[Path], None]) -> Path:
    """Call ``write(temporary path)`` in ``path``'s folder, then rename it to ``path`` (a failure
    leaves ``path`` as it was)."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    try:
        handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=folder)
    except OSError as exc:
        raise OutputPathError(f"cannot write {path}: {exc.strerror or exc}") from None
    os.close(handle)
    temporary = Path(name)
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path, text: str) -> Path:
    """Write ``text`` to ``path`` through a renamed temporary file."""
    return atomic_save(path, lambda temporary: temporary.write_text(text))


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a renamed temporary file."""
    return atomic_save(path, lambda temporary: temporary.write_bytes(data))


def member_path(folder, name: str, *, listed_in: str = "the manifest") -> Path:
    """``folder / name`` if ``name`` is a relative path inside ``folder`` reached without symlinks;
    else :class:`OutputPathError` (absolute paths, ``..``, symlinked components are refused)."""
    folder = Path(folder)
    relative = Path(name)
    if not name or relative.is_absolute() or relative.drive or ".." in relative.parts:
        raise OutputPathError(f"{listed_in} names {name!r}, which is not a relative path inside {folder}; "
                              "nothing was removed")
    path = folder
    for part in relative.parts:
        path = path / part
        if path.is_symlink():
            raise OutputPathError(f"{listed_in} names {name!r}, and {path} is a symlink; nothing was removed")
    root = folder.resolve()
    if root != path.resolve() and root not in path.resolve().parents:
        raise OutputPathError(f"{listed_in} names {name!r}, which resolves outside {folder}; nothing was removed")
    return path


def remove_members(folder, names: Iterable[str], *, keep: Iterable[str] = (), listed_in: str = "the manifest") -> None:
    """Remove the files ``names`` (relative to ``folder``) except ``keep``. Every name is checked with
    :func:`member_path` first; one unsafe name refuses the whole removal."""
    keep = set(keep)
    paths = [member_path(folder, name, listed_in=listed_in) for name in names if name not in keep]
    for path in paths:
        if path.is_file():
            path.unlink()


@contextmanager
def staged_folder(target, *, overwrite: bool, option: str = "output folder",
                  before_commit: Callable[[Path], None] | None = None) -> Iterator[Path]:
    """Yield a temporary sibling folder of ``target`` to write into; on success move its files into
    ``target`` (a missing or empty ``target`` is replaced by a rename of the whole folder). On any
    failure the temporary folder is removed and ``target`` is untouched.

    ``before_commit(target)`` runs after the writes succeeded and before anything in ``target``
    changes (e.g. removing an earlier run's stale files with :func:`remove_members`).
    """
    target = check_output_folder(target, overwrite=overwrite, option=option)
    parent = create_output_folder(target.parent if str(target.parent) else Path("."))
    try:
        stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=parent))
    except OSError as exc:
        raise OutputPathError(f"{option} {target}: cannot write in {parent}: {exc.strerror or exc}") from None
    try:
        yield stage
        if before_commit is not None and target.is_dir():
            before_commit(target)
        if target.is_dir() and not any(target.iterdir()):
            target.rmdir()
        if not target.exists():
            os.rename(stage, target)
            return
        for source in sorted(p for p in stage.rglob("*") if p.is_file()):
            relative = source.relative_to(stage)
            destination = target / relative
            for ancestor in [*reversed(relative.parents)][1:]:
                if (target / ancestor).is_symlink():
                    raise OutputPathError(f"{option} {target}: {target / ancestor} is a symlink; nothing more "
                                          "was written")
            destination.parent.mkdir(parents=True, exist_ok=True)
            if destination.is_dir():
                raise OutputPathError(f"{option} {target}: {destination} is a folder where a file goes")
            os.replace(source, destination)
    finally:
        shutil.rmtree(stage, ignore_errors=True)

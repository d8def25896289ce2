"""Options from a TOML file (``--config FILE.toml``): file values become defaults, flags win.

Top-level keys apply to the command being run, and keys of a table named after a command apply to
that command only. Keys are option names with ``_`` or ``-``. Values are checked against the
option: its type, whether it takes a list, its choices; anything else is a :class:`CLIError`.
"""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path

from .user_errors import CLIError
from .parser import NOT_FILE_KEYS, build_parser

__all__ = ["parse_args"]


def _subparsers_action(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    return next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))


def _subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    return _subparsers_action(parser).choices[command]


def _file_options(path: str, command: str, subparser: argparse.ArgumentParser, commands: set[str]) -> dict:
    """Option values from the TOML file ``path`` for ``command``, checked and converted."""
    file = Path(path)
    if not file.is_file():
        raise CLIError(f"config file not found: {file}")
    try:
        document = tomllib.loads(file.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CLIError(f"config file {file} is not valid TOML: {exc}") from None
    values = {key: value for key, value in document.items() if not (isinstance(value, dict) and key in commands)}
    section = document.get(command, {})
    values.update(section if isinstance(section, dict) else {})
    actions = {action.dest: action for action in subparser._actions
               if action.dest not in NOT_FILE_KEYS and action.dest != argparse.SUPPRESS}
    converted = {}
    for key, value in values.items():
        dest = key.replace("-", "_")
        if dest not in actions:
            raise CLIError(f"config file {file}: unknown key {key!r} for 'unitprune {command}' "
                           f"(valid: {', '.join(sorted(actions))})")
        converted[dest] = _convert(actions[dest], value, f"config file {file}: {key}")
    return converted


def _convert(action: argparse.Action, value, where: str):
    if action.nargs == 0:  # store_true flags
        if not isinstance(value, bool):
            raise CLIError(f"{where} must be true or false, got {value!r}")
        return value
    if action.nargs in ("+", "*"):
        if not isinstance(value, list) or not value:
            raise CLIError(f"{where} must be a non-empty list, got {value!r}")
        return [_convert_one(action, item, where) for item in value]
    if isinstance(value, (list, dict)):
        raise CLIError(f"{where} must be a single value, got {value!r}")
    return _convert_one(action, value, where)


def _convert_one(action: argparse.Action, value, where: str):
    if isinstance(value, bool) or isinstance(value, dict):
        raise CLIError(f"{where}: {value!r} is not a valid value")
    if action.type is not None:
        if action.type is int and isinstance(value, float):
            raise CLIError(f"{where} must be an integer, got {value!r}")
        try:
            value = action.type(value)
        except (TypeError, ValueError):
            raise CLIError(f"{where}: {value!r} is not a valid {action.type.__name__}") from None
    elif not isinstance(value, str):
        raise CLIError(f"{where} must be a string, got {value!r}")
    if action.choices is not None and value not in action.choices:
        raise CLIError(f"{where}: {value!r} is not one of {', '.join(map(str, action.choices))}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse ``argv``; with ``--config`` the file's values become defaults that flags override."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "config", None):
        subparser = _subparser(parser, args.command)
        commands = set(_subparsers_action(parser).choices)
        subparser.set_defaults(**_file_options(args.config, args.command, subparser, commands))
        args = parser.parse_args(argv)
    return args

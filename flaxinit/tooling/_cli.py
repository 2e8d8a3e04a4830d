"""Command-line plumbing shared by ``python -m mc``, ``python -m experiments`` and the benchmarks.

A bad argument is one line on stderr, ``PROG: error: ...``, and exit status 2, whether
argparse or the command itself finds it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from typing import Any, NoReturn


class UsageError(Exception):
    """A bad argument: reported as one line, exit status 2."""


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors raise :class:`UsageError` instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def check_resumable(stored: Any, settings: Mapping[str, Any], source: str) -> None:
    """``--resume``'s one check, for every command that resumes: the partial run's stored
    ``settings`` are this command's, or a :class:`UsageError` naming the settings that differ.

    Examples:
      >>> check_resumable({"steps": 4}, {"steps": 4}, "run.json")
      >>> check_resumable({"steps": 4, "key": 0}, {"steps": 8, "key": 0}, "run.json")  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      flaxinit.tooling._cli.UsageError: --resume: the settings ...: run.json was run with other settings (steps); ...
    """
    if not isinstance(stored, Mapping):
        raise UsageError(f"--resume: {source} holds no settings (got {type(stored).__name__})")
    if dict(stored) != dict(settings):
        changed = sorted(k for k in {*stored, *settings} if stored.get(k) != settings.get(k))
        raise UsageError(
            f"--resume: the settings in the JSON file differ from this command's: {source} was run with other "
            f"settings ({', '.join(changed)}); run without --resume to start again"
        )


def positive_int(text: str) -> int:
    """An argparse ``type``: a positive integer, or a clear error.

    Examples:
      >>> from flaxinit.tooling import positive_int
      >>> positive_int("3")
      3
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def run_command(prog: str, command: Callable[[], int], *errors: type[Exception]) -> int:
    """Runs ``command()``; a :class:`UsageError` (or one of ``errors``) becomes one line on stderr and status 2."""
    try:
        return command()
    except (UsageError, *errors) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2

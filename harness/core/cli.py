"""What the command lines share: bad input is one line, ``<tool>: error: <what is wrong>``, and exit status 2.

argparse prints its whole usage above an error; the harness's commands say only what was wrong, as every other
bad-input message of the harness does, so a script or a user reads one line.
"""

from __future__ import annotations

import argparse
import sys

EXIT_BAD_INPUT = 2


def fail(tool: str, message: str) -> int:
    """Prints ``<tool>: error: <message>`` on stderr and returns the bad-input exit status."""
    print(f"{tool}: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line from :func:`fail` (argparse prints the whole usage).

    Args:
        tool: the name the error line starts with, e.g. ``harness.run``; subcommand parsers made by
            ``add_subparsers`` inherit it.
    """

    def __init__(self, *args, tool: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.tool = tool

    def add_subparsers(self, **kwargs):  # noqa: D102
        kwargs.setdefault("parser_class", lambda **options: OneLineParser(tool=self.tool, **options))
        return super().add_subparsers(**kwargs)

    def error(self, message: str) -> None:  # noqa: D102
        raise SystemExit(fail(self.tool, message))

"""Does a package index answer? ``python scripts/index_answers.py URL [TIMEOUT_S]``: exit 0 if it does.

``make setup`` asks PyTorch's CPU index once before installing torch from it: pip retries an index it cannot reach
five times, with back-off, for every package it resolves (torch and each of its dependencies), which costs minutes
on a machine that reaches PyPI only. Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request


def problem(url: str, timeout_s: float) -> str | None:
    """Why ``url`` gives no answer within ``timeout_s`` seconds (an HTTP error counts as none), or None if it does."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s):
            return None
    except urllib.error.HTTPError as err:  # an index that refuses gives pip nothing either
        return str(err)
    except urllib.error.URLError as err:
        return str(err.reason)
    except OSError as err:  # a timeout while reading the answer, a reset connection
        return str(err) or type(err).__name__


def main(argv: list[str]) -> int:
    url, timeout_s = argv[0], float(argv[1]) if len(argv) > 1 else 5.0
    found = problem(url, timeout_s)
    if found is not None:
        print(found, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

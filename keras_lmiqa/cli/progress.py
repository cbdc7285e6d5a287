"""Progress of a long command, on stderr so that stdout holds only its results."""

from __future__ import annotations

import sys
from collections.abc import Callable

Progress = Callable[[int, int], None]


def progress_printer(noun: str, total: int, *, above: int = 0, in_logs: bool = False) -> Progress | None:
    """`progress(done, total)` for more than `above` items, or None. On a terminal one line
    rewritten in place; elsewhere nothing, or with `in_logs` a line at each tenth of the
    way (a redirected log gets lines, not one line of carriage returns)."""
    if total <= above:
        return None
    if sys.stderr.isatty():
        def progress(done: int, total: int) -> None:
            print(f"\rscored {done}/{total} {noun}", end="\n" if done == total else "", file=sys.stderr, flush=True)

        return progress
    if not in_logs:
        return None
    every = max(1, total // 10)

    def progress_lines(done: int, total: int) -> None:
        if done == total or done % every == 0:
            print(f"scored {done}/{total} {noun}", file=sys.stderr, flush=True)

    return progress_lines

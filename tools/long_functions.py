#!/usr/bin/env python
"""Functions longer than a limit (default 60 lines) under the given folders.

    python tools/long_functions.py keras_lmiqa [--max-lines 60]

A function may be longer when its docstring says why: a line starting "Long:".
Exit code 1 when any function is over the limit without such a reason.
"""

from __future__ import annotations

import argparse
import ast
import pathlib
import sys


def long_functions(root: str, max_lines: int) -> list[tuple[str, int, str, int, bool]]:
    """(file, line, name, length, has a reason) of every function over `max_lines` lines."""
    found = []
    for path in sorted(pathlib.Path(root).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > max_lines:
                    doc = ast.get_docstring(node) or ""
                    reasoned = any(line.strip().startswith("Long:") for line in doc.splitlines())
                    found.append((str(path), node.lineno, node.name, length, reasoned))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("roots", nargs="+")
    parser.add_argument("--max-lines", type=int, default=60)
    args = parser.parse_args()
    failed = False
    for root in args.roots:
        for path, line, name, length, reasoned in long_functions(root, args.max_lines):
            print(f"{path}:{line}: {name} is {length} lines{' (reason given)' if reasoned else ''}")
            failed |= not reasoned
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

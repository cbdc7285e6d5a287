"""The import graph of keras_lmiqa, from the source alone (ast; nothing is imported).

    python tools/import_graph.py            # edges, one "a -> b" per line, then any cycle
    python tools/import_graph.py --layers   # each module's layer and the edges that go up
    python tools/import_graph.py --dot      # Graphviz text of the layer graph

An edge is any import of a package module, at module level or inside a function
(a function-level import still ties the two modules together). `tests/test_architecture.py`
uses `package_graph` and `find_cycle`.
"""

from __future__ import annotations

import argparse
import ast
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = "keras_lmiqa"


def module_files(root: pathlib.Path = ROOT) -> dict[str, pathlib.Path]:
    """Dotted module name -> file, for every module of the package."""
    files = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        files[".".join(parts)] = path
    return files


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str, path: pathlib.Path, known: set[str]) -> set[str]:
    """Package modules that `module` imports (the longest known prefix of each name)."""
    tree = ast.parse(path.read_text(), str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, path.name == "__init__.py", node)
            for alias in node.names:  # a submodule, or else a name defined in `base`
                full = f"{base}.{alias.name}"
                names.add(full if full in known else base)
    found = set()
    for name in names:
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name and name != module:
            found.add(name)
    return found


def package_graph(root: pathlib.Path = ROOT) -> dict[str, set[str]]:
    """module -> package modules it imports. A package's `__init__` counts as a module;
    importing `a.b` also runs `a`'s `__init__`, which the graph leaves implicit."""
    files = module_files(root)
    known = set(files)
    return {module: imports_of(module, path, known) for module, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


# Layers, lowest first: a module may import its own layer and the layers below it.
LAYERS = (
    ("core", ("errors", "constants", "tf_logs", "inference_spec", "config", "image_io", "saliency",
              "crops", "working_size", "synthetic", "strategy", "metrics", "artifacts", "plots")),
    ("data", ("datasets", "pipeline")),
    ("models", ("models", "losses")),
    ("inference", ("loading", "scorer", "pretrained_models", "sensitivity")),
    ("training", ("training",)),
    ("delivery", ("export", "serving", "beam", "ui")),
    ("apps", ("cli", "research")),
)


def layer_of(module: str) -> str:
    """The layer of a dotted module name (its first name below the package)."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] == "_registration":  # the package's own start-up
        return "package"
    for layer, tops in LAYERS:
        if parts[1] in tops:
            return layer
    raise KeyError(f"{module}: in no layer of tools/import_graph.py LAYERS")


def upward_edges(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Edges from a module to a module of a higher layer."""
    rank = {layer: i for i, (layer, _) in enumerate(LAYERS)}
    rank["package"] = len(LAYERS)
    return sorted((a, b) for a, targets in graph.items() for b in targets
                  if layer_of(b) != "package" and rank[layer_of(b)] > rank[layer_of(a)])


def _dot(graph: dict[str, set[str]]) -> str:
    edges = {(layer_of(a), layer_of(b)) for a, t in graph.items() for b in t}
    lines = ["digraph layers {", "  rankdir=BT;"]
    lines += [f'  "{a}" -> "{b}";' for a, b in sorted(edges) if a != b and "package" not in (a, b)]
    return "\n".join(lines + ["}"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", action="store_true")
    parser.add_argument("--dot", action="store_true")
    args = parser.parse_args(argv)
    graph = package_graph()
    if args.dot:
        print(_dot(graph))
        return 0
    if args.layers:
        for module in sorted(graph):
            print(f"{layer_of(module):9s} {module}")
        up = upward_edges(graph)
        print(f"\n{len(up)} upward edges")
        for a, b in up:
            print(f"  {a} -> {b}")
        return 1 if up else 0
    for module in sorted(graph):
        for target in sorted(graph[module]):
            print(f"{module} -> {target}")
    cycle = find_cycle(graph)
    print("cycle: " + " -> ".join(cycle) if cycle else "no cycle", file=sys.stderr)
    return 1 if cycle else 0


if __name__ == "__main__":
    sys.exit(main())

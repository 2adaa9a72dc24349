"""The folders import one way: each layer only from the layers below it.

    foreshock/   the command line
    bench/       benchmarks and scoring, over the engines
    producers/   streams/   telemetry sources; the engines and sinks (siblings)
    infra/       configuration and the Kafka plumbing
    models/      the pure decision path: no I/O, no clock

Run with ``pytest tests/test_layers.py -s`` to see the edges.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).parents[1]
LAYER = {"models": 0, "infra": 1, "producers": 2, "streams": 2, "bench": 3, "foreshock": 4}


def module_names(path: Path) -> set[str]:
    """Every module a file imports by its absolute name, at any depth of the file."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def imported_folders(path: Path) -> set[str]:
    """The project's top-level folders a file imports."""
    return {name.split(".")[0] for name in module_names(path)} & LAYER.keys()


def folder_edges() -> dict[tuple[str, str], list[str]]:
    """Every import from one folder to another, with the files that make it."""
    edges: dict[tuple[str, str], list[str]] = {}
    for folder in LAYER:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for target in imported_folders(path) - {folder}:
                edges.setdefault((folder, target), []).append(str(path.relative_to(ROOT)))
    return edges


def test_every_import_between_folders_goes_down() -> None:
    edges = folder_edges()
    for (source, target), files in sorted(edges.items()):
        print(f"{source} -> {target} ({len(files)} files)")
    wrong = {
        f"{source} -> {target}": files
        for (source, target), files in edges.items()
        if LAYER[target] >= LAYER[source]
    }
    assert wrong == {}, f"imports that run up or sideways: {wrong}"


def test_the_broker_script_stands_alone() -> None:
    assert imported_folders(ROOT / "broker" / "kafka.py") == set()


def test_no_pickle_in_the_project() -> None:
    users = [
        str(path.relative_to(ROOT))
        for folder in LAYER
        for path in (ROOT / folder).rglob("*.py")
        if {"pickle", "cPickle", "dill", "marshal", "shelve"}
        & {name.split(".")[0] for name in module_names(path)}
    ]
    assert users == []

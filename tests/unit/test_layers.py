"""The layers point one way (ARCHITECTURE.md): contracts, settings and maths ← the runtime ← jobs and producers
← operations and the CLI ← benchmarks. A module may import its own package and the layers below it, never one
above or beside it, so that the product never depends on how the local stack is run."""

from __future__ import annotations

import ast

import pytest

from shared.settings import PROJECT_ROOT

LAYERS = {"shared": 1, "runtime": 2, "connectors": 3, "jobs": 3, "api": 3, "stack": 4, "bench": 5}
# What the lowest layer may not need: a Flink runtime or a running service.
NOT_IN_SHARED = {"pyflink", "kafka", "redis", "psycopg", "minio", "requests", "mastodon", "websockets"}


def imports_of(path) -> set[str]:
    """Every module a file imports, at the top or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def modules():
    return sorted(path for package in LAYERS for path in (PROJECT_ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_a_module_imports_only_its_own_package_and_the_layers_below(path):
    package = path.relative_to(PROJECT_ROOT).parts[0]
    wrong = sorted(name for name in imports_of(path) if (top := name.split(".")[0]) in LAYERS and top != package
                   and LAYERS[top] >= LAYERS[package])
    assert not wrong, f"{path.relative_to(PROJECT_ROOT)} (layer {LAYERS[package]}) imports {wrong}"
    if package == "shared":
        services = sorted(name for name in imports_of(path) if name.split(".")[0] in NOT_IN_SHARED)
        assert not services, f"{path.relative_to(PROJECT_ROOT)} is a contract or maths and imports {services}"


def test_the_rule_catches_an_upward_import(tmp_path):
    module = tmp_path / "flink.py"
    module.write_text("def f():\n    from stack import jars\n")
    assert "stack" in {name.split(".")[0] for name in imports_of(module)}

"""The layers of STYLE.md: imports go one way, and core knows no Flask."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "coatcheck"
WEB = ("flask", "werkzeug", "jinja2", "markupsafe")


def imported_modules(path: Path) -> set[str]:
    package = ".".join(path.relative_to(SRC.parent).with_suffix("").parts[:-1])
    return modules_in(path.read_text(), package)


def modules_in(source: str, package: str) -> set[str]:
    """Return the absolute names of the modules ``source`` (in ``package``) imports."""
    tree = ast.parse(source)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                found.add(".".join([*base, node.module] if node.module else base))
            else:
                found.add(node.module or "")
    return found


@pytest.mark.parametrize("layer", ["core", "stores"])
def test_layer_imports_no_web_framework(layer: str) -> None:
    files = sorted((SRC / layer).rglob("*.py"))
    assert files
    for path in files:
        bad = {m for m in imported_modules(path) if m.split(".")[0] in WEB}
        assert not bad, f"{path.relative_to(SRC)} imports {bad}"


def test_core_imports_only_core() -> None:
    for path in sorted((SRC / "core").rglob("*.py")):
        ours = {m for m in imported_modules(path) if m.startswith("coatcheck")}
        assert all(m.startswith("coatcheck.core") for m in ours), (path, ours)


def test_stores_do_not_import_the_flask_layer() -> None:
    for path in sorted((SRC / "stores").rglob("*.py")):
        ours = {m for m in imported_modules(path) if m.startswith("coatcheck")}
        assert all(m.startswith(("coatcheck.core", "coatcheck.stores")) for m in ours), (
            path,
            ours,
        )


def test_the_check_sees_a_flask_import() -> None:
    # The scanner must catch what it is there to catch, absolute and relative.
    source = "from flask import Flask\nimport werkzeug.http\nfrom ..ext import x\n"
    found = modules_in(source, "coatcheck.core")
    assert {"flask", "werkzeug.http", "coatcheck.ext"} <= found

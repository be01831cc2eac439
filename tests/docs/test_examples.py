"""The guide's Python examples marked to be run do run.

The convention: a ``.. code-block:: python`` with a ``:name:`` starting with
``run-`` is run. The marked blocks of one page run in order in one namespace,
in an empty folder, with ``SECRET_KEY`` set. Other blocks are shown only.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ..conftest import TEST_SECRET_KEY
from .conftest import DOCS

RUN_PREFIX = "run-"


def runnable_blocks(text: str) -> list[tuple[str, str]]:
    """Return ``(name, code)`` of every block of ``text`` marked to be run."""
    lines = text.splitlines()
    found = []
    i = 0
    while i < len(lines):
        if lines[i].strip() != ".. code-block:: python":
            i += 1
            continue
        options: dict[str, str] = {}
        i += 1
        while i < len(lines) and lines[i].strip().startswith(":"):
            key, _, value = lines[i].strip()[1:].partition(":")
            options[key] = value.strip()
            i += 1
        body = []
        while i < len(lines) and (not lines[i].strip() or lines[i].startswith("   ")):
            body.append(lines[i])
            i += 1
        name = options.get("name", "")
        if name.startswith(RUN_PREFIX):
            found.append((name, textwrap.dedent("\n".join(body)).strip() + "\n"))
    return found


PAGES = sorted(p for p in DOCS.rglob("*.rst") if runnable_blocks(p.read_text()))


def test_the_pages_that_promise_examples_have_them() -> None:
    names = {p.relative_to(DOCS).as_posix() for p in PAGES}
    assert {"quickstart.rst", "configuration.rst"} <= names


def test_the_convention_finds_blocks() -> None:
    text = ".. code-block:: python\n   :name: run-x\n\n   a = 1\n   b = a\n\nafter\n"
    assert runnable_blocks(text) == [("run-x", "a = 1\nb = a\n")]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(DOCS).as_posix())
def test_the_examples_of_a_page_run(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SECRET_KEY", TEST_SECRET_KEY)
    namespace: dict[str, object] = {"__name__": f"docs_example_{page.stem}"}
    for name, code in runnable_blocks(page.read_text()):
        exec(compile(code, f"{page.name}:{name}", "exec"), namespace)  # noqa: S102 - our own docs

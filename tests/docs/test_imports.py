"""Every ``coatcheck`` name the docs and the README use exists.

Import statements (``from coatcheck.x import a, b``, ``import coatcheck.x``) and
dotted names in reST roles and literals (``:func:`coatcheck.x.y```,
````coatcheck.x````, README's `` `coatcheck.x` ``) are resolved for real.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from .conftest import DOCS, README

#: Dotted texts that are not Python: a file name, itsdangerous salts, a logger name.
NOT_PYTHON = {"coatcheck.db", "coatcheck.remember", "coatcheck.csrf", "coatcheck.audit"}

FROM_IMPORT = re.compile(r"^\s*from (coatcheck(?:\.\w+)*) import \(?([^)]*?)\)?\s*$", re.M)
FROM_IMPORT_MULTI = re.compile(r"^\s*from (coatcheck(?:\.\w+)*) import \(([^)]*)\)", re.M)
IMPORT = re.compile(r"^\s*import (coatcheck(?:\.\w+)*)", re.M)
DOTTED = re.compile(r"(?:`|<|~)(coatcheck(?:\.[A-Za-z_]\w*)+)(?=`|>|\()")


def sources() -> list[Path]:
    docs = [p for p in DOCS.rglob("*") if p.suffix in (".rst", ".md", ".py")]
    return sorted([README, *docs])


def names_used(text: str) -> set[str]:
    """Return every fully qualified coatcheck name ``text`` imports or names."""
    found: set[str] = set()
    for pattern in (FROM_IMPORT_MULTI, FROM_IMPORT):
        for module, names in pattern.findall(text):
            for name in re.split(r"[,\s]+", names):
                name = name.split(" as ")[0].strip()
                if name and not name.startswith("#"):
                    found.add(f"{module}.{name}")
    found.update(IMPORT.findall(text))
    found.update(name for name in DOTTED.findall(text) if name not in NOT_PYTHON)
    return found


def resolve(dotted: str) -> object:
    """Import the longest module prefix of ``dotted`` and get the rest as attributes."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[split:]:
            obj = getattr(obj, attribute)
        return obj
    raise ModuleNotFoundError(dotted)


def test_the_parser_finds_every_form() -> None:
    text = (
        "from coatcheck import (\n    CoatCheck,\n    login_user,\n)\n"
        "from coatcheck.testing import SessionStoreContract\n"
        "import coatcheck.stores.base\n"
        "See :func:`~coatcheck.csrf_token` and ``coatcheck.ext.signals.security_event``; "
        "the file ``coatcheck.db``."
    )
    assert names_used(text) == {
        "coatcheck.CoatCheck",
        "coatcheck.login_user",
        "coatcheck.testing.SessionStoreContract",
        "coatcheck.stores.base",
        "coatcheck.csrf_token",
        "coatcheck.ext.signals.security_event",
    }


@pytest.mark.parametrize("path", sources(), ids=lambda p: p.name)
def test_every_coatcheck_name_resolves(path: Path) -> None:
    for name in sorted(names_used(path.read_text())):
        try:
            resolve(name)
        except (ImportError, AttributeError) as exc:
            pytest.fail(f"{path.name} names {name}, which does not exist: {exc}")


def test_the_docs_name_coatcheck_at_all() -> None:
    used = set().union(*(names_used(p.read_text()) for p in sources()))
    assert {"coatcheck.CoatCheck", "coatcheck.testing.SessionStoreContract"} <= used

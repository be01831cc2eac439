"""The documentation builds with warnings as errors, and documents the whole public API."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import coatcheck
from coatcheck.core.settings import Settings

from ..conftest import unavailable
from .conftest import DOCS, import_file

NEEDED = ("sphinx", "pallets_sphinx_themes")


def need_sphinx() -> None:
    missing = [name for name in NEEDED if importlib.util.find_spec(name) is None]
    if missing:
        unavailable(f"{', '.join(missing)} not installed: pip install -e '.[docs]' (make docs)")


def test_the_docs_build_with_warnings_as_errors(tmp_path: Path) -> None:
    need_sphinx()
    # The build imports the coatcheck this test imports, wherever it comes from.
    source = str(Path(coatcheck.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([source, os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html"]
    command += ["-d", str(tmp_path / "doctrees"), str(DOCS), str(tmp_path / "html")]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    page = (tmp_path / "html" / "configuration.html").read_text()
    for field in dataclasses.fields(Settings):
        assert f"setting-{field.metadata['key'].lower().replace('_', '-')}" in page


def test_the_settings_table_is_made_from_the_dataclass() -> None:
    need_sphinx()
    ext = import_file(DOCS / "_ext" / "coatcheck_docs.py", "coatcheck_docs_ext")
    rows = ext.settings_rows()
    fields = dataclasses.fields(Settings)
    assert [row[0] for row in rows] == [f.metadata["key"] for f in fields]
    assert [row[2] for row in rows] == [f.metadata["doc"] for f in fields]
    assert dict((key, default) for key, default, _ in rows)["COATCHECK_IDLE_TIMEOUT"] == "1800"
    assert dict((key, default) for key, default, _ in rows)["COATCHECK_COOKIE_SECURE"] == "true"


def test_the_api_page_documents_every_public_name() -> None:
    api = (DOCS / "api.rst").read_text()
    documented = set(re.findall(r"^\.\. auto\w+:: (\S+)", api, flags=re.M))
    for name in coatcheck.__all__:
        assert name in documented or f"``coatcheck.{name}`` is" in api, name
    for name in ("coatcheck.core.settings.Settings", "coatcheck.stores.base.SessionStore"):
        assert name in documented
    assert "coatcheck.testing" in documented

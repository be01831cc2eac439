"""Sphinx configuration: the Pallets theme, autodoc over the public API.

Build with ``make docs`` (warnings are errors). The configuration table is
generated from :class:`coatcheck.core.settings.Settings` by ``_ext/coatcheck_docs.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pallets_sphinx_themes import get_version

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "coatcheck"
copyright = "coatcheck contributors"
author = "coatcheck contributors"
release, version = get_version("coatcheck")

extensions = [
    "sphinx.ext.autodoc",
    "pallets_sphinx_themes",
    "coatcheck_docs",
]
exclude_patterns = ["_build"]
source_suffix = {".rst": "restructuredtext"}
root_doc = "index"

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autoclass_content = "class"

html_theme = "flask"
html_title = f"coatcheck {version}"
html_show_sourcelink = False
html_context = {"project_links": []}
html_sidebars = {
    "index": ["project.html", "localtoc.html", "searchbox.html"],
    "**": ["localtoc.html", "relations.html", "searchbox.html"],
}
# The version banner asks PyPI from the reader's browser; these docs ship with the code.
version_banner = False

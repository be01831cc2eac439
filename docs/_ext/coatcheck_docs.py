"""The ``coatcheck-settings`` directive: the configuration table, from the code.

Each field of :class:`coatcheck.core.settings.Settings` carries its config key
and its documentation in its metadata, and its default on the field: the table
is made from them, so a setting is documented once, where it is defined.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

from coatcheck.core.settings import Settings


def format_default(value: Any) -> str:
    """Return a default as it is written in configuration (TOML or environment)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)


def settings_rows() -> list[tuple[str, str, str]]:
    """Return ``(key, default, doc)`` for every field of :class:`Settings`."""
    return [
        (f.metadata["key"], format_default(f.default), f.metadata["doc"])
        for f in dataclasses.fields(Settings)
    ]


def _entry(*children: nodes.Node) -> nodes.entry:
    return nodes.entry("", nodes.paragraph("", "", *children))


class SettingsTable(SphinxDirective):
    """Render every setting of :class:`Settings` as a table: key, default, meaning."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        table = nodes.table(classes=["coatcheck-settings"])
        group = nodes.tgroup(cols=3)
        table += group
        for width in (30, 15, 55):
            group += nodes.colspec(colwidth=width)
        head = nodes.thead()
        head += nodes.row("", *(_entry(nodes.Text(t)) for t in ("key", "default", "meaning")))
        group += head
        body = nodes.tbody()
        std = self.env.get_domain("std")
        for key, default, doc in settings_rows():
            key_entry = _entry(nodes.literal(key, key))
            node_id = nodes.make_id(f"setting-{key}")
            key_entry["ids"].append(node_id)
            # The :setting:`KEY` role links here.
            std.note_object("setting", key, node_id, location=key_entry)
            default_cell = (
                nodes.literal(default, default) if default else nodes.emphasis("", "empty")
            )
            body += nodes.row("", key_entry, _entry(default_cell), _entry(nodes.Text(doc)))
        group += body
        return [table]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("coatcheck-settings", SettingsTable)
    # ``.. setting:: KEY`` marks a key documented by hand; ``:setting:`KEY``` links to either.
    app.add_crossref_type("setting", "setting", indextemplate="pair: %s; setting")
    return {"parallel_read_safe": True, "parallel_write_safe": True}

"""Untrusted text in log lines: escaped like ``repr``, one line, bounded."""

from __future__ import annotations

import pytest

from coatcheck.core.logtext import MAX_LOGGED_CHARS, escape_for_log


@pytest.mark.parametrize(
    ("text", "logged"),
    [
        ("/plain/path", "'/plain/path'"),
        ("a\nb\r\nc", "'a\\nb\\r\\nc'"),
        ("tab\there", "'tab\\there'"),
        ("\x00\x1b[31mred\x7f", "'\\x00\\x1b[31mred\\x7f'"),
        ("\x85next line", "'\\x85next line'"),
        ("line\u2028sep\u2029para", "'line\\u2028sep\\u2029para'"),
        ("\u202eevil", "'\\u202eevil'"),
        ("back\\slash 'quote'", "'back\\\\slash \\'quote\\''"),
        ("surrogate\udcff", "'surrogate\\udcff'"),
        ("café ключ 🍪", "'café ключ 🍪'"),
        ("", "''"),
    ],
)
def test_text_is_escaped_like_repr(text: str, logged: str) -> None:
    assert escape_for_log(text) == logged


def test_no_character_can_break_the_line() -> None:
    every = "".join(chr(code) for code in range(0x3000))
    escaped = escape_for_log(every, limit=10**6)
    assert not any(char in escaped for char in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
    assert escaped.isprintable()


def test_long_text_is_cut_and_counted() -> None:
    escaped = escape_for_log("x" * 5000)
    assert escaped == "'" + "x" * MAX_LOGGED_CHARS + f"…'(+{5000 - MAX_LOGGED_CHARS} chars)"
    # The bound holds for the escaped text: control characters take four each.
    assert len(escape_for_log("\x00" * 5000, limit=40)) < 60


def test_other_values() -> None:
    assert escape_for_log(None) == "None"
    assert escape_for_log(42) == "'42'"

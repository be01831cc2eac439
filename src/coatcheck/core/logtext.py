"""Untrusted text, made safe to put in a log line.

A request path, header, username or user agent is the client's text. Logged
as it came, a ``%0a`` in a URL or a control character in a username starts a
forged line of its own, or sends escape sequences to the terminal of whoever
reads the log. :func:`escape_for_log` renders such text the way ``repr`` does:
quoted, every non-printable character escaped, and cut short.
"""

from __future__ import annotations

#: Characters of escaped text kept at most; the rest is counted, not logged.
MAX_LOGGED_CHARS = 200

_SHORT_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_for_log(value: object, limit: int = MAX_LOGGED_CHARS) -> str:
    """Return ``value`` as quoted text that is safe to put in one log line.

    Control characters, line and paragraph separators, invisible format
    characters (such as bidirectional overrides) and lone surrogates are
    escaped as ``\\n``, ``\\x1b``, ``\\u2028``... A backslash and the quote
    are escaped too, so the result reads back unambiguously. At most
    ``limit`` characters of escaped text are kept; a longer value ends with
    how many of its characters were left out: ``'abc…'(+5000 chars)``.
    ``None`` stays ``None``, unquoted, as ``repr`` has it.
    """
    if value is None:
        return "None"
    text = value if isinstance(value, str) else str(value)
    parts: list[str] = []
    used = 0
    for index, char in enumerate(text):
        escaped = _escape(char)
        if used + len(escaped) > limit:
            return f"'{''.join(parts)}…'(+{len(text) - index} chars)"
        parts.append(escaped)
        used += len(escaped)
    return f"'{''.join(parts)}'"


def _escape(char: str) -> str:
    short = _SHORT_ESCAPES.get(char)
    if short is not None:
        return short
    if char.isprintable():
        return char
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"

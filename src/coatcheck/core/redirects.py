"""Decide whether a ``next`` URL is safe to redirect to.

Only a same-site relative path is followed: ``/account?tab=keys`` is, and
``//evil.example``, ``/\\evil.example``, ``https://evil.example`` and
``javascript:...`` are not. Browsers are lenient about what they take for a
host: they treat ``\\`` like ``/``, drop tabs and newlines anywhere in a URL,
and some servers and proxies decode ``%2f`` or fold full-width ``／`` to ``/``
before the browser sees the URL. So the checks run on the value as given, on
its percent-decoded form and on the NFKC form of both, and every one of them
has to pass.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import unquote, urlsplit

__all__ = ["MAX_NEXT_LENGTH", "is_safe_next", "safe_next"]

#: The longest ``next`` value followed, in characters.
MAX_NEXT_LENGTH = 2048


def is_safe_next(target: str | None) -> bool:
    """Return whether ``target`` is a same-site relative path to redirect to.

    It must start with a single ``/``, have no scheme and no host, and contain
    no backslash, control character or whitespace, also once percent-decoded
    or NFKC-normalised. A percent-encoded space (``%20``) is allowed, as
    queries like ``?q=two%20words`` are common; a literal one is not.
    """
    if not isinstance(target, str) or not target or len(target) > MAX_NEXT_LENGTH:
        return False
    as_given = (target, unicodedata.normalize("NFKC", target))
    decoded = tuple(_unquote_fully(form) for form in as_given)
    decoded += (unicodedata.normalize("NFKC", decoded[0]),)
    return all(_is_local_path(form, allow_space=False) for form in as_given) and all(
        _is_local_path(form, allow_space=True) for form in decoded
    )


def safe_next(target: str | None, default: str = "/") -> str:
    """Return ``target`` if it is safe to redirect to, else ``default``.

    :param target: the untrusted value, usually ``request.args.get("next")``.
    :param default: where to go instead; trusted, not checked.
    """
    return target if target is not None and is_safe_next(target) else default


def _unquote_fully(text: str) -> str:
    """Percent-decode ``text`` until it no longer changes.

    ``%252f`` becomes ``/`` this way, as it would after two decoding layers.
    Each round that changes the text shortens it, so the loop ends.
    """
    while True:
        decoded = unquote(text)
        if decoded == text:
            return text
        text = decoded


def _is_local_path(text: str, *, allow_space: bool) -> bool:
    """Return whether one form of a ``next`` value is a same-site path."""
    if not text.startswith("/") or text.startswith("//") or "\\" in text:
        return False
    for char in text:
        if char == " " and allow_space:
            continue
        if char.isspace() or unicodedata.category(char) == "Cc":
            return False
    try:
        parts = urlsplit(text)
    except ValueError:
        return False
    return not parts.scheme and not parts.netloc

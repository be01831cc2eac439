"""Fuzz ``safe_next``: whatever it lets through must stay on the site.

Checked the way a browser reads a redirect target: tabs and newlines dropped,
backslashes taken for slashes, then resolved against the site's URL. The
input is the ``next`` value as UTF-8 (invalid bytes become lone surrogates).
"""

from __future__ import annotations

import re
import sys
from urllib.parse import urljoin, urlsplit

import atheris

with atheris.instrument_imports(include=["coatcheck", "harness"]):
    import harness

    from coatcheck.core.redirects import MAX_NEXT_LENGTH, is_safe_next, safe_next

SITE = "https://app.example/account/settings"
_DROPPED = re.compile(r"[\t\n\r]")


def stays_on_site(target: str) -> bool:
    """Tell whether a browser following ``target`` from :data:`SITE` stays there."""
    browserish = _DROPPED.sub("", target).replace("\\", "/").strip("\x00 ")
    try:
        return urlsplit(urljoin(SITE, browserish)).netloc == "app.example"
    except ValueError:
        return False


def TestOneInput(data: bytes) -> None:  # noqa: N802 - the name atheris expects
    target = data[: 4 * (MAX_NEXT_LENGTH + 8)].decode("utf-8", "surrogateescape")
    result = safe_next(target, default="/home")
    harness.check(is_safe_next(target) == (result == target), "safe_next disagrees", target)
    if result == "/home":
        return
    harness.check(result == target, "safe_next changed the target", target)
    harness.check(result.startswith("/") and not result.startswith("//"), "not a path", target)
    harness.check(stays_on_site(result), "leaves the site", target)


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()

"""Fuzz CSRF tokens, Origin checks and the signed double-submit cookie.

A crash is an exception, a token that matches though it is not one made from
the secret, an Origin let through that is not the app's own, or a signed
cookie that verifies though it is not exactly the one that was signed.

The first byte picks what the rest is: (0) a token, as UTF-8 text; (1) an edit
of a real token; (2) ``Sec-Fetch-Site`` and ``Origin`` on two lines (``-`` for
no ``Sec-Fetch-Site``, one line for no ``Origin``); (3) a signed cookie as
text; (4) an edit of a real signed cookie.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["coatcheck", "harness", "itsdangerous"]):
    import harness

    from coatcheck.core import csrf
    from coatcheck.core.signing import CookieSigner, signing_keys

SECRET = csrf.new_secret()
TOKENS = [csrf.mask(SECRET) for _ in range(4)]
SIGNER = CookieSigner(signing_keys(harness.SECRET_KEY), "csrf")
SIGNED = SIGNER.sign(SECRET)
OWN = "https://desk.example"
TRUSTED = ("https://partner.example/",)


def edit(fdp: atheris.FuzzedDataProvider, value: str) -> str:
    """Return ``value`` with a fuzzer-chosen slice replaced by fuzzer-chosen text."""
    start = fdp.ConsumeIntInRange(0, len(value))
    end = fdp.ConsumeIntInRange(start, len(value))
    return value[:start] + fdp.ConsumeUnicode(8) + value[end:]


def same_origin(origin: str) -> bool:
    normal = origin.strip(" \t").rstrip("/")
    return normal.isascii() and normal.lower() in {OWN, "https://partner.example"}


def TestOneInput(data: bytes) -> None:  # noqa: N802 - the name atheris expects
    mode, rest = (data[0] % 5, data[1:]) if data else (0, b"")
    text = rest.decode("utf-8", "surrogateescape")
    fdp = atheris.FuzzedDataProvider(rest)
    if mode == 0:  # any text as a token, and as a secret
        harness.check(not csrf.matches(text, SECRET), "junk matched", text)
        csrf.matches(SECRET, text)
    elif mode == 1:  # a real token, edited
        real = TOKENS[fdp.ConsumeIntInRange(0, len(TOKENS) - 1)]
        token = edit(fdp, real)
        harness.check(csrf.matches(token, SECRET) == (token in TOKENS), "edit matched", token)
    elif mode == 2:  # provenance
        first, newline, second = text.partition("\n")
        site = None if first == "-" else first
        origin = second if newline else None
        reason = csrf.origin_failure(
            sec_fetch_site=site, origin=origin, own_origin=OWN, trusted_origins=TRUSTED
        )
        if site is not None and site.strip().lower() == "cross-site":
            expected: str | None = csrf.REASON_CROSS_SITE
        elif origin is not None and not same_origin(origin):
            expected = csrf.REASON_BAD_ORIGIN
        else:
            expected = None
        harness.check(reason == expected, "origin_failure", site, origin, reason)
    elif mode == 3:  # any text as the signed double-submit cookie
        harness.check(SIGNER.verify(text, max_age=3600) is None, "junk verified", text)
    else:  # the real signed cookie, edited
        signed = edit(fdp, SIGNED)
        value = SIGNER.verify(signed, max_age=3600)
        harness.check(value is None or signed == SIGNED, "an edited cookie verified", signed)


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()

"""``COATCHECK_MAIL_URL``: where mail goes, parsed and checked once at start.

``smtp://user:password@host:587?starttls=true`` (plain SMTP, upgraded with
STARTTLS when asked) or ``smtps://user:password@host:465`` (TLS from the first
byte). User and password are percent-decoded; ``timeout`` (seconds, default
:data:`DEFAULT_TIMEOUT`) bounds every wait on the server. The password never
appears in ``repr``, ``str`` or :meth:`MailURL.describe`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

from .errors import ConfigurationError

#: The port of each scheme when the URL names none.
DEFAULT_PORTS = {"smtp": 587, "smtps": 465}
#: Seconds to wait on the SMTP server (connect, each reply) unless ``timeout`` says.
DEFAULT_TIMEOUT = 30.0
_OPTIONS = frozenset({"starttls", "timeout"})
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


@dataclass(frozen=True)
class MailURL:
    """An SMTP server to deliver to, as ``COATCHECK_MAIL_URL`` names it."""

    scheme: str
    host: str
    port: int
    username: str | None = None
    #: Kept out of ``repr``: a settings dump or a traceback must not show it.
    password: str | None = field(default=None, repr=False)
    starttls: bool = False
    timeout: float = DEFAULT_TIMEOUT

    @property
    def implicit_tls(self) -> bool:
        """Tell whether TLS starts with the connection (``smtps``)."""
        return self.scheme == "smtps"

    def describe(self) -> str:
        """Return the URL for logs and messages, the password masked."""
        user = ""
        if self.username is not None:
            user = self.username + (":***" if self.password is not None else "") + "@"
        host = f"[{self.host}]" if ":" in self.host else self.host
        query = "?starttls=true" if self.starttls else ""
        return f"{self.scheme}://{user}{host}:{self.port}{query}"

    def __str__(self) -> str:
        return self.describe()


def parse_mail_url(url: str) -> MailURL:
    """Return the :class:`MailURL` ``url`` names; raise :class:`ConfigurationError` if invalid.

    The error names what is wrong and shows the URL with its password masked.
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise ConfigurationError(
            f"COATCHECK_MAIL_URL is not a valid URL ({exc}): {_masked(url)}"
        ) from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ConfigurationError(
            "COATCHECK_MAIL_URL must start with smtp:// or smtps:// "
            f"(e.g. smtp://user:password@host:587?starttls=true), not {_masked(url)}"
        )
    if not parts.hostname:
        raise ConfigurationError(f"COATCHECK_MAIL_URL names no host: {_masked(url)}")
    if parts.path not in ("", "/") or parts.fragment:
        raise ConfigurationError(
            f"COATCHECK_MAIL_URL takes no path or fragment, only options: {_masked(url)}"
        )
    starttls, timeout = _options(parts.query, url)
    if starttls and scheme == "smtps":
        raise ConfigurationError(
            "COATCHECK_MAIL_URL: smtps:// is TLS already; starttls=true is for smtp:// "
            f"({_masked(url)})"
        )
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    if password is not None and not username:
        raise ConfigurationError(f"COATCHECK_MAIL_URL has a password but no user: {_masked(url)}")
    return MailURL(
        scheme=scheme,
        host=parts.hostname,
        port=port if port is not None else DEFAULT_PORTS[scheme],
        username=username or None,
        password=password,
        starttls=starttls,
        timeout=timeout,
    )


def _options(query: str, url: str) -> tuple[bool, float]:
    """Return ``starttls`` and ``timeout`` from the query; refuse any other option."""
    starttls, timeout = False, DEFAULT_TIMEOUT
    for key, value in parse_qsl(query, keep_blank_values=True):
        name = key.lower()
        if name not in _OPTIONS:
            raise ConfigurationError(
                f"COATCHECK_MAIL_URL: unknown option {key!r} (known: starttls, timeout): "
                f"{_masked(url)}"
            )
        if name == "starttls":
            if value.lower() not in _TRUE | _FALSE:
                raise ConfigurationError(
                    f"COATCHECK_MAIL_URL: starttls takes true or false, not {value!r}"
                )
            starttls = value.lower() in _TRUE
        else:
            try:
                timeout = float(value)
            except ValueError:
                timeout = math.nan
            if not (math.isfinite(timeout) and timeout > 0):
                raise ConfigurationError(
                    f"COATCHECK_MAIL_URL: timeout takes a positive number of seconds, not {value!r}"
                )
    return starttls, timeout


def _masked(url: str) -> str:
    """Return ``url`` with anything between ``://`` and the last ``@`` after a ``:`` masked."""
    scheme, sep, rest = url.strip().partition("://")
    if not sep:
        return "(a value that is not a URL)" if "@" in url else repr(url)
    netloc, slash, tail = rest.partition("/")
    netloc, query_mark, query = netloc.partition("?")
    userinfo, at, host = netloc.rpartition("@")
    if at and ":" in userinfo:
        userinfo = userinfo.partition(":")[0] + ":***"
    shown = f"{userinfo}{at}{host}{query_mark}{query}{slash}{tail}"
    return repr(f"{scheme}://{shown}")

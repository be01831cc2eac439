"""Forward auth (SPEC §10): ``GET /api/authz/auth-request`` against ``GET /api/me``.

coatcheck is configured with the access rules below (``COATCHECK_CONFIG``, a
TOML file with an ``[access_control]`` table, in-process and served alike) and
``COATCHECK_TRUSTED_PROXIES=127.0.0.1/32``; every request comes from
127.0.0.1, as nginx's ``auth_request`` subrequest would. The request asked
about walks three rules before the fourth, ``one_factor`` on
``*.example.com``, matches: the decision needs the logged-in user, read from
the session the ``Cookie`` header names.

Each part of the benchmark runs it beside coatcheck's ``GET /api/me``, on the
same app and session: in-process and over HTTP as one more entrant in the
rounds (the ratio is auth-request / me, paired per round), and in the store
traffic as one more segment (writes, and SQL statements on the user database).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from .clients import USERNAME, Reply, Requester, headers
from .common import BenchError, median, short

#: The entrant's name in the rounds and the results.
NAME = "auth-request"
PATH = "/api/authz/auth-request"
ORIGINAL = {"X-Original-URL": "https://app.example.com/some/page", "X-Original-Method": "GET"}
TRUSTED_PROXIES = "127.0.0.1/32"
CONFIG_FILE = "coatcheck.toml"
#: A few rules; the fourth decides https://app.example.com/some/page.
RULES_TOML = """\
[access_control]
default_policy = "deny"

[[access_control.rules]]
domain = "public.example.com"
policy = "bypass"

[[access_control.rules]]
domain = "*.example.com"
resources = ["^/admin([/?].*)?$"]
subject = ["role:admin"]
policy = "two_factor"

[[access_control.rules]]
domain = ["ops.example.com", "metrics.example.com"]
subject = [["role:ops", "role:oncall"], "user:root"]
networks = ["10.0.0.0/8", "192.168.0.0/16"]
policy = "two_factor"

[[access_control.rules]]
domain = "*.example.com"
policy = "one_factor"

[[access_control.rules]]
domain = "*.example.org"
methods = ["GET", "HEAD"]
policy = "one_factor"
"""


def config(folder: Path) -> dict[str, str]:
    """Return the settings that turn forward auth on for a coatcheck in ``folder``."""
    return {
        "COATCHECK_TRUSTED_PROXIES": TRUSTED_PROXIES,
        "COATCHECK_CONFIG": str(folder / CONFIG_FILE),
    }


def write_config(folder: Path) -> None:
    """Write the configuration file :func:`config` names (checked: it must parse)."""
    tomllib.loads(RULES_TOML)
    (folder / CONFIG_FILE).write_text(RULES_TOML)


def request_headers(cookie: str) -> dict[str, str]:
    """Return the headers of an auth-request subrequest for the session in ``cookie``."""
    return headers(cookie, **ORIGINAL)


def check(request: Requester, cookie: str, what: str) -> None:
    """Raise :class:`BenchError` unless the rules let the bench user through by name.

    A 400 (untrusted peer), 401 or 403 would otherwise be measured as a fast answer.
    """
    reply: Reply = request("GET", PATH, request_headers(cookie))
    if reply.status != 200:
        raise BenchError(f"{what}: GET {PATH} answered {reply.status}: {short(reply.body)}")
    if reply.headers.get("Remote-User") != USERNAME:
        found = reply.headers.get("Remote-User")
        raise BenchError(f"{what}: GET {PATH} let through Remote-User {found!r}, not {USERNAME}")


def summary(me: list[float], authz: list[float], ratio: float | None) -> dict[str, Any]:
    """Return the figures of one driver: rates, microseconds per request, the ratio."""
    me_rate, authz_rate = median(me), median(authz)
    return {
        "per_round": authz,
        "median": authz_rate,
        "me_median": me_rate,
        "us": 1e6 / authz_rate if authz_rate else None,
        "me_us": 1e6 / me_rate if me_rate else None,
        "ratio": ratio,
    }

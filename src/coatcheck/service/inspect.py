"""The cookie inspector and the course lessons.

``/inspect`` (and ``/api/inspect``) shows what the browser sent, what
coatcheck's own cookies are set with and what each attribute does, and what the
server keeps for the session. Cookie values are masked everywhere, except the
lessons' own demo cookies: an XSS that reads these pages learns no session ID,
remember-me token or CSRF secret, nor any other application's cookie on this
host (a ``jwt``, an ``api_key``...).

The lessons are the course examples the project grew from, live, with the same
masking. ``create_app`` registers them unless ``COATCHECK_LESSONS`` is off. The
session lesson keeps an anonymous visitor's values in a signed cookie, never in
the store: a flood of anonymous requests must not grow it.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, render_template, request

from ..auth.devices import assurance_json
from ..core.settings import Settings
from ..core.signing import CookieSigner, signing_keys
from ..ext import CoatCheck, current_session, current_user, iso_time, session_assurance
from ..ext.cookies import cookie_name, vary_on
from ..ext.csrf import COOKIE_MAX_AGE

blueprint = Blueprint("inspect", __name__)
lessons = Blueprint("lessons", __name__)

#: Bytes a browser keeps at most per cookie (its name and value).
COOKIE_LIMIT = 4096
#: A session key whose name contains one of these is treated as a secret and masked.
SECRET_WORDS = ("session", "remember", "csrf", "token", "auth", "sid")
#: At most this many cookies are reported one by one (browsers keep ~180 per site).
MAX_COOKIES_SHOWN = 200
#: Longer names and values are cut short in the report.
MAX_TEXT_SHOWN = COOKIE_LIMIT
#: The page shows this much of a long value; the JSON report has it all.
PAGE_TEXT_SHOWN = 200

#: The signed cookie that holds an anonymous visitor's session in the session lesson.
LESSON_COOKIE = "lesson-session"
#: What the session lesson puts in the session.
LESSON_DEFAULTS = {"hello": "World", "goodnight": "Moon"}
#: The lessons' own demo cookies: the one cookies whose values these pages show.
DEMO_COOKIES = frozenset({"mouse", "flavour", "username", LESSON_COOKIE})

_ROLES = {
    "session": "The session ID: your ticket at the coat check. Your data stays on the server.",
    "remember": "Remember-me: a series and a token that start a new session after this one "
    "ends. Each use replaces the token; a copied cookie is detected.",
    "csrf": "The signed CSRF secret of a visitor who is not logged in (double-submit), "
    "which lets login and register forms be protected without a session record. Once "
    "you log in it is no longer used: forms are checked against a secret kept in your "
    "server session.",
}


@dataclass(frozen=True)
class SentCookie:
    """One ``name=value`` pair of the request's ``Cookie`` header, as sent."""

    name: str
    value: str
    #: Bytes of ``name=value`` as it came over the wire.
    size: int


def sent_cookies() -> list[SentCookie]:
    """Return the request's cookies in the order sent, duplicates included.

    Flask's ``request.cookies`` unquotes and merges; this reads the header as
    the browser sent it, so sizes are exact and a cookie sent twice shows twice.
    Bytes that are not UTF-8 are shown as U+FFFD.
    """
    cookies = []
    for part in _cookie_header().split(b";"):
        pair = part.strip(b" \t")
        if not pair:
            continue
        name, sep, value = pair.partition(b"=")
        if not sep:  # RFC 6265bis: a pair without "=" is a value with an empty name
            name, value = b"", name
        cookies.append(SentCookie(_text(name.strip()), _text(value.strip()), len(pair)))
    return cookies


def mask(value: str) -> str:
    """Return a secret as its first few characters and its length (``AbC1… (43 chars)``).

    Short values show fewer characters (none below four), so a mask never
    gives away most of a secret.
    """
    return f"{value[: min(4, len(value) // 4)]}… ({len(value)} chars)"


def is_secret_name(name: str, own_names: dict[str, str]) -> bool:
    """Tell whether a session key (or cookie) named ``name`` looks like a secret."""
    lowered = name.lower()
    return name in own_names or any(word in lowered for word in SECRET_WORDS)


def is_demo_cookie(name: str, own_names: dict[str, str]) -> bool:
    """Tell whether cookie ``name`` is a lesson's own, the one kind shown unmasked.

    Every other cookie is masked, whatever its name: the inspector cannot know
    which of another application's cookies (``jwt``, ``api_key``...) are secrets.
    With the lessons off, no cookie is theirs.
    """
    return (
        bool(current_app.config.get("COATCHECK_LESSONS"))
        and name in DEMO_COOKIES
        and name not in own_names
    )


def own_cookie_names(settings: Settings) -> dict[str, str]:
    """Return coatcheck's cookie names (as configured) mapped to their roles."""
    return {
        settings.session_cookie_name: "session",
        cookie_name(settings, "remember"): "remember",
        cookie_name(settings, "csrf"): "csrf",
    }


def inspection() -> dict[str, Any]:
    """Return the inspector's report on the current request (JSON-compatible)."""
    settings = CoatCheck.state().settings
    own = own_cookie_names(settings)
    cookies = sent_cookies()
    counts = Counter(cookie.name for cookie in cookies)
    session = _session_report(own)
    return {
        "cookie_limit": COOKIE_LIMIT,
        "cookie_count": len(cookies),
        "header_size": len(_cookie_header()),
        "cookies": [_cookie_report(c, own, counts) for c in cookies[:MAX_COOKIES_SHOWN]],
        "cookies_not_shown": max(0, len(cookies) - MAX_COOKIES_SHOWN),
        "coatcheck_cookies": [
            {
                "name": name,
                "role": role,
                "purpose": _ROLES[role],
                "sent": name in counts,
                "attributes": _attributes(role, name, settings, session["permanent"]),
            }
            for name, role in own.items()
        ],
        "session": session,
    }


def _cookie_header() -> bytes:
    raw = request.environ.get("HTTP_COOKIE", "")
    try:
        return str(raw).encode("latin-1")  # WSGI: the header's bytes, as latin-1 text
    except UnicodeEncodeError:
        return str(raw).encode("utf-8", "replace")


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _clip(text: str) -> str:
    if len(text) <= MAX_TEXT_SHOWN:
        return text
    return f"{text[:MAX_TEXT_SHOWN]}… (+{len(text) - MAX_TEXT_SHOWN} chars)"


def _shown(name: str, value: str, own: dict[str, str]) -> str:
    return _clip(value) if is_demo_cookie(name, own) else mask(value)


def _cookie_report(cookie: SentCookie, own: dict[str, str], counts: Counter[str]) -> dict[str, Any]:
    return {
        "name": _clip(cookie.name),
        "value": _shown(cookie.name, cookie.value, own),
        "masked": not is_demo_cookie(cookie.name, own),
        "size": cookie.size,
        "percent": round(cookie.size * 100 / COOKIE_LIMIT, 1),
        "over_limit": cookie.size > COOKIE_LIMIT,
        "duplicate": counts[cookie.name] > 1,
        "coatcheck": own.get(cookie.name),
    }


def _session_report(own: dict[str, str]) -> dict[str, Any]:
    user = current_user  # may log in from a remember-me cookie, as on every page
    session = current_session()
    record = session.record
    data = {key: session[key] for key in sorted(session)}
    return {
        "stored": record is not None,
        "handle": record.handle if record is not None else None,
        "created_at": iso_time(record.created_at) if record is not None else None,
        "last_seen_at": iso_time(record.last_seen_at) if record is not None else None,
        "expires_at": iso_time(record.expires_at) if record is not None else None,
        "permanent": bool(data.get("_permanent", False)),
        "user": (
            {"id": user.id, "username": user.username, "roles": list(user.roles)}
            if user.is_authenticated
            else None
        ),
        "assurance": (
            assurance_json(session_assurance())
            if user.is_authenticated and record is not None
            else None
        ),
        # Only the application's data: coatcheck's meta (CSRF secret, address...) never.
        "data": {_clip(key): _data_value(key, value, own) for key, value in data.items()},
    }


def _plain(value: Any) -> Any:
    """Return ``value`` as JSON-compatible data (a session may hold bytes, dates...)."""
    try:
        return json.loads(json.dumps(value, default=str, allow_nan=False))
    except (TypeError, ValueError, RecursionError):
        return repr(value)


def _data_value(key: str, value: Any, own: dict[str, str]) -> Any:
    plain = _plain(value)
    text = json.dumps(plain, ensure_ascii=False)
    if is_secret_name(key, own):
        return mask(text)
    return plain if len(text) <= MAX_TEXT_SHOWN else _clip(text)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


def _max_age(role: str, settings: Settings, permanent: bool) -> tuple[str, str]:
    if role == "remember":
        lifetime = settings.remember_lifetime
        return (
            f"Max-Age={int(lifetime)}",
            f"Kept for {_duration(lifetime)}, across browser restarts: that is the point "
            "of remember-me, and why it holds no session ID, only a token that is replaced "
            "on every use.",
        )
    if role == "session" and permanent:
        return (
            "Max-Age",
            "You logged in with remember-me, so the cookie outlives the browser, until the "
            f"absolute timeout ({_duration(settings.absolute_timeout)} after login).",
        )
    if role == "session":
        return (
            "browser-session (no Max-Age)",
            "No Max-Age or Expires: the browser forgets it when it closes. The server ends "
            f"the session anyway after {_duration(settings.idle_timeout)} idle or "
            f"{_duration(settings.absolute_timeout)} in all.",
        )
    return (
        "browser-session (no Max-Age)",
        "The browser forgets it when it closes; its signature stops verifying after "
        f"{_duration(COOKIE_MAX_AGE)} anyway.",
    )


_SAMESITE = {
    "Lax": "Sent with requests from this site and with top-level links from elsewhere, but "
    "not with another site's forms (POST), images or fetches: a first line against CSRF.",
    "Strict": "Sent only with requests started on this site, not even when you follow a "
    "link here from another site.",
    "None": "Sent with cross-site requests too; the CSRF token is then the only defence.",
}


def _attributes(role: str, name: str, settings: Settings, permanent: bool) -> list[dict[str, str]]:
    """Return the attributes coatcheck sets cookie ``name`` with, and what each does."""
    rows: list[tuple[str, str]] = []
    if name.startswith("__Host-"):
        rows.append(
            (
                "__Host- prefix",
                "The browser accepts the cookie only if it is Secure, has Path=/ and no "
                "Domain: no subdomain and no plain-HTTP page can set or overwrite it.",
            )
        )
    if settings.cookie_secure:
        rows.append(
            (
                "Secure",
                "Sent over HTTPS only (browsers also allow http://localhost), never in "
                "clear text where anyone on the network could copy it.",
            )
        )
    else:
        rows.append(
            (
                "no Secure (insecure mode)",
                "COATCHECK_COOKIE_SECURE is off: the cookie travels over plain HTTP too, "
                "readable by anyone on the network.",
            )
        )
    rows += [
        (
            "HttpOnly",
            "Scripts cannot read it (document.cookie does not show it), so an XSS cannot steal it.",
        ),
        (f"SameSite={settings.cookie_samesite}", _SAMESITE[settings.cookie_samesite]),
        ("Path=/", "Sent with requests for every path of this site."),
        ("no Domain", "Host-only: sent to exactly this host, never to its subdomains."),
        _max_age(role, settings, permanent),
    ]
    return [{"attribute": attribute, "meaning": meaning} for attribute, meaning in rows]


@blueprint.after_request
@lessons.after_request
def _private(response: Response) -> Response:
    # Every answer here depends on the request's cookies: never cache or share it.
    response.headers["Cache-Control"] = "no-store"
    vary_on(response, "Cookie")
    return response


@blueprint.get("/inspect")
def page() -> str:
    """Show the inspector's report as a page."""
    report = inspection()
    data_rows = [
        (key, json.dumps(value, ensure_ascii=False))
        for key, value in report["session"]["data"].items()
    ]
    return render_template(
        "inspect.html",
        report=report,
        data_rows=data_rows,
        cookie_limit=COOKIE_LIMIT,
        shown_chars=PAGE_TEXT_SHOWN,
    )


@blueprint.get("/api/inspect")
def api() -> Response:
    """Return the inspector's report as JSON."""
    return jsonify(inspection())


# -- the lessons --------------------------------------------------------------


def _received(own: dict[str, str]) -> list[tuple[str, str]]:
    return [(c.name, _shown(c.name, c.value, own)) for c in sent_cookies()[:MAX_COOKIES_SHOWN]]


def _text_response(text: str) -> Response:
    return Response(text, mimetype="text/plain")


@lessons.get("/lessons")
def index() -> str:
    """List the lessons, each with what it teaches."""
    return render_template("lessons.html", lessons=LESSONS)


def _lesson_signer() -> CookieSigner:
    config = current_app.config
    keys = signing_keys(config.get("SECRET_KEY"), config.get("SECRET_KEY_FALLBACKS") or ())
    return CookieSigner(keys, LESSON_COOKIE, clock=CoatCheck.state().clock)


def _cookie_session(max_age: int) -> dict[str, Any] | None:
    """Return the data of the request's signed lesson cookie, or ``None``."""
    text = _lesson_signer().verify(request.cookies.get(LESSON_COOKIE, ""), max_age=max_age)
    data = json.loads(text) if text is not None else None  # only JSON is ever signed
    return data if isinstance(data, dict) else None


@lessons.get("/sessions/<key>")
def session_key(key: str) -> Response:
    """Put defaults in the session, set a cookie; show the session's value for ``key``.

    A visitor who has a stored session (logged in, say) gets the defaults in
    it. Anyone else gets them in a signed cookie, :data:`LESSON_COOKIE`: a
    client-side session, which costs the store nothing.
    """
    state = CoatCheck.state()
    own = own_cookie_names(state.settings)
    session = current_session()
    max_age = int(state.settings.absolute_timeout)
    cookie_data: dict[str, Any] | None = None
    if session.record is not None:
        for name, default in LESSON_DEFAULTS.items():
            session.setdefault(name, default)
        value = session.get(key)
    else:
        cookie_data = _cookie_session(max_age)
        value = (cookie_data if cookie_data is not None else LESSON_DEFAULTS).get(key)
    response = jsonify(
        {
            "session": {
                "session_key": key,
                "session_value": None if value is None else _data_value(key, value, own),
                "session_accessed": iso_time(state.clock()),
            },
            "cookies": [{name: shown} for name, shown in _received(own)],
        }
    )
    secure = state.settings.cookie_secure
    response.set_cookie("mouse", "Cookie", secure=secure, httponly=True, samesite="Lax")
    if session.record is None and cookie_data is None:
        # Written only when missing or no longer valid, like a server session.
        signed = _lesson_signer().sign(json.dumps(LESSON_DEFAULTS))
        response.set_cookie(LESSON_COOKIE, signed, secure=secure, httponly=True, samesite="Lax")
    return response


@lessons.get("/set-cookie")
def set_cookie() -> Response:
    """Set a bare cookie: no Secure, no HttpOnly, no SameSite, no Max-Age."""
    response = _text_response(
        "Set cookie flavour=oatmeal with nothing but Path=/.\n"
        "No Secure: it also travels over plain HTTP. No HttpOnly: any script on the page "
        "can read it. No SameSite: the browser's default applies. No Max-Age: it is "
        "forgotten when the browser closes.\n"
        "See what comes back: /check-cookie or /inspect.\n"
    )
    response.set_cookie("flavour", "oatmeal")
    return response


@lessons.get("/check-cookie")
def check_cookie() -> Response:
    """List the cookies received, one ``name=value`` per line (secrets masked)."""
    own = own_cookie_names(CoatCheck.state().settings)
    lines = [f"{name}={shown}\n" for name, shown in _received(own)]
    return _text_response("".join(lines) or "(no cookies received)\n")


@lessons.get("/set")
def set_username() -> Response:
    """Set ``username=Alice`` the safe way: Secure, HttpOnly, SameSite=Lax, Path=/."""
    response = _text_response(
        "Set cookie username=Alice with Secure (HTTPS only), HttpOnly (no script can "
        "read it), SameSite=Lax (not sent with other sites' forms) and Path=/.\n"
        "Now visit /get.\n"
    )
    response.set_cookie("username", "Alice", secure=True, httponly=True, samesite="Lax")
    return response


@lessons.get("/get")
def get_username() -> Response:
    """Greet the ``username`` cookie, or a guest."""
    name = request.cookies.get("username")
    return _text_response(f"Hello {_clip(name) if name else 'guest'}\n")


@dataclass(frozen=True)
class Lesson:
    """One course example, as listed on ``/lessons``."""

    endpoint: str
    path: str
    teaches: str
    arguments: dict[str, str] = field(default_factory=dict)


LESSONS = (
    Lesson(
        "lessons.session_key",
        "/sessions/<key>",
        "Two kinds of session. Puts hello=World and goodnight=Moon in your session, sets "
        "the cookie mouse=Cookie, and shows the value for <key> and the cookies your "
        "browser sent. Not logged in, you get a cookie session: the values travel in a "
        "signed cookie, lesson-session (readable, but not changeable without the "
        "server's key). Logged in, they go into your server-side session: the values "
        "live on the server and the cookie is only a ticket.",
        {"key": "hello"},
    ),
    Lesson(
        "lessons.set_cookie",
        "/set-cookie",
        "What a bare cookie looks like: flavour=oatmeal with no attributes beyond Path=/.",
    ),
    Lesson(
        "lessons.check_cookie",
        "/check-cookie",
        "What the browser sends back: every cookie it holds for this site, one per line "
        "(secret ones masked).",
    ),
    Lesson(
        "lessons.set_username",
        "/set",
        "Setting a cookie the safe way: username=Alice with Secure, HttpOnly and SameSite=Lax.",
    ),
    Lesson(
        "lessons.get_username",
        "/get",
        "Reading it back: Hello Alice with that cookie, Hello guest without it.",
    ),
)

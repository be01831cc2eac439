"""``coatcheck check``: review the configuration and cookie settings."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask

from ..core.signing import MIN_SECRET_KEY_LENGTH
from ..ext import CoatCheck

Finding = tuple[str, str]


def review(app: Flask) -> list[Finding]:
    """Return ``(level, message)`` findings; level is ok, warning or problem."""
    settings = CoatCheck.state(app).settings
    findings: list[Finding] = []
    if settings.cookie_secure:
        findings.append(
            (
                "ok",
                f"session cookie {settings.session_cookie_name}: Secure, "
                f"HttpOnly, SameSite={settings.cookie_samesite}, Path=/, no Domain",
            )
        )
        findings.append(
            (
                "warning",
                "serve over HTTPS in production (TLS at the proxy, and "
                "COATCHECK_TRUSTED_PROXIES=1 so the app sees https); browsers "
                "accept Secure cookies over plain HTTP only from localhost",
            )
        )
    else:
        findings.append(
            (
                "problem",
                "COATCHECK_COOKIE_SECURE is off: session cookies travel over "
                "plain HTTP and lose the __Host- prefix",
            )
        )
    if settings.cookie_samesite == "None":
        findings.append(
            (
                "warning",
                "SameSite=None: cookies go with cross-site requests; CSRF "
                "protection is all that stands in the way",
            )
        )
    key = app.config.get("SECRET_KEY") or ""
    if len(key) < 32:
        findings.append(
            (
                "problem",
                f"SECRET_KEY is short ({len(key)} characters); use 32+ random "
                f"characters (minimum accepted: {MIN_SECRET_KEY_LENGTH})",
            )
        )
    elif len(set(str(key))) < 10:
        findings.append(("problem", "SECRET_KEY looks weak (few distinct characters)"))
    else:
        findings.append(("ok", "SECRET_KEY is long enough"))
    for name, url in (
        ("COATCHECK_STORE_URL", settings.store_url),
        ("COATCHECK_DATABASE_URL", settings.database_url),
    ):
        parts = urlsplit(url)
        remote = parts.hostname not in (None, "", "127.0.0.1", "localhost", "::1")
        if parts.scheme in ("redis", "redis+cluster", "redis+sentinel") and remote:
            findings.append(
                ("warning", f"{name} reaches Redis at {parts.hostname} without TLS; use rediss://")
            )
        findings.append(("ok", f"{name}: {parts.scheme}://{parts.hostname or ''}{parts.path}"))
    if settings.trusted_proxies:
        findings.append(
            (
                "ok",
                f"trusting {settings.trusted_proxies} proxy hop(s) for "
                "X-Forwarded-For/-Proto/-Host",
            )
        )
    if app.config.get("COATCHECK_LESSONS"):
        findings.append(
            (
                "warning",
                "the lessons (/sessions/<key>, /set-cookie, ...) are on; "
                "turn them off in production with --no-lessons",
            )
        )
    return findings

"""``coatcheck check``: review the configuration and cookie settings, reach every backend.

It writes nothing: no secret key is generated, no SQLite file created.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from ..core.errors import ConfigurationError
from ..core.settings import Settings
from ..core.signing import MIN_SECRET_KEY_LENGTH, signing_keys
from . import probes

Finding = tuple[str, str]


def review(config: Mapping[str, Any], settings: Settings) -> list[Finding]:
    """Return ``(level, message)`` findings; level is ok, warning or problem.

    ``config`` is the application config (``SECRET_KEY`` as the instance has
    it, or none yet); ``settings`` are coatcheck's settings from it.
    """
    findings: list[Finding] = []
    if settings.cookie_secure:
        findings.append(
            (
                "ok",
                f"session cookie {settings.session_cookie_name}: Secure, "
                f"HttpOnly, SameSite={settings.cookie_samesite}, Path=/, "
                + (f"Domain={settings.cookie_domain}" if settings.cookie_domain else "no Domain"),
            )
        )
        findings.append(
            (
                "warning",
                "serve over HTTPS in production (TLS at the proxy, and "
                "COATCHECK_TRUSTED_PROXIES naming the proxy, e.g. 127.0.0.1/32, so the app sees "
                "https); browsers "
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
    key = config.get("SECRET_KEY") or ""
    if not key:
        findings.append(
            (
                "ok" if not probes.is_shared(settings.store_url) else "problem",
                "SECRET_KEY is not set: one is generated into the instance folder at the first "
                "start"
                + (
                    ""
                    if not probes.is_shared(settings.store_url)
                    else "; instances sharing this store need the same SECRET_KEY: set it"
                ),
            )
        )
    elif len(key) < 32:
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
        findings.append(("ok", f"{name}: {probes.describe_url(url)}"))
    findings.append(probes.probe_store(settings.store_url))
    findings.append(probes.probe_database(settings.database_url))
    findings.append(probes.probe_throttle(settings))
    if key:
        try:
            keys = signing_keys(key, config.get("SECRET_KEY_FALLBACKS") or ())
        except ConfigurationError:
            keys = []
        found = probes.probe_signing_key(settings.store_url, keys) if keys else None
        if found is not None:
            findings.append(found)
    findings.extend(_proxies_and_sso(config, settings))
    if config.get("COATCHECK_LESSONS"):
        findings.append(
            (
                "warning",
                "the lessons (/sessions/<key>, /set-cookie, ...) are on; "
                "turn them off in production with --no-lessons",
            )
        )
    return findings


def _proxies_and_sso(config: Mapping[str, Any], settings: Settings) -> list[Finding]:
    """Review the trusted proxies, the cookie domain (single sign-on) and the access rules."""
    from ..auth.access import AccessRules, host_under

    findings: list[Finding] = []
    if settings.proxy_hops:
        peers = ", ".join(str(n) for n in settings.proxy_networks) or "any peer"
        findings.append(
            (
                "ok" if settings.proxy_networks else "warning",
                f"trusting {settings.proxy_hops} proxy hop(s) for X-Forwarded-For/-Proto/-Host "
                f"and forward auth's original-URL headers, from {peers}"
                + (
                    ""
                    if settings.proxy_networks
                    else "; list the proxies' networks (e.g. 127.0.0.1/32) so that a client "
                    "reaching coatcheck directly cannot claim another address or URL"
                ),
            )
        )
    if settings.cookie_domain:
        findings.append(
            (
                "warning",
                f"single sign-on: the session cookie goes to every host under "
                f"{settings.cookie_domain}; any application or compromised server there can "
                "read and replay sessions. Keep only sites you trust under it (the remember-me "
                "and CSRF cookies stay on this host)",
            )
        )
    try:
        rules = AccessRules.parse(config.get("COATCHECK_ACCESS_CONTROL"))
    except ConfigurationError as exc:
        return [*findings, ("problem", f"access rules: {exc}")]
    findings.extend(("warning", warning) for warning in rules.warnings)
    if not rules.rules:
        return findings
    findings.append(
        (
            "ok",
            f"access rules: {len(rules.rules)} rule(s), default_policy {rules.default_policy}",
        )
    )
    if not settings.public_url:
        findings.append(
            (
                "problem",
                "access rules without COATCHECK_PUBLIC_URL: forward auth would send browsers "
                "to log in at whatever address the proxy used to reach coatcheck",
            )
        )
    if not settings.proxy_hops:
        findings.append(
            (
                "problem",
                "access rules without COATCHECK_TRUSTED_PROXIES: forward auth believes no "
                "proxy, so it answers every question with 400",
            )
        )
    for domain in rules.domains():
        bare = domain.removeprefix("*.")
        if settings.cookie_domain and not host_under(bare, settings.cookie_domain):
            findings.append(
                (
                    "warning",
                    f"access rules name {domain}, which is not under COATCHECK_COOKIE_DOMAIN "
                    f"({settings.cookie_domain}): its visitors never carry the session cookie",
                )
            )
        elif not settings.cookie_domain and settings.public_url:
            portal = urlsplit(settings.public_url).hostname or ""
            if bare != portal:
                findings.append(
                    (
                        "warning",
                        f"access rules name {domain} but COATCHECK_COOKIE_DOMAIN is not set: "
                        "the session cookie stays on the portal's host, so those sites never "
                        "see a login",
                    )
                )
    return findings

"""The one settings object, built once from the application's config.

Every key has one default here and is checked at start: a bad value raises
:class:`~coatcheck.core.errors.ConfigurationError` from ``init_app``, never
during a request. Values may be typed (Python config) or text (environment).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import ipaddress
import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from .errors import ConfigurationError
from .records import LifetimePolicy

log = logging.getLogger("coatcheck")

_SAMESITE = ("Lax", "Strict", "None")
_DOMAIN_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
#: Flask's default PERMANENT_SESSION_LIFETIME: any other value is the application's choice
#: and becomes the absolute timeout unless COATCHECK_ABSOLUTE_TIMEOUT is set.
_FLASK_PERMANENT_SESSION_LIFETIME = timedelta(days=31)
#: Keys the service reads besides the settings (core cannot import the service), and
#: COATCHECK_REFRESH_GRACE, the old name of COATCHECK_ROTATION_GRACE.
SERVICE_KEYS = frozenset(
    {
        "COATCHECK_INSTANCE",
        "COATCHECK_CONFIG",
        "COATCHECK_LESSONS",
        "COATCHECK_METRICS",
        "COATCHECK_METRICS_TOKEN",
        "COATCHECK_MAIL_SENDER",
        "COATCHECK_ACCESS_CONTROL",
        "COATCHECK_REFRESH_GRACE",
    }
)
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _key(name: str, doc: str, default: Any) -> Any:
    return field(default=default, metadata={"key": name, "doc": doc})


@dataclass(frozen=True)
class Settings:
    """coatcheck's configuration. Each field names its config key."""

    store_url: str = _key(
        "COATCHECK_STORE_URL",
        "Where sessions live: memory://, sqlite:///path or redis://host:port/db. "
        "Empty means sqlite:///<instance folder>/sessions.db.",
        "",
    )
    cookie_secure: bool = _key(
        "COATCHECK_COOKIE_SECURE",
        "Send the session cookie over HTTPS only, with the __Host- prefix. "
        "false is for plain-HTTP deployments and logs a warning at start.",
        True,
    )
    cookie_name: str = _key(
        "COATCHECK_COOKIE_NAME",
        "The session cookie's name. Empty means __Host-session, or session when not secure.",
        "",
    )
    cookie_samesite: str = _key(
        "COATCHECK_COOKIE_SAMESITE",
        "SameSite of coatcheck's cookies: Lax, Strict or None (in any case).",
        "Lax",
    )
    idle_timeout: float = _key(
        "COATCHECK_IDLE_TIMEOUT", "Seconds without a request after which a session ends.", 1800.0
    )
    absolute_timeout: float = _key(
        "COATCHECK_ABSOLUTE_TIMEOUT",
        "Seconds after login (or an anonymous session's start) after which a session ends. "
        "Unset, Flask's PERMANENT_SESSION_LIFETIME is used when the application set it.",
        43200.0,
    )
    touch_interval: float = _key(
        "COATCHECK_TOUCH_INTERVAL",
        "A read-only request records last-seen at most this often (seconds).",
        60.0,
    )
    database_url: str = _key(
        "COATCHECK_DATABASE_URL",
        "Users and audit log (SQLAlchemy URL): sqlite:///path or postgresql+psycopg://... "
        "Empty means sqlite:///<instance folder>/coatcheck.db.",
        "",
    )
    store_timeout: float = _key(
        "COATCHECK_STORE_TIMEOUT",
        "Seconds to wait for a Redis session store (and the login throttle's Redis) to "
        "connect or answer before the request fails with 503; a timed-out call is not "
        "retried. A socket_timeout or socket_connect_timeout in the store URL wins.",
        0.5,
    )
    database_timeout: float = _key(
        "COATCHECK_DATABASE_TIMEOUT",
        "Seconds to wait for PostgreSQL to connect or answer a statement before the "
        "request fails with 503 (also its statement_timeout); connect_timeout or statement_timeout "
        "in the database URL win. Migrations wait as long as they need.",
        0.5,
    )
    database_pool_size: int = _key(
        "COATCHECK_DATABASE_POOL_SIZE",
        "PostgreSQL connections pooled per process (as many again under load): "
        "PostgreSQL sees up to workers x 2 x this.",
        5,
    )
    remember_lifetime: float = _key(
        "COATCHECK_REMEMBER_LIFETIME", "Seconds a remember-me cookie keeps working.", 2592000.0
    )
    login_url: str = _key(
        "COATCHECK_LOGIN_URL",
        "Where @login_required sends browsers (with ?next=). Empty: a plain 401 page.",
        "",
    )
    throttle_account: str = _key(
        "COATCHECK_THROTTLE_ACCOUNT",
        "Failed logins allowed per account from one client address, in the notation of "
        "the limits library. Past it that address gets 429 for that account, right "
        "password or not; the owner elsewhere is not locked out.",
        "5/15 minutes",
    )
    throttle_account_ceiling: str = _key(
        "COATCHECK_THROTTLE_ACCOUNT_CEILING",
        "Failed logins allowed per account from all addresses together (a guessing "
        "campaign spread over many addresses); well above COATCHECK_THROTTLE_ACCOUNT.",
        "50/15 minutes",
    )
    throttle_address: str = _key(
        "COATCHECK_THROTTLE_ADDRESS",
        "Failed logins allowed per client address, whatever the accounts.",
        "100/15 minutes",
    )
    throttle_register: str = _key(
        "COATCHECK_THROTTLE_REGISTER",
        "Registrations (and attempts) allowed per client address.",
        "10/hour",
    )
    ratelimit_url: str = _key(
        "COATCHECK_RATELIMIT_URL",
        "Where throttle counters live (limits storage URL). Empty: the Redis of "
        "COATCHECK_STORE_URL when it is Redis, a SQLite file beside the SQLite store "
        "(shared by every worker, kept across restarts), or memory for memory://.",
        "",
    )
    csrf_trusted_origins: tuple[str, ...] = _key(
        "COATCHECK_CSRF_TRUSTED_ORIGINS",
        "Origins besides the application's own allowed on unsafe requests "
        "(comma-separated, e.g. https://app.example.com).",
        (),
    )
    jwt_algorithm: str = _key(
        "COATCHECK_JWT_ALGORITHM",
        "Signature of access tokens: HS256 (a key derived from SECRET_KEY), EdDSA or RS256 "
        "(with COATCHECK_JWT_PRIVATE_KEY).",
        "HS256",
    )
    jwt_private_key: str = _key(
        "COATCHECK_JWT_PRIVATE_KEY",
        "For EdDSA or RS256: the PEM private key, or the path of a file holding it.",
        "",
    )
    jwt_issuer: str = _key("COATCHECK_JWT_ISSUER", "The iss claim of access tokens.", "coatcheck")
    jwt_audience: str = _key(
        "COATCHECK_JWT_AUDIENCE", "The aud claim of access tokens.", "coatcheck"
    )
    jwt_leeway: float = _key(
        "COATCHECK_JWT_LEEWAY", "Seconds of clock skew allowed when checking exp.", 30.0
    )
    access_token_lifetime: float = _key(
        "COATCHECK_ACCESS_TOKEN_LIFETIME", "Seconds an access token is valid.", 900.0
    )
    refresh_token_lifetime: float = _key(
        "COATCHECK_REFRESH_TOKEN_LIFETIME",
        "Seconds a token family lives without a refresh (its idle lifetime).",
        2592000.0,
    )
    token_family_lifetime: float = _key(
        "COATCHECK_TOKEN_FAMILY_LIFETIME",
        "Seconds a token family lives after its login however often it is refreshed "
        "(its absolute lifetime); then the user logs in again.",
        7776000.0,
    )
    rotation_grace: float = _key(
        "COATCHECK_ROTATION_GRACE",
        "Seconds after a rotation during which the token just replaced (a refresh token "
        "or a remember-me cookie) is answered with the same successor (two tabs or a "
        "retry racing) instead of counting as theft.",
        30.0,
    )
    reauth_max_age: float = _key(
        "COATCHECK_REAUTH_MAX_AGE",
        "Seconds after the last password, factor or step-up check during which sensitive "
        "actions (factors, recovery codes, revoking other sessions, admin changes) are "
        "allowed; after it they answer 401 reauthentication_required.",
        600.0,
    )
    reauth_url: str = _key(
        "COATCHECK_REAUTH_URL",
        "Where @reauth_required sends browsers to confirm who they are (with ?next=). "
        "Empty: a plain 401 page.",
        "",
    )
    require_second_factor: tuple[str, ...] = _key(
        "COATCHECK_REQUIRE_SECOND_FACTOR",
        "Who must have a second factor: 'all', or roles (comma-separated, e.g. admin). "
        "Such a user without one can, after the password, reach only enrolment.",
        (),
    )
    public_url: str = _key(
        "COATCHECK_PUBLIC_URL",
        "The service's public origin (https://auth.example.com): the WebAuthn relying "
        "party ID and origin. Empty: the request's own origin (development only).",
        "",
    )
    mail_url: str = _key(
        "COATCHECK_MAIL_URL",
        "Where mail goes: smtp://user:password@host:587?starttls=true or "
        "smtps://user:password@host:465. Empty: the development mailbox (mails are kept "
        "and shown at /admin/mail; nothing is sent).",
        "",
    )
    mail_from: str = _key(
        "COATCHECK_MAIL_FROM",
        "The From address of every mail.",
        "coatcheck <no-reply@localhost>",
    )
    mail_lease: float = _key(
        "COATCHECK_MAIL_LEASE",
        "Seconds a sender holds a mail it is sending; a sender that dies lets another "
        "take the mail over after this.",
        120.0,
    )
    mail_poll: float = _key(
        "COATCHECK_MAIL_POLL",
        "Seconds between looks at the outbox by the background sender.",
        2.0,
    )
    require_verified_email: bool = _key(
        "COATCHECK_REQUIRE_VERIFIED_EMAIL",
        "Keep users whose address is not verified to the verification pages.",
        False,
    )
    trusted_proxies: tuple[str, ...] = _key(
        "COATCHECK_TRUSTED_PROXIES",
        "The reverse proxies whose X-Forwarded-* (and forward-auth X-Original-*) headers are "
        "believed: a number of proxy hops (1 behind one nginx), networks (comma-separated, "
        "e.g. 127.0.0.1/32, 10.0.0.0/8: only a peer in one is believed, one hop unless a "
        "number is given too), or both. Empty or 0 trusts none.",
        (),
    )
    cookie_domain: str = _key(
        "COATCHECK_COOKIE_DOMAIN",
        "Single sign-on across subdomains: the domain the session cookie is sent to "
        "(example.com covers app.example.com). The cookie becomes __Secure-session with "
        "that Domain, which every site under it receives. Empty: a __Host- cookie for "
        "this host only.",
        "",
    )

    def __post_init__(self) -> None:
        samesite = {v.lower(): v for v in _SAMESITE}.get(str(self.cookie_samesite).lower())
        if samesite is None:
            raise ConfigurationError(
                f"COATCHECK_COOKIE_SAMESITE must be one of {', '.join(_SAMESITE)} "
                f"(in any case), not {self.cookie_samesite!r}"
            )
        object.__setattr__(self, "cookie_samesite", samesite)  # frozen: set once, here
        if self.cookie_samesite == "None" and not self.cookie_secure:
            raise ConfigurationError("SameSite=None needs a secure cookie (browsers refuse it)")
        if self.session_cookie_name.startswith("__Host-") and not self.cookie_secure:
            raise ConfigurationError("a __Host- cookie must be secure; choose another name")
        if self.database_pool_size < 1:
            raise ConfigurationError("COATCHECK_DATABASE_POOL_SIZE must be at least 1")
        if self.store_timeout <= 0 or self.database_timeout <= 0:
            raise ConfigurationError(
                "COATCHECK_STORE_TIMEOUT and COATCHECK_DATABASE_TIMEOUT must be positive numbers"
            )
        if self.mail_lease <= 0 or self.mail_poll <= 0:
            raise ConfigurationError(
                "COATCHECK_MAIL_LEASE and COATCHECK_MAIL_POLL must be positive numbers"
            )
        if self.mail_url and not self.public_url:
            raise ConfigurationError(
                "COATCHECK_MAIL_URL needs COATCHECK_PUBLIC_URL: every link in a mail is built "
                "from it, never from a request's Host header"
            )
        if self.reauth_max_age <= 0:
            raise ConfigurationError("COATCHECK_REAUTH_MAX_AGE must be a positive number")
        if self.public_url and (
            not self.public_url.startswith(("https://", "http://"))
            or self.public_url.rstrip("/").count("/") != 2
        ):
            raise ConfigurationError(
                f"COATCHECK_PUBLIC_URL takes an origin like https://host[:port], "
                f"not {self.public_url!r}"
            )
        self._check_trusted_proxies()
        # A leading dot is the old spelling of the same thing; names are case-blind.
        object.__setattr__(self, "cookie_domain", self.cookie_domain.strip().lower().lstrip("."))
        if self.cookie_domain:
            self._check_cookie_domain()
        for name in (
            "throttle_account",
            "throttle_account_ceiling",
            "throttle_address",
            "throttle_register",
        ):
            _check_rate(_config_key(name), getattr(self, name))
        for origin in self.csrf_trusted_origins:
            if not origin.startswith(("https://", "http://")) or origin.count("/") != 2:
                raise ConfigurationError(
                    f"COATCHECK_CSRF_TRUSTED_ORIGINS takes origins like https://host[:port], "
                    f"not {origin!r}"
                )
        if self.jwt_leeway < 0 or self.rotation_grace < 0:
            raise ConfigurationError(
                "COATCHECK_JWT_LEEWAY and COATCHECK_ROTATION_GRACE must be >= 0"
            )
        for name in (
            "idle_timeout",
            "absolute_timeout",
            "remember_lifetime",
            "access_token_lifetime",
            "refresh_token_lifetime",
            "token_family_lifetime",
        ):
            if getattr(self, name) <= 0:
                raise ConfigurationError(f"{_config_key(name)} must be a positive number")
        if self.touch_interval < 0 or self.touch_interval >= self.idle_timeout:
            raise ConfigurationError(
                "COATCHECK_TOUCH_INTERVAL must be at least 0 and below the idle timeout"
            )

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, instance_path: str) -> Settings:
        """Return the settings in ``config``, defaults for the rest.

        Raise :class:`ConfigurationError` for any invalid value.
        """
        for message in unknown_key_messages(config):
            log.warning("coatcheck: %s", message)
        values: dict[str, Any] = {}
        if "COATCHECK_ROTATION_GRACE" not in config and "COATCHECK_REFRESH_GRACE" in config:
            config = {**config, "COATCHECK_ROTATION_GRACE": config["COATCHECK_REFRESH_GRACE"]}
        lifetime = config.get("PERMANENT_SESSION_LIFETIME")
        if (
            config.get("COATCHECK_ABSOLUTE_TIMEOUT") is None
            and lifetime is not None
            and lifetime != _FLASK_PERMANENT_SESSION_LIFETIME
        ):
            config = {**config, "COATCHECK_ABSOLUTE_TIMEOUT": lifetime}
        for f in dataclasses.fields(cls):
            key = f.metadata["key"]
            if key in config and config[key] is not None:
                values[f.name] = _parse(key, config[key], f.default)
        settings = cls(**values)
        instance = os.path.abspath(instance_path)
        if not settings.store_url:
            path = os.path.join(instance, "sessions.db")
            settings = dataclasses.replace(settings, store_url=f"sqlite:///{path}")
        if not settings.database_url:
            path = os.path.join(instance, "coatcheck.db")
            settings = dataclasses.replace(settings, database_url=f"sqlite:///{path}")
        return settings

    def _check_trusted_proxies(self) -> None:
        counts = [item for item in self.trusted_proxies if item.isdigit()]
        if len(counts) > 1:
            raise ConfigurationError(
                "COATCHECK_TRUSTED_PROXIES takes at most one number of proxy hops"
            )
        for item in self.trusted_proxies:
            if item.isdigit():
                continue
            if item.startswith("-") and item[1:].isdigit():
                raise ConfigurationError("COATCHECK_TRUSTED_PROXIES must be 0 or more")
            try:
                ipaddress.ip_network(item)
            except ValueError as exc:
                raise ConfigurationError(
                    f"COATCHECK_TRUSTED_PROXIES takes a number of hops and networks like "
                    f"127.0.0.1/32 or 10.0.0.0/8, not {item!r} ({exc})"
                ) from None

    def _check_cookie_domain(self) -> None:
        domain = self.cookie_domain
        labels = domain.split(".")
        if (
            not domain.isascii()
            or len(labels) < 2
            or not all(_DOMAIN_LABEL.fullmatch(label) for label in labels)
            or all(label.isdigit() for label in labels)
        ):
            raise ConfigurationError(
                "COATCHECK_COOKIE_DOMAIN takes a lower-case domain name with a dot, like "
                f"example.com (no scheme, port, leading dot or IP address), not {domain!r}"
            )
        if self.session_cookie_name.startswith("__Host-"):
            raise ConfigurationError(
                "COATCHECK_COOKIE_DOMAIN needs a cookie without the __Host- prefix, which "
                "forbids a Domain: leave COATCHECK_COOKIE_NAME empty (__Secure-session)"
            )
        host = self.public_url.split("://", 1)[-1].rstrip("/").rsplit(":", 1)[0].lower()
        if self.public_url and host != domain and not host.endswith("." + domain):
            raise ConfigurationError(
                f"COATCHECK_PUBLIC_URL ({self.public_url}) must be under COATCHECK_COOKIE_DOMAIN "
                f"({domain}): browsers refuse a cookie for a domain the site is not in"
            )

    @property
    def proxy_hops(self) -> int:
        """Return how many proxy hops set X-Forwarded-* headers (0: none is believed)."""
        counts = [int(item) for item in self.trusted_proxies if item.isdigit()]
        if counts:
            return counts[0]
        return 1 if self.proxy_networks else 0

    @functools.cached_property
    def proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """Return the networks a proxy must be in to be believed (empty: any peer)."""
        return tuple(ipaddress.ip_network(i) for i in self.trusted_proxies if not i.isdigit())

    @property
    def session_cookie_name(self) -> str:
        """Return the session cookie's name."""
        if self.cookie_name:
            return self.cookie_name
        if not self.cookie_secure:
            return "session"
        return "__Secure-session" if self.cookie_domain else "__Host-session"

    def requires_second_factor(self, roles: Iterable[str]) -> bool:
        """Tell whether a user with ``roles`` must have a second factor (the policy)."""
        required = self.require_second_factor
        return "all" in required or any(role in required for role in roles)

    @functools.cached_property
    def lifetimes(self) -> LifetimePolicy:
        """Return the lifetime policy these settings describe."""
        return LifetimePolicy(self.idle_timeout, self.absolute_timeout, self.touch_interval)


def known_keys() -> frozenset[str]:
    """Return every ``COATCHECK_*`` key coatcheck reads: the settings' and the service's."""
    return frozenset(f.metadata["key"] for f in dataclasses.fields(Settings)) | SERVICE_KEYS


def unknown_key_messages(keys: Iterable[str]) -> list[str]:
    """Return a message for each ``COATCHECK_*`` key that is not a setting, with the nearest one.

    A mistyped key would otherwise be ignored in silence, its default used.
    """
    known = known_keys()
    messages = []
    for key in sorted(k for k in keys if k.startswith("COATCHECK_") and k not in known):
        # Compared without the prefix, which every key shares.
        nearest = difflib.get_close_matches(key[10:], [k[10:] for k in known], n=1, cutoff=0.6)
        hint = f"; did you mean COATCHECK_{nearest[0]}?" if nearest else " (it is ignored)"
        messages.append(f"{key} is not a setting{hint}")
    return messages


def _config_key(name: str) -> str:
    return str(Settings.__dataclass_fields__[name].metadata["key"])


def _check_rate(key: str, value: str) -> None:
    from limits import parse

    try:
        parse(value)
    except ValueError:
        raise ConfigurationError(
            f"{key} must be a rate like '5/15 minutes', not {value!r}"
        ) from None


def parse_flag(key: str, value: Any) -> bool:
    """Return a boolean setting given as a bool or as text (true/false, 1/0, yes/no, on/off)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigurationError(f"{key} must be true or false, not {value!r}")


def _parse(key: str, value: Any, default: Any) -> Any:
    if isinstance(default, tuple):
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # COATCHECK_TRUSTED_PROXIES = 1, as before it took networks
        items = value.replace(",", " ").split() if isinstance(value, str) else list(value)
        return tuple(str(item).strip() for item in items if str(item).strip())
    if isinstance(default, bool):
        return parse_flag(key, value)
    if isinstance(default, int) and not isinstance(default, bool):
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigurationError(f"{key} must be a whole number, not {value!r}") from None
    if isinstance(default, float):
        if isinstance(value, timedelta):
            return value.total_seconds()
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigurationError(f"{key} must be a number of seconds, not {value!r}") from None
    if not isinstance(value, str):
        raise ConfigurationError(f"{key} must be text, not {type(value).__name__}")
    return value

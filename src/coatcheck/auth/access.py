"""Access rules for forward auth: which request needs whom (SPEC §10).

The rules come from the ``[access_control]`` table of the configuration file,
in the shape Authelia's users know::

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

The first rule whose every condition holds decides; none, and
``default_policy`` does. Everything is checked and compiled once, at start:
:meth:`AccessRules.parse` raises :class:`~coatcheck.core.errors.ConfigurationError`
naming the rule and the field, and returns warnings for rules that can never
match. A decision reads nothing but the request and, only when a rule needs
it, the logged-in user (which the caller loads from the session: no SQL).
"""

from __future__ import annotations

import difflib
import functools
import ipaddress
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from ..core.errors import ConfigurationError
from ..core.regexes import backtracking_risk

__all__ = [
    "ALLOW",
    "FORBIDDEN",
    "LOGIN",
    "MAX_URL_LENGTH",
    "POLICIES",
    "STEP_UP",
    "AccessRules",
    "Decision",
    "Rule",
    "Target",
    "Who",
    "host_under",
    "parse_address",
    "parse_target",
    "valid_host",
]

BYPASS, ONE_FACTOR, TWO_FACTOR, DENY = "bypass", "one_factor", "two_factor", "deny"
#: The policies, from the most open to the most closed.
POLICIES = (BYPASS, ONE_FACTOR, TWO_FACTOR, DENY)
#: What a decision tells the proxy: let through, send to log in, send to step up, refuse.
ALLOW, LOGIN, STEP_UP, FORBIDDEN = "allow", "login", "step_up", "forbidden"
_RULE_KEYS = ("domain", "resources", "subject", "networks", "methods", "policy")
_TABLE_KEYS = ("default_policy", "rules")
#: The longest original URL looked at, in characters (nginx's default header limit is 8 KB).
MAX_URL_LENGTH = 8192
_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_METHOD = re.compile(r"[A-Z][A-Z0-9_-]{0,31}")
#: Anything but printable ASCII: spaces, control characters, non-ASCII.
_UNPRINTABLE = re.compile(r"[^\x21-\x7e]")
_DOT_SEGMENT = re.compile(r"/\.\.?(?:/|$)")
_NAME = re.compile(r"[^\s,]{1,128}")


@dataclass(frozen=True)
class Who:
    """The logged-in user as a decision sees them: from the session, no SQL."""

    username: str
    roles: frozenset[str]
    aal: int
    #: Not for decisions: what an allowed request's ``Remote-Email`` says.
    email: str = ""


@dataclass(frozen=True)
class Target:
    """The request a proxy asks about."""

    method: str
    scheme: str
    #: The host name, lower-case, without the port (rules match on it).
    host: str
    #: The original URL, as the proxy gave it (the ``rd`` of a login).
    url: str
    #: What ``resources`` match: the decoded path, slashes folded, then ``?query``.
    resource: str
    #: Why the path cannot be matched safely (dot segments, double encoding...), if it cannot.
    ambiguous: str | None = None


@dataclass(frozen=True)
class Rule:
    """One access rule, checked and compiled."""

    number: int
    domains: tuple[str, ...]
    policy: str
    #: RE2 patterns (linear time); each has ``pattern`` and ``search``.
    resources: tuple[Any, ...] = ()
    #: Any of these groups; a user matches a group holding all its entries.
    subjects: tuple[tuple[str, ...], ...] = ()
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    methods: frozenset[str] = frozenset()

    @property
    def conditional(self) -> bool:
        """Tell whether anything besides the domain decides whether this rule matches."""
        return bool(self.resources or self.subjects or self.networks or self.methods)

    def matches_host(self, host: str) -> bool:
        return any(domain_matches(pattern, host) for pattern in self.domains)

    def describe(self) -> str:
        """Return the rule as one line: ``rule 2 (domain *.example.com, ...): two_factor``."""
        parts = [f"domain {', '.join(self.domains)}"]
        if self.resources:
            parts.append(f"resources {', '.join(p.pattern for p in self.resources)}")
        if self.subjects:
            parts.append(f"subject {' or '.join(' and '.join(g) for g in self.subjects)}")
        if self.networks:
            parts.append(f"networks {', '.join(str(n) for n in self.networks)}")
        if self.methods:
            parts.append(f"methods {', '.join(sorted(self.methods))}")
        return f"rule {self.number} ({'; '.join(parts)}): {self.policy}"


@dataclass(frozen=True)
class Decision:
    """What the rules decided for one request, and why."""

    #: :data:`ALLOW`, :data:`LOGIN`, :data:`STEP_UP` or :data:`FORBIDDEN`.
    outcome: str
    #: The policy that applied.
    policy: str
    #: The rule that matched, or ``None`` for the default policy.
    rule: Rule | None
    #: The user the decision was made for, if a rule needed them or the policy did.
    who: Who | None
    #: One line per rule looked at, in order: why it matched or did not.
    trail: tuple[str, ...] = ()

    @property
    def source(self) -> str:
        return self.rule.describe() if self.rule else f"default_policy: {self.policy}"


@dataclass(frozen=True)
class AccessRules:
    """The access rules: ordered, first match wins, then ``default_policy``."""

    default_policy: str = DENY
    rules: tuple[Rule, ...] = ()
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def parse(
        cls, table: Mapping[str, Any] | None, *, where: str = "access_control"
    ) -> AccessRules:
        """Return the rules of an ``[access_control]`` table (``None``: no rules, deny all).

        Raise :class:`ConfigurationError` naming the rule and field of any bad value.
        """
        if table is None:
            return cls()
        if not isinstance(table, Mapping):
            raise ConfigurationError(f"{where} must be a table, not {type(table).__name__}")
        _refuse_unknown(table, _TABLE_KEYS, where)
        default = _policy(table.get("default_policy", DENY), f"{where}.default_policy")
        raw_rules = table.get("rules", [])
        if not isinstance(raw_rules, list):
            raise ConfigurationError(
                f"{where}.rules must be an array of tables ([[{where}.rules]])"
            )
        rules = tuple(
            _rule(raw, number, f"{where}.rules[{number}] (rule {number})")
            for number, raw in enumerate(raw_rules, start=1)
        )
        return cls(default, rules, tuple(_never_matching(rules)))

    def decide(
        self,
        target: Target,
        client_ip: str | None,
        load_who: Callable[[], Who | None],
        *,
        explain: bool = False,
    ) -> Decision:
        """Decide ``target`` from ``client_ip``; ``load_who`` is called at most once, and
        only when a rule or the policy needs the user. With ``explain``, the decision's
        :attr:`~Decision.trail` says why each rule matched or not (``coatcheck access
        check``); a request does without."""
        loaded: list[Who | None] = []

        def who() -> Who | None:
            if not loaded:
                loaded.append(load_who())
            return loaded[0]

        trail: list[str] = []
        if target.ambiguous is not None:
            if explain:
                trail.append(f"refused before any rule: {target.ambiguous}")
            return Decision(FORBIDDEN, DENY, None, None, tuple(trail))
        address = parse_address(client_ip) if self._networks else None
        login_could_help = False
        for rule in self.rules:
            missed = _miss(rule, target, address)
            if missed is not None:
                if explain:
                    trail.append(f"{rule.describe()}: skipped, {missed()}")
                continue
            if rule.subjects:
                user = who()
                if user is None:
                    if explain:
                        trail.append(f"{rule.describe()}: skipped, nobody is logged in")
                    login_could_help = login_could_help or rule.policy != DENY
                    continue
                if not any(_in_group(user, group) for group in rule.subjects):
                    if explain:
                        trail.append(
                            f"{rule.describe()}: skipped, {user.username} is not in the subject"
                        )
                    continue
            if explain:
                trail.append(f"{rule.describe()}: matches")
            return self._apply(rule.policy, rule, who, login_could_help, trail)
        if explain:
            trail.append(f"no rule matches: default_policy {self.default_policy}")
        return self._apply(self.default_policy, None, who, login_could_help, trail)

    @functools.cached_property
    def _networks(self) -> bool:
        """Tell whether any rule looks at the client's address."""
        return any(rule.networks for rule in self.rules)

    @staticmethod
    def _apply(
        policy: str,
        rule: Rule | None,
        who: Callable[[], Who | None],
        login_could_help: bool,
        trail: list[str],
    ) -> Decision:
        if policy == BYPASS:
            return Decision(ALLOW, policy, rule, None, tuple(trail))
        if policy == DENY:
            # Anonymous, and a rule for some users was passed over: logging in may open it.
            user = who() if login_could_help else None
            outcome = LOGIN if login_could_help and user is None else FORBIDDEN
            return Decision(outcome, policy, rule, user, tuple(trail))
        user = who()
        if user is None:
            return Decision(LOGIN, policy, rule, None, tuple(trail))
        if policy == TWO_FACTOR and user.aal < 2:
            return Decision(STEP_UP, policy, rule, user, tuple(trail))
        return Decision(ALLOW, policy, rule, user, tuple(trail))

    def names_host(self, host: str) -> bool:
        """Tell whether a rule names ``host`` (exactly, or under its ``*.`` domain)."""
        return any(rule.matches_host(host) for rule in self.rules)

    def protects_host(self, host: str) -> bool:
        """Tell whether a rule that asks for a login (``one_factor``, ``two_factor``) names
        ``host``: such sites may post to the portal (CSRF origins)."""
        return any(
            rule.policy in (ONE_FACTOR, TWO_FACTOR) and rule.matches_host(host)
            for rule in self.rules
        )

    def domains(self) -> list[str]:
        """Return every domain the rules name, in order, once each."""
        return list(dict.fromkeys(d for rule in self.rules for d in rule.domains))


def domain_matches(pattern: str, host: str) -> bool:
    """Tell whether ``host`` is ``pattern``, or under it for a ``*.`` pattern."""
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return host == pattern


def host_under(host: str, domain: str) -> bool:
    """Tell whether ``host`` is ``domain`` or one of its subdomains."""
    return host == domain or host.endswith("." + domain)


def parse_target(method: str, url: str) -> Target:
    """Return the target of ``method`` on the absolute ``url``.

    Raise :class:`ValueError` (its message says why) for a URL that is not an
    absolute http(s) URL with a valid host. A path that could mean two things
    (dot segments, double percent-encoding, backslashes, control characters)
    yields a target with :attr:`Target.ambiguous` set: it is refused.
    """
    if not url or len(url) > MAX_URL_LENGTH:
        raise ValueError("the URL is empty or too long")
    if _UNPRINTABLE.search(url) is not None:
        raise ValueError("the URL holds spaces, control or non-ASCII characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"the URL cannot be parsed ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("the URL must start with http:// or https://")
    if parts.username is not None or parts.password is not None:
        raise ValueError("the URL must not carry a user name or password")
    host = valid_host(parts.hostname or "")
    if host is None or ("[" in parts.netloc and not _is_ipv6(host)):
        raise ValueError("the URL has no valid host")
    del port  # checked above: a port that is not a number raises
    return _target_of(method, parts.scheme, host, parts.path or "/", parts.query, url)


def _target_of(method: str, scheme: str, host: str, path: str, query: str, url: str) -> Target:
    """Return the target of a request whose URL :func:`parse_target` checked."""
    method = method.strip().upper()
    if _METHOD.fullmatch(method) is None:
        raise ValueError("the method is not an HTTP method")
    if not path.startswith("/"):
        raise ValueError("the path must start with /")
    decoded = unquote(path) if "%" in path else path
    why = None
    if decoded is path:
        pass  # printable ASCII, nothing encoded: only a backslash or a dot segment is left
    elif "%" in decoded and unquote(decoded) != decoded:
        why = "the path is percent-encoded twice"
    elif not _utf8(path):
        why = "the path's percent-encoding is not UTF-8 (an overlong dot, say)"
    elif "?" in decoded:
        # The resources see "path?query": an encoded ? would fake the boundary.
        why = "the path holds an encoded ? (%3F)"
    elif any(unicodedata.category(c) == "Cc" for c in decoded):
        why = "the path holds a control character once decoded"
    if why is None and "\\" in decoded:
        why = "the path holds a backslash"
    elif why is None and "." in decoded and _DOT_SEGMENT.search(decoded) is not None:
        why = "the path holds a dot segment (. or ..)"
    folded = re.sub(r"/{2,}", "/", decoded)
    resource = f"{folded}?{query}" if query else folded
    return Target(method, scheme, host, url, resource, why)


def _utf8(path: str) -> bool:
    try:
        unquote(path, errors="strict")
    except UnicodeDecodeError:
        return False
    return True


def valid_host(name: str) -> str | None:
    """Return ``name`` lower-cased without a final dot if it is a host name or an IP
    address, else ``None``."""
    host = name.lower()
    host = host[:-1] if host.endswith(".") else host
    if not host or len(host) > 253:
        return None
    try:
        ipaddress.ip_address(host.strip("[]"))
        return host.strip("[]")
    except ValueError:
        pass
    labels = host.split(".")
    return host if all(_LABEL.fullmatch(label) for label in labels) else None


# -- parsing ----------------------------------------------------------------------------


def _refuse_unknown(table: Mapping[str, Any], known: Sequence[str], where: str) -> None:
    for key in table:
        if key not in known:
            near = difflib.get_close_matches(str(key), known, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else f" (known: {', '.join(known)})"
            raise ConfigurationError(f"{where}: unknown key {key!r}{hint}")


def _policy(value: Any, where: str) -> str:
    if value not in POLICIES:
        raise ConfigurationError(f"{where} must be one of {', '.join(POLICIES)}, not {value!r}")
    return str(value)


def _strings(value: Any, where: str, *, nested: bool = False) -> list[Any]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise ConfigurationError(
            f"{where} must be a string or a non-empty array of strings "
            "(leave it out to match everything)"
        )
    for item in items:
        if isinstance(item, list) and nested:
            _strings(item, where)
        elif not isinstance(item, str):
            raise ConfigurationError(f"{where} must hold strings, not {item!r}")
    return list(items)


def _rule(raw: Any, number: int, where: str) -> Rule:
    if not isinstance(raw, Mapping):
        raise ConfigurationError(f"{where} must be a table")
    _refuse_unknown(raw, _RULE_KEYS, where)
    if "domain" not in raw:
        raise ConfigurationError(f"{where}.domain is missing: every rule names its domains")
    if "policy" not in raw:
        raise ConfigurationError(f"{where}.policy is missing: one of {', '.join(POLICIES)}")
    return Rule(
        number=number,
        domains=tuple(
            _domain(d, f"{where}.domain") for d in _strings(raw["domain"], f"{where}.domain")
        ),
        policy=_policy(raw["policy"], f"{where}.policy"),
        resources=tuple(
            _resource(r, f"{where}.resources")
            for r in _strings(raw["resources"], f"{where}.resources")
        )
        if "resources" in raw
        else (),
        subjects=_subjects(raw["subject"], f"{where}.subject") if "subject" in raw else (),
        networks=tuple(
            _network(n, f"{where}.networks") for n in _strings(raw["networks"], f"{where}.networks")
        )
        if "networks" in raw
        else (),
        methods=frozenset(
            _method(m, f"{where}.methods") for m in _strings(raw["methods"], f"{where}.methods")
        )
        if "methods" in raw
        else frozenset(),
    )


def _domain(value: str, where: str) -> str:
    text = value.strip().lower()
    wildcard = text.startswith("*.")
    if not text.isascii():
        raise ConfigurationError(
            f"{where}: {value!r} is not ASCII; write an international name in its "
            "xn-- (punycode) form"
        )
    if ":" in text and not _is_ip(text):
        raise ConfigurationError(f"{where}: {value!r} has a port; rules match the host name alone")
    host = valid_host(text[2:] if wildcard else text)
    if host is None or "*" in text[2 if wildcard else 0 :] or (wildcard and _is_ip(host)):
        raise ConfigurationError(
            f"{where}: {value!r} is not a host name, nor *. followed by one (like *.example.com)"
        )
    return f"*.{host}" if wildcard else host


def _is_ipv6(text: str) -> bool:
    """Tell whether ``text`` is an IPv6 address: the only thing brackets may hold in a
    URL's host (``[v1.app.example.com]``, an "IPvFuture", is not a name)."""
    try:
        return isinstance(ipaddress.ip_address(text), ipaddress.IPv6Address)
    except ValueError:
        return False


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


def _resource(value: str, where: str) -> Any:
    """Return ``value`` compiled by RE2: matching takes time linear in the path, whatever
    the pattern (Python's ``re`` backtracks), and the syntax is Authelia's (Go's RE2)."""
    import re2  # type: ignore[import-untyped]  # google-re2 ships no type hints

    options = re2.Options()
    options.log_errors = False  # the error is ours to tell, not a line on stderr
    try:
        pattern = re2.compile(value, options)
    except re2.error as exc:
        detail = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise ConfigurationError(
            f"{where}: {value!r} is not a regular expression in RE2 syntax ({detail}); "
            "lookarounds and backreferences are not supported"
        ) from None
    risk = backtracking_risk(value)
    if risk is not None:
        raise ConfigurationError(
            f"{where}: {value!r} could take exponential time on some paths ({risk}); "
            "rewrite it without a repeated group that itself repeats"
        )
    return pattern


def _subjects(value: Any, where: str) -> tuple[tuple[str, ...], ...]:
    groups = []
    for item in _strings(value, where, nested=True):
        entries = item if isinstance(item, list) else [item]
        groups.append(tuple(_subject(entry, where) for entry in entries))
    return tuple(groups)


def _subject(value: str, where: str) -> str:
    kind, sep, name = value.strip().partition(":")
    if not sep:
        kind, name = "user", value.strip()
    kind = "role" if kind == "group" else kind  # Authelia's word for a role
    if kind not in ("user", "role") or _NAME.fullmatch(name) is None:
        raise ConfigurationError(f"{where}: {value!r} must be a user name, user:NAME or role:NAME")
    return f"{kind}:{name}"


def _network(value: str, where: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(value.strip())
    except ValueError as exc:
        raise ConfigurationError(
            f"{where}: {value!r} is not an address or a network like 10.0.0.0/8 ({exc})"
        ) from None


def _method(value: str, where: str) -> str:
    method = value.strip().upper()
    if _METHOD.fullmatch(method) is None:
        raise ConfigurationError(f"{where}: {value!r} is not an HTTP method")
    return method


def _never_matching(rules: Sequence[Rule]) -> Iterable[str]:
    """Say which rules can never match: an earlier rule with no condition besides its
    domains covers all of theirs."""
    for index, rule in enumerate(rules):
        for earlier in rules[:index]:
            if earlier.conditional:
                continue
            if all(_covers(earlier.domains, domain) for domain in rule.domains):
                yield (
                    f"access_control rule {rule.number} can never match: rule "
                    f"{earlier.number} comes first and matches every request to "
                    f"{', '.join(rule.domains)}"
                )
                break


def _covers(patterns: Iterable[str], domain: str) -> bool:
    for pattern in patterns:
        if pattern == domain:
            return True
        if pattern.startswith("*.") and domain_matches(pattern, domain.removeprefix("*.")):
            return True  # *.example.com covers app.example.com and *.app.example.com
    return False


# -- matching ---------------------------------------------------------------------------


def parse_address(client_ip: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Return the IP address in ``client_ip`` (an IPv4-mapped IPv6 one as IPv4), or ``None``."""
    if not client_ip:
        return None
    try:
        address = ipaddress.ip_address(client_ip.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _miss(
    rule: Rule, target: Target, address: ipaddress.IPv4Address | ipaddress.IPv6Address | None
) -> Callable[[], str] | None:
    """Return how to say why ``rule`` does not match ``target`` (subjects aside), or
    ``None`` when it does."""
    if not rule.matches_host(target.host):
        return lambda: f"{target.host} is not among its domains"
    if rule.methods and target.method not in rule.methods:
        return lambda: f"{target.method} is not among its methods"
    if rule.networks and (address is None or not any(address in n for n in rule.networks)):
        return lambda: f"the client address {address or '(unknown)'} is in none of its networks"
    if rule.resources and not any(p.search(target.resource) for p in rule.resources):
        return lambda: f"no resource matches {target.resource}"
    return None


def _in_group(who: Who, group: tuple[str, ...]) -> bool:
    for entry in group:
        kind, _, name = entry.partition(":")
        if kind == "user" and who.username != name:
            return False
        if kind == "role" and name not in who.roles:
            return False
    return True

"""The ``coatcheck`` command: serve, manage users and sessions, review the configuration.

Every command takes ``--instance`` and ``--config`` after its name and reads
the ``COATCHECK_*`` variables, so that commands started the same way as
``coatcheck serve`` share its instance.
"""

from __future__ import annotations

import functools
import os
import secrets
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import click
from flask import Flask

from ..auth.admins import ensure_an_admin_remains
from ..auth.client import Client
from ..auth.devices import iso_time
from ..auth.services import Services, build_services
from ..core.errors import CoatcheckError, PasswordRejected
from ..core.passwords import check_password_policy
from ..core.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])


def instance_options(command: F) -> F:
    """Add ``--instance`` and ``--config`` to a command."""

    @click.option(
        "--instance",
        envvar="COATCHECK_INSTANCE",
        default="instance",
        show_default=True,
        type=click.Path(file_okay=False),
        help="Folder of the SQLite files and the generated secret key.",
    )
    @click.option(
        "--config",
        "config_file",
        envvar="COATCHECK_CONFIG",
        type=click.Path(dir_okay=False, exists=True),
        help="A TOML file of settings (keys as in the environment, e.g. COATCHECK_STORE_URL).",
    )
    @functools.wraps(command)
    def wrapped(*args: Any, instance: str, config_file: str | None, **kwargs: Any) -> Any:
        config: dict[str, Any] = {"COATCHECK_INSTANCE": os.path.abspath(instance)}
        if config_file:
            config["COATCHECK_CONFIG"] = os.path.abspath(config_file)
        return command(*args, config=config, **kwargs)

    return wrapped  # type: ignore[return-value]


def _app(config: dict[str, Any]) -> Flask:
    from . import create_app

    try:
        return create_app(config)
    except CoatcheckError as exc:
        raise click.ClickException(str(exc)) from None


#: The client the audit log names for the command line.
CLI_CLIENT = Client(ip="127.0.0.1", user_agent="coatcheck-cli")


@contextmanager
def _services(config: dict[str, Any]) -> Iterator[Services]:
    """Yield the services of the instance ``config`` names; close them afterwards.

    The command line calls the protocols directly: no request, real or fake.
    """
    from ..ext import CoatCheck

    found = CoatCheck.state(_app(config))
    try:
        yield found
    except CoatcheckError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        found.close()


@click.group()
@click.version_option(package_name="coatcheck")
def main() -> None:
    """coatcheck: secure sessions and login for Flask."""


@main.command()
@instance_options
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5555, show_default=True, help="Port to listen on.")
@click.option(
    "--workers", default=1, show_default=True, type=click.IntRange(1), help="Worker processes."
)
@click.option(
    "--threads",
    default=4,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Python threads per worker that run requests (slow clients hold none); "
    "more help only while requests wait on a store or a password hash.",
)
@click.option("--dev", is_flag=True, help="Flask's development server with the reloader.")
@click.option("--no-lessons", is_flag=True, help="Turn off the course examples.")
@click.option(
    "--metrics",
    is_flag=True,
    help="Serve Prometheus metrics at /metrics, to a bearer token: COATCHECK_METRICS_TOKEN, "
    "else one generated into <instance>/metrics_token.",
)
def serve(
    config: dict[str, Any],
    host: str,
    port: int,
    workers: int,
    threads: int,
    dev: bool,
    no_lessons: bool,
    metrics: bool,
) -> None:
    """Start the service (granian; --dev for Flask's reloader).

    SIGHUP replaces the workers one at a time without dropping a request;
    SIGTERM or Ctrl+C stops after the requests in flight.
    """
    if no_lessons:
        config["COATCHECK_LESSONS"] = False
    if metrics:
        config["COATCHECK_METRICS"] = True
        if workers > 1:
            folder = os.path.join(config["COATCHECK_INSTANCE"], "prometheus")
            shutil.rmtree(folder, ignore_errors=True)
            os.makedirs(folder, mode=0o700)
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    app = _app(config)  # fail fast on a bad configuration, and create the secret once
    if metrics and not app.config.get("COATCHECK_METRICS_TOKEN"):
        from .metrics import TOKEN_FILE

        path = os.path.join(app.instance_path, TOKEN_FILE)
        click.echo(
            f"metrics: /metrics wants 'Authorization: Bearer <the token in {path}>'", err=True
        )
    _warn_unreachable(app)
    started = _start_message(host, port)
    if dev:
        if os.environ.get("WERKZEUG_RUN_MAIN") != "true":  # once, not again in the reloader's child
            click.echo(started)
        app.run(host=host, port=port, debug=True)
        return
    from .server import run

    run(
        functools.partial(_app, config),
        host=host,
        port=port,
        workers=workers,
        threads=threads,
        on_ready=lambda: click.echo(started),
    )


def _warn_unreachable(app: Flask) -> None:
    """Say at start which backend does not answer: the service starts all the same.

    Requests that need it fail closed (503) until it answers, with no restart.
    """
    from ..ext import CoatCheck
    from .probes import probe_database, probe_store

    settings = CoatCheck.state(app).settings
    for level, message in (probe_store(settings.store_url), probe_database(settings.database_url)):
        if level == "problem":
            click.echo(
                f"coatcheck: WARNING: the {message.rstrip('.')}; requests that need it answer 503 "
                "until it does (coatcheck check tells more)",
                err=True,
            )


def _start_message(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    anywhere = " (every address of this machine)" if host in ("0.0.0.0", "::") else ""  # noqa: S104
    return f"coatcheck is running on http://{shown}:{port}{anywhere} - press Ctrl+C to stop"


@main.group()
def user() -> None:
    """Manage users."""


@user.command("create")
@instance_options
@click.argument("name")
@click.option("--admin", is_flag=True, help="Give the user the admin role.")
@click.option("--email", default=None, help="The user's email address.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def user_create(
    config: dict[str, Any], name: str, admin: bool, email: str | None, password_stdin: bool
) -> None:
    """Create a user (the password is prompted for twice, again while the policy refuses it)."""
    with _services(config) as found:
        if found.users.get_by_username(name) is not None:
            raise click.ClickException(f"the username {name!r} is taken")
        password = _stdin_password() if password_stdin else _prompt_password(name)
        created = found.accounts.create_user(
            name, password, email=email, roles=("admin",) if admin else (), client=CLI_CLIENT
        )
    click.echo(
        f"created user {created.username} (id {created.id}){' with role admin' if admin else ''}"
    )


def _stdin_password() -> str:
    return sys.stdin.readline().rstrip("\r\n")


def _prompt_password(username: str) -> str:
    """Ask for a password twice until the policy accepts it (an interactive terminal)."""
    while True:
        password: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        try:
            check_password_policy(password, username=username)
        except PasswordRejected as exc:
            click.echo(f"Error: {exc.message} Try another.", err=True)
            continue
        return password


@user.command("list")
@instance_options
def user_list(config: dict[str, Any]) -> None:
    """List the users."""
    header = ("ID", "USERNAME", "ROLES", "STATE", "2FA", "CREATED")
    with _reading(config, store=False) as found:
        if found is None:
            _table(header, [])
            return
        users = found.users.list_users(limit=1000)
        kinds = found.users.factors.kinds(u.id for u in users)
        rows = [
            (
                str(u.id),
                u.username,
                ",".join(u.roles) or "-",
                "disabled" if u.disabled else "active",
                ",".join(kinds.get(u.id, [])) or "-",
                u.created_at.strftime("%Y-%m-%d %H:%M UTC"),
            )
            for u in users
        ]
    _table(header, rows)


@user.command("disable")
@instance_options
@click.argument("name")
def user_disable(config: dict[str, Any], name: str) -> None:
    """Disable a user: no more logins, every session ends."""
    with _services(config) as found:
        user_id = _user_id(found, name)
        ensure_an_admin_remains(found, user_id, disable=True)
        user = found.accounts.set_disabled(user_id, True, client=CLI_CLIENT)
    click.echo(f"disabled {user.username}; their sessions are revoked")


@user.command("enable")
@instance_options
@click.argument("name")
def user_enable(config: dict[str, Any], name: str) -> None:
    """Let a disabled user log in again."""
    with _services(config) as found:
        user = found.accounts.set_disabled(_user_id(found, name), False, client=CLI_CLIENT)
    click.echo(f"enabled {user.username}; they can log in again")


@user.command("reset-2fa")
@instance_options
@click.argument("name")
def user_reset_2fa(config: dict[str, Any], name: str) -> None:
    """Remove a user's second factors and recovery codes (they lost them); their sessions end.

    Their next login is by password alone, or enrolment first where
    COATCHECK_REQUIRE_SECOND_FACTOR wants a factor. Audited.
    """
    with _services(config) as found:
        user_id = _user_id(found, name)
        removed = found.factors.reset(user_id, client=CLI_CLIENT)
    noun = "factor" if removed == 1 else "factors"
    click.echo(
        f"removed {removed} second {noun} and the recovery codes of {name}; "
        "their sessions are revoked"
    )


@user.command("roles")
@instance_options
@click.argument("name")
@click.argument("roles", nargs=-1)
def user_roles(config: dict[str, Any], name: str, roles: tuple[str, ...]) -> None:
    """Set a user's roles (none given: no roles); their live sessions follow at once."""
    wanted = sorted({role.strip().lower() for role in roles if role.strip()})
    with _services(config) as found:
        user_id = _user_id(found, name)
        ensure_an_admin_remains(found, user_id, roles=wanted)
        try:
            user, _ = found.accounts.set_roles(user_id, wanted, client=CLI_CLIENT)
        except ValueError as exc:
            raise click.ClickException(f"roles not changed: {exc}") from None
    click.echo(f"roles of {user.username}: {', '.join(user.roles) or 'none'}")


@main.group()
def sessions() -> None:
    """Manage sessions."""


@sessions.command("list")
@instance_options
@click.option("--user", "username", default=None, help="Only this user's sessions.")
def sessions_list(config: dict[str, Any], username: str | None) -> None:
    """List live sessions (handles, never IDs)."""
    with _reading(config) as found:
        if found is None:
            if username is not None:
                raise click.ClickException(f"no user named {username!r}")
            _table(("HANDLE",), [])
            return
        devices = (
            found.devices.everyone()
            if username is None
            else found.devices.of_user(_user_id(found, username))
        )
        names = _usernames(found, {d.user_id for d in devices if d.user_id})
    rows = [
        (
            d.handle,
            names.get(d.user_id or "", "-"),
            d.user_id or "-",
            d.kind,
            d.ip or "-",
            iso_time(d.last_seen_at),
            (d.user_agent or "-")[:40],
        )
        for d in devices
    ]
    _table(("HANDLE", "USER", "ID", "KIND", "ADDRESS", "LAST SEEN", "USER AGENT"), rows)


@sessions.command("revoke")
@instance_options
@click.argument("handle", required=False)
@click.option("--user", "username", default=None, help="Revoke every session of this user.")
def sessions_revoke(config: dict[str, Any], handle: str | None, username: str | None) -> None:
    """Revoke one session by its handle, or all of a user's with --user."""
    if (handle is None) == (username is None):
        raise click.UsageError("give either a HANDLE or --user NAME")
    with _services(config) as found:
        if username is not None:
            count = found.devices.revoke_all(_user_id(found, username), client=CLI_CLIENT)
            click.echo(f"revoked {count} session(s) of {username}")
            return
        devices = found.devices.everyone(limit=100_000)
        owner = next((d.user_id for d in devices if d.handle == handle), None)
        if owner is None or not found.devices.revoke(owner, str(handle), client=CLI_CLIENT):
            raise click.ClickException(f"no live session with handle {handle}")
    click.echo(f"revoked {handle}")


@sessions.command("purge")
@instance_options
def sessions_purge(config: dict[str, Any]) -> None:
    """Delete expired sessions from the store (Redis needs none: TTL)."""
    with _services(config) as found:
        count = found.store.purge_expired()
    click.echo(f"purged {count} expired record(s)")


@main.group()
def db() -> None:
    """Manage the user database's schema (migrations)."""


@db.command("upgrade")
@instance_options
def db_upgrade(config: dict[str, Any]) -> None:
    """Apply the migrations the user database lacks."""
    with _services(config) as found:
        # The factory, not found.users: that would migrate on first use already.
        users = found.users_factory()
        try:
            users.upgrade_schema()
            revision = users.schema_revision()
        finally:
            users.close()
    click.echo(f"database at revision {revision} (head)")


@db.command("revision")
@instance_options
def db_revision(config: dict[str, Any]) -> None:
    """Show the user database's revision and the newest one."""
    with _services(config) as found:
        users = found.users_factory()
        try:
            current, head = users.schema_revision(), users.head_revision()
        finally:
            users.close()
    hint = "" if current == head else " (not the head: run coatcheck db upgrade)"
    click.echo(f"current  {current or 'none'}{hint}")
    click.echo(f"head     {head}")


@main.group()
def access() -> None:
    """Forward auth's access rules (the [access_control] table of the config file)."""


@access.command("check")
@instance_options
@click.option("--url", required=True, help="The original URL, e.g. https://app.example.com/x.")
@click.option("--user", "username", default=None, help="Decide for this user (default: nobody).")
@click.option("--method", default="GET", show_default=True, help="The original request's method.")
@click.option("--ip", "address", default=None, help="The client's address, for `networks`.")
def access_check(
    config: dict[str, Any], url: str, username: str | None, method: str, address: str | None
) -> None:
    """Print which access rule matches a request, why, and the decision."""
    from ..auth.access import ALLOW, STEP_UP, AccessRules, Who, parse_target
    from .authz import ACCESS_KEY

    merged, _ = _load(config)
    try:
        rules = AccessRules.parse(merged.get(ACCESS_KEY))
        target = parse_target(method, url)
    except (ValueError, CoatcheckError) as exc:
        raise click.ClickException(str(exc)) from None
    for warning in rules.warnings:
        click.echo(f"warning: {warning}", err=True)
    who = None
    if username is not None:
        with _services(config) as found:
            user = found.users.get_by_username(username)
            if user is None:
                raise click.ClickException(f"no user named {username!r}")
        who = Who(user.username, frozenset(user.roles), 2)
    roles = f" (roles: {', '.join(sorted(who.roles)) or 'none'})" if who else ""
    click.echo(
        f"{target.method} {url} from {address or 'an unknown address'} "
        f"as {who.username + roles if who else 'nobody (not logged in)'}"
    )
    decision = rules.decide(target, address, lambda: who, explain=True)
    for line in decision.trail:
        click.echo(f"  {line}")
    source = (
        f"rule {decision.rule.number}"
        if decision.rule
        else "the path check"
        if target.ambiguous
        else "default_policy"
    )
    outcome = {
        "allow": "allowed",
        "login": "sent to log in (401 / redirect to the portal)",
        "step_up": "sent to step up (/reauth)",
        "forbidden": "denied (403)",
    }[decision.outcome]
    click.echo(f"decision: {outcome}, by {source} ({decision.policy})")
    if who is not None and decision.outcome == ALLOW and decision.policy == "two_factor":
        weaker = rules.decide(target, address, lambda: Who(who.username, who.roles, 1))
        if weaker.outcome == STEP_UP:
            click.echo("  with a second factor (aal 2); a password-only session is sent to step up")


@main.command()
@instance_options
def check(config: dict[str, Any]) -> None:
    """Review the configuration and cookie settings, reach every backend; exit 1 on a problem.

    Writes nothing: no secret key is generated, no database file created.
    """
    from .review import review

    merged, settings = _load(config)
    problems = 0
    for level, message in review(merged, settings):
        click.echo(f"{level.upper():8} {message}")
        problems += level == "problem"
    if problems:
        raise click.exceptions.Exit(1)


def _load(config: dict[str, Any]) -> tuple[dict[str, Any], Settings]:
    """Return the configuration and settings of the instance, creating nothing.

    The secret key is the configured one or the instance's file, if either exists.
    """
    from .config import load_config
    from .instance import existing_secret_key

    try:
        merged = load_config(config)
        settings = Settings.from_config(merged, instance_path=merged["COATCHECK_INSTANCE"])
    except CoatcheckError as exc:
        raise click.ClickException(str(exc)) from None
    if not merged.get("SECRET_KEY"):
        merged["SECRET_KEY"] = existing_secret_key(merged["COATCHECK_INSTANCE"])
    return merged, settings


@contextmanager
def _reading(config: dict[str, Any], *, store: bool = True) -> Iterator[Services | None]:
    """Yield the services for a command that only reads, or ``None`` when there is nothing.

    Unlike :func:`_services`, this creates nothing: no instance folder, no
    secret key, no SQLite file. An instance whose SQLite files do not exist
    yet holds nothing to read (``store=False``: only the user database matters).
    """
    merged, settings = _load(config)
    for url in (settings.store_url,) * store + (settings.database_url,):
        if url.startswith("sqlite:///") and not os.path.exists(url[len("sqlite:///") :]):
            yield None
            return
    # A key only reads: nothing is signed, and a shared store's fingerprint is not touched.
    key = merged.get("SECRET_KEY") or secrets.token_urlsafe(48)
    try:
        found = build_services(settings, secret_key=key, verify_key=False)
    except CoatcheckError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        yield found
    except CoatcheckError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        found.close()


def _user_id(found: Services, username: str) -> int:
    user = found.users.get_by_username(username)
    if user is None:
        raise click.ClickException(f"no user named {username!r}")
    return user.id


def _usernames(found: Services, user_ids: set[str]) -> dict[str, str]:
    """Return the username of each user ID (one lookup per user, not per session)."""
    names = {}
    for user_id in user_ids:
        user = found.users.get(int(user_id)) if user_id.isdigit() else None
        names[user_id] = user.username if user is not None else "?"
    return names


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    if not rows:
        click.echo("(none)")
        return
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=True)]
    for row in (header, *rows):
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


@main.group()
def mail() -> None:
    """Look at the outbox (the development mailbox without a mail URL) and deliver it."""


def _mail_config(config: dict[str, Any]) -> dict[str, Any]:
    # A command delivers in the foreground, or not at all: no background sender thread.
    return {**config, "COATCHECK_MAIL_SENDER": False}


@mail.command("list")
@instance_options
@click.option(
    "--status",
    type=click.Choice(["pending", "sending", "sent", "failed", "dropped"]),
    default=None,
    help="Only the mails with this status.",
)
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10_000))
def mail_list(config: dict[str, Any], status: str | None, limit: int) -> None:
    """List the newest mails (no bodies: coatcheck mail show ID)."""
    header = ("ID", "STATUS", "KIND", "TO", "SUBJECT", "CREATED", "ATTEMPTS", "LAST ERROR")
    with _reading(config, store=False) as found:
        mails = [] if found is None else found.users.outbox.page(limit=limit, status=status)
    rows = [
        (
            str(m.id),
            m.status,
            m.kind,
            m.to_addr or "-",
            (m.subject or "-")[:50],
            m.created_at.strftime("%Y-%m-%d %H:%M UTC"),
            str(m.attempts),
            (m.last_error or "-")[:60],
        )
        for m in mails
    ]
    _table(header, rows)


@mail.command("show")
@instance_options
@click.argument("mail_id", type=click.IntRange(1, 2**31 - 1))
def mail_show(config: dict[str, Any], mail_id: int) -> None:
    """Show a mail's headers and text (it holds a one-time link: the development mailbox)."""
    with _reading(config, store=False) as found:
        shown = None if found is None else found.users.outbox.get(mail_id)
        mail_from = found.settings.mail_from if found is not None else ""
    if shown is None:
        raise click.ClickException(f"no mail with ID {mail_id}")
    for name, value in (
        ("From", mail_from),
        ("To", shown.to_addr or "(not resolved yet)"),
        ("Subject", shown.subject or ""),
        ("Message-ID", shown.message_id),
        ("Status", shown.status),
        ("Kind", shown.kind),
        ("Created", shown.created_at.strftime("%Y-%m-%d %H:%M:%S UTC")),
        ("Sent", shown.sent_at.strftime("%Y-%m-%d %H:%M:%S UTC") if shown.sent_at else "-"),
        ("Attempts", str(shown.attempts)),
        ("Last-Error", shown.last_error or "-"),
    ):
        click.echo(f"{name}: {value}")
    click.echo()
    click.echo(shown.text_body if shown.text_body is not None else "(no body yet: a request)")


@mail.command("send-pending")
@instance_options
def mail_send_pending(config: dict[str, Any]) -> None:
    """Deliver every mail due now and print how many (for cron, beside or instead of serve)."""
    from ..ext import CoatCheck
    from .mailer import build_sender

    app = _app(_mail_config(config))
    try:
        sender = build_sender(app)
        with app.app_context():
            report = sender.send_all()
    except CoatcheckError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        CoatCheck.state(app).close()
    click.echo(
        f"sent {report.sent}, retrying {report.retrying}, failed {report.failed}, "
        f"dropped {report.dropped}"
    )

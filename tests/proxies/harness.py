"""Real proxies in front of a real ``coatcheck serve``: certificates, echo apps, a client.

The proxy configurations are the documentation's own files (``docs/proxies``):
a test changes only the ports, the certificate paths and the upstream
addresses, and checks each change happened.
"""

from __future__ import annotations

import http.client
import json
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pyotp

from ..certs import write_certificate
from ..conftest import free_port, unavailable, wait_for_port
from ..service.served import Served, serve

DOCS = Path(__file__).parents[2] / "docs" / "proxies"
PASSWORD = "correct horse battery"
#: How the docs write the addresses a test run replaces.
COATCHECK = "127.0.0.1:5555"
UPSTREAMS = {"app": "127.0.0.1:8081", "dash": "127.0.0.1:8082"}
CERT, KEY = "/etc/ssl/example.com/fullchain.pem", "/etc/ssl/example.com/privkey.pem"
NAMES = ("auth.example.com", "app.example.com", "dash.example.com", "*.example.com")
#: The rules of every stack (SPEC §10's example, in the config file's TOML).
RULES = """
[access_control]
default_policy = "deny"

[[access_control.rules]]
domain = "app.example.com"
resources = ["^/public/"]
policy = "bypass"

[[access_control.rules]]
domain = "app.example.com"
resources = ["^/admin/"]
subject = ["role:admin"]
policy = "one_factor"

# A rule whose subject leaves the user out is skipped (as in Authelia): without this
# one, a user without the role would reach /admin/ by the *.example.com rule.
[[access_control.rules]]
domain = "app.example.com"
resources = ["^/admin/"]
policy = "deny"

[[access_control.rules]]
domain = "dash.example.com"
policy = "two_factor"

[[access_control.rules]]
domain = "*.example.com"
policy = "one_factor"
"""
#: Users: alice is an admin, bobby has no roles, the others have an authenticator app.
USERS = {
    "alice": ("--admin", "--email", "alice@example.com"),
    "bobby": (),
    "carol": (),
    "dave": (),
    "erin": (),
}
TOTP_USERS = ("carol", "dave", "erin")
IDENTITY = ("remote-user", "remote-groups", "remote-email", "remote-name")


# -- certificates ------------------------------------------------------------------------


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """Write a throwaway self-signed certificate for the example.com names; return
    the paths of the certificate (its own authority) and of the key."""
    return write_certificate(folder, common_name="example.com test", dns_names=NAMES)


# -- the protected applications -----------------------------------------------------------


@dataclass
class Seen:
    """One request as an application received it."""

    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes

    def values(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def identity(self) -> dict[str, list[str]]:
        """Return every header whose name reads as Remote-* (``_`` folded to ``-``)."""
        found: dict[str, list[str]] = {}
        for key, value in self.headers:
            folded = key.lower().replace("_", "-")
            if folded.startswith("remote-"):
                found.setdefault(folded, []).append(value)
        return found


@dataclass
class EchoApp:
    """A protected application: records each request, answers with what it saw."""

    name: str
    port: int
    seen: list[Seen] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def requests_to(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]

    def one(self, path: str) -> Seen:
        found = self.requests_to(path)
        assert len(found) == 1, f"{self.name} got {len(found)} requests for {path}"
        return found[0]


def _echo_handler(app: EchoApp) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            app.seen.append(Seen(self.command, self.path, list(self.headers.items()), body))
            data = json.dumps(
                {"site": app.name, "path": self.path, "user": self.headers.get("Remote-User")}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A proxy closing its idle keep-alive connection at the end is no error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextmanager
def echo_app(name: str) -> Iterator[EchoApp]:
    app = EchoApp(name, free_port())
    server = _QuietServer(("127.0.0.1", app.port), _echo_handler(app))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield app
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# -- a client that speaks TLS to 127.0.0.1 under the real host names -------------------------


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def location(self) -> str:
        return self.headers.get("Location", "")

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


@dataclass
class Cookie:
    name: str
    value: str
    domain: str
    host_only: bool

    def sent_to(self, host: str) -> bool:
        if self.host_only:
            return host == self.domain
        return host == self.domain or host.endswith("." + self.domain)


class _HiddenInputs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "form":
            self.forms.append({"": found.get("action") or ""})
        elif tag == "input" and found.get("type") == "hidden" and self.forms:
            self.forms[-1][found.get("name") or ""] = found.get("value") or ""


def hidden_fields(page: str, action: str) -> dict[str, str]:
    """Return the hidden inputs of the page's form that posts to ``action``."""
    parser = _HiddenInputs()
    parser.feed(page)
    for form in parser.forms:
        if urlsplit(form[""]).path == action:
            return {k: v for k, v in form.items() if k}
    raise AssertionError(f"no form posts to {action}: {page[:2000]}")


@dataclass
class Browser:
    """Speak HTTPS to the proxy like a browser would: SNI and Host, a cookie jar that
    honours ``Domain``, ``Origin`` on unsafe requests."""

    proxy_port: int
    ca_file: Path
    cookies: list[Cookie] = field(default_factory=list)
    csrf: str = ""

    def url(self, host: str, path: str = "/") -> str:
        return f"https://{host}:{self.proxy_port}{path}"

    def request(
        self,
        method: str,
        url: str,
        *,
        form: dict[str, str] | None = None,
        json_body: Any = None,
        headers: list[tuple[str, str]] | dict[str, str] | None = None,
        accept: str = "text/html,application/xhtml+xml",
    ) -> Reply:
        parts = urlsplit(url)
        host = parts.hostname or ""
        assert parts.scheme == "https" and parts.port == self.proxy_port, url
        sent: list[tuple[str, str]] = [("Host", parts.netloc), ("Accept", accept)]
        jar = "; ".join(f"{c.name}={c.value}" for c in self.cookies if c.sent_to(host))
        if jar:
            sent.append(("Cookie", jar))
        body = None
        if form is not None:
            body = urlencode(form).encode()
            sent.append(("Content-Type", "application/x-www-form-urlencoded"))
        elif json_body is not None:
            body = json.dumps(json_body).encode()
            sent.append(("Content-Type", "application/json"))
        if method not in ("GET", "HEAD"):
            sent.append(("Origin", f"https://{parts.netloc}"))
            if self.csrf and form is None:
                sent.append(("X-CSRF-Token", self.csrf))
        sent.extend(headers.items() if isinstance(headers, dict) else headers or [])
        reply = self._send(
            host, method, parts.path + (f"?{parts.query}" if parts.query else ""), sent, body
        )
        self._keep_cookies(host, reply)
        return reply

    def _send(
        self, host: str, method: str, target: str, sent: list[tuple[str, str]], body: bytes | None
    ) -> Reply:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        raw = socket.create_connection(("127.0.0.1", self.proxy_port), timeout=20)
        with raw, context.wrap_socket(raw, server_hostname=host) as sock:
            conn = http.client.HTTPConnection("127.0.0.1", self.proxy_port, timeout=20)
            conn.sock = sock  # already connected, with the host's SNI
            conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            for name, value in sent:
                conn.putheader(name, value)
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            response = conn.getresponse()
            try:
                return Reply(response.status, response.headers, response.read())
            finally:
                response.close()
                conn.close()

    def _keep_cookies(self, host: str, reply: Reply) -> None:
        for header in reply.headers.get_all("Set-Cookie") or []:
            pair, *attributes = [p.strip() for p in header.split(";")]
            name, _, value = pair.partition("=")
            attrs = {k.lower(): v for k, _, v in (a.partition("=") for a in attributes)}
            domain = attrs.get("domain", "").lstrip(".").lower()
            if domain and not (host == domain or host.endswith("." + domain)):
                continue  # a browser refuses a cookie for another site
            cookie = Cookie(name, value, domain or host, host_only=not domain)
            self.cookies = [
                c for c in self.cookies if (c.name, c.domain) != (cookie.name, cookie.domain)
            ]
            if attrs.get("max-age") != "0":
                self.cookies.append(cookie)

    def cookie(self, name: str) -> Cookie | None:
        return next((c for c in self.cookies if c.name == name), None)

    # -- the portal --

    def portal(self, path: str = "/") -> str:
        return self.url("auth.example.com", path)

    def fetch_csrf(self) -> str:
        self.csrf = self.request("GET", self.portal("/api/csrf"), accept="application/json").json[
            "csrf_token"
        ]
        return self.csrf

    def api(self, method: str, path: str, body: Any = None) -> Reply:
        if not self.csrf:
            self.fetch_csrf()
        reply = self.request(method, self.portal(path), json_body=body, accept="application/json")
        if reply.status == 200 and reply.body and "csrf_token" in reply.json:
            self.csrf = reply.json["csrf_token"]  # a login makes a new CSRF secret
        return reply

    def login_form(self, login_page_url: str, username: str) -> Reply:
        """Fill in the login page at ``login_page_url`` (rd and all) and post it."""
        page = self.request("GET", login_page_url)
        assert page.status == 200, page.status
        fields = hidden_fields(page.text, "/login")
        fields.update(username=username, password=PASSWORD)
        return self.request("POST", self.portal("/login"), form=fields)


# -- TOTP: each time step once -------------------------------------------------------------


@dataclass
class Authenticator:
    """A user's authenticator app: hands out codes of ever later time steps, as the
    server accepts each step once, never a step beyond the next one."""

    secret: str
    last_step: int = -1

    def code(self) -> str:
        now = int(time.time() // 30)
        step = max(self.last_step + 1, now)
        assert step <= now + 1, "no unspent time step left for this user (one login a step)"
        self.last_step = step
        return pyotp.TOTP(self.secret).at(step * 30)


def enrol(browser: Browser, username: str) -> Authenticator:
    """Log ``username`` in at the portal and enrol a TOTP factor over the JSON API."""
    assert (
        browser.api("POST", "/api/login", {"username": username, "password": PASSWORD}).status
        == 200
    )
    begun = browser.api("POST", "/api/2fa/totp", {"name": "Phone"})
    assert begun.status == 200, begun.text
    app = Authenticator(begun.json["secret"])
    confirmed = browser.api(
        "POST", f"/api/2fa/totp/{begun.json['id']}/confirm", {"code": app.code()}
    )
    assert confirmed.status == 200, confirmed.text
    return app


# -- the stack ---------------------------------------------------------------------------


@dataclass
class Stack:
    """A proxy from the docs, coatcheck behind it, two applications behind both."""

    kind: str
    port: int
    served: Served
    apps: dict[str, EchoApp]
    ca_file: Path
    authenticators: dict[str, Authenticator]

    def browser(self) -> Browser:
        return Browser(self.port, self.ca_file)

    def url(self, host: str, path: str) -> str:
        return f"https://{host}:{self.port}{path}"

    def portal(self, path: str) -> str:
        return self.url("auth.example.com", path)


def substitute(text: str, changes: list[tuple[str, str, int]]) -> str:
    """Replace each ``(old, new, count)`` in ``text``, checking it occurs ``count`` times."""
    for old, new, count in changes:
        assert text.count(old) == count, f"{old!r} occurs {text.count(old)} times, not {count}"
        text = text.replace(old, new)
    return text


def binary(name: str, *places: str) -> str:
    found = shutil.which(name) or next((p for p in places if Path(p).exists()), None)
    if found is None:
        unavailable(f"{name} is not installed (make {name})")
        raise AssertionError  # unreachable: unavailable() skips or fails
    return found


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@contextmanager
def run_nginx(
    folder: Path, port: int, cert: Path, key: Path, apps: dict[str, EchoApp], coatcheck: int
) -> Iterator[None]:
    """Run docs/proxies/nginx.conf on ``port``, unprivileged, in ``folder``."""
    nginx = binary("nginx", "/usr/sbin/nginx", "/sbin/nginx")
    docs = (DOCS / "nginx.conf").read_text()
    http_level = substitute(
        docs,
        [
            ("listen 443 ssl;", f"listen 127.0.0.1:{port} ssl;", 2),
            (CERT, str(cert), 2),
            (KEY, str(key), 2),
            (f"http://{COATCHECK}", f"http://127.0.0.1:{coatcheck}", 2),
            *((f"http://{UPSTREAMS[n]};", f"http://{a.address};", 1) for n, a in apps.items()),
        ],
    )
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "nginx.conf"
    config.write_text(
        "daemon off;\n"
        "master_process off;\n"  # one process, running as this user
        f"pid {folder}/nginx.pid;\n"
        f"error_log {folder}/error.log warn;\n"
        "events { worker_connections 256; }\n"
        "http {\n"
        "access_log off;\n"
        + "".join(
            f"{kind}_temp_path {folder}/{kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        + http_level
        + "}\n"
    )
    command = [nginx, "-p", str(folder), "-c", str(config), "-e", str(folder / "error.log")]
    checked = subprocess.run(
        [*command, "-t"], capture_output=True, text=True, timeout=30, check=False
    )
    assert checked.returncode == 0, checked.stderr
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc)
        yield
    finally:
        stop(proc, signal.SIGQUIT)


@contextmanager
def run_caddy(
    folder: Path, port: int, cert: Path, key: Path, apps: dict[str, EchoApp], coatcheck: int
) -> Iterator[None]:
    """Run docs/proxies/Caddyfile on ``port``, unprivileged, in ``folder``."""
    caddy = binary("caddy", "/usr/bin/caddy")
    docs = (DOCS / "Caddyfile").read_text()
    config_text = substitute(
        docs,
        [
            # admin off: the admin API's localhost:2019 is one port for every run on a machine.
            ("\thttp_port 80\n", f"\thttp_port {free_port()}\n\tadmin off\n", 1),
            ("\thttps_port 443\n", f"\thttps_port {port}\n", 1),
            (f"tls {CERT} {KEY}", f"tls {cert} {key}", 3),
            (f"forward_auth {COATCHECK} ", f"forward_auth 127.0.0.1:{coatcheck} ", 1),
            (f"reverse_proxy {COATCHECK}\n", f"reverse_proxy 127.0.0.1:{coatcheck}\n", 1),
            *(
                (f"reverse_proxy {UPSTREAMS[n]}\n", f"reverse_proxy {a.address}\n", 1)
                for n, a in apps.items()
            ),
        ],
    )
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "Caddyfile"
    config.write_text(config_text)
    env = {
        "HOME": str(folder),
        "XDG_DATA_HOME": str(folder / "data"),
        "XDG_CONFIG_HOME": str(folder / "config"),
        "PATH": "/usr/bin:/bin",
    }
    command = [caddy, "run", "--config", str(config), "--adapter", "caddyfile"]
    checked = subprocess.run(
        [caddy, "validate", "--config", str(config), "--adapter", "caddyfile"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env=env,
    )
    assert checked.returncode == 0, checked.stderr
    log = folder / "caddy.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(command, stdout=sink, stderr=sink, env=env)
    try:
        wait_for_port(port, proc)
        yield
    finally:
        stop(proc)


Runner = Callable[..., Any]


@contextmanager
def stack(kind: str, folder: Path) -> Iterator[Stack]:
    """Start coatcheck, the two applications and the ``kind`` proxy from the docs."""
    runner: Runner = {"nginx": run_nginx, "caddy": run_caddy}[kind]
    if kind == "nginx":
        binary("nginx", "/usr/sbin/nginx", "/sbin/nginx")
    else:
        binary("caddy", "/usr/bin/caddy")
    cert, key = make_certificate(folder / "tls")
    config = folder / "coatcheck.toml"
    config.write_text(RULES)
    port = free_port()
    with (
        echo_app("app") as app,
        echo_app("dash") as dash,
        serve(
            folder / "instance",
            COATCHECK_STORE_URL="memory://",
            COATCHECK_TRUSTED_PROXIES="127.0.0.1/32",
            COATCHECK_COOKIE_DOMAIN="example.com",
            COATCHECK_PUBLIC_URL=f"https://auth.example.com:{port}",
            COATCHECK_CONFIG=str(config),
        ) as served,
    ):
        for username, args in USERS.items():
            created = served.cli(
                "user", "create", username, *args, "--password-stdin", input=PASSWORD
            )
            assert created.returncode == 0, created.stderr
        apps = {"app": app, "dash": dash}
        with runner(folder / kind, port, cert, key, apps, served.port):
            found = Stack(kind, port, served, apps, cert, {})
            for username in TOTP_USERS:
                found.authenticators[username] = enrol(found.browser(), username)
            yield found

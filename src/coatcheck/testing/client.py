"""A Flask test client logged in as a user (Flask-Login's ``FlaskLoginClient``)."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from werkzeug.http import parse_cookie
from werkzeug.test import TestResponse

from ..ext.csrf import csrf_token
from ..ext.login import login_user

#: Where a :class:`LoginClient` sends requests by default: HTTPS, so the
#: ``Secure`` ``__Host-`` cookies go back and forth as in a browser.
BASE_URL = "https://localhost"


class LoginClient(FlaskClient):
    """A test client that speaks HTTPS and is logged in as ``user`` (if given).

    ``app.test_client_class = LoginClient``, then ``app.test_client(user=alice)``
    (``remember=True`` for a remember-me login too). :meth:`login` logs in
    another user later. :attr:`csrf_token` is a token for this client's
    session, for unsafe requests (``headers={"X-CSRF-Token": client.csrf_token}``).
    """

    def __init__(self, *args: Any, user: Any = None, remember: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.csrf_token: str | None = None
        if user is not None:
            self.login(user, remember=remember)

    def open(self, *args: Any, **kwargs: Any) -> TestResponse:
        if args and isinstance(args[0], str):
            kwargs.setdefault("base_url", BASE_URL)
        return super().open(*args, **kwargs)

    def login(self, user: Any, *, remember: bool = False) -> None:
        """Log this client in as ``user``, as a real login would (a new session)."""
        app = self.application
        with app.test_request_context("/", base_url=BASE_URL):
            login_user(user, remember=remember, via="test")
            token = csrf_token()
            response = app.process_response(app.make_response(("", 204)))
        for header in response.headers.getlist("Set-Cookie"):
            pair = header.split(";", 1)[0]
            for name, value in parse_cookie(pair).items():
                self.set_cookie(name, value, domain="localhost", secure=True)
        self.csrf_token = token

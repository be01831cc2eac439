"""Error pages for people: the service's layout, what happened, what to do, a way back.

Also the library's own page (self-contained, overridable with a template) and
CSRF messages that name no route of the service in a library application.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from coatcheck import CoatCheck, login_required, roles_required
from coatcheck.core import csrf
from coatcheck.core.errors import StoreUnavailable
from coatcheck.core.passwords import PasswordHasher
from coatcheck.ext.errors import error_response

from ..conftest import TEST_SECRET_KEY
from .test_pages import BASE, add_user, browser, get, logged_in, text

HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}

#: What each status looks like in the service: the headline and a line of what to do.
SERVICE_ERRORS = {
    400: ("invalid", "That request could not be understood", "check what you entered"),
    401: ("unauthenticated", "Please log in first", "Log in, then come back"),
    403: ("forbidden", "You can't do that here", "ask an\n    administrator"),
    404: ("not_found", "There is no page at this address", "Check the address"),
    405: ("method_not_allowed", "This address does not work that way", "Go back and use them"),
    413: ("request_entity_too_large", "That was too much to send", "Send less"),
    429: ("throttled", "Too many tries for now", "Wait a little"),
    503: ("store_unavailable", "We can't check tickets right now", "reload the page"),
}


@pytest.fixture
def app(make_service: Callable[..., Flask]) -> Flask:
    app = make_service()

    @app.get("/test-error/<int:status>")
    def test_error(status: int) -> Any:
        return error_response(status, SERVICE_ERRORS[status][0], "What the library said.")

    return app


def assert_service_layout(page: str, status: int) -> None:
    code, headline, step = SERVICE_ERRORS[status]
    assert '<link rel="stylesheet" href="/static/style.css">' in page
    assert '<a class="brand" href="/">coatcheck</a>' in page
    assert f"Error {status}" in page
    assert f"<h1>{headline}</h1>".replace("'", "&#39;") in page
    assert step in page
    if status == 401:
        assert 'href="/login' in page
    else:
        assert 'class="button" href="/">Back to the home page</a>' in page


@pytest.mark.parametrize("status", sorted(SERVICE_ERRORS))
def test_every_html_error_uses_the_layout_and_says_what_to_do(app: Flask, status: int) -> None:
    response = get(browser(app), f"/test-error/{status}")
    assert response.status_code == status and response.mimetype == "text/html"
    assert_service_layout(text(response), status)
    assert "What the library said." in text(response)


@pytest.mark.parametrize("status", sorted(SERVICE_ERRORS))
def test_json_errors_keep_the_error_shape(app: Flask, status: int) -> None:
    response = get(
        app.test_client(), f"/test-error/{status}", headers={"Accept": "application/json"}
    )
    assert response.status_code == status
    assert response.json == {
        "error": SERVICE_ERRORS[status][0],
        "message": "What the library said.",
    }


def test_real_errors_render_in_the_layout(app: Flask) -> None:
    add_user(app, "alice")
    anonymous = browser(app)
    assert_service_layout(text(get(anonymous, "/no-such-page")), 404)
    assert_service_layout(text(get(anonymous, "/logout")), 405)
    verify = get(anonymous, "/auth/verify")
    assert verify.status_code == 401
    assert_service_layout(text(verify), 401)
    alice = logged_in(app, "alice")
    forbidden = get(alice, "/admin")
    assert forbidden.status_code == 403
    page = text(forbidden)
    assert_service_layout(page, 403)
    assert "Log out" in page  # the usual navigation, as on every page
    huge = anonymous.post("/login", data={"x": "y" * 100_000}, base_url=BASE)
    assert huge.status_code == 413
    assert_service_layout(text(huge), 413)


def test_werkzeugs_stock_descriptions_are_replaced_by_our_words(app: Flask) -> None:
    page = text(get(browser(app), "/no-such-page"))
    assert "The requested URL was not found on the server" not in page


def test_the_store_down_page_reads_no_session(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    add_user(app, "alice")
    alice = logged_in(app, "alice")

    def down(*args: object, **kwargs: object) -> None:
        raise StoreUnavailable("the store is down")

    store = CoatCheck.state(app).store
    for method in ("get", "save", "add", "touch", "delete"):
        monkeypatch.setattr(store, method, down)
    response = get(alice, "/account")
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert_service_layout(text(response), 503)
    assert "Log out" not in text(response)  # no navigation: it would read the session


def test_a_form_the_service_cannot_show_again_gets_the_csrf_error_page(app: Flask) -> None:
    @app.post("/test-form")
    def test_form() -> str:
        return "sent"

    response = browser(app).post("/test-form", data={"csrf_token": "x"}, base_url=BASE)
    assert response.status_code == 403
    page = text(response)
    assert "<h1>This form has expired</h1>" in page and "another tab" in page
    assert "/api/csrf" not in page


def test_the_service_api_says_where_tokens_come_from(app: Flask) -> None:
    response = app.test_client().post("/api/logout", base_url=BASE, json={})
    assert response.status_code == 403
    assert set(response.json or {}) == {"error", "message"}
    assert response.json is not None and response.json["error"] == "csrf_failed"
    assert "GET /api/csrf" in response.json["message"]


# -- the library, in an application of its own ------------------------------------------------


def library_app(tmp_path: Path, template: str | None = None) -> Flask:
    """Return a small application using coatcheck, optionally with an error template."""
    templates = tmp_path / "templates"
    if template is not None:
        (templates / "coatcheck").mkdir(parents=True)
        (templates / "coatcheck" / "error.html").write_text(template)
    app = Flask(__name__, instance_path=str(tmp_path / "instance"), template_folder=str(templates))
    app.config.update(
        TESTING=True,
        SECRET_KEY=TEST_SECRET_KEY,
        COATCHECK_STORE_URL="memory://",
        COATCHECK_DATABASE_URL=f"sqlite:///{tmp_path / 'users.db'}",
    )
    CoatCheck(app, hasher=PasswordHasher.fast_for_tests())

    @app.post("/change")
    def change() -> str:
        return "changed"

    @app.get("/private")
    @login_required
    def private() -> str:
        return "private"

    @app.get("/staff")
    @roles_required("staff")
    def staff() -> str:
        return "staff"

    return app


def test_library_messages_name_no_route() -> None:
    for message in csrf.MESSAGES.values():
        assert "/api" not in message and "GET " not in message, message


def test_library_csrf_failure_names_no_route(tmp_path: Path) -> None:
    client = library_app(tmp_path).test_client()
    api = client.post("/change", base_url=BASE, headers={"Accept": "application/json"})
    assert api.status_code == 403
    assert api.json is not None and set(api.json) == {"error", "message"}
    assert "/api/csrf" not in api.json["message"]
    page = client.post("/change", base_url=BASE, headers=HTML)
    assert page.status_code == 403 and "/api/csrf" not in page.text


@pytest.mark.parametrize(
    ("path", "status", "advice"),
    [("/change", 403, "reload the page"), ("/private", 401, "Log in"), ("/staff", 401, "Log in")],
)
def test_library_page_is_self_contained_and_links_home(
    tmp_path: Path, path: str, status: int, advice: str
) -> None:
    client = library_app(tmp_path).test_client()
    method = client.post if path == "/change" else client.get
    response = method(path, base_url=BASE, headers=HTML)
    assert response.status_code == status and response.mimetype == "text/html"
    page = response.text
    assert page.startswith("<!doctype html>") and '<meta name="viewport"' in page
    assert "<style>" in page and "<link" not in page  # nothing to fetch from the app
    assert f"Error {status}" in page and "<h1>" in page
    assert advice in page
    assert '<a href="/">Back to the home page</a>' in page


def test_library_page_escapes_the_message(tmp_path: Path) -> None:
    app = library_app(tmp_path)
    with app.test_request_context("/", headers=HTML):
        page = error_response(400, "invalid", "<script>alert(1)</script>").get_data(as_text=True)
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_an_application_template_replaces_the_library_page(tmp_path: Path) -> None:
    template = "<p>my layout</p>{{ status }}|{{ code }}|{{ title }}|{{ message }}|{{ advice }}"
    client = library_app(tmp_path, template).test_client()
    response = client.post("/change", base_url=BASE, headers=HTML)
    assert response.status_code == 403
    assert response.text.startswith("<p>my layout</p>403|csrf_failed|Forbidden|The CSRF token")
    assert response.text.endswith("|Go back, reload the page and send the form again.")
    # JSON clients are not affected.
    api = client.post("/change", base_url=BASE, headers={"Accept": "application/json"})
    assert api.json is not None and set(api.json) == {"error", "message"}


def test_a_broken_application_template_falls_back_to_the_library_page(tmp_path: Path) -> None:
    client = library_app(tmp_path, "{{ 1 / 0 }}").test_client()
    response = client.post("/change", base_url=BASE, headers=HTML)
    assert response.status_code == 403
    assert '<a href="/">Back to the home page</a>' in response.text

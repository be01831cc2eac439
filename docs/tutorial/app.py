"""Notes: the tutorial's application (docs/tutorial/index.rst walks through it).

Run it with::

    export SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(32))')"
    flask --app docs/tutorial/app.py create-user alice --admin
    flask --app docs/tutorial/app.py run

and open http://127.0.0.1:5000 (Secure cookies are accepted from localhost).
"""

from __future__ import annotations

import os
from typing import Any

import click
from flask import Flask, abort, jsonify, redirect, render_template, request, session
from jinja2 import DictLoader

from coatcheck import (
    CoatCheck,
    PasswordHasher,
    authenticate,
    csrf_exempt,
    csrf_token,
    current_user,
    issue_tokens,
    login_required,
    login_user,
    logout_user,
    refresh_tokens,
    register_user,
    roles_required,
)
from coatcheck.core.redirects import safe_next

# The templates, kept here so that the tutorial is one file; a real app has templates/.
TEMPLATES = {
    "layout.html": """<!doctype html>
<title>Notes</title>
{% if current_user.is_authenticated %}
  <p>Logged in as {{ current_user.username }}.
  <form method="post" action="/logout">
    <input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
    <button>Log out</button>
  </form>
{% endif %}
{% block body %}{% endblock %}
""",
    "index.html": """{% extends "layout.html" %}{% block body %}
<h1>Notes</h1>
{% for note in notes %}<p>{{ note }}{% endfor %}
{% if current_user.is_authenticated %}
  <form method="post" action="/notes">
    <input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
    <input name="text" required> <button>Add</button>
  </form>
{% endif %}
{% endblock %}""",
    "login.html": """{% extends "layout.html" %}{% block body %}
<form method="post">
  <input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
  <input type="hidden" name="next" value="{{ next }}">
  <input name="username" autocomplete="username" required>
  <input name="password" type="password" autocomplete="current-password" required>
  <label><input type="checkbox" name="remember" value="yes"> Remember me</label>
  <button>{{ action }}</button>
</form>
{% endblock %}""",
    "admin.html": """{% extends "layout.html" %}{% block body %}
<h1>Administration</h1>
{% endblock %}""",
}


def create_app(
    test_config: dict[str, Any] | None = None, *, hasher: PasswordHasher | None = None
) -> Flask:
    """Create the Notes application.

    :param test_config: configuration that replaces the environment's (tests).
    :param hasher: the password hasher; tests pass ``PasswordHasher.fast_for_tests()``.
    """
    app = Flask(__name__)
    if test_config is None:
        app.config["SECRET_KEY"] = os.environ.get("SECRET_KEY")
        app.config["COATCHECK_LOGIN_URL"] = "/login"
    else:
        app.config.update(test_config)
    app.jinja_loader = DictLoader(TEMPLATES)
    CoatCheck(app, hasher=hasher)  # sessions and users in SQLite in app.instance_path

    @app.get("/")
    def index() -> str:
        return render_template("index.html", notes=session.get("notes", []))

    @app.post("/notes")
    @login_required
    def add_note() -> Any:
        # Flask's own session, stored server-side: only the keys you change are saved.
        session["notes"] = [*session.get("notes", []), request.form["text"]]
        return redirect("/")

    # -- Login from an HTML form --------------------------------------------------

    @app.route("/register", methods=["GET", "POST"])
    def register() -> Any:
        if request.method == "POST":
            user = register_user(request.form["username"], request.form["password"])
            login_user(user)
            return redirect("/")
        return render_template("login.html", action="Register", next="")

    @app.route("/login", methods=["GET", "POST"])
    def login() -> Any:
        target = safe_next(request.values.get("next"))
        if request.method == "POST":
            user = authenticate(request.form["username"], request.form["password"])
            login_user(user, remember=request.form.get("remember") == "yes")
            return redirect(target)
        return render_template("login.html", action="Log in", next=target)

    @app.post("/logout")
    def logout() -> Any:
        logout_user()
        return redirect("/")

    # -- Login from JavaScript (fetch) -------------------------------------------

    @app.get("/api/csrf")
    def api_csrf() -> Any:
        return jsonify(csrf_token=csrf_token())

    @app.post("/api/login")
    def api_login() -> Any:
        body = request.get_json()
        user = authenticate(body["username"], body["password"])
        login_user(user, remember=body.get("remember") is True)
        # Logging in changes the CSRF secret: hand the script its next token.
        return jsonify(user={"id": user.id, "username": user.username}, csrf_token=csrf_token())

    @app.get("/api/me")
    @login_required
    def api_me() -> Any:
        return jsonify(
            username=current_user.username, roles=list(current_user.roles), via=current_user.via
        )

    # -- Roles --------------------------------------------------------------------

    @app.get("/admin")
    @roles_required("admin")
    def admin() -> str:
        return render_template("admin.html")

    # -- API tokens ---------------------------------------------------------------

    @app.post("/api/token")
    @csrf_exempt  # sets no cookie: the credentials are in the body
    def api_token() -> Any:
        body = request.get_json()
        return jsonify(issue_tokens(authenticate(body["username"], body["password"])))

    @app.post("/api/token/refresh")
    @csrf_exempt  # sets no cookie: the refresh token is in the body
    def api_token_refresh() -> Any:
        token = request.get_json().get("refresh_token")
        if not isinstance(token, str):
            abort(400)
        return jsonify(refresh_tokens(token))

    # -- Command line: flask --app docs/tutorial/app.py create-user NAME [--admin] -----

    @app.cli.command("create-user")
    @click.argument("username")
    @click.option("--admin", is_flag=True, help="Give the user the admin role.")
    @click.password_option()
    def create_user_command(username: str, admin: bool, password: str) -> None:
        """Create a user (the password is checked against the policy)."""
        accounts = CoatCheck.state(app).accounts
        accounts.create_user(username, password, roles=["admin"] if admin else [])
        click.echo(f"created {username}")

    return app

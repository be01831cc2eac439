"""The WebAuthn routes of SPEC §8: passkey and security-key registration and login.

Every ceremony is a pair: options from a ``begin`` route, given to
``navigator.credentials.create()`` or ``.get()`` (``PublicKeyCredential.
parseCreationOptionsFromJSON`` / ``parseRequestOptionsFromJSON``), then the
credential's ``toJSON()`` sent to its ``finish`` route. The answers of the
second step of a login and of a step-up go to ``POST /api/login/second-factor``
and ``POST /api/reauth`` (method ``webauthn``).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from ..auth.factors import factor_json
from ..ext import csrf_token
from ..ext.errors import error_response
from ..ext.webauthn import (
    MalformedCredential,
    begin_assertion,
    begin_registration,
    finish_registration,
    passkey_login,
)
from .api import InvalidRequest, credential_field, json_body, user_json

blueprint = Blueprint("webauthn", __name__, url_prefix="/api")


@blueprint.errorhandler(InvalidRequest)
def _invalid(exc: InvalidRequest) -> Response:
    return error_response(400, "invalid", str(exc))


@blueprint.app_errorhandler(MalformedCredential)
def _malformed(exc: MalformedCredential) -> Response:
    # App-wide: /api/login/second-factor and /api/reauth take credentials too.
    return error_response(400, "invalid", str(exc))


def _options(options: dict[str, Any]) -> Response:
    response = jsonify(options)
    response.headers["Cache-Control"] = "no-store"
    return response


def _optional_body() -> dict[str, Any]:
    """Return the JSON object sent, or an empty one when nothing was sent."""
    if not request.get_data(cache=True):
        return {}
    return json_body()


@blueprint.post("/webauthn/register/begin")
def register_begin() -> Response:
    body = json_body()
    name = body.get("name")
    passkey = body.get("passkey", False)
    if name is not None and not isinstance(name, str):
        raise InvalidRequest("name must be a string.")
    if not isinstance(passkey, bool):
        raise InvalidRequest("passkey must be true or false.")
    try:
        options = begin_registration(name, passkey)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    return _options(options)


@blueprint.post("/webauthn/register/finish")
def register_finish() -> tuple[Response, int]:
    factor, codes = finish_registration(credential_field(json_body()))
    answer: dict[str, Any] = {"factor": factor_json(factor)}
    if codes:
        answer["recovery_codes"] = codes
    response = jsonify(answer)
    response.headers["Cache-Control"] = "no-store"
    return response, 201


@blueprint.post("/webauthn/login/begin")
def login_begin() -> Response:
    username = _optional_body().get("username")
    if username is not None and not isinstance(username, str):
        raise InvalidRequest("username must be a string.")
    return _options(begin_assertion("login", username))


@blueprint.post("/webauthn/login/finish")
def login_finish() -> Response:
    user = passkey_login(credential_field(json_body()))
    # The login made a new CSRF secret: the token for the next unsafe request.
    return jsonify(user=user_json(user), csrf_token=csrf_token())


@blueprint.post("/login/second-factor/webauthn")
def second_factor_begin() -> Response:
    return _options(begin_assertion("second_factor"))


@blueprint.post("/reauth/webauthn")
def reauth_begin() -> Response:
    return _options(begin_assertion("reauth"))

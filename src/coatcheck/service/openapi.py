"""The OpenAPI 3.1 description of the JSON API, served at ``/openapi.json``.

The document is built for the application that serves it: the cookie names
follow its settings, and ``/metrics`` is described only when metrics are on.
``tests/service/test_openapi.py`` checks that it describes every JSON route of
the application and no other, and that real answers match it;
``tests/service/test_schemathesis.py`` fuzzes a running service against it.
"""

from __future__ import annotations

import functools
import json
from importlib import metadata
from typing import Any

from flask import Blueprint, Response, current_app

from ..ext import CoatCheck
from ..ext.cookies import cookie_name
from .api import MAX_OFFSET, MAX_PAGE

blueprint = Blueprint("openapi", __name__)

Schema = dict[str, Any]

JSON = "application/json"
_STR: Schema = {"type": "string"}
_NULLABLE_STR: Schema = {"type": ["string", "null"]}
_INT: Schema = {"type": "integer"}
_BOOL: Schema = {"type": "boolean"}
_TIME: Schema = {"type": "string", "format": "date-time"}
_NULLABLE_TIME: Schema = {"type": ["string", "null"], "format": "date-time"}
_ROLES: Schema = {"type": "array", "items": _STR}
#: The rules of ``coatcheck.users.validation`` and the password policy, as schemas.
_USERNAME: Schema = {"type": "string", "pattern": "^[A-Za-z0-9._-]{3,64}$", "maxLength": 64}
_NEW_PASSWORD: Schema = {"type": "string", "minLength": 12, "maxLength": 256}
_ROLE: Schema = {"type": "string", "pattern": "^[a-z0-9_-]{1,32}$", "maxLength": 32}
_EMAIL: Schema = {
    "type": ["string", "null"],
    "maxLength": 254,
    "description": "One '@' with text on both sides, no spaces; empty or null for none.",
}
_TEXT: Schema = {"type": "string", "minLength": 1}
_RETRY_AFTER = {"Retry-After": {"$ref": "#/components/headers/RetryAfter"}}

# Security requirements: any one of the listed sets (each set: all of its schemes).
Requirement = dict[str, list[str]]
_SESSION: Requirement = {"sessionCookie": []}
_SESSION_CSRF: Requirement = {"sessionCookie": [], "csrfToken": []}
_ANONYMOUS_CSRF: Requirement = {"csrfCookie": [], "csrfToken": []}
_BEARER: Requirement = {"bearerAuth": []}
_READ = [_SESSION, _BEARER]
_WRITE = [_SESSION_CSRF, _BEARER]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(required: dict[str, Schema], optional: dict[str, Schema] | None = None) -> Schema:
    """Return a closed object schema: ``required`` keys always present, ``optional`` may be."""
    return {
        "type": "object",
        "properties": {**required, **(optional or {})},
        "required": list(required),
        "additionalProperties": False,
    }


def _body(required: dict[str, Schema], optional: dict[str, Schema] | None = None) -> Schema:
    """Return a JSON request body; unknown keys are ignored, so it stays open."""
    schema = _object(required, optional)
    del schema["additionalProperties"]
    return {"required": True, "content": {JSON: {"schema": schema}}}


def _ok(description: str, schema: Schema | None = None, headers: Schema | None = None) -> Schema:
    response: Schema = {"description": description}
    if schema is not None:
        response["content"] = {JSON: {"schema": schema}}
    if headers:
        response["headers"] = headers
    return response


def _error(
    description: str, *codes: str, html: bool = False, headers: Schema | None = None
) -> Schema:
    """Return an error response: the shared shape, ``error`` one of ``codes``.

    Outside ``/api/``, a client whose ``Accept`` prefers HTML gets a small page.
    """
    schema = {"allOf": [_ref("Error"), {"properties": {"error": {"enum": list(codes)}}}]}
    content: Schema = {JSON: {"schema": schema}}
    if html:
        content["text/html"] = {"schema": _STR}
    return _ok(description, headers=headers) | {"content": content}


#: Responses shared by many operations, kept once in ``components/responses``.
_RESPONSES: dict[str, Schema] = {
    "Invalid": _error("The body or a parameter is malformed.", "invalid"),
    "InvalidOrWeakPassword": _error(
        "Malformed, or the password policy refuses the new password.", "invalid", "weak_password"
    ),
    "Unauthenticated": _error(
        "Not logged in, or the bearer token is invalid, expired or revoked, or the login "
        "waits for its second factor or for enrolment of one.",
        "unauthenticated",
        "second_factor_required",
        "second_factor_enrolment_required",
        headers={"WWW-Authenticate": {"description": "With a bad bearer token.", "schema": _STR}},
    ),
    "InvalidCredentials": _error("Wrong username or password.", "invalid_credentials"),
    "InvalidCode": _error(
        "The code or credential is wrong, replayed, spent or expired, or there is no "
        "login waiting for it.",
        "invalid_code",
        "unauthenticated",
        "second_factor_required",
    ),
    "StepUp": _error(
        "Not logged in, or the last password or factor check is older than "
        "COATCHECK_REAUTH_MAX_AGE: POST /api/reauth first.",
        "unauthenticated",
        "second_factor_required",
        "second_factor_enrolment_required",
        "reauthentication_required",
    ),
    "CsrfFailed": _error("The CSRF check failed; nothing was changed.", "csrf_failed"),
    "Forbidden": _error("The user is not an admin.", "forbidden"),
    "ForbiddenOrCsrfFailed": _error(
        "The user is not an admin, or the CSRF check failed.", "forbidden", "csrf_failed"
    ),
    "UserNotFound": _error("No user has this ID.", "not_found"),
    "TooLarge": _error("The body is larger than the server accepts.", "request_entity_too_large"),
    "Throttled": _error(
        "Too many failed logins for this account or address.", "throttled", headers=_RETRY_AFTER
    ),
    "StoreUnavailable": _error(
        "A store cannot be reached: the request fails closed.",
        "store_unavailable",
        headers=_RETRY_AFTER,
    ),
    "StoreUnavailableOrPage": _error(
        "A store cannot be reached: the request fails closed.",
        "store_unavailable",
        html=True,
        headers=_RETRY_AFTER,
    ),
}


def _shared(name: str) -> Schema:
    if name not in _RESPONSES:
        raise KeyError(name)
    return {"$ref": f"#/components/responses/{name}"}


_INVALID = _shared("Invalid")
_UNAUTHENTICATED = _shared("Unauthenticated")
_CSRF = _shared("CsrfFailed")
_TOO_LARGE = _shared("TooLarge")
_THROTTLED = _shared("Throttled")
_INVALID_CODE = _shared("InvalidCode")
_STEP_UP = _shared("StepUp")
_UNAVAILABLE = _shared("StoreUnavailable")
_UNAVAILABLE_OR_PAGE = _shared("StoreUnavailableOrPage")


def _write_errors(*, login: bool = True) -> dict[str, Schema]:
    """Return the errors of an unsafe, CSRF-checked operation (``login``: it needs a user)."""
    errors = {"403": _CSRF, "413": _TOO_LARGE, "503": _UNAVAILABLE}
    if login:
        errors["401"] = _UNAUTHENTICATED
    return errors


def _admin_errors(*, write: bool) -> dict[str, Schema]:
    errors = {
        "401": _STEP_UP if write else _UNAUTHENTICATED,
        "403": _shared("ForbiddenOrCsrfFailed" if write else "Forbidden"),
        "503": _UNAVAILABLE,
    }
    if write:
        errors["413"] = _TOO_LARGE
    return errors


def _operation(
    operation_id: str,
    summary: str,
    tag: str,
    responses: dict[str, Schema],
    *,
    security: list[Requirement] | None = None,
    body: Schema | None = None,
    parameters: list[Schema] | None = None,
) -> Schema:
    operation: Schema = {
        "operationId": operation_id,
        "summary": summary,
        "tags": [tag],
        "responses": dict(sorted(responses.items())),
    }
    if security is not None:
        operation["security"] = security
    if body is not None:
        operation["requestBody"] = body
    if parameters:
        operation["parameters"] = parameters
    return operation


def _query_int(name: str, description: str, **limits: int) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": "integer", **limits},
    }


_PAGE = [
    _query_int("offset", "Rows to skip.", minimum=0, maximum=MAX_OFFSET, default=0),
    _query_int("limit", "Rows to return.", minimum=1, maximum=MAX_PAGE, default=50),
]
_USER_ID = {"name": "user_id", "in": "path", "required": True, "schema": {**_INT, "minimum": 1}}
_NOT_FOUND_USER = _shared("UserNotFound")
_LAST_ADMIN = _error(
    "The change would leave no active admin: give another user the admin role first.",
    "last_admin",
)


def _auth_paths() -> dict[str, Schema]:
    # A login makes a new CSRF secret: its answer carries the token to use next.
    login_reply = _object({"user": _ref("User"), "csrf_token": _STR})
    either = {"oneOf": [login_reply, _ref("PendingLogin")]}
    return {
        "/api/csrf": {
            "get": _operation(
                "getCsrfToken",
                "A CSRF token for the caller (and, if anonymous, the double-submit cookie).",
                "auth",
                {
                    "200": _ok("A fresh masked token.", _object({"csrf_token": _STR})),
                    "503": _UNAVAILABLE,
                },
                security=[{}, _SESSION],
            )
        },
        "/api/register": {
            "post": _operation(
                "register",
                "Create an account and log it in (a new session).",
                "auth",
                {
                    "201": _ok(
                        "Created and logged in (or, when the policy wants a second factor, "
                        "sent to enrol one).",
                        either,
                    ),
                    "400": _shared("InvalidOrWeakPassword"),
                    "409": _error("The username is taken.", "username_taken"),
                    "429": _THROTTLED,
                    **_write_errors(login=False),
                },
                security=[_ANONYMOUS_CSRF, _SESSION_CSRF],
                body=_body({"username": _USERNAME, "password": _NEW_PASSWORD}, {"email": _EMAIL}),
            )
        },
        "/api/login": {
            "post": _operation(
                "login",
                "Log in: a new session cookie (and a remember-me cookie on request).",
                "auth",
                {
                    "200": _ok(
                        "Logged in, or the password was right and the login waits for a "
                        "second factor (or enrolment of one) on a pending session.",
                        either,
                    ),
                    "400": _INVALID,
                    "401": _shared("InvalidCredentials"),
                    "429": _THROTTLED,
                    **_write_errors(login=False),
                },
                security=[_ANONYMOUS_CSRF, _SESSION_CSRF],
                body=_body({"username": _TEXT, "password": _TEXT}, {"remember": _BOOL}),
            )
        },
        "/api/logout": {
            "post": _operation(
                "logout",
                "End this session (or this token family); the cookie is cleared.",
                "auth",
                {"204": _ok("Logged out."), **_write_errors(login=False)},
                security=[_SESSION_CSRF, _BEARER, _ANONYMOUS_CSRF],
            )
        },
        "/api/me": {
            "get": _operation(
                "getMe",
                "Who am I, and this session.",
                "account",
                {
                    "200": _ok("The user and this session.", _ref("Me")),
                    "401": _UNAUTHENTICATED,
                    "503": _UNAVAILABLE,
                },
                security=_READ,
            )
        },
        "/api/password": {
            "post": _operation(
                "changePassword",
                "Change the password: this session gets a new ID, the others end. The "
                "current password counts as a step-up.",
                "account",
                {
                    "204": _ok("Changed."),
                    "400": _shared("InvalidOrWeakPassword"),
                    "429": _THROTTLED,
                    **_write_errors(),
                    "401": _error(
                        "Not logged in, or the current password is wrong.",
                        "unauthenticated",
                        "invalid_credentials",
                    ),
                },
                security=_WRITE,
                body=_body({"current_password": _TEXT, "new_password": _NEW_PASSWORD}),
            )
        },
    }


def _session_paths() -> dict[str, Schema]:
    handle = {"name": "handle", "in": "path", "required": True, "schema": {**_STR, "minLength": 1}}
    return {
        "/api/sessions": {
            "get": _operation(
                "listSessions",
                "My live sessions and token families (devices).",
                "account",
                {
                    "200": _ok("Oldest first.", _object({"sessions": _list("Device")})),
                    "401": _UNAUTHENTICATED,
                    "503": _UNAVAILABLE,
                },
                security=_READ,
            ),
            "delete": _operation(
                "revokeOtherSessions",
                "End every other session and token family of mine (step-up).",
                "account",
                {"204": _ok("Revoked."), **_write_errors(), "401": _STEP_UP},
                security=_WRITE,
            ),
        },
        "/api/sessions/{handle}": {
            "delete": _operation(
                "revokeSession",
                "End one of my sessions or token families by its handle.",
                "account",
                {
                    "204": _ok("Revoked."),
                    "404": _error("You have no session with that handle.", "not_found"),
                    **_write_errors(),
                },
                security=_WRITE,
                parameters=[handle],
            )
        },
    }


def _token_paths() -> dict[str, Schema]:
    pair = _ok("A new token pair; never cached.", _ref("TokenPair"))
    invalid_token = _error("The token is invalid, expired, spent or revoked.", "invalid_token")
    body_errors = {"400": _INVALID, "413": _TOO_LARGE, "503": _UNAVAILABLE}
    return {
        "/api/token": {
            "post": _operation(
                "issueTokens",
                "Trade a username and password (and, for a user with a second factor, "
                "a TOTP or recovery code) for an access and a refresh token.",
                "tokens",
                {
                    "200": pair,
                    "401": _error(
                        "Wrong username or password, a second factor is needed, or the "
                        "code is wrong.",
                        "invalid_credentials",
                        "second_factor_required",
                        "invalid_code",
                    ),
                    "429": _THROTTLED,
                    **body_errors,
                },
                body=_body(
                    {"username": _TEXT, "password": _TEXT},
                    {"code": _CODE, "method": {"enum": ["totp", "recovery"]}},
                ),
            )
        },
        "/api/token/refresh": {
            "post": _operation(
                "refreshTokens",
                "Spend a refresh token for a new pair (reuse revokes the family).",
                "tokens",
                {"200": pair, "401": invalid_token, **body_errors},
                body=_body({"refresh_token": {**_STR, "minLength": 20, "maxLength": 128}}),
            )
        },
        "/api/token/revoke": {
            "post": _operation(
                "revokeToken",
                "Revoke a refresh token (its family) or an access token; unknown ones "
                "are ignored (RFC 7009). With cookies, the CSRF token is needed.",
                "tokens",
                {"204": _ok("Revoked, or ignored."), "403": _CSRF, **body_errors},
                security=[{}, _SESSION_CSRF],
                body=_body({"token": _TEXT}),
            )
        },
    }


def _admin_paths() -> dict[str, Schema]:
    return {
        "/api/admin/users": {
            "get": _operation(
                "listUsers",
                "Admin: a page of users in order of ID.",
                "admin",
                {
                    "200": _ok("A page of users.", _page("users", "FullUser")),
                    "400": _INVALID,
                    **_admin_errors(write=False),
                },
                security=_READ,
                parameters=_PAGE,
            )
        },
        "/api/admin/users/{user_id}/roles": {
            "post": _operation(
                "setUserRoles",
                "Admin: replace a user's roles (in their live sessions too).",
                "admin",
                {
                    "200": _ok("The updated user.", _object({"user": _ref("FullUser")})),
                    "400": _INVALID,
                    "404": _NOT_FOUND_USER,
                    "409": _LAST_ADMIN,
                    **_admin_errors(write=True),
                },
                security=_WRITE,
                parameters=[_USER_ID],
                body=_body({"roles": {"type": "array", "items": _ROLE}}),
            )
        },
        "/api/admin/users/{user_id}/disable": {
            "post": _operation(
                "disableUser",
                "Admin: disable a user: no more logins, every session ends.",
                "admin",
                {
                    "200": _ok("The updated user.", _object({"user": _ref("FullUser")})),
                    "404": _NOT_FOUND_USER,
                    "409": _LAST_ADMIN,
                    **_admin_errors(write=True),
                },
                security=_WRITE,
                parameters=[_USER_ID],
            )
        },
        "/api/admin/users/{user_id}/enable": {
            "post": _operation(
                "enableUser",
                "Admin: let a disabled user log in again.",
                "admin",
                {
                    "200": _ok("The updated user.", _object({"user": _ref("FullUser")})),
                    "404": _NOT_FOUND_USER,
                    **_admin_errors(write=True),
                },
                security=_WRITE,
                parameters=[_USER_ID],
            )
        },
        "/api/admin/users/{user_id}/sessions": {
            "delete": _operation(
                "revokeUserSessions",
                "Admin: log a user out everywhere (sessions, token families, remember-me).",
                "admin",
                {"204": _ok("Revoked."), "404": _NOT_FOUND_USER, **_admin_errors(write=True)},
                security=_WRITE,
                parameters=[_USER_ID],
            )
        },
        "/api/admin/users/{user_id}/2fa": {
            "delete": _operation(
                "resetUserFactors",
                "Admin: remove a user's second factors and recovery codes; their sessions end.",
                "admin",
                {"204": _ok("Reset."), "404": _NOT_FOUND_USER, **_admin_errors(write=True)},
                security=_WRITE,
                parameters=[_USER_ID],
            )
        },
        "/api/admin/sessions": {
            "get": _operation(
                "listAllSessions",
                "Admin: live sessions of all users, most recently seen first.",
                "admin",
                {
                    "200": _ok("Sessions.", _object({"sessions": _list("AdminDevice")})),
                    **_admin_errors(write=False),
                },
                security=_READ,
            )
        },
        "/api/admin/audit": {
            "get": _operation(
                "listAuditEvents",
                "Admin: the audit log, newest first, paged.",
                "admin",
                {
                    "200": _ok("A page of events.", _page("events", "AuditEvent")),
                    "400": _INVALID,
                    **_admin_errors(write=False),
                },
                security=_READ,
                parameters=[*_PAGE, _query_int("user_id", "Only this user's events.")],
            )
        },
    }


_CODE: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": 64,
    "description": "A 6-digit TOTP code or a recovery code.",
}
_CREDENTIAL: Schema = {
    "type": "object",
    "description": "What PublicKeyCredential.toJSON() gives in the browser.",
}
_FACTOR_ID = {"name": "factor_id", "in": "path", "required": True, "schema": {**_INT, "minimum": 1}}
_RECOVERY_CODES: Schema = {"type": "array", "items": _STR, "minItems": 10, "maxItems": 10}
#: Who may manage factors: a session, a bearer token, or a login pending enrolment.
_FACTOR_OWNER = [_SESSION_CSRF, _BEARER]
_OPTIONS: Schema = {
    "type": "object",
    "description": "WebAuthn options for PublicKeyCredential.parse*OptionsFromJSON().",
}


def _factor_paths() -> dict[str, Schema]:
    login_reply = _object({"user": _ref("User"), "csrf_token": _STR})
    no_factor = _error("You have no second factor with that ID.", "not_found")
    return {
        "/api/login/second-factor": {
            "post": _operation(
                "completeSecondFactor",
                "The second step of a login: a TOTP code, a recovery code or a WebAuthn "
                "credential. A new session ID, aal 2, and remember-me if the first step "
                "asked for it.",
                "second factors",
                {
                    "200": _ok("Logged in.", login_reply),
                    "400": _INVALID,
                    "401": _INVALID_CODE,
                    "429": _THROTTLED,
                    **_write_errors(login=False),
                },
                security=[_SESSION_CSRF],
                body=_body(
                    {"method": {"enum": ["totp", "recovery", "webauthn"]}},
                    {"code": _CODE, "credential": _CREDENTIAL},
                ),
            )
        },
        "/api/reauth": {
            "post": _operation(
                "reauthenticate",
                "Step up: confirm who you are with the password, a code or a WebAuthn "
                "credential. authenticated_at is renewed and the session ID rotates.",
                "second factors",
                {
                    "204": _ok("Confirmed."),
                    "400": _INVALID,
                    "401": _error(
                        "Not logged in, or the password, code or credential is wrong.",
                        "unauthenticated",
                        "second_factor_required",
                        "second_factor_enrolment_required",
                        "invalid_credentials",
                        "invalid_code",
                    ),
                    "429": _THROTTLED,
                    **_write_errors(login=False),
                },
                security=_WRITE,
                body=_body(
                    {},
                    {
                        "password": _TEXT,
                        "method": {"enum": ["totp", "recovery", "webauthn"]},
                        "code": _CODE,
                        "credential": _CREDENTIAL,
                    },
                ),
            )
        },
        "/api/2fa": {
            "get": _operation(
                "listFactors",
                "My second factors and how many recovery codes are left.",
                "second factors",
                {
                    "200": _ok(
                        "Oldest first.",
                        _object({"factors": _list("Factor"), "recovery_codes_left": _INT}),
                    ),
                    "401": _UNAUTHENTICATED,
                    "503": _UNAVAILABLE,
                },
                security=_READ,
            )
        },
        "/api/2fa/totp": {
            "post": _operation(
                "beginTotp",
                "Start a TOTP factor (step-up): its secret, otpauth:// URI and QR code. "
                "It counts once confirmed.",
                "second factors",
                {
                    "200": _ok(
                        "The new secret; never cached.",
                        _object({"id": _INT, "secret": _STR, "otpauth_uri": _STR, "qr_svg": _STR}),
                    ),
                    "400": _INVALID,
                    **_write_errors(),
                    "401": _STEP_UP,
                },
                security=_FACTOR_OWNER,
                body={**_body({}, {"name": {**_STR, "maxLength": 64}}), "required": False},
            )
        },
        "/api/2fa/totp/{factor_id}/confirm": {
            "post": _operation(
                "confirmTotp",
                "Confirm a TOTP factor with one code; the first factor brings recovery codes.",
                "second factors",
                {
                    "200": _ok(
                        "Confirmed; recovery codes are shown only now.",
                        _object(
                            {"factor": {"oneOf": [_ref("Factor"), {"type": "null"}]}},
                            {"recovery_codes": _RECOVERY_CODES, "csrf_token": _STR},
                        ),
                    ),
                    "400": _INVALID,
                    "404": _error("The ID is not a positive whole number.", "not_found"),
                    "429": _THROTTLED,
                    **_write_errors(),
                    "401": _INVALID_CODE,
                },
                security=_FACTOR_OWNER,
                parameters=[_FACTOR_ID],
                body=_body({"code": _CODE}),
            )
        },
        "/api/2fa/{factor_id}": {
            "patch": _operation(
                "renameFactor",
                "Rename one of my factors.",
                "second factors",
                {
                    "200": _ok("Renamed.", _object({"factor": _ref("Factor")})),
                    "400": _INVALID,
                    "404": no_factor,
                    **_write_errors(),
                },
                security=_FACTOR_OWNER,
                parameters=[_FACTOR_ID],
                body=_body({"name": {**_TEXT, "maxLength": 64}}),
            ),
            "delete": _operation(
                "removeFactor",
                "Remove one of my factors (step-up); the last takes the recovery codes.",
                "second factors",
                {"204": _ok("Removed."), "404": no_factor, **_write_errors(), "401": _STEP_UP},
                security=_FACTOR_OWNER,
                parameters=[_FACTOR_ID],
            ),
        },
        "/api/2fa/recovery-codes": {
            "post": _operation(
                "newRecoveryCodes",
                "A new set of 10 recovery codes (step-up); the old set stops working.",
                "second factors",
                {
                    "200": _ok(
                        "Shown only now; never cached.",
                        _object({"recovery_codes": _RECOVERY_CODES}),
                    ),
                    "409": _error("You have no second factor yet.", "no_second_factor"),
                    **_write_errors(),
                    "401": _STEP_UP,
                },
                security=_FACTOR_OWNER,
            )
        },
    }


_MAIL_TOKEN: Schema = {**_TEXT, "maxLength": 128, "description": "The secret of a mail link."}
_MESSAGE = _object({"message": _STR})
_INVALID_LINK = _error(
    "The link is unknown, used already, expired, or its password changed since.",
    "invalid_token",
    "invalid",
)
_MAIL_STATUS = {"enum": ["pending", "sending", "sent", "failed", "dropped"]}
_MAIL = {
    "id": _INT,
    "status": _MAIL_STATUS,
    "kind": _STR,
    "to": _NULLABLE_STR,
    "subject": _NULLABLE_STR,
    "created_at": _TIME,
    "sent_at": _NULLABLE_TIME,
    "attempts": _INT,
    "last_error": _NULLABLE_STR,
}


def _mail_paths() -> dict[str, Schema]:
    anonymous = [{}, _ANONYMOUS_CSRF, _SESSION_CSRF]
    return {
        "/api/password/forgot": {
            "post": _operation(
                "forgotPassword",
                "Ask for a password reset link by username or address: the same answer for "
                "every login; a mail goes only to an account's own address (3 an hour).",
                "recovery",
                {
                    "202": _ok("Accepted (whatever the login).", _MESSAGE),
                    "400": _INVALID,
                    "429": _THROTTLED,
                    **_write_errors(login=False),
                },
                security=anonymous,
                body=_body({"login": {**_TEXT, "maxLength": 256}}),
            )
        },
        "/api/password/reset": {
            "post": _operation(
                "resetPassword",
                "Set a new password with a reset link (single use, 30 minutes); every "
                "session, remember-me cookie and token family of the user ends.",
                "recovery",
                {
                    "204": _ok("Changed; log in with the new password."),
                    "400": _error(
                        "Malformed, the policy refuses the password, or the link is "
                        "unknown, used or expired.",
                        "invalid",
                        "weak_password",
                        "invalid_token",
                    ),
                    **_write_errors(login=False),
                },
                security=anonymous,
                body=_body({"token": _MAIL_TOKEN, "new_password": _NEW_PASSWORD}),
            )
        },
        "/api/email/verify": {
            "post": _operation(
                "resendVerification",
                "Mail the link confirming my address again.",
                "recovery",
                {
                    "202": _ok("On its way.", _MESSAGE),
                    "409": _error(
                        "No address, or verified already.", "no_email", "already_verified"
                    ),
                    **_write_errors(),
                },
                security=_WRITE,
            )
        },
        "/api/email/verify/confirm": {
            "post": _operation(
                "confirmEmail",
                "Confirm an address with the link's secret; a new address becomes the "
                "account's now, and the old one is told.",
                "recovery",
                {"204": _ok("Confirmed."), "400": _INVALID_LINK, **_write_errors(login=False)},
                security=anonymous,
                body=_body({"token": _MAIL_TOKEN}),
            )
        },
        "/api/email": {
            "post": _operation(
                "changeEmail",
                "Change my address (step-up): it applies once the new address confirms.",
                "recovery",
                {
                    "202": _ok("A link went to the new address.", _MESSAGE),
                    "400": _INVALID,
                    **_write_errors(),
                    "401": _STEP_UP,
                },
                security=_WRITE,
                body=_body({"email": {**_TEXT, "maxLength": 254}}),
            )
        },
        "/api/account/notices": {
            "post": _operation(
                "setNotices",
                "Turn the mail about logins from a new device on or off.",
                "recovery",
                {
                    "200": _ok("The setting now.", _object({"new_device": _BOOL})),
                    "400": _INVALID,
                    **_write_errors(),
                },
                security=_WRITE,
                body=_body({"new_device": _BOOL}),
            )
        },
        "/api/admin/mail": {
            "get": _operation(
                "listMail",
                "Admin: the outbox (the development mailbox without a mail server), "
                "newest first, with the count of each status.",
                "admin",
                {
                    "200": _ok(
                        "A page of mails.",
                        _object(
                            {
                                "mails": {"type": "array", "items": _object(_MAIL)},
                                "total": _INT,
                                "offset": _INT,
                                "limit": _INT,
                                "counts": {"type": "object", "additionalProperties": _INT},
                            }
                        ),
                    ),
                    "400": _INVALID,
                    **_admin_errors(write=False),
                },
                security=_READ,
                parameters=[
                    *_PAGE,
                    {
                        "name": "status",
                        "in": "query",
                        "required": False,
                        "schema": _MAIL_STATUS,
                    },
                ],
            )
        },
        "/api/admin/mail/{mail_id}": {
            "get": _operation(
                "showMail",
                "Admin: one mail with its bodies; never cached (it may hold a one-time link).",
                "admin",
                {
                    "200": _ok(
                        "The mail.",
                        _object(
                            {
                                **_MAIL,
                                "message_id": _STR,
                                "text_body": _NULLABLE_STR,
                                "html_body": _NULLABLE_STR,
                            }
                        ),
                    ),
                    "404": _error("No mail has this ID.", "not_found"),
                    **_admin_errors(write=False),
                },
                security=_READ,
                parameters=[
                    {
                        "name": "mail_id",
                        "in": "path",
                        "required": True,
                        "schema": {**_INT, "minimum": 1},
                    }
                ],
            )
        },
    }


def _webauthn_paths() -> dict[str, Schema]:
    errors = {"400": _INVALID, "429": _THROTTLED, **_write_errors(login=False)}

    def options(operation_id: str, summary: str, security: list[Requirement]) -> Schema:
        return {
            "post": _operation(
                operation_id,
                summary,
                "second factors",
                {"200": _ok("The options.", _OPTIONS), **errors, "401": _INVALID_CODE},
                security=security,
            )
        }

    credential = _body({"credential": _CREDENTIAL})
    return {
        "/api/webauthn/register/begin": {
            "post": _operation(
                "beginWebauthnRegistration",
                "Start registering a security key (second factor) or a passkey (step-up).",
                "second factors",
                {"200": _ok("Creation options.", _OPTIONS), **errors, "401": _STEP_UP},
                security=_FACTOR_OWNER,
                body=_body({"name": {**_TEXT, "maxLength": 64}}, {"passkey": _BOOL}),
            )
        },
        "/api/webauthn/register/finish": {
            "post": _operation(
                "finishWebauthnRegistration",
                "Register the credential the browser made.",
                "second factors",
                {
                    "201": _ok(
                        "Registered.",
                        _object(
                            {"factor": _ref("Factor")},
                            {"recovery_codes": _RECOVERY_CODES, "csrf_token": _STR},
                        ),
                    ),
                    **errors,
                    "401": _INVALID_CODE,
                },
                security=_FACTOR_OWNER,
                body=credential,
            )
        },
        "/api/webauthn/login/begin": {
            "post": _operation(
                "beginPasskeyLogin",
                "Options for a passwordless login with a passkey (username optional).",
                "second factors",
                {"200": _ok("Request options.", _OPTIONS), **errors},
                security=[_ANONYMOUS_CSRF, _SESSION_CSRF],
                body={**_body({}, {"username": _STR}), "required": False},
            )
        },
        "/api/webauthn/login/finish": {
            "post": _operation(
                "finishPasskeyLogin",
                "Log in with a passkey alone: aal 2, amr passkey.",
                "second factors",
                {
                    "200": _ok("Logged in.", _object({"user": _ref("User"), "csrf_token": _STR})),
                    **errors,
                    "401": _INVALID_CODE,
                },
                security=[_ANONYMOUS_CSRF, _SESSION_CSRF],
                body=credential,
            )
        },
        "/api/login/second-factor/webauthn": options(
            "beginWebauthnSecondFactor",
            "Options for the second step of a login with a security key or passkey.",
            [_SESSION_CSRF],
        ),
        "/api/reauth/webauthn": options(
            "beginWebauthnReauth",
            "Options for a step-up with a security key or passkey.",
            [_SESSION_CSRF],
        ),
    }


def _authz_paths() -> dict[str, Schema]:
    """Forward auth (SPEC §10): every method a proxy may ask with, one answer."""

    def header(name: str, description: str) -> Schema:
        return {
            "name": name,
            "in": "header",
            "required": False,
            "description": description,
            "schema": _STR,
        }

    identity = {
        name: {"required": False, "schema": _STR}
        for name in ("Remote-User", "Remote-Groups", "Remote-Email", "Remote-Name")
    }
    location = {
        "Location": {"description": "PUBLIC_URL/login?rd=... or /reauth?rd=...", "schema": _STR}
    }
    allowed = _ok(
        "Allowed. For a logged-in user, who it is (roles comma-separated; no headers "
        "on a bypass rule).",
        headers=identity,
    )
    refused = {
        "400": _error(
            "The original-URL headers are missing, repeated or malformed, or the request "
            "did not come from a proxy COATCHECK_TRUSTED_PROXIES believes.",
            "invalid",
        ),
        "403": _error("Logged in, or not, but the access rules deny it.", "forbidden"),
        "503": _UNAVAILABLE,
    }
    kinds = {
        "/api/authz/auth-request": (
            "AuthRequest",
            "Forward auth for nginx auth_request: 401 with Location to the portal when the "
            "user must log in or step up.",
            [
                header("X-Original-URL", "The original absolute URL."),
                header("X-Original-Method", "The original method (default: this one)."),
            ],
            {
                "401": _error(
                    "Log in (or step up) at the portal first: see Location.",
                    "unauthenticated",
                    "second_factor_required",
                    headers=location,
                )
            },
        ),
        "/api/authz/forward-auth": (
            "ForwardAuth",
            "Forward auth for Caddy forward_auth and Traefik forwardAuth: a redirect to the "
            "portal for browsers (302, 303 for unsafe methods), 401 for other clients.",
            [
                header("X-Forwarded-Method", "The original method (default: this one)."),
                header("X-Forwarded-Proto", "http or https."),
                header("X-Forwarded-Host", "The original Host, port included."),
                header("X-Forwarded-URI", "The original path and query."),
            ],
            {
                "302": {"description": "Log in or step up at the portal.", "headers": location},
                "303": {"description": "The same, for an unsafe method.", "headers": location},
                "401": _error(
                    "Log in (or step up) at the portal first: see Location.",
                    "unauthenticated",
                    "second_factor_required",
                    headers=location,
                ),
            },
        ),
    }
    paths: dict[str, Schema] = {}
    for path, (name, summary, parameters, redirects) in kinds.items():
        paths[path] = {
            method: _operation(
                f"{method}{name}",
                summary,
                "forward auth",
                {"200": allowed, **refused, **redirects},
                security=[{}, *_READ],
                parameters=parameters,
            )
            for method in ("get", "post", "put", "patch", "delete")
        }
    return paths


def _ops_paths(*, metrics: bool) -> dict[str, Schema]:
    def get(operation_id: str, summary: str, responses: dict[str, Schema], **kw: Any) -> Schema:
        return {"get": _operation(operation_id, summary, "operations", responses, **kw)}

    paths = {
        "/api/inspect": get(
            "inspect",
            "What the browser sent and what the server keeps; cookie values masked.",
            {"200": _ok("The inspector's report.", _ref("Inspection")), "503": _UNAVAILABLE},
            security=[{}, _SESSION, _BEARER],
        ),
        "/auth/verify": get(
            "verify",
            "Forward auth for nginx auth_request and Traefik ForwardAuth.",
            {
                "200": _ok(
                    "Authenticated; who it is, in headers (roles comma-separated).",
                    headers={
                        name: {"required": True, "schema": _STR}
                        for name in ("X-Auth-User", "X-Auth-User-Id", "X-Auth-Roles")
                    },
                ),
                "401": _error("Not logged in.", "unauthenticated", html=True),
                "503": _UNAVAILABLE_OR_PAGE,
            },
            security=_READ,
        ),
        "/.well-known/jwks.json": get(
            "jwks",
            "The public keys of access tokens (EdDSA or RS256).",
            {
                "200": _ok(
                    "A JWK Set.", _object({"keys": {"type": "array", "items": {"type": "object"}}})
                ),
                "404": _error(
                    "Tokens are signed with a secret key (HS256).", "not_found", html=True
                ),
                "503": _UNAVAILABLE_OR_PAGE,
            },
        ),
        "/healthz": get(
            "healthz",
            "Liveness.",
            {
                "200": _ok("Alive.", _object({"status": {"const": "ok"}})),
                "503": _UNAVAILABLE_OR_PAGE,
            },
        ),
        "/readyz": get(
            "readyz",
            "Readiness: the session store and the user database answer.",
            {
                "200": _ok("Ready.", _ref("Readiness")),
                "503": {
                    "description": "A store is unavailable.",
                    "content": {
                        JSON: {"schema": {"anyOf": [_ref("Readiness"), _ref("Error")]}},
                        "text/html": {"schema": _STR},
                    },
                },
            },
        ),
        "/openapi.json": get(
            "openapi",
            "This document.",
            {"200": _ok("OpenAPI 3.1.", {"type": "object", "required": ["openapi", "paths"]})},
        ),
    }
    if metrics:
        paths["/metrics"] = get(
            "metrics",
            "Prometheus metrics (coatcheck serve --metrics), to the metrics bearer token.",
            {
                "200": {
                    "description": "The Prometheus text exposition format.",
                    "content": {"text/plain": {"schema": _STR}},
                },
                "401": _error(
                    "No bearer token was sent.",
                    "unauthenticated",
                    headers={"WWW-Authenticate": {"required": True, "schema": _STR}},
                ),
                "403": _error("The bearer token is not the metrics token.", "forbidden"),
                "503": _UNAVAILABLE_OR_PAGE,
            },
            security=[{"metricsToken": []}],
        )
    return paths


def _list(name: str) -> Schema:
    return {"type": "array", "items": _ref(name)}


def _page(key: str, item: str) -> Schema:
    return _object({key: _list(item), "total": _INT, "offset": _INT, "limit": _INT})


_ASSURANCE: dict[str, Schema] = {
    "aal": {
        "enum": [1, 2],
        "description": "Authenticator assurance level: 1 a password, 2 a second factor or passkey.",
    },
    "amr": {
        "type": "array",
        "items": {"enum": ["pwd", "otp", "recovery", "webauthn", "passkey"]},
        "description": "The authentication methods used, in order.",
    },
    "authenticated_at": {
        **_TIME,
        "description": "The last password, factor or step-up check (not renewed by a "
        "remember-me login or a token refresh).",
    },
}
_DEVICE = {
    "handle": _STR,
    "kind": {**_STR, "description": "session, token (a token family) or remember"},
    "created_at": _TIME,
    "last_seen_at": _TIME,
    "expires_at": _TIME,
    "ip": _NULLABLE_STR,
    "user_agent": _NULLABLE_STR,
    "current": _BOOL,
    **_ASSURANCE,
}
_USER = {"id": _INT, "username": _STR, "roles": _ROLES}


def _inspection() -> Schema:
    cookie = _object(
        {
            "name": _STR,
            "value": {
                **_STR,
                "description": "Masked (a few characters and the length) for every cookie "
                "but the lessons' demo cookies (mouse, flavour, username, lesson-session).",
            },
            "masked": _BOOL,
            "size": _INT,
            "percent": {"type": "number"},
            "over_limit": _BOOL,
            "duplicate": _BOOL,
            "coatcheck": {
                "type": ["string", "null"],
                "enum": ["session", "remember", "csrf", None],
            },
        }
    )
    attribute = _object({"attribute": _STR, "meaning": _STR})
    own_cookie = _object(
        {
            "name": _STR,
            "role": {"enum": ["session", "remember", "csrf"]},
            "purpose": _STR,
            "sent": _BOOL,
            "attributes": {"type": "array", "items": attribute},
        }
    )
    user = {
        "oneOf": [
            {"type": "null"},
            _object({"id": {"type": ["integer", "string"]}, "username": _STR, "roles": _ROLES}),
        ]
    }
    session = _object(
        {
            "stored": _BOOL,
            "handle": _NULLABLE_STR,
            "created_at": _NULLABLE_TIME,
            "last_seen_at": _NULLABLE_TIME,
            "expires_at": _NULLABLE_TIME,
            "permanent": _BOOL,
            "user": user,
            "assurance": {"oneOf": [{"type": "null"}, _object(_ASSURANCE)]},
            "data": {"type": "object"},
        }
    )
    return _object(
        {
            "cookie_limit": _INT,
            "cookie_count": _INT,
            "header_size": _INT,
            "cookies": {"type": "array", "items": cookie},
            "cookies_not_shown": _INT,
            "coatcheck_cookies": {"type": "array", "items": own_cookie},
            "session": session,
        }
    )


def _schemas() -> dict[str, Schema]:
    return {
        "Error": {
            **_object({"error": _STR, "message": _STR}),
            "description": "Every error of the API: a stable code and a human message.",
        },
        "User": _object(_USER),
        "FullUser": _object(
            {**_USER, "email": _NULLABLE_STR, "created_at": _TIME, "disabled": _BOOL},
            {"factors": {"type": "array", "items": {"enum": ["totp", "webauthn", "passkey"]}}},
        ),
        "PendingLogin": _object(
            {"methods": {"type": "array", "items": {"enum": ["totp", "recovery", "webauthn"]}}},
            {
                "second_factor_required": {"const": True},
                "second_factor_enrolment_required": {"const": True},
                "csrf_token": _STR,
            },
        ),
        "Factor": _object(
            {
                "id": _INT,
                "type": {"enum": ["totp", "webauthn"]},
                "name": _STR,
                "passkey": _BOOL,
                "created_at": _TIME,
                "last_used_at": _NULLABLE_TIME,
            }
        ),
        "Me": _object(
            {
                "user": _object(
                    {**_USER, "id": {"type": ["integer", "string"]}},
                    {"email": _NULLABLE_STR, "email_verified": _BOOL},
                ),
                "session": _object(
                    {"handle": _STR},
                    {
                        "created_at": _TIME,
                        "last_seen_at": _TIME,
                        "expires_at": _TIME,
                        **_ASSURANCE,
                    },
                ),
            }
        ),
        "Device": _object(_DEVICE),
        "AdminDevice": _object({**_DEVICE, "user_id": _NULLABLE_STR}),
        "TokenPair": _object(
            {
                "access_token": {**_STR, "description": "A JWT; send it as Authorization: Bearer."},
                "token_type": {"const": "Bearer"},
                "expires_in": {**_INT, "description": "Seconds the access token is valid."},
                "refresh_token": {**_STR, "description": "Works once; store it safely."},
            }
        ),
        "AuditEvent": _object(
            {
                "id": _INT,
                "at": _TIME,
                "event": _STR,
                "user_id": {"type": ["integer", "null"]},
                "username": _NULLABLE_STR,
                "ip": _NULLABLE_STR,
                "user_agent": _NULLABLE_STR,
                "session_handle": _NULLABLE_STR,
                "detail": {"type": ["object", "null"]},
            }
        ),
        "Readiness": _object(
            {
                "status": {"enum": ["ready", "unavailable"]},
                "checks": _object(
                    {name: {"enum": ["ok", "unavailable"]} for name in ("sessions", "users")}
                ),
            }
        ),
        "Inspection": _inspection(),
    }


def _security_schemes(session_cookie: str, csrf_cookie: str, *, metrics: bool) -> Schema:
    schemes: Schema = {
        "sessionCookie": {
            "type": "apiKey",
            "in": "cookie",
            "name": session_cookie,
            "description": "The session cookie set by login or register.",
        },
        "csrfToken": {
            "type": "apiKey",
            "in": "header",
            "name": "X-CSRF-Token",
            "description": "Needed on every unsafe request that carries cookies: GET /api/csrf "
            "gives one. Login rotates the session: fetch a fresh token after it.",
        },
        "csrfCookie": {
            "type": "apiKey",
            "in": "cookie",
            "name": csrf_cookie,
            "description": "The signed double-submit cookie GET /api/csrf gives an anonymous "
            "client, which the CSRF token of its login or register is checked against.",
        },
        "bearerAuth": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "An access token from POST /api/token. Requests with a bearer "
            "token and no cookie need no CSRF token.",
        },
    }
    if metrics:
        schemes["metricsToken"] = {
            "type": "http",
            "scheme": "bearer",
            "description": "COATCHECK_METRICS_TOKEN, or the token generated into "
            "<instance>/metrics_token.",
        }
    return schemes


_DESCRIPTION = """\
coatcheck's JSON API. Every error is `{"error": code, "message": text}`.

Unsafe requests (POST, PUT, PATCH, DELETE) that carry cookies, and login and
register, need a CSRF token in `X-CSRF-Token` (or form field `csrf_token`):
GET /api/csrf gives one. Requests with `Authorization: Bearer` and no cookie
need none. Any other method on a described path gets 405 (with `Allow`), any
other path under /api/ gets 404, both in the error shape. A request with a
session cookie while the session store is unreachable gets 503."""


def build_document(
    *,
    session_cookie: str = "__Host-session",
    csrf_cookie: str = "__Host-csrf",
    metrics: bool = False,
) -> dict[str, Any]:
    """Return the OpenAPI document of the JSON API.

    :param session_cookie: the session cookie's name, as configured.
    :param csrf_cookie: the name of the anonymous double-submit CSRF cookie.
    :param metrics: describe ``/metrics`` (only served with metrics on).
    """
    try:
        version = metadata.version("coatcheck")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        version = "0+unknown"
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": "coatcheck",
            "version": version,
            "description": _DESCRIPTION,
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "tags": [
            {"name": name}
            for name in (
                "auth",
                "second factors",
                "recovery",
                "account",
                "tokens",
                "admin",
                "operations",
                "forward auth",
            )
        ],
        "paths": {
            **_auth_paths(),
            **_session_paths(),
            **_token_paths(),
            **_admin_paths(),
            **_factor_paths(),
            **_mail_paths(),
            **_webauthn_paths(),
            **_ops_paths(metrics=metrics),
            **_authz_paths(),
        },
        "components": {
            "schemas": _schemas(),
            "responses": _RESPONSES,
            "headers": {
                "RetryAfter": {
                    "description": "Seconds to wait before trying again.",
                    "required": True,
                    "schema": {"type": "integer", "minimum": 0},
                }
            },
            "securitySchemes": _security_schemes(session_cookie, csrf_cookie, metrics=metrics),
        },
    }
    # A deep copy: the tables above are shared by many operations and must not change.
    copied: dict[str, Any] = json.loads(json.dumps(document))
    return copied


@functools.cache
def _document_text(session_cookie: str, csrf_cookie: str, metrics: bool) -> str:
    return json.dumps(
        build_document(session_cookie=session_cookie, csrf_cookie=csrf_cookie, metrics=metrics)
    )


@blueprint.get("/openapi.json")
def document() -> Response:
    """Return the OpenAPI description of this application's JSON API."""
    settings = CoatCheck.state().settings
    text = _document_text(
        settings.session_cookie_name,
        cookie_name(settings, "csrf"),
        bool(current_app.config.get("COATCHECK_METRICS")),
    )
    response = Response(text, mimetype=JSON)
    response.headers["Cache-Control"] = "public, max-age=300"
    return response

"""The JSON API of SPEC section 5. Every error is ``{"error": code, "message": text}``."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, jsonify, request

from ..auth.admins import ensure_an_admin_remains
from ..auth.devices import DeviceSession, assurance_json
from ..auth.emails import MAX_LOGIN, InvalidMailToken
from ..auth.factors import (
    MAX_CODE,
    RECOVERY_METHOD,
    TOTP_METHOD,
    WEBAUTHN_METHOD,
    factor_json,
)
from ..auth.pending import SECOND_FACTOR, PendingLogin
from ..core.errors import CoatcheckError, LastAdmin, SecondFactorRequired
from ..ext import (
    CoatCheck,
    all_sessions,
    authenticate,
    change_password,
    csrf_exempt,
    csrf_exempt_without_cookies,
    csrf_token,
    current_session,
    disable_user,
    enable_user,
    get_current_user,
    iso_time,
    issue_tokens,
    list_sessions,
    login_required,
    logout_user,
    refresh_tokens,
    register_user,
    revoke_all_sessions,
    revoke_other_sessions,
    revoke_session,
    revoke_token,
    roles_required,
    session_assurance,
    set_user_roles,
)
from ..ext.errors import error_response
from ..ext.factors import (
    check_second_factor,
    complete_login,
    factor_owner,
    finish_enrolment,
    reauth_required,
    reauthenticate,
    reauthenticate_with_code,
    reauthenticate_with_password,
    require_pending,
    require_recent_authentication,
    start_login,
)
from ..ext.login import allow_unverified_email, refuse_anonymous
from ..ext.mail import confirm_email, request_password_reset, reset_password, send_verification
from ..ext.session import request_client
from ..users import InvalidEmail
from ..users.validation import validate_email

blueprint = Blueprint("api", __name__, url_prefix="/api")
MAX_PAGE = 200
RESET_REQUESTED = (
    "If that account exists and has an e-mail address, a link to choose a new password "
    "is on its way. It works for 30 minutes."
)
INVALID_LINK = "This link is unknown, used already or expired. Ask for a new one."
MAX_OFFSET = 2**31 - 1


class InvalidRequest(CoatcheckError):
    """A request body or parameter that is malformed."""


@blueprint.errorhandler(InvalidRequest)
def _invalid(exc: InvalidRequest) -> Response:
    return error_response(400, "invalid", str(exc))


def json_body() -> dict[str, Any]:
    """Return the request's JSON object, or raise :class:`InvalidRequest`."""
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # nested deeper than the parser goes; silent only covers ValueError
        body = None
    if not isinstance(body, dict):
        raise InvalidRequest("The body must be a JSON object (Content-Type: application/json).")
    return body


def text_field(body: dict[str, Any], name: str) -> str:
    """Return a non-empty string field of ``body``, or raise :class:`InvalidRequest`."""
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"{name} must be a non-empty string.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest(f"{name} must be valid Unicode text.") from None
    return value


def optional_text(body: dict[str, Any], name: str) -> str | None:
    """Return a string field of ``body``, ``None`` when absent, null or empty."""
    if body.get(name) in (None, ""):
        return None
    return text_field(body, name)


def page_args() -> tuple[int, int]:
    """Return ``offset`` and ``limit`` from the query string (validated)."""
    try:
        offset = int(request.args.get("offset", 0))
        limit = int(request.args.get("limit", 50))
    except ValueError:
        raise InvalidRequest("offset and limit must be whole numbers.") from None
    if not 0 <= offset <= MAX_OFFSET or not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest(
            f"offset must be between 0 and {MAX_OFFSET} and limit between 1 and {MAX_PAGE}."
        )
    return offset, limit


def user_json(user: Any, *, full: bool = False) -> dict[str, Any]:
    """Return the API form of a user."""
    data: dict[str, Any] = {
        "id": user.id,
        "username": user.username,
        "roles": sorted(user.roles),
    }
    if full:
        data.update(
            email=user.email,
            created_at=user.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            disabled=user.disabled,
        )
    return data


@blueprint.get("/csrf")
def csrf() -> Response:
    return jsonify(csrf_token=csrf_token())


@blueprint.post("/register")
def register() -> tuple[Response, int]:
    body = json_body()
    username = text_field(body, "username")
    password = text_field(body, "password")
    email = optional_text(body, "email")
    user = register_user(username, password, email=email)
    send_verification(user)  # when there is an address
    pending = start_login(user)
    if pending is not None:  # the policy wants a second factor: enrolment first
        return jsonify({**pending_json(pending), "csrf_token": csrf_token()}), 201
    # The login made a new CSRF secret: the token for the next unsafe request.
    return jsonify(user=user_json(user), csrf_token=csrf_token()), 201


@blueprint.post("/login")
def login() -> Response:
    body = json_body()
    username = text_field(body, "username")
    password = text_field(body, "password")
    remember = body.get("remember", False)
    if not isinstance(remember, bool):
        raise InvalidRequest("remember must be true or false.")
    user = authenticate(username, password)
    pending = start_login(user, remember=remember)
    if pending is not None:
        return jsonify({**pending_json(pending), "csrf_token": csrf_token()})
    # The login made a new CSRF secret: the token for the next unsafe request.
    return jsonify(user=user_json(user), csrf_token=csrf_token())


def pending_json(pending: PendingLogin) -> dict[str, Any]:
    """Return what a login waiting for its next step answers (SPEC §8)."""
    if pending.stage == SECOND_FACTOR:
        return {"second_factor_required": True, "methods": list(pending.allowed)}
    return {"second_factor_enrolment_required": True, "methods": [TOTP_METHOD, WEBAUTHN_METHOD]}


@blueprint.post("/login/second-factor")
def login_second_factor() -> Response:
    body = json_body()
    method = body.get("method")
    if method not in (TOTP_METHOD, RECOVERY_METHOD, WEBAUTHN_METHOD):
        raise InvalidRequest("method must be totp, recovery or webauthn.")
    pending = require_pending(SECOND_FACTOR)
    if method == WEBAUTHN_METHOD:
        credential = credential_field(body)
        from ..ext.webauthn import verify_assertion

        verify_assertion("second_factor", credential, int(pending.user_id))
        user = complete_login(pending, "webauthn")
    else:
        user = check_second_factor(method, code_field(body))
    return jsonify(user=user_json(user), csrf_token=csrf_token())


def code_field(body: dict[str, Any]) -> str:
    """Return the ``code`` of ``body`` (a TOTP or recovery code); raise :class:`InvalidRequest`."""
    code = text_field(body, "code")
    if len(code) > MAX_CODE:
        raise InvalidRequest(f"code must be at most {MAX_CODE} characters.")
    return code


def credential_field(body: dict[str, Any]) -> dict[str, Any]:
    """Return the ``credential`` object of ``body`` (a WebAuthn response)."""
    credential = body.get("credential")
    if not isinstance(credential, dict):
        raise InvalidRequest("credential must be a JSON object (PublicKeyCredential.toJSON()).")
    return credential


@blueprint.post("/reauth")
def reauth() -> tuple[str, int]:
    body = json_body()
    if "password" in body:
        reauthenticate_with_password(text_field(body, "password"))
        return "", 204
    method = body.get("method")
    if method == WEBAUTHN_METHOD:
        credential = credential_field(body)
        user = get_current_user()
        if not user.is_authenticated:
            refuse_anonymous()
        from ..ext.webauthn import verify_assertion

        verify_assertion("reauth", credential, int(str(user.id)))
        reauthenticate("webauthn")  # a step-up asks for user verification only if available
        return "", 204
    if method not in (TOTP_METHOD, RECOVERY_METHOD):
        raise InvalidRequest("Send password, or method (totp, recovery or webauthn) with its code.")
    reauthenticate_with_code(method, code_field(body))
    return "", 204


@blueprint.get("/2fa")
def factors() -> Response:
    user_id, _ = factor_owner()
    found = CoatCheck.state()
    return jsonify(
        factors=[factor_json(f) for f in found.factors.factors(user_id)],
        recovery_codes_left=found.factors.recovery_codes_left(user_id),
    )


def _step_up_unless_enrolling() -> None:
    """Sensitive factor changes need a recent check, except while enrolling at login."""
    if get_current_user().is_authenticated:
        require_recent_authentication()


@blueprint.post("/2fa/totp")
def totp_begin() -> Response:
    user_id, username = factor_owner()
    _step_up_unless_enrolling()
    body = request.get_json(silent=True) or {}
    name = optional_text(body, "name") if isinstance(body, dict) else None
    try:
        enrolment = CoatCheck.state().factors.begin_totp(
            user_id, username, name or "Authenticator app"
        )
    except ValueError as exc:
        raise InvalidRequest(f"name: {exc}.") from None
    return _no_store(
        jsonify(
            id=enrolment.id,
            secret=enrolment.secret,
            otpauth_uri=enrolment.otpauth_uri,
            qr_svg=enrolment.qr_svg,
        )
    )


@blueprint.post("/2fa/totp/<int:factor_id>/confirm")
def totp_confirm(factor_id: int) -> Response:
    user_id, _ = factor_owner()
    code = code_field(json_body())
    found = CoatCheck.state()
    codes = found.factors.confirm_totp(user_id, factor_id, code, client=request_client())
    finish_enrolment("otp")
    factor = found.users.factors.get(user_id, factor_id)
    answer: dict[str, Any] = {"factor": factor_json(factor) if factor is not None else None}
    if codes:
        answer["recovery_codes"] = codes
    answer["csrf_token"] = csrf_token()
    return _no_store(jsonify(answer))


@blueprint.patch("/2fa/<int:factor_id>")
def factor_rename(factor_id: int) -> Response:
    user_id, _ = factor_owner()
    name = text_field(json_body(), "name")
    try:
        factor = CoatCheck.state().factors.rename(user_id, factor_id, name, client=request_client())
    except ValueError as exc:
        raise InvalidRequest(f"name: {exc}.") from None
    if factor is None:
        return error_response(404, "not_found", "You have no second factor with that ID.")
    return jsonify(factor=factor_json(factor))


@blueprint.delete("/2fa/<int:factor_id>")
def factor_remove(factor_id: int) -> tuple[str, int] | Response:
    user_id, _ = factor_owner()
    _step_up_unless_enrolling()
    if not CoatCheck.state().factors.remove(user_id, factor_id, client=request_client()):
        return error_response(404, "not_found", "You have no second factor with that ID.")
    return "", 204


@blueprint.post("/2fa/recovery-codes")
def recovery_codes() -> Response:
    user_id, _ = factor_owner()
    _step_up_unless_enrolling()
    found = CoatCheck.state()
    if not found.factors.factors(user_id):
        return error_response(
            409, "no_second_factor", "Set up a second factor first: recovery codes come with it."
        )
    codes = found.factors.new_recovery_codes(user_id, client=request_client())
    return _no_store(jsonify(recovery_codes=codes))


@blueprint.post("/logout")
def logout() -> tuple[str, int]:
    logout_user()
    return "", 204


@blueprint.get("/me")
@allow_unverified_email
@login_required
def me() -> Response:
    user = get_current_user()
    info: dict[str, Any] = {"handle": user.handle}
    session = current_session() if user.via == "session" else None
    record = session.record if session is not None else None
    times = record or next((d for d in list_sessions() if d.handle == user.handle), None)
    if times is not None:
        info.update(
            created_at=iso_time(times.created_at),
            last_seen_at=iso_time(times.last_seen_at),
            expires_at=iso_time(times.expires_at),
        )
    email: dict[str, Any] = {}
    if session is not None:
        info.update(assurance_json(session_assurance()))
        meta = session.peek_meta()
        email = {"email": meta.get("email"), "email_verified": bool(meta.get("email_verified"))}
    elif isinstance(times, DeviceSession):
        info.update(assurance_json(times.assurance))
    return jsonify(
        user={
            "id": _int_id(user.id),
            "username": user.username,
            "roles": list(user.roles),
            **email,
        },
        session=info,
    )


@blueprint.get("/sessions")
@login_required
def sessions() -> Response:
    return jsonify(sessions=[device.to_json() for device in list_sessions()])


@blueprint.delete("/sessions/<handle>")
@login_required
def revoke(handle: str) -> tuple[str, int] | Response:
    if not revoke_session(handle):
        return error_response(404, "not_found", "You have no session with that handle.")
    return "", 204


@blueprint.delete("/sessions")
@login_required
@reauth_required
def revoke_others() -> tuple[str, int]:
    revoke_other_sessions()
    return "", 204


@blueprint.post("/password")
@login_required
def password() -> tuple[str, int]:
    body = json_body()
    current = text_field(body, "current_password")
    new = text_field(body, "new_password")
    change_password(current, new)
    return "", 204


@blueprint.post("/password/forgot")
@csrf_exempt_without_cookies  # the secret is in the body; with cookies, checked
def password_forgot() -> tuple[Response, int]:
    login = text_field(json_body(), "login")
    if len(login) > MAX_LOGIN:
        raise InvalidRequest(f"login must be at most {MAX_LOGIN} characters.")
    request_password_reset(login)
    return jsonify(message=RESET_REQUESTED), 202


@blueprint.post("/password/reset")
@csrf_exempt_without_cookies  # the secret is in the body; with cookies, checked
def password_reset() -> tuple[str, int]:
    body = json_body()
    token = text_field(body, "token")
    new_password = text_field(body, "new_password")
    try:
        reset_password(token, new_password)
    except InvalidMailToken:
        return error_response(400, "invalid_token", INVALID_LINK), 400  # type: ignore[return-value]
    return "", 204


def _stored_user() -> Any:
    """Return the logged-in user as the user store has it now (404 if it has none)."""
    user = CoatCheck.state().users.get(_int_id(get_current_user().id) or 0)
    if user is None:
        abort(404)
    return user


@blueprint.post("/email/verify")
@allow_unverified_email
@login_required
def email_verify() -> tuple[Response, int] | Response:
    user = _stored_user()
    if not user.email:
        return error_response(409, "no_email", "Your account has no e-mail address to verify.")
    if user.email_verified:
        return error_response(409, "already_verified", "Your address is verified already.")
    send_verification(user)
    return jsonify(message=f"A link to confirm {user.email} is on its way."), 202


@blueprint.post("/email/verify/confirm")
@csrf_exempt_without_cookies  # the secret is in the body; with cookies, checked
def email_verify_confirm() -> tuple[str, int]:
    try:
        confirm_email(text_field(json_body(), "token"))
    except InvalidMailToken:
        return error_response(400, "invalid_token", INVALID_LINK), 400  # type: ignore[return-value]
    return "", 204


@blueprint.post("/email")
@allow_unverified_email
@login_required
@reauth_required
def email_change() -> tuple[Response, int]:
    address = text_field(json_body(), "email").strip()
    user = _stored_user()
    try:
        validate_email(address)
    except InvalidEmail as exc:
        raise InvalidRequest(f"email: {exc}.") from None
    send_verification(user, address)
    return jsonify(
        message=f"A link to confirm {address} is on its way; until then the "
        "address stays as it was."
    ), 202


@blueprint.post("/account/notices")
@login_required
def account_notices() -> Response:
    new_device = json_body().get("new_device")
    if not isinstance(new_device, bool):
        raise InvalidRequest("new_device must be true or false.")
    user = CoatCheck.state().users.set_notify_new_device(
        _int_id(get_current_user().id) or 0, new_device
    )
    return jsonify(new_device=user.notify_new_device)


@blueprint.post("/token")
@csrf_exempt  # sets no cookie; the credentials are in the body (SPEC section 3)
def token() -> Response:
    body = json_body()
    user = authenticate(text_field(body, "username"), text_field(body, "password"))
    found = CoatCheck.state()
    methods = found.factors.methods(user.id)
    if not methods:
        return _no_store(jsonify(issue_tokens(user)))
    if body.get("code") in (None, ""):
        raise SecondFactorRequired()
    code = code_field(body)
    method = body.get("method") or (TOTP_METHOD if code.strip().isdigit() else RECOVERY_METHOD)
    if method not in (TOTP_METHOD, RECOVERY_METHOD):
        raise InvalidRequest("method must be totp or recovery.")
    amr = found.factors.check(user.id, user.username, method, code, client=request_client())
    return _no_store(jsonify(issue_tokens(user, methods=("pwd", amr))))


@blueprint.post("/token/refresh")
@csrf_exempt  # sets no cookie; the refresh token is in the body (SPEC section 3)
def token_refresh() -> Response:
    return _no_store(jsonify(refresh_tokens(text_field(json_body(), "refresh_token"))))


@blueprint.post("/token/revoke")
@csrf_exempt_without_cookies
def token_revoke() -> tuple[str, int]:
    revoke_token(text_field(json_body(), "token"))
    return "", 204


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.get("/admin/users")
@roles_required("admin")
def admin_users() -> Response:
    offset, limit = page_args()
    users = CoatCheck.state().users
    page = users.list_users(offset=offset, limit=limit)
    kinds = users.factors.kinds(u.id for u in page)
    return jsonify(
        users=[user_json(u, full=True) | {"factors": kinds.get(u.id, [])} for u in page],
        total=users.count_users(),
        offset=offset,
        limit=limit,
    )


@blueprint.post("/admin/users/<int:user_id>/roles")
@roles_required("admin")
@reauth_required
def admin_roles(user_id: int) -> Response:
    roles = json_body().get("roles")
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise InvalidRequest("roles must be a list of strings.")
    if CoatCheck.state().users.get(user_id) is None:
        abort(404)
    ensure_an_admin_remains(CoatCheck.state(), user_id, roles=roles)
    try:
        user = set_user_roles(user_id, roles)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    return jsonify(user=user_json(user, full=True))


@blueprint.delete("/admin/users/<int:user_id>/sessions")
@roles_required("admin")
@reauth_required
def admin_revoke(user_id: int) -> tuple[str, int]:
    if CoatCheck.state().users.get(user_id) is None:
        abort(404)
    revoke_all_sessions(user_id)
    return "", 204


@blueprint.post("/admin/users/<int:user_id>/disable")
@roles_required("admin")
@reauth_required
def admin_disable(user_id: int) -> Response:
    found = CoatCheck.state()
    if found.users.get(user_id) is None:
        abort(404)
    ensure_an_admin_remains(found, user_id, disable=True)
    disable_user(user_id)
    return jsonify(user=user_json(found.users.get(user_id), full=True))


@blueprint.post("/admin/users/<int:user_id>/enable")
@roles_required("admin")
@reauth_required
def admin_enable(user_id: int) -> Response:
    found = CoatCheck.state()
    if found.users.get(user_id) is None:
        abort(404)
    enable_user(user_id)
    return jsonify(user=user_json(found.users.get(user_id), full=True))


@blueprint.delete("/admin/users/<int:user_id>/2fa")
@roles_required("admin")
@reauth_required
def admin_reset_factors(user_id: int) -> tuple[str, int]:
    found = CoatCheck.state()
    if found.users.get(user_id) is None:
        abort(404)
    found.factors.reset(user_id, client=request_client())
    return "", 204


@blueprint.errorhandler(LastAdmin)
def _last_admin(exc: LastAdmin) -> Response:
    return error_response(409, "last_admin", str(exc))


@blueprint.get("/admin/sessions")
@roles_required("admin")
def admin_sessions() -> Response:
    return jsonify(sessions=[d.to_json() | {"user_id": d.user_id} for d in all_sessions()])


@blueprint.get("/admin/audit")
@roles_required("admin")
def admin_audit() -> Response:
    offset, limit = page_args()
    user_id = request.args.get("user_id", type=int)
    users = CoatCheck.state().users
    events = users.list_events(user_id=user_id, offset=offset, limit=limit)
    return jsonify(
        events=[
            {
                "id": e.id,
                "at": e.at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "event": e.event,
                "user_id": e.user_id,
                "username": e.username,
                "ip": e.ip,
                "user_agent": e.user_agent,
                "session_handle": e.session_handle,
                "detail": e.detail,
            }
            for e in events
        ],
        total=users.count_events(user_id),
        offset=offset,
        limit=limit,
    )


def _int_id(value: object) -> int | None:
    if isinstance(value, int):
        return value
    return int(value) if isinstance(value, str) and value.isdigit() else None

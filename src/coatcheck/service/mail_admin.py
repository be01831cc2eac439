"""The outbox for admins (SPEC §9): ``/admin/mail`` and ``GET /api/admin/mail``.

Without a mail URL the outbox is the development mailbox: every mail the
service wrote is read here, links included. With one, this is where failed
mails show. Admin role only. A mail's HTML is shown in a sandboxed frame (no
script, no same origin) under the page's own CSP, and as escaped source.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, abort, jsonify, render_template, request
from flask.typing import ResponseReturnValue

from ..ext import CoatCheck, roles_required
from ..ext.errors import error_response
from ..users.outbox import STATUSES, OutboxMail, OutboxStore

blueprint = Blueprint("mail_admin", __name__, url_prefix="/admin/mail")
api_blueprint = Blueprint("mail_api", __name__, url_prefix="/api/admin/mail")

ADMIN_ROLE = "admin"
#: Mails per page of ``/admin/mail``; the API's default and largest ``limit``.
PAGE_SIZE = 50
MAX_LIMIT = 200
MAX_OFFSET = 2**31 - 1


def _outbox() -> OutboxStore:
    return CoatCheck.state().users.outbox


def _iso(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else None


def mail_json(mail: OutboxMail, *, bodies: bool = False) -> dict[str, Any]:
    """Return the API form of a mail; its bodies only when ``bodies``."""
    data: dict[str, Any] = {
        "id": mail.id,
        "status": mail.status,
        "kind": mail.kind,
        "to": mail.to_addr,
        "subject": mail.subject,
        "created_at": _iso(mail.created_at),
        "sent_at": _iso(mail.sent_at),
        "attempts": mail.attempts,
        "last_error": mail.last_error,
    }
    if bodies:
        data["message_id"] = mail.message_id
        data["text_body"] = mail.text_body
        data["html_body"] = mail.html_body
    return data


def _status_arg() -> str | None:
    status = request.args.get("status") or None
    if status is not None and status not in STATUSES:
        return ""
    return status


@api_blueprint.get("")
@roles_required(ADMIN_ROLE)
def api_list() -> Response:
    status = _status_arg()
    if status == "":
        return error_response(400, "invalid", f"status must be one of {', '.join(STATUSES)}.")
    try:
        offset = int(request.args.get("offset", 0))
        limit = int(request.args.get("limit", PAGE_SIZE))
    except ValueError:
        return error_response(400, "invalid", "offset and limit must be whole numbers.")
    if not 0 <= offset <= MAX_OFFSET or not 1 <= limit <= MAX_LIMIT:
        return error_response(
            400,
            "invalid",
            f"offset must be between 0 and {MAX_OFFSET} and limit between 1 and {MAX_LIMIT}.",
        )
    outbox = _outbox()
    mails = outbox.page(offset=offset, limit=limit, status=status)
    return jsonify(
        mails=[mail_json(mail) for mail in mails],
        total=outbox.count(status),
        offset=offset,
        limit=limit,
        counts=outbox.counts(),
    )


@api_blueprint.get("/<int:mail_id>")
@roles_required(ADMIN_ROLE)
def api_show(mail_id: int) -> Response:
    mail = _outbox().get(mail_id) if mail_id <= MAX_OFFSET else None
    if mail is None:
        return error_response(404, "not_found", f"There is no mail with ID {mail_id}.")
    response = jsonify(mail_json(mail, bodies=True))
    response.headers["Cache-Control"] = "no-store"  # a one-time link
    return response


@blueprint.get("")
@roles_required(ADMIN_ROLE)
def index() -> ResponseReturnValue:
    status = _status_arg() or None
    outbox = _outbox()
    total = outbox.count(status)
    pages = max(1, math.ceil(total / PAGE_SIZE))
    page = min(max(1, request.args.get("page", default=1, type=int) or 1), pages)
    return render_template(
        "admin_mail.html",
        mails=outbox.page(offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE, status=status),
        counts=outbox.counts(),
        statuses=STATUSES,
        status=status,
        total=total,
        page=page,
        pages=pages,
        development=not CoatCheck.state().settings.mail_url,
    )


@blueprint.get("/<int:mail_id>")
@roles_required(ADMIN_ROLE)
def show(mail_id: int) -> ResponseReturnValue:
    mail = _outbox().get(mail_id) if mail_id <= MAX_OFFSET else None
    if mail is None:
        abort(404)
    response = Response(render_template("admin_mail_show.html", mail=mail))
    response.headers["Cache-Control"] = "no-store"
    return response

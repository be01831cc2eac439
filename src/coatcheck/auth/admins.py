"""The last administrator stays one: no change may leave no active admin.

Disabling the only active admin, or taking the admin role from them, would
lock everyone out of the admin area and the admin API for good (only the
command line could repair it). The admin pages, the API and the command line
all check a change here before they make it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..core.errors import LastAdmin
from ..users.validation import MAX_PAGE

if TYPE_CHECKING:
    from .services import Services

ADMIN_ROLE = "admin"
_PAGE = MAX_PAGE


def ensure_an_admin_remains(
    services: Services, user_id: int, *, roles: Iterable[str] | None = None, disable: bool = False
) -> None:
    """Refuse to disable, or set ``roles`` on, the last active admin.

    :raise LastAdmin: when ``user_id`` is the only active user with the admin
        role and the change would take it away.
    """
    users = services.users
    user = users.get(user_id)
    if user is None or user.disabled or ADMIN_ROLE not in user.roles:
        return
    keeps = not disable and (roles is None or ADMIN_ROLE in {r.strip().lower() for r in roles})
    if keeps or _another_admin(services, user_id):
        return
    what = "be disabled" if disable else "lose the admin role"
    raise LastAdmin(
        f"{user.username} is the last active admin and cannot {what}; "
        "give another user the admin role first."
    )


def _another_admin(services: Services, user_id: int) -> bool:
    offset = 0
    while True:
        page = services.users.list_users(offset=offset, limit=_PAGE)
        if any(u.id != user_id and not u.disabled and ADMIN_ROLE in u.roles for u in page):
            return True
        if len(page) < _PAGE:
            return False
        offset += _PAGE

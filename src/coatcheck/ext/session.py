"""Server-side sessions behind Flask's own ``session`` object.

The cookie carries only the session ID. The record lives in the store under
the ID's hash. A request that changes nothing writes nothing (but a last-seen
touch at most once per ``touch_interval``); a request that changes keys saves
only those keys, so concurrent requests on one session keep each other's work.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from flask import Flask, Request, Response, request
from flask import session as flask_session
from flask.json.tag import TaggedJSONSerializer
from flask.sessions import SessionInterface, SessionMixin

from ..auth.client import Client
from ..auth.sessions import SessionWrite
from ..core.errors import CoatcheckError, SessionError, StoreUnavailable
from ..core.ids import new_handle
from ..core.records import SessionRecord
from .client import client_address, client_meta, client_user_agent
from .cookies import cookie_attributes, vary_on
from .errors import replace_response, store_unavailable_response

if TYPE_CHECKING:
    from ..auth.services import Services

log = logging.getLogger("coatcheck.session")
_serializer = TaggedJSONSerializer()
#: Where the request's session is kept for coatcheck's own hooks.
SESSION_ENVIRON_KEY = "coatcheck.session"
#: Meta keys that keep a session with no user and no data worth storing: a
#: pending login (SPEC §8) and a WebAuthn ceremony under way.
KEEPING_META = ("pending", "webauthn")


class ServerSession(SessionMixin):
    """The session of one request: a dict that remembers which keys changed."""

    def __init__(
        self,
        data: dict[str, Any] | None = None,
        *,
        record: SessionRecord | None = None,
        cookie_sent: bool = False,
    ) -> None:
        self._data: dict[str, Any] = dict(data or {})
        self._changed: set[str] = set()
        self._all_modified = False
        self.record = record
        #: The request carried a session cookie (valid or not).
        self.cookie_sent = cookie_sent
        #: The store failed while loading; the request fails closed.
        self.failure: StoreUnavailable | None = None
        self.accessed = False
        self.rotate_requested = False
        #: With rotation: start the absolute timeout anew (a login).
        self.rotate_fresh = False
        self.destroy_requested = False
        self._pending_handle: str | None = None
        self._user_id = record.user_id if record is not None else None
        self._meta: dict[str, Any] = dict(record.meta) if record is not None else {}
        self._meta_changed: set[str] = set()
        self._header_changed = False
        #: The ID a rotation stores the session under (default: a new random one).
        self.next_id: str | None = None
        #: Set the cookie to this ID of an already stored session (a remember-me replay).
        self.reissue_id: str | None = None

    def adopt(self, record: SessionRecord, session_id: str) -> None:
        """Become the stored session ``record`` (whose ID is ``session_id``) for this request.

        A remember-me cookie replayed within its grace window is answered with
        the session its first use logged in, never a session of its own.
        """
        self._data = {name: _serializer.loads(text) for name, text in record.data.items()}
        self._changed.clear()
        self._meta_changed.clear()
        self._all_modified = self._header_changed = False
        self.rotate_requested = self.rotate_fresh = self.destroy_requested = False
        self.record = record
        self._user_id = record.user_id
        self._meta = dict(record.meta)
        self.reissue_id = session_id

    # -- the mapping ------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        self.accessed = True
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.accessed = True
        self._data[key] = value
        self._changed.add(key)

    def __delitem__(self, key: str) -> None:
        self.accessed = True
        del self._data[key]
        self._changed.add(key)

    def __iter__(self) -> Iterator[str]:
        self.accessed = True
        return iter(self._data)

    def __len__(self) -> int:
        self.accessed = True
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        self.accessed = True
        return key in self._data

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._data!r}>"

    # -- state ------------------------------------------------------------

    @property
    def new(self) -> bool:  # type: ignore[override]
        """``True`` until the session has a stored record."""
        return self.record is None

    @property
    def modified(self) -> bool:
        """Whether this request changed the session.

        Set it to ``True`` after changing a mutable value in place
        (``session["cart"].append(x)``): every key is then saved.
        """
        return (
            bool(self._changed)
            or self._all_modified
            or self._header_changed
            or bool(self._meta_changed)
        )

    @modified.setter
    def modified(self, value: bool) -> None:
        self._all_modified = value

    @property
    def user_id(self) -> str | None:
        """The authenticated user's ID, or ``None`` for an anonymous session."""
        return self._user_id

    @user_id.setter
    def user_id(self, value: str | None) -> None:
        self._user_id = value
        self._header_changed = True

    @property
    def meta(self) -> dict[str, Any]:
        """coatcheck's own bookkeeping (a copy); call :meth:`set_meta` to change it."""
        return dict(self._meta)

    def peek_meta(self) -> Mapping[str, Any]:
        """Return the bookkeeping without copying it; never change what it returns."""
        return self._meta

    def set_meta(self, key: str, value: Any) -> None:
        """Set one bookkeeping value (JSON-compatible) of this session."""
        self._meta[key] = value
        self._meta_changed.add(key)

    @property
    def handle(self) -> str:
        """The session's public handle: the stored one, or the one it will get.

        A new or rotating session gets its handle now, so that audit events
        written during this request name the session that will be stored.
        """
        if self.record is not None and not self.rotate_requested:
            return self.record.handle
        if self._pending_handle is None:
            self._pending_handle = new_handle()
        return self._pending_handle

    def changed_keys(self) -> set[str]:
        """Return the data keys this request set or deleted."""
        if self._all_modified:
            return self._changed | set(self._data)
        return set(self._changed)

    @property
    def user_changed(self) -> bool:
        """Whether this request set the user (logged in or out)."""
        return self._header_changed

    @property
    def changed_meta(self) -> frozenset[str]:
        """Return the meta keys this request set."""
        return frozenset(self._meta_changed)

    def is_empty(self) -> bool:
        """Tell whether there is nothing worth storing."""
        return (
            not self._data
            and self._user_id is None
            and not any(self._meta.get(key) for key in KEEPING_META)
        )

    def serialized(self, keys: set[str] | None = None) -> dict[str, str]:
        """Return the current values (all, or ``keys``) as JSON text."""
        names = self._data.keys() if keys is None else keys & self._data.keys()
        out = {}
        for name in names:
            try:
                out[name] = _serializer.dumps(self._data[name])
            except TypeError as exc:
                raise SessionError(
                    f"the value of session key {name!r} cannot be stored as JSON: {exc}"
                ) from exc
        return out


class ServerSessionInterface(SessionInterface):
    """Open and save :class:`ServerSession` objects through a store."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._cookie_name = services.settings.session_cookie_name

    def open_session(self, app: Flask, request: Request) -> ServerSession:
        session = self._open(request)
        request.environ[SESSION_ENVIRON_KEY] = session
        return session

    def _open(self, request: Request) -> ServerSession:
        values = cookie_values(request.environ.get("HTTP_COOKIE", ""), self._cookie_name)
        if not values:
            return ServerSession()
        # Two cookies of one name (cookie tossing) or a malformed one: no session.
        if len(values) != 1:
            return ServerSession(cookie_sent=True)
        try:
            record = self.services.sessions.load(values[0])
        except StoreUnavailable as exc:
            session = ServerSession(cookie_sent=True)
            session.failure = exc
            return session
        if record is None:
            return ServerSession(cookie_sent=True)
        data = (
            {name: _serializer.loads(text) for name, text in record.data.items()}
            if record.data
            else None
        )
        return ServerSession(data, record=record, cookie_sent=True)

    def save_session(  # type: ignore[override]
        self, app: Flask, session: ServerSession, response: Response
    ) -> None:
        if session.failure is not None:
            return
        if session.accessed or session.user_id is not None:
            vary_on(response, "Cookie")
        if session.user_id is not None:
            response.headers["Cache-Control"] = "no-store"
        try:
            self._persist(session, response)
        except StoreUnavailable as exc:
            log.error("session store unavailable while saving: %s", exc)
            replace_response(response, store_unavailable_response())
        if "Set-Cookie" in response.headers:
            # Whatever sets a cookie must never be served to someone else from a cache.
            response.headers["Cache-Control"] = "no-store"

    def _persist(self, session: ServerSession, response: Response) -> None:
        record = session.record
        if (
            record is not None
            and not session.modified
            and not (session.rotate_requested or session.destroy_requested)
            and session.reissue_id is None
        ):
            self.services.sessions.touch(record)  # a read: what persist() would do, directly
            return
        outcome = self.services.sessions.persist(
            SessionWrite(
                record=session.record,
                user_id=session.user_id,
                meta=session.meta,
                changed=session.changed_keys(),
                changed_meta=session.changed_meta,
                serialize=session.serialized,
                handle=session.handle,
                cookie_sent=session.cookie_sent,
                modified=session.modified,
                empty=session.is_empty(),
                destroy=session.destroy_requested,
                rotate=session.rotate_requested,
                fresh=session.rotate_fresh,
                user_changed=session.user_changed,
                client_meta=client_meta() if session.record is None else {},
                next_id=session.next_id,
                reissue_id=session.reissue_id,
            )
        )
        if outcome.set_id is not None:
            session.record = outcome.record
            self._set_cookie(response, outcome.set_id, session, self.services.clock())
        elif outcome.delete:
            self._delete_cookie(response)

    def _set_cookie(self, response: Response, sid: str, session: ServerSession, now: float) -> None:
        max_age = None
        if session.permanent and session.record is not None:
            end = session.record.created_at + self.services.settings.absolute_timeout
            max_age = max(0, int(end - now))
        settings = self.services.settings
        response.set_cookie(
            settings.session_cookie_name,
            sid,
            max_age=max_age,
            **cookie_attributes(settings, session=True),
        )

    def _delete_cookie(self, response: Response) -> None:
        settings = self.services.settings
        response.delete_cookie(
            settings.session_cookie_name, **cookie_attributes(settings, session=True)
        )
        if settings.cookie_domain:
            # A host-only cookie of the same name (from before the cookie domain, or
            # tossed by a sibling site) would be sent beside the domain one for ever,
            # and two cookies of one name are no session: delete that one too.
            response.delete_cookie(settings.session_cookie_name, **cookie_attributes(settings))


def current_session() -> ServerSession:
    """Return the current request's :class:`ServerSession` (and mark it read)."""
    obj = request.environ.get(SESSION_ENVIRON_KEY)
    if not isinstance(obj, ServerSession):
        obj = flask_session._get_current_object()  # type: ignore[attr-defined]
        if not isinstance(obj, ServerSession):
            raise CoatcheckError("the current session is not a coatcheck session")
    obj.accessed = True
    return obj


def request_client() -> Client:
    """Return the request's client for the audit log: address, agent, session handle."""
    handle = None
    current = request.environ.get(SESSION_ENVIRON_KEY)
    # The session's handle, if it is or is about to be stored.
    if isinstance(current, ServerSession) and (
        current.record is not None or current.rotate_requested
    ):
        handle = current.handle
    return Client(client_address(), client_user_agent(), handle)


def cookie_values(header: str, name: str) -> list[str]:
    """Return every value the ``Cookie`` header gives for ``name``, in order.

    A plain scan for one cookie, cheaper than parsing them all on every
    request; values are taken as sent (a session ID needs no unquoting).
    """
    if name not in header:
        return []
    found = []
    for part in header.split(";"):
        key, sep, value = part.partition("=")
        if sep and key.strip() == name:
            found.append(value.strip())
    return found

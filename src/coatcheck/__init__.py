"""coatcheck: secure server-side cookie sessions and login for Flask."""

from .core.errors import (
    CoatcheckError,
    ConfigurationError,
    SessionError,
    StoreUnavailable,
)
from .core.settings import Settings
from .ext import CoatCheck, ServerSession, current_session
from .stores import SessionStore, open_store, register_store

__all__ = [
    "CoatCheck",
    "CoatcheckError",
    "ConfigurationError",
    "ServerSession",
    "SessionError",
    "SessionStore",
    "Settings",
    "StoreUnavailable",
    "current_session",
    "open_store",
    "register_store",
]

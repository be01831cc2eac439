"""The Flask layer: the extension, its session interface and error mapping."""

from .extension import CoatCheck, current_session
from .session import ServerSession

__all__ = ["CoatCheck", "ServerSession", "current_session"]

"""The one exception tree of coatcheck.

Every error coatcheck raises on purpose is a :class:`CoatcheckError`. The
Flask layer maps them to HTTP responses in one place (``coatcheck.ext.errors``).
"""

from __future__ import annotations


class CoatcheckError(Exception):
    """Base class of every error coatcheck raises on purpose."""


class ConfigurationError(CoatcheckError):
    """A setting is missing or invalid. Raised at start, never per request."""


class SessionError(CoatcheckError):
    """Something went wrong with a session."""


class StoreUnavailable(SessionError):
    """The session store could not be reached or did not answer.

    Requests that need the store fail closed with 503 when this is raised:
    never an anonymous pass-through.
    """

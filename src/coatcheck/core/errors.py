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


class UsernameTaken(CoatcheckError):
    """A user with this username (compared case-insensitively) already exists."""


class InvalidUsername(CoatcheckError):
    """A username that does not follow the rules (length, characters)."""


class PasswordRejected(CoatcheckError):
    """A new password that the password policy refuses.

    :param reason: a short stable code: ``too_short``, ``too_long``, ``common``,
        ``repetitive``, ``same_as_username`` or ``not_text``.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class CSRFError(CoatcheckError):
    """An unsafe request failed the CSRF check.

    :param reason: one of the ``REASON_*`` constants of ``coatcheck.core.csrf``.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidCredentials(CoatcheckError):
    """A username and password that don't match an active user.

    Unknown user, wrong password and disabled user are deliberately the same.
    """


class Throttled(CoatcheckError):
    """Too many attempts; try again after ``retry_after`` seconds.

    :param what: what was attempted too often, for the message (``failed logins``,
        ``registrations``).
    """

    def __init__(self, retry_after: int, what: str = "failed logins") -> None:
        super().__init__(f"too many {what}; retry after {retry_after} s")
        self.retry_after = retry_after
        self.what = what


class Unauthenticated(CoatcheckError):
    """The view needs a logged-in user and there is none."""


class Forbidden(CoatcheckError):
    """The logged-in user lacks a role the view needs."""


class TokenError(CoatcheckError):
    """A bearer or refresh token that is malformed, forged, expired or revoked."""


class LastAdmin(CoatcheckError):
    """A change that would leave no active user with the admin role (HTTP 409 ``last_admin``)."""


class InvalidCode(CoatcheckError):
    """A second-factor code or credential that is wrong, replayed, expired or unknown."""


class SecondFactorRequired(Unauthenticated):
    """The password was right; the login waits for a second factor (a pending session)."""


class EnrolmentRequired(Unauthenticated):
    """The policy wants a second factor this user lacks: only enrolment is reachable."""


class ReauthenticationRequired(CoatcheckError):
    """A sensitive action needs a password or factor check more recent than this one."""


class EmailVerificationRequired(CoatcheckError):
    """``COATCHECK_REQUIRE_VERIFIED_EMAIL``: the user's address is not verified yet."""

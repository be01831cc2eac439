"""Who acts: the client an operation is done for, as the audit log and device lists see it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Client:
    """Who is on the other end of an action, for the audit log and device lists."""

    ip: str | None = None
    user_agent: str | None = None
    #: The public handle of the session or token family acting, if any.
    session_handle: str | None = None

    def meta(self) -> dict[str, str]:
        """Return what a new session, series or family keeps about its client."""
        return {"ip": self.ip or "", "user_agent": self.user_agent or ""}


#: No client: the command line, or work on a user's behalf.
NO_CLIENT = Client()

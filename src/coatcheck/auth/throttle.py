"""TEMPORARY shim over core.throttle until the new throttle lands."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.clock import Clock, system_clock
from ..core.errors import ConfigurationError
from ..core.settings import Settings
from ..core.throttle import LoginThrottle as _Old
from ..core.throttle import ratelimit_url_for


@dataclass(frozen=True)
class Refusal:
    wait: int
    scope: str
    first: bool


class LoginThrottle:
    def __init__(self, old: _Old) -> None:
        self.old = old

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Clock = system_clock) -> LoginThrottle:
        if settings.ratelimit_url:
            url, prefix = settings.ratelimit_url, "coatcheck-throttle"
        else:
            url, prefix = ratelimit_url_for(settings.store_url)
        try:
            return cls(
                _Old(url, settings.throttle_account, settings.throttle_address, key_prefix=prefix)
            )
        except Exception:
            raise ConfigurationError("bad throttle") from None

    def reserve(self, username: str, address: str) -> Refusal | None:
        wait = self.old.reserve(username, address)
        return None if wait is None else Refusal(wait, "pair", True)

    def failed(self, username: str, address: str) -> None:
        self.old.failed(username, address)

    def succeeded(self, username: str, address: str) -> None:
        self.old.succeeded(username)

    def reserve_registration(self, address: str) -> Refusal | None:
        return None

    def close(self) -> None:
        pass

"""Signals an application (or the service's metrics) can subscribe to."""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

#: Sent for every audited security event, with ``event`` (its name), ``user_id``
#: and ``username``. Never carries a secret.
security_event = _signals.signal("coatcheck.security-event")

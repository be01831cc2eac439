"""The WebAuthn routes of SPEC §8: passkey and security-key registration and login."""

from __future__ import annotations

from flask import Blueprint

blueprint = Blueprint("webauthn", __name__, url_prefix="/api")

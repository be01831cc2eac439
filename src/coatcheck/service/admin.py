"""Admin pages (placeholder until the pages land)."""

from __future__ import annotations

from flask import Blueprint

blueprint = Blueprint("admin", __name__)

"""The cookie inspector and the lessons (placeholder until they land)."""

from __future__ import annotations

from flask import Blueprint

blueprint = Blueprint("inspect", __name__)
lessons = Blueprint("lessons", __name__)

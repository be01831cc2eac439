"""Session stores: one module per backend behind :class:`SessionStore`."""

from .base import SessionStore, open_store, register_store

__all__ = ["SessionStore", "open_store", "register_store"]

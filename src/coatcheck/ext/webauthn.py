"""WebAuthn ceremonies in a request (SPEC §8)."""

"""WebAuthn credentials: second factors and passkeys (SPEC §8)."""

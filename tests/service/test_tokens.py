"""Access and refresh tokens: crafted rejections, rotation, grace, reuse, families.

Runs on every store (memory, SQLite and Redis).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from flask import Flask
from flask.testing import FlaskClient

from coatcheck import CoatCheck
from coatcheck.core.clock import ManualClock

from ..conftest import TEST_SECRET_KEY, store_url
from ..ext.auth_app import Browser
from ..ext.helpers import https_client
from .conftest import PASSWORD, add_user


@pytest.fixture
def app(make_service: Callable[..., Flask], any_store_url: str, clock: ManualClock) -> Flask:
    return timed(make_service(COATCHECK_STORE_URL=any_store_url), clock)


def timed(app: Flask, clock: ManualClock) -> Flask:
    """Make every part of ``app`` read the test's clock."""
    state = CoatCheck.state(app)
    state.clock = clock
    state.store.clock = clock
    state.token_signer.clock = clock
    return app


def api(app: Flask) -> FlaskClient:
    """A pure API client: no cookie jar at all."""
    return https_client(app, use_cookies=False)


def get_tokens(app: Flask, name: str = "alice") -> dict[str, Any]:
    if CoatCheck.state(app).users.get_by_username(name) is None:
        add_user(app, name)
    response = api(app).post("/api/token", json={"username": name, "password": PASSWORD})
    assert response.status_code == 200, response.json
    body: dict[str, Any] = response.json  # type: ignore[assignment]
    return body


def bearer(tokens: dict[str, Any] | str) -> dict[str, str]:
    token = tokens if isinstance(tokens, str) else tokens["access_token"]
    return {"Authorization": f"Bearer {token}"}


def refresh(app: Flask, token: str) -> Any:
    return api(app).post("/api/token/refresh", json={"refresh_token": token})


def me(app: Flask, token: dict[str, Any] | str) -> int:
    return api(app).get("/api/me", headers=bearer(token)).status_code


def signed(app: Flask, claims: dict[str, Any], **header: Any) -> str:
    """Sign arbitrary claims with the app's own current key."""
    signer = CoatCheck.state(app).token_signer
    key = signer._keys[0]
    return jwt.encode(
        claims, key.signing, algorithm=signer.algorithm, headers={"kid": key.kid, **header}
    )


def good_claims(app: Flask, tokens: dict[str, Any]) -> dict[str, Any]:
    return jwt.decode(tokens["access_token"], options={"verify_signature": False})  # type: ignore[no-any-return]


def test_token_pair(app: Flask, clock: ManualClock) -> None:
    tokens = get_tokens(app)
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 900
    # <family ID>.<secret>, both 256 random bits; the family's public handle is another.
    family_id, secret = tokens["refresh_token"].split(".")
    assert len(family_id) == 43 and len(secret) == 43
    claims = good_claims(app, tokens)
    assert {"iss", "aud", "sub", "exp", "iat", "jti", "roles"} <= set(claims)
    assert claims["exp"] - claims["iat"] == 900 and claims["sub"] == "1"
    response = api(app).get("/api/me", headers=bearer(tokens))
    assert response.status_code == 200
    assert response.json["user"]["username"] == "alice"  # type: ignore[index]
    assert response.headers["Cache-Control"] == "no-store"


def test_wrong_credentials_for_a_token(app: Flask) -> None:
    add_user(app, "alice")
    response = api(app).post("/api/token", json={"username": "alice", "password": "wrong one here"})
    assert response.status_code == 401 and response.json["error"] == "invalid_credentials"  # type: ignore[index]


def test_alg_none_is_rejected(app: Flask) -> None:
    claims = good_claims(app, get_tokens(app))
    forged = jwt.encode(claims, None, algorithm="none")  # type: ignore[arg-type]
    assert me(app, forged) == 401


def test_other_algorithm_is_rejected(app: Flask) -> None:
    claims = good_claims(app, get_tokens(app))
    signer = CoatCheck.state(app).token_signer
    key = signer._keys[0]
    forged = jwt.encode(claims, key.signing * 2, algorithm="HS512", headers={"kid": key.kid})
    assert me(app, forged) == 401


@pytest.mark.parametrize(
    ("change", "value"),
    [("aud", "another-service"), ("iss", "https://evil.example"), ("exp", 1), ("sub", "2")],
)
def test_tampered_claims_are_rejected(app: Flask, change: str, value: Any) -> None:
    claims = good_claims(app, get_tokens(app))
    assert me(app, signed(app, claims)) == 200  # the crafting itself is sound
    claims[change] = value
    assert me(app, signed(app, claims)) == 401


def test_expiry_with_leeway(app: Flask, clock: ManualClock) -> None:
    tokens = get_tokens(app)
    clock.advance(900 + 29)
    assert me(app, tokens) == 200  # within the 30 s leeway
    clock.advance(2)
    assert me(app, tokens) == 401


def test_garbage_bearer_tokens(app: Flask) -> None:
    for token in ["", "x", "a.b.c", "a" * 10_000, "eyJhbGciOiJIUzI1NiJ9.e30.", "...."]:
        response = api(app).get("/api/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401


def test_revoked_jti(app: Flask) -> None:
    tokens = get_tokens(app)
    other = refresh(app, tokens["refresh_token"]).json
    assert (
        api(app).post("/api/token/revoke", json={"token": tokens["access_token"]}).status_code
        == 204
    )
    assert me(app, tokens) == 401
    assert me(app, other) == 200  # only that token, not its family


def test_refresh_rotates(app: Flask) -> None:
    first = get_tokens(app)
    second = refresh(app, first["refresh_token"])
    assert second.status_code == 200
    pair = second.json
    assert pair["refresh_token"] != first["refresh_token"]
    assert pair["access_token"] != first["access_token"]
    assert me(app, pair) == 200


def test_reuse_within_the_grace_window_is_a_race(app: Flask, clock: ManualClock) -> None:
    first = get_tokens(app)
    a = refresh(app, first["refresh_token"]).json
    clock.advance(10)
    b = refresh(app, first["refresh_token"])
    assert b.status_code == 200
    assert me(app, a) == 200 and me(app, b.json) == 200
    assert refresh(app, a["refresh_token"]).status_code == 200


def test_reuse_after_the_grace_window_revokes_the_family(app: Flask, clock: ManualClock) -> None:
    first = get_tokens(app)
    current = refresh(app, first["refresh_token"]).json
    other_device = get_tokens(app)
    clock.advance(31)
    reused = refresh(app, first["refresh_token"])
    assert reused.status_code == 401 and reused.json["error"] == "invalid_token"
    assert me(app, current) == 401  # the family's access tokens die at their next check
    assert refresh(app, current["refresh_token"]).status_code == 401
    assert me(app, other_device) == 200  # another family is untouched
    events = [e.event for e in CoatCheck.state(app).users.list_events(limit=3)]
    assert "refresh_token_reuse" in events


def test_unknown_refresh_token(app: Flask) -> None:
    for token in ["", "x" * 43, "a" * 5000, None, 42]:
        response = refresh(app, token)  # type: ignore[arg-type]
        assert response.status_code in (400, 401)


def test_revoking_a_refresh_token_ends_its_family(app: Flask) -> None:
    tokens = get_tokens(app)
    assert (
        api(app).post("/api/token/revoke", json={"token": tokens["refresh_token"]}).status_code
        == 204
    )
    assert me(app, tokens) == 401
    assert refresh(app, tokens["refresh_token"]).status_code == 401
    assert (
        api(app).post("/api/token/revoke", json={"token": "no-such-token-at-all"}).status_code
        == 204
    )


def test_a_family_is_a_device(app: Flask) -> None:
    tokens = get_tokens(app)
    browser = Browser(app)
    browser.login("alice", PASSWORD)
    listed = browser.get("/api/sessions").json["sessions"]  # type: ignore[index]
    kinds = sorted(s["kind"] for s in listed)
    assert kinds == ["session", "token"]
    [family] = [s for s in listed if s["kind"] == "token"]
    response = browser.client.delete(f"/api/sessions/{family['handle']}", headers=browser.headers())
    assert response.status_code == 204
    assert me(app, tokens) == 401
    assert refresh(app, tokens["refresh_token"]).status_code == 401


@pytest.mark.parametrize("how", ["revoke-others", "password", "admin", "disable"])
def test_families_end_with_the_users_sessions(app: Flask, how: str) -> None:
    tokens = get_tokens(app)
    add_user(app, "root", "admin")
    browser, admin = Browser(app), Browser(app)
    browser.login("alice", PASSWORD)
    admin.login("root", PASSWORD)
    if how == "revoke-others":
        browser.client.delete("/api/sessions", headers=browser.headers())
    elif how == "password":
        browser.post(
            "/api/password", {"current_password": PASSWORD, "new_password": "a new passphrase ok"}
        )
    elif how == "admin":
        admin.client.delete("/api/admin/users/1/sessions", headers=admin.headers())
    else:
        from coatcheck import disable_user

        with app.test_request_context():
            disable_user(1)
    assert me(app, tokens) == 401
    assert refresh(app, tokens["refresh_token"]).status_code == 401


def test_password_change_by_bearer_keeps_its_own_family(app: Flask) -> None:
    mine, other = get_tokens(app), get_tokens(app)
    response = api(app).post(
        "/api/password",
        json={"current_password": PASSWORD, "new_password": "a new passphrase ok"},
        headers=bearer(mine),
    )
    assert response.status_code == 204
    assert me(app, mine) == 200 and me(app, other) == 401


def test_role_change_reaches_bearer_requests_at_once(app: Flask) -> None:
    tokens = get_tokens(app)
    add_user(app, "root", "admin")
    admin = Browser(app)
    admin.login("root", PASSWORD)
    assert api(app).get("/api/admin/users", headers=bearer(tokens)).status_code == 403
    admin.post("/api/admin/users/1/roles", {"roles": ["admin"]})
    assert api(app).get("/api/admin/users", headers=bearer(tokens)).status_code == 200


def test_bearer_wins_over_a_cookie_and_csrf_still_applies(app: Flask) -> None:
    tokens = get_tokens(app)
    add_user(app, "bobby")
    browser = Browser(app)
    browser.login("bobby", PASSWORD)
    mixed = browser.client.get("/api/me", headers=bearer(tokens))
    assert mixed.json["user"]["username"] == "alice"  # type: ignore[index]
    bad = browser.client.get("/api/me", headers={"Authorization": "Bearer nonsense"})
    assert bad.status_code == 401  # judged by the bearer token alone
    assert bad.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    # With cookies, an unsafe request needs its CSRF token even with a bearer token.
    refused = browser.client.delete("/api/sessions", headers=bearer(tokens))
    assert refused.status_code == 403
    allowed = api(app).delete("/api/sessions", headers=bearer(tokens))
    assert allowed.status_code == 204


def test_logout_by_bearer_ends_the_family(app: Flask) -> None:
    tokens = get_tokens(app)
    assert api(app).post("/api/logout", headers=bearer(tokens)).status_code == 204
    assert me(app, tokens) == 401


@pytest.mark.parametrize("kind", ["sqlite", "redis"])  # two apps share one store
def test_key_rotation_keeps_tokens_valid(
    make_service: Callable[..., Flask],
    clock: ManualClock,
    kind: str,
    request: pytest.FixtureRequest,
    tmp_path: Any,
) -> None:
    any_store_url = store_url(kind, request, tmp_path)
    old = timed(make_service(COATCHECK_STORE_URL=any_store_url), clock)
    tokens = get_tokens(old)
    new_key = "an-entirely-new-secret-key-0123456789"
    rotated = timed(
        make_service(
            COATCHECK_STORE_URL=any_store_url,
            SECRET_KEY=new_key,
            SECRET_KEY_FALLBACKS=[TEST_SECRET_KEY],
        ),
        clock,
    )
    assert me(rotated, tokens) == 200
    assert me(rotated, refresh(rotated, tokens["refresh_token"]).json) == 200
    dropped = timed(make_service(COATCHECK_STORE_URL=any_store_url, SECRET_KEY=new_key), clock)
    assert me(dropped, tokens) == 401


def _pem(key: Any) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.mark.parametrize("algorithm", ["EdDSA", "RS256"])
def test_key_pairs_and_jwks(
    make_service: Callable[..., Flask], algorithm: str, tmp_path: Any
) -> None:
    private = (
        ed25519.Ed25519PrivateKey.generate()
        if algorithm == "EdDSA"
        else rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    key_file = tmp_path / "jwt.pem"
    key_file.write_text(_pem(private))
    app = make_service(COATCHECK_JWT_ALGORITHM=algorithm, COATCHECK_JWT_PRIVATE_KEY=str(key_file))
    tokens = get_tokens(app)
    assert jwt.get_unverified_header(tokens["access_token"])["alg"] == algorithm
    assert me(app, tokens) == 200
    jwks = https_client(app).get("/.well-known/jwks.json").json
    [published] = jwks["keys"]  # type: ignore[index]
    assert published["alg"] == algorithm and "d" not in published
    # Another service verifies with the published key alone.
    public = jwt.PyJWK(published).key
    claims = jwt.decode(
        tokens["access_token"], public, algorithms=[algorithm], audience="coatcheck"
    )
    assert claims["sub"] == "1"
    # Key confusion: HS256 "signed" with the public key as the HMAC secret.
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": published["kid"]}
    payload = json.loads(base64.urlsafe_b64decode(tokens["access_token"].split(".")[1] + "=="))
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    signature = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    assert me(app, f"{signing_input}.{_b64(signature)}") == 401


def test_jwks_is_absent_for_hs256(app: Flask) -> None:
    assert https_client(app).get("/.well-known/jwks.json").status_code == 404


def test_a_replay_in_the_grace_window_cannot_fork_the_family(
    app: Flask, clock: ManualClock
) -> None:
    first = get_tokens(app)
    mine = refresh(app, first["refresh_token"]).json
    clock.advance(5)
    stolen = refresh(app, first["refresh_token"]).json  # a thief's replay, inside the window
    assert stolen["refresh_token"] == mine["refresh_token"]  # the same successor, not a new chain
    clock.advance(60)
    mine = refresh(app, mine["refresh_token"]).json  # the owner goes on
    clock.advance(60)
    reused = refresh(app, stolen["refresh_token"])  # the thief's copy is now spent
    assert reused.status_code == 401
    assert me(app, mine) == 401  # the whole family is revoked
    events = [e.event for e in CoatCheck.state(app).users.list_events(limit=3)]
    assert "refresh_token_reuse" in events


def test_a_token_login_is_audited(app: Flask) -> None:
    get_tokens(app)
    [event, *_] = CoatCheck.state(app).users.list_events(limit=1)
    assert event.event == "login_succeeded" and event.detail is not None
    assert event.detail["via"] == "token"


def test_a_hundred_refreshes_leave_at_most_two_records(app: Flask) -> None:
    # The review: each refresh wrote a new 30-day record (101 after 100 refreshes).
    from coatcheck.core.records import RecordKind

    store = CoatCheck.state(app).store
    before = sum(store.count(kind) for kind in RecordKind)
    tokens = get_tokens(app)
    for _ in range(100):
        tokens = refresh(app, tokens["refresh_token"]).json
    assert me(app, tokens) == 200
    assert sum(store.count(kind) for kind in RecordKind) - before <= 2


def test_a_family_has_an_idle_and_an_absolute_lifetime(app: Flask, clock: ManualClock) -> None:
    tokens = get_tokens(app)
    for _ in range(3):  # refreshed every 29 days: alive for 87 days
        clock.advance(29 * 86400)
        reply = refresh(app, tokens["refresh_token"])
        assert reply.status_code == 200
        tokens = reply.json
    clock.advance(4 * 86400)  # day 91: past the absolute lifetime of 90 days
    assert refresh(app, tokens["refresh_token"]).status_code == 401
    idle = get_tokens(app)
    clock.advance(30 * 86400 + 1)  # a month without a refresh
    assert refresh(app, idle["refresh_token"]).status_code == 401


def test_a_refresh_reads_the_user_again(app: Flask) -> None:
    tokens = get_tokens(app)
    state = CoatCheck.state(app)
    state.users.set_roles(1, ["editor"])  # straight in the database, behind coatcheck's back
    fresh = refresh(app, tokens["refresh_token"]).json
    assert good_claims(app, fresh)["roles"] == ["editor"]
    state.users.set_disabled(1, True)
    assert refresh(app, fresh["refresh_token"]).status_code == 401


def test_a_replay_in_the_grace_window_gets_the_same_refresh_token(
    app: Flask, clock: ManualClock
) -> None:
    tokens = get_tokens(app)
    first = refresh(app, tokens["refresh_token"]).json
    clock.advance(5)
    again = refresh(app, tokens["refresh_token"]).json
    assert again["refresh_token"] == first["refresh_token"]


def test_knowing_a_familys_public_handle_cannot_end_it(app: Flask) -> None:
    # The review: the refresh token was "<handle>.<secret>" and the handle is public
    # (device lists, audit, the access token): anyone could end a family by
    # sending a made-up secret with it.
    tokens = get_tokens(app)
    listed = api(app).get("/api/sessions", headers=bearer(tokens)).json["sessions"]  # type: ignore[index]
    [family] = [s for s in listed if s["kind"] == "token"]
    claims = good_claims(app, tokens)
    for known in {family["handle"], claims["fam"]}:
        forged = f"{known}.{'A' * 43}"
        assert refresh(app, forged).status_code == 401
    assert me(app, tokens) == 200
    assert refresh(app, tokens["refresh_token"]).status_code == 200
    events = [e.event for e in CoatCheck.state(app).users.list_events(limit=5)]
    assert "refresh_token_reuse" not in events

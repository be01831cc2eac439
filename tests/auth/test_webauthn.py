"""WebAuthn without a browser (SPEC §8): options, relying party, ceremonies, refusals.

A small software authenticator (ES256, ``none`` attestation) answers the
ceremonies, so that registration, passkey login, the second step of a login
and the sign counter are checked end to end through the JSON API. The real
browser's side is in ``tests/browser/test_webauthn.py``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask, Response

from coatcheck import CoatCheck
from coatcheck.auth.webauthn import (
    CEREMONY_LIFETIME,
    LOGIN,
    REGISTER,
    Ceremony,
    RelyingParty,
    user_handle,
)
from coatcheck.core.clock import ManualClock
from coatcheck.core.errors import InvalidCode
from coatcheck.core.passwords import PasswordHasher
from coatcheck.service import create_app
from coatcheck.users import models as events

from ..conftest import TEST_SECRET_KEY
from ..ext.auth_app import Browser

PASSWORD = "correct horse battery"
ORIGIN = "https://localhost"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SoftKey:
    """A software authenticator: one ES256 credential, ``none`` attestation."""

    def __init__(self, *, uv: bool = True, counter: int = 0) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(32)
        self.uv = uv
        self.counter = counter
        self.user_handle: bytes | None = None

    @property
    def id(self) -> str:
        return b64(self.credential_id)

    def _cose(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps(
            {
                1: 2,
                3: -7,
                -1: 1,
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )

    def _flags(self, attested: bool = False) -> int:
        return 0x01 | (0x04 if self.uv else 0) | (0x40 if attested else 0)

    def create(
        self, options: dict[str, Any], *, origin: str = ORIGIN, rp_id: str | None = None
    ) -> dict[str, Any]:
        rp = rp_id or options["rp"]["id"]
        self.user_handle = unb64(options["user"]["id"])
        client_data = json.dumps(
            {"type": "webauthn.create", "challenge": options["challenge"], "origin": origin}
        ).encode()
        auth_data = (
            hashlib.sha256(rp.encode()).digest()
            + bytes([self._flags(attested=True)])
            + struct.pack(">I", self.counter)
            + bytes(16)
            + struct.pack(">H", len(self.credential_id))
            + self.credential_id
            + self._cose()
        )
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {
            "id": self.id,
            "rawId": self.id,
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(client_data),
                "attestationObject": b64(attestation),
                "transports": ["usb"],
            },
            "clientExtensionResults": {},
        }

    def get(
        self,
        options: dict[str, Any],
        *,
        origin: str = ORIGIN,
        rp_id: str | None = None,
        counter: int | None = None,
    ) -> dict[str, Any]:
        rp = rp_id or options["rpId"]
        if counter is None:
            self.counter += 1
            counter = self.counter
        client_data = json.dumps(
            {"type": "webauthn.get", "challenge": options["challenge"], "origin": origin}
        ).encode()
        auth_data = (
            hashlib.sha256(rp.encode()).digest()
            + bytes([self._flags()])
            + struct.pack(">I", counter)
        )
        signature = self.key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        response = {
            "clientDataJSON": b64(client_data),
            "authenticatorData": b64(auth_data),
            "signature": b64(signature),
        }
        if self.user_handle is not None:
            response["userHandle"] = b64(self.user_handle)
        return {"id": self.id, "rawId": self.id, "type": "public-key", "response": response}


@pytest.fixture
def make_app(tmp_path: Path, clock: ManualClock) -> Callable[..., Flask]:
    def factory(**config: Any) -> Flask:
        app = create_app(
            {
                "TESTING": True,
                "SECRET_KEY": TEST_SECRET_KEY,
                "COATCHECK_INSTANCE": str(tmp_path / "instance"),
                "COATCHECK_STORE_URL": "memory://",
                "COATCHECK_DATABASE_URL": f"sqlite:///{tmp_path / 'users.db'}",
                **config,
            }
        )
        state = CoatCheck.state(app)
        state.hasher = PasswordHasher.fast_for_tests()
        state.clock = clock
        state.store.clock = clock  # type: ignore[attr-defined]
        return app

    return factory


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


def user(app: Flask, name: str = "alice") -> Browser:
    state = CoatCheck.state(app)
    state.users.create_user(name, state.hasher.hash(PASSWORD))
    browser = Browser(app)
    assert browser.login(name).status_code == 200
    return browser


def enrol(browser: Browser, key: SoftKey, *, passkey: bool, name: str | None = None) -> Any:
    begun = browser.post("/api/webauthn/register/begin", {"name": name, "passkey": passkey})
    assert begun.status_code == 200, begun.json
    finished = browser.post("/api/webauthn/register/finish", {"credential": key.create(begun.json)})
    assert finished.status_code == 201, finished.json
    return finished.json


def passkey_login(app: Flask, key: SoftKey, **kw: Any) -> Any:
    browser = Browser(app)
    browser.csrf()
    begun = browser.post("/api/webauthn/login/begin", {})
    assert begun.status_code == 200, begun.json
    return browser, browser.post(
        "/api/webauthn/login/finish", {"credential": key.get(begun.json, **kw)}
    )


def event_names(app: Flask) -> list[str]:
    return [e.event for e in CoatCheck.state(app).users.list_events(limit=200)]


def stored(app: Flask, key: SoftKey) -> Any:
    return CoatCheck.state(app).users.factors.by_credential_id(key.id)


# -- the relying party and the ceremony, on their own ----------------------------


@pytest.mark.parametrize(
    ("url", "rp_id", "origin"),
    [
        ("https://auth.example.com", "auth.example.com", "https://auth.example.com"),
        ("https://Auth.Example.com:8443/", "auth.example.com", "https://auth.example.com:8443"),
        ("http://localhost:5555/", "localhost", "http://localhost:5555"),
    ],
)
def test_relying_party_from_an_origin(url: str, rp_id: str, origin: str) -> None:
    rp = RelyingParty.from_origin(url)
    assert (rp.id, rp.origin) == (rp_id, origin)


@pytest.mark.parametrize("url", ["", "auth.example.com", "ftp://host", "https://"])
def test_relying_party_refuses_what_is_no_origin(url: str) -> None:
    with pytest.raises(ValueError):
        RelyingParty.from_origin(url)


def test_ceremony_round_trip_and_checks() -> None:
    ceremony = Ceremony(REGISTER, b64(b"x" * 32), 100.0, user_id=7, name="Key", passkey=True)
    assert Ceremony.from_meta(json.loads(json.dumps(ceremony.to_meta()))) == ceremony
    ceremony.check(REGISTER, 99.9)
    with pytest.raises(InvalidCode):
        ceremony.check(LOGIN, 99.9)  # another purpose
    with pytest.raises(InvalidCode):
        ceremony.check(REGISTER, 100.0)  # expired


@pytest.mark.parametrize(
    "raw",
    [None, "x", {}, {"purpose": "steal", "challenge": "a", "until": 1}, {"purpose": "login"}],
)
def test_malformed_ceremony_is_none(raw: object) -> None:
    assert Ceremony.from_meta(raw) is None


def test_user_handle_is_the_id() -> None:
    assert user_handle(42) == b"42"


# -- options ---------------------------------------------------------------------


def test_passkey_creation_options(app: Flask) -> None:
    browser = user(app)
    options = browser.post("/api/webauthn/register/begin", {"name": "Laptop", "passkey": True})
    assert options.status_code == 200
    assert options.headers["Cache-Control"] == "no-store"
    body = options.json
    assert body["rp"] == {"id": "localhost", "name": "coatcheck"}
    assert body["user"]["name"] == "alice" and unb64(body["user"]["id"]) == b"1"
    assert len(unb64(body["challenge"])) >= 32
    assert body["authenticatorSelection"] == {
        "residentKey": "required",
        "requireResidentKey": True,
        "userVerification": "required",
    }
    assert body["excludeCredentials"] == []
    assert body["extensions"] == {"credProps": True}
    assert {p["alg"] for p in body["pubKeyCredParams"]} >= {-7, -257}


def test_second_factor_creation_options_and_excluded_credentials(app: Flask) -> None:
    browser = user(app)
    key = SoftKey()
    enrol(browser, key, passkey=False, name="YubiKey")
    body = browser.post("/api/webauthn/register/begin", {"name": "Other", "passkey": False}).json
    assert body["authenticatorSelection"]["residentKey"] == "discouraged"
    assert body["authenticatorSelection"]["userVerification"] == "preferred"
    assert body["excludeCredentials"] == [
        {"id": key.id, "type": "public-key", "transports": ["usb"]}
    ]
    assert "extensions" not in body


def test_public_url_names_the_relying_party(make_app: Callable[..., Flask]) -> None:
    app = make_app(COATCHECK_PUBLIC_URL="https://auth.example.com")
    browser = user(app)
    body = browser.post("/api/webauthn/register/begin", {"passkey": True}).json
    assert body["rp"]["id"] == "auth.example.com"
    # A credential made for the request's own origin is not one for the public origin.
    key = SoftKey()
    refused = browser.post(
        "/api/webauthn/register/finish", {"credential": key.create(body, origin=ORIGIN)}
    )
    assert refused.status_code == 401 and refused.json["error"] == "invalid_code"
    begun = browser.post("/api/webauthn/register/begin", {"passkey": True}).json
    made = key.create(begun, origin="https://auth.example.com")
    assert browser.post("/api/webauthn/register/finish", {"credential": made}).status_code == 201


def test_login_options_do_not_tell_usernames_apart(app: Flask) -> None:
    user(app)
    client = Browser(app)
    client.csrf()
    known = client.post("/api/webauthn/login/begin", {"username": "alice"}).json
    unknown = client.post("/api/webauthn/login/begin", {"username": "nobody"}).json
    empty = client.post("/api/webauthn/login/begin").json
    for body in (known, unknown, empty):
        assert body["rpId"] == "localhost" and body["userVerification"] == "required"
        assert body["allowCredentials"] == []
    assert set(known) == set(unknown) == set(empty)


# -- registration ------------------------------------------------------------------


def test_first_credential_brings_recovery_codes(app: Flask) -> None:
    browser = user(app)
    first = enrol(browser, SoftKey(), passkey=True, name="Laptop")
    assert first["factor"]["type"] == "webauthn" and first["factor"]["passkey"] is True
    assert first["factor"]["name"] == "Laptop" and len(first["recovery_codes"]) == 10
    second = enrol(browser, SoftKey(), passkey=False)
    assert second["factor"]["name"] == "Security key" and "recovery_codes" not in second
    assert event_names(app).count(events.FACTOR_ADDED) == 2


def test_registration_needs_a_recent_authentication(app: Flask, clock: ManualClock) -> None:
    browser = user(app)
    clock.advance(CoatCheck.state(app).settings.reauth_max_age + 1)
    answer = browser.post("/api/webauthn/register/begin", {"passkey": True})
    assert answer.status_code == 401 and answer.json["error"] == "reauthentication_required"


def test_registration_needs_a_login(app: Flask) -> None:
    client = Browser(app)
    client.csrf()
    answer = client.post("/api/webauthn/register/begin", {"passkey": True})
    assert answer.status_code == 401


def test_passkey_registration_needs_user_verification(app: Flask) -> None:
    browser = user(app)
    begun = browser.post("/api/webauthn/register/begin", {"passkey": True}).json
    answer = browser.post(
        "/api/webauthn/register/finish", {"credential": SoftKey(uv=False).create(begun)}
    )
    assert answer.status_code == 401
    assert CoatCheck.state(app).users.factors.of_user(1) == []


@pytest.mark.parametrize(
    "body",
    [
        {"name": 5, "passkey": True},
        {"name": "x", "passkey": "yes"},
        {"name": "   ", "passkey": True},
        {"name": "a" * 65, "passkey": True},
        [],
    ],
)
def test_register_begin_bad_bodies(app: Flask, body: Any) -> None:
    browser = user(app)
    answer = browser.post("/api/webauthn/register/begin", body)
    assert answer.status_code == 400 and answer.json["error"] == "invalid"


@pytest.mark.parametrize(
    "credential",
    [
        None,
        "text",
        {},
        {"id": "AA", "rawId": "AA", "type": "public-key", "response": {}},
        {
            "id": "AA",
            "rawId": "A",
            "type": "public-key",
            "response": {"clientDataJSON": "A", "attestationObject": "A"},
        },
    ],
)
def test_malformed_credentials_are_400(app: Flask, credential: object) -> None:
    browser = user(app)
    browser.post("/api/webauthn/register/begin", {"passkey": True})
    answer = browser.post("/api/webauthn/register/finish", {"credential": credential})
    assert answer.status_code == 400 and answer.json["error"] == "invalid", answer.json
    browser.post("/api/webauthn/login/begin", {})
    answer = browser.post("/api/webauthn/login/finish", {"credential": credential})
    assert answer.status_code == 400 and answer.json["error"] == "invalid", answer.json


def test_a_challenge_is_used_once(app: Flask) -> None:
    browser = user(app)
    begun = browser.post("/api/webauthn/register/begin", {"passkey": True}).json
    key = SoftKey()
    made = key.create(begun)
    assert browser.post("/api/webauthn/register/finish", {"credential": made}).status_code == 201
    again = browser.post("/api/webauthn/register/finish", {"credential": SoftKey().create(begun)})
    assert again.status_code == 401 and again.json["error"] == "invalid_code"


def test_a_failed_finish_spends_the_challenge(app: Flask) -> None:
    browser = user(app)
    begun = browser.post("/api/webauthn/register/begin", {"passkey": True}).json
    key = SoftKey()
    bad = key.create(begun, origin="https://evil.example")
    assert browser.post("/api/webauthn/register/finish", {"credential": bad}).status_code == 401
    good = key.create(begun)
    assert browser.post("/api/webauthn/register/finish", {"credential": good}).status_code == 401


def test_an_expired_challenge_is_refused(app: Flask, clock: ManualClock) -> None:
    browser = user(app)
    begun = browser.post("/api/webauthn/register/begin", {"passkey": True}).json
    clock.advance(CEREMONY_LIFETIME)
    answer = browser.post("/api/webauthn/register/finish", {"credential": SoftKey().create(begun)})
    assert answer.status_code == 401 and answer.json["error"] == "invalid_code"


def test_finish_without_begin_is_refused(app: Flask) -> None:
    browser = user(app)
    answer = browser.post(
        "/api/webauthn/register/finish",
        {
            "credential": SoftKey().create(
                {"rp": {"id": "localhost"}, "user": {"id": "MQ"}, "challenge": b64(b"c" * 32)}
            )
        },
    )
    assert answer.status_code == 401


# -- passkey login ---------------------------------------------------------------


def test_passkey_login(app: Flask) -> None:
    key = SoftKey()
    enrol(user(app), key, passkey=True)
    browser, answer = passkey_login(app, key)
    assert answer.status_code == 200, answer.json
    assert answer.json["user"]["username"] == "alice" and answer.json["csrf_token"]
    session = browser.get("/api/me").json["session"]
    assert session["aal"] == 2 and session["amr"] == ["passkey"]
    assert events.PASSKEY_LOGIN in event_names(app)
    assert stored(app, key).sign_count == 1 and stored(app, key).last_used_at is not None


def test_a_second_factor_credential_never_logs_in_alone(app: Flask) -> None:
    key = SoftKey()
    enrol(user(app), key, passkey=False)
    browser, answer = passkey_login(app, key)
    assert answer.status_code == 401 and answer.json["error"] == "invalid_code"
    assert browser.get("/api/me").status_code == 401
    assert stored(app, key).sign_count == 0
    assert events.SECOND_FACTOR_FAILED in event_names(app)


def test_passkey_login_needs_user_verification(app: Flask) -> None:
    key = SoftKey()
    enrol(user(app), key, passkey=True)
    key.uv = False
    _, answer = passkey_login(app, key)
    assert answer.status_code == 401
    assert stored(app, key).sign_count == 0


def test_unknown_credential_is_refused(app: Flask) -> None:
    enrol(user(app), SoftKey(), passkey=True)
    _, answer = passkey_login(app, SoftKey())
    assert answer.status_code == 401 and answer.json["error"] == "invalid_code"


@pytest.mark.parametrize(
    ("origin", "rp_id"),
    [("https://evil.example", None), (ORIGIN, "evil.example"), ("http://localhost", None)],
)
def test_foreign_origin_or_rp_id_is_refused(app: Flask, origin: str, rp_id: str | None) -> None:
    key = SoftKey()
    enrol(user(app), key, passkey=True)
    _, answer = passkey_login(app, key, origin=origin, rp_id=rp_id)
    assert answer.status_code == 401
    assert stored(app, key).sign_count == 0  # nothing written


def test_a_forged_signature_is_refused(app: Flask) -> None:
    key = SoftKey()
    enrol(user(app), key, passkey=True)
    key.key = ec.generate_private_key(ec.SECP256R1())  # same ID, another key
    _, answer = passkey_login(app, key)
    assert answer.status_code == 401
    assert events.CREDENTIAL_CLONED not in event_names(app)


def test_a_counter_that_does_not_grow_is_a_clone(app: Flask) -> None:
    key = SoftKey()
    enrol(user(app), key, passkey=True)
    assert passkey_login(app, key)[1].status_code == 200  # counter 1
    assert passkey_login(app, key)[1].status_code == 200  # counter 2
    for count in (2, 1):
        _, answer = passkey_login(app, key, counter=count)
        assert answer.status_code == 401 and answer.json["error"] == "invalid_code"
    assert event_names(app).count(events.CREDENTIAL_CLONED) == 2
    assert stored(app, key).sign_count == 2


def test_a_counter_at_zero_stays_accepted(app: Flask) -> None:
    key = SoftKey()
    enrol(user(app), key, passkey=True)
    for _ in range(2):  # authenticators without a counter always send 0
        assert passkey_login(app, key, counter=0)[1].status_code == 200
    assert events.CREDENTIAL_CLONED not in event_names(app)


def test_the_typed_username_must_own_the_passkey(app: Flask) -> None:
    key = SoftKey()
    enrol(user(app), key, passkey=True)
    user(app, "bob")
    browser = Browser(app)
    browser.csrf()
    begun = browser.post("/api/webauthn/login/begin", {"username": "bob"}).json
    answer = browser.post("/api/webauthn/login/finish", {"credential": key.get(begun)})
    assert answer.status_code == 401


def test_a_disabled_user_cannot_log_in_with_a_passkey(app: Flask) -> None:
    key = SoftKey()
    enrol(user(app), key, passkey=True)
    CoatCheck.state(app).users.set_disabled(1, True)
    _, answer = passkey_login(app, key)
    assert answer.status_code == 401


# -- second factor and step-up ---------------------------------------------------------


def password_step(app: Flask, name: str = "alice") -> Browser:
    browser = Browser(app)
    first = browser.login(name)
    assert first.status_code == 200 and first.json["second_factor_required"] is True
    assert "webauthn" in first.json["methods"]
    return browser


def test_second_step_with_a_security_key(app: Flask) -> None:
    key = SoftKey()
    enrol(user(app), key, passkey=False)
    browser = password_step(app)
    begun = browser.post("/api/login/second-factor/webauthn")
    assert begun.status_code == 200
    assert [c["id"] for c in begun.json["allowCredentials"]] == [key.id]
    assert begun.json["userVerification"] == "preferred"
    done = browser.post(
        "/api/login/second-factor", {"method": "webauthn", "credential": key.get(begun.json)}
    )
    assert done.status_code == 200, done.json
    browser.csrf()
    session = browser.get("/api/me").json["session"]
    assert session["aal"] == 2 and session["amr"] == ["pwd", "webauthn"]


def test_second_step_options_need_a_pending_login(app: Flask) -> None:
    client = Browser(app)
    client.csrf()
    answer = client.post("/api/login/second-factor/webauthn")
    assert answer.status_code == 401


def test_another_users_credential_is_refused_at_the_second_step(app: Flask) -> None:
    mine, theirs = SoftKey(), SoftKey()
    enrol(user(app), mine, passkey=False)
    enrol(user(app, "bob"), theirs, passkey=False)
    browser = password_step(app)
    begun = browser.post("/api/login/second-factor/webauthn").json
    answer = browser.post(
        "/api/login/second-factor", {"method": "webauthn", "credential": theirs.get(begun)}
    )
    assert answer.status_code == 401 and answer.json["error"] == "invalid_code"
    assert stored(app, theirs).sign_count == 0


def test_login_challenge_does_not_serve_the_second_step(app: Flask) -> None:
    key = SoftKey()
    enrol(user(app), key, passkey=False)
    browser = password_step(app)
    begun = browser.post("/api/webauthn/login/begin", {}).json  # a passkey login's challenge
    answer = browser.post(
        "/api/login/second-factor",
        {"method": "webauthn", "credential": key.get(begun, rp_id="localhost")},
    )
    assert answer.status_code == 401


def test_wrong_assertions_are_throttled(app: Flask) -> None:
    key = SoftKey()
    enrol(user(app), key, passkey=False)
    browser = password_step(app)
    statuses = []
    for _ in range(6):
        begun = browser.post("/api/login/second-factor/webauthn").json
        bad = key.get(begun, origin="https://evil.example")
        statuses.append(
            browser.post(
                "/api/login/second-factor", {"method": "webauthn", "credential": bad}
            ).status_code
        )
    assert 429 in statuses and statuses[0] == 401


def test_step_up_with_a_security_key(app: Flask, clock: ManualClock) -> None:
    key = SoftKey()
    browser = user(app)
    enrol(browser, key, passkey=False)
    clock.advance(CoatCheck.state(app).settings.reauth_max_age + 1)
    assert browser.post("/api/webauthn/register/begin", {"passkey": True}).status_code == 401
    begun = browser.post("/api/reauth/webauthn")
    assert begun.status_code == 200 and begun.json["allowCredentials"][0]["id"] == key.id
    done = browser.post("/api/reauth", {"method": "webauthn", "credential": key.get(begun.json)})
    assert done.status_code == 204, done.json
    assert browser.post("/api/webauthn/register/begin", {"passkey": True}).status_code == 200


def test_step_up_options_need_a_credential(app: Flask) -> None:
    browser = user(app)
    answer = browser.post("/api/reauth/webauthn")
    assert answer.status_code == 401 and answer.json["error"] == "invalid_code"


def test_step_up_options_need_a_login(app: Flask) -> None:
    client = Browser(app)
    client.csrf()
    assert client.post("/api/reauth/webauthn").status_code == 401


def test_enrolment_with_a_passkey_completes_the_login(make_app: Callable[..., Flask]) -> None:
    app = make_app(COATCHECK_REQUIRE_SECOND_FACTOR="all")
    state = CoatCheck.state(app)
    state.users.create_user("alice", state.hasher.hash(PASSWORD))
    browser = Browser(app)
    first = browser.login("alice")
    assert first.json["second_factor_enrolment_required"] is True
    browser.csrf()
    assert browser.get("/api/me").status_code == 401
    finished = enrol(browser, SoftKey(), passkey=True)  # no step-up needed here
    assert len(finished["recovery_codes"]) == 10
    browser.csrf()
    session = browser.get("/api/me").json["session"]
    assert session["aal"] == 2 and session["amr"] == ["pwd", "webauthn"]


def test_a_ceremony_belongs_to_its_session(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app()
    browser = user(app)
    begun = browser.post("/api/webauthn/register/begin", {"passkey": True}).json
    other = user(app, "bob")
    answer = other.post("/api/webauthn/register/finish", {"credential": SoftKey().create(begun)})
    assert answer.status_code == 401  # bob's session has no ceremony; alice's is not his


def test_a_script_page_keeps_its_own_policy(app: Flask) -> None:
    from coatcheck.service.http import CONTENT_SECURITY_POLICY, SCRIPT_PAGE_CSP, allow_own_script

    assert "script-src 'self'" in SCRIPT_PAGE_CSP and "'unsafe-inline'" not in SCRIPT_PAGE_CSP
    script_only = SCRIPT_PAGE_CSP.replace("script-src 'self'", "script-src 'none'")
    assert script_only == CONTENT_SECURITY_POLICY
    app.add_url_rule("/script-page", "script_page", lambda: allow_own_script(Response("page")))
    app.add_url_rule("/plain-page", "plain_page", lambda: Response("page"))
    client = Browser(app)
    assert client.get("/script-page").headers.getlist("Content-Security-Policy") == [
        SCRIPT_PAGE_CSP
    ]
    assert client.get("/plain-page").headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    script = client.get("/static/webauthn.js")
    script.close()
    assert script.status_code == 200

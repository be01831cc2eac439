"""CSRF secrets and masked tokens: exact shapes only, every alteration refused."""

from __future__ import annotations

import base64
import string
from types import SimpleNamespace

import pytest

from coatcheck.core import csrf

B64URL = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
#: A secret whose raw bytes are 100..131, and it masked with the pad 0..31.
SECRET = "ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1-f4CBgoM"
TOKEN = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9kZGRkbGxsbGRkZGR8fHx8ZGRkZGxsbGxkZGRknJycnA"


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def lenient_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def spare_bit_variants(text: str) -> list[str]:
    """Return ``text`` with every other value of the unused low bits of its last character."""
    spare = {43: 0b11, 86: 0b1111}[len(text)]  # 32 bytes leave 2 bits, 64 bytes leave 4
    index = B64URL.index(text[-1])
    assert index & spare == 0
    return [text[:-1] + B64URL[index | low] for low in range(1, spare + 1)]


# -- secrets -----------------------------------------------------------------------------


def test_a_new_secret_is_32_random_bytes_in_43_characters() -> None:
    secrets = {csrf.new_secret() for _ in range(50)}
    assert len(secrets) == 50
    for secret in secrets:
        assert len(secret) == 43 and set(secret) <= set(B64URL)
        assert len(lenient_decode(secret)) == csrf.SECRET_BYTES == 32
        assert csrf.is_secret(secret)


@pytest.mark.parametrize(
    "value",
    [
        None,
        123,
        b"ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1-f4CBgoM",
        "",
        SECRET[:-1],  # 42 characters: 31 bytes and change
        SECRET + "A",  # 44 characters
        SECRET + "=",  # padded
        b64url(bytes(31)),
        b64url(bytes(33)),
        SECRET.replace("-", "+"),  # the standard alphabet
        "A" * 41,  # a length no base64 has
        " " + SECRET,
        SECRET + "\n",
    ],
)
def test_only_the_exact_form_is_a_secret(value: object) -> None:
    assert csrf.is_secret(value) is False


def test_a_secret_with_other_spare_bits_is_no_secret() -> None:
    for variant in spare_bit_variants(SECRET):
        assert lenient_decode(variant) == lenient_decode(SECRET)  # the same bytes...
        assert csrf.is_secret(variant) is False  # ...but not the form new_secret makes


@pytest.mark.parametrize("secret", ["", "abc", SECRET[:-1], b64url(bytes(31)), SECRET + "="])
def test_only_a_secret_can_be_masked(secret: str) -> None:
    with pytest.raises(ValueError, match="^not a CSRF secret$"):
        csrf.mask(secret)


# -- tokens ------------------------------------------------------------------------------


def test_mask_uses_a_fresh_pad_of_the_secrets_length(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[int] = []

    def token_bytes(n: int) -> bytes:
        asked.append(n)
        return bytes(range(n))

    monkeypatch.setattr(csrf, "secrets", SimpleNamespace(token_bytes=token_bytes))
    assert csrf.mask(SECRET) == TOKEN
    assert asked == [32]


def test_a_token_matches_its_secret_only() -> None:
    assert csrf.matches(TOKEN, SECRET) is True
    other = b64url(bytes(range(1, 33)))
    assert csrf.matches(TOKEN, other) is False
    assert csrf.matches(csrf.mask(other), SECRET) is False


def single_edits(text: str) -> list[str]:
    """Every one-character replacement, deletion and insertion of ``text``."""
    alphabet = B64URL + "=. +/\x00é"
    out = set()
    for i in range(len(text) + 1):
        if i < len(text):
            out.add(text[:i] + text[i + 1 :])
            out.update(text[:i] + c + text[i + 1 :] for c in alphabet)
        out.update(text[:i] + c + text[i:] for c in alphabet)
    out.discard(text)
    return sorted(out)


def test_every_single_character_change_of_a_token_is_refused() -> None:
    """Deterministic: every position, so the last character's spare bits are always hit."""
    assert [t for t in single_edits(TOKEN) if csrf.matches(t, SECRET)] == []


def test_a_token_with_other_spare_bits_is_refused() -> None:
    for variant in spare_bit_variants(TOKEN):
        assert lenient_decode(variant) == lenient_decode(TOKEN)
        assert csrf.matches(variant, SECRET) is False


def test_a_secret_with_other_spare_bits_matches_nothing() -> None:
    for variant in spare_bit_variants(SECRET):
        assert csrf.matches(TOKEN, variant) is False


@pytest.mark.parametrize(
    "token",
    [
        "",
        TOKEN + "=",
        TOKEN + "==",
        TOKEN[:-1],
        TOKEN + "A",
        TOKEN[:43],  # the pad alone
        TOKEN + TOKEN,  # two tokens
        "A" * 85,  # a length no base64 has
        "A" * 90,
        "A" * 100_000,
        TOKEN.replace("A", "+"),
    ],
)
def test_malformed_tokens_are_refused(token: str) -> None:
    assert csrf.matches(token, SECRET) is False


def test_a_token_and_secret_of_another_size_never_match() -> None:
    """A 16-byte "secret" and a token made for it in the same way: not a CSRF secret."""
    short, pad = bytes(range(16)), bytes(range(100, 116))
    token = b64url(pad + bytes(a ^ b for a, b in zip(pad, short, strict=True)))
    assert csrf.matches(token, b64url(short)) is False


def test_a_token_of_three_parts_never_matches() -> None:
    raw = lenient_decode(TOKEN)
    assert csrf.matches(b64url(raw + raw[32:]), SECRET) is False


# -- provenance --------------------------------------------------------------------------

OWN = "https://desk.example"


@pytest.mark.parametrize(
    ("sec_fetch_site", "origin", "expected"),
    [
        (None, None, None),
        ("same-origin", None, None),
        ("same-site", None, None),
        ("none", None, None),
        ("cross-site", None, csrf.REASON_CROSS_SITE),
        (" CROSS-SITE\t", None, csrf.REASON_CROSS_SITE),
        ("cross-site", OWN, csrf.REASON_CROSS_SITE),
        (None, OWN, None),
        (None, OWN + "/", None),
        (None, "HTTPS://DESK.EXAMPLE", None),
        (None, " \thttps://desk.example ", None),
        (None, "https://partner.example", None),
        (None, "https://partner.example/", None),
        (None, "https://evil.example", csrf.REASON_BAD_ORIGIN),
        (None, "null", csrf.REASON_BAD_ORIGIN),
        (None, "", csrf.REASON_BAD_ORIGIN),
        (None, "http://desk.example", csrf.REASON_BAD_ORIGIN),
        (None, "https://desk.example.evil", csrf.REASON_BAD_ORIGIN),
        (None, "https://desk.exampleX", csrf.REASON_BAD_ORIGIN),
        (None, "https://desk.exampleX/", csrf.REASON_BAD_ORIGIN),
        (None, "Xhttps://desk.example", csrf.REASON_BAD_ORIGIN),
        (None, "https://des\u212a.example", csrf.REASON_BAD_ORIGIN),  # KELVIN SIGN
        (None, "\u3000https://desk.example", csrf.REASON_BAD_ORIGIN),
        (None, "https://desk.example\n", csrf.REASON_BAD_ORIGIN),
        ("same-origin", "https://evil.example", csrf.REASON_BAD_ORIGIN),
    ],
)
def test_origin_failure(sec_fetch_site: str | None, origin: str | None, expected: str) -> None:
    reason = csrf.origin_failure(
        sec_fetch_site=sec_fetch_site,
        origin=origin,
        own_origin=OWN,
        trusted_origins=("https://PARTNER.example/",),
    )
    assert reason == expected


def test_trusted_origins_are_optional() -> None:
    assert csrf.origin_failure(sec_fetch_site=None, origin=OWN, own_origin=OWN) is None
    assert (
        csrf.origin_failure(sec_fetch_site=None, origin="https://partner.example", own_origin=OWN)
        == csrf.REASON_BAD_ORIGIN
    )


def test_every_reason_has_a_message_that_echoes_nothing() -> None:
    reasons = {
        csrf.REASON_NO_TOKEN: "no_token",
        csrf.REASON_BAD_TOKEN: "bad_token",
        csrf.REASON_NO_SECRET: "no_secret",
        csrf.REASON_CROSS_SITE: "cross_site",
        csrf.REASON_BAD_ORIGIN: "bad_origin",
    }
    assert all(code == value for code, value in reasons.items())
    assert set(csrf.MESSAGES) == set(reasons)


def test_an_over_long_token_is_refused_without_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """The work spent on a token is bounded, however long the token sent."""
    decoded: list[int] = []
    decode = csrf._decode

    def spy(text: str) -> bytes | None:
        decoded.append(len(text))
        return decode(text)

    monkeypatch.setattr(csrf, "_decode", spy)
    limit = 2 * len(SECRET) + 4  # 90: a little over the 86 of a token
    for length in (limit, limit + 1, 100_000):
        assert csrf.matches("A" * length, SECRET) is False
    assert csrf.matches(TOKEN, SECRET) is True
    assert sorted(decoded) == sorted([len(SECRET), len(SECRET), len(SECRET), len(SECRET), 86, 90])

"""The second-factor rules of auth/factors.py on their own: no Flask, no HTTP.

TOTP steps and their single use, recovery codes, sealing of secrets, and the
single-use updates racing in threads.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pyotp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from coatcheck.auth.factors import new_recovery_code, recovery_code_hash
from coatcheck.auth.services import Services
from coatcheck.core.clock import ManualClock
from coatcheck.core.errors import InvalidCode, Throttled
from coatcheck.core.sealing import Sealer


@pytest.fixture
def alice(services: Services) -> int:
    return services.accounts.create_user("alice", "correct horse battery").id


def enrol(services: Services, user_id: int, clock: ManualClock) -> pyotp.TOTP:
    enrolment = services.factors.begin_totp(user_id, "alice", "Phone")
    totp = pyotp.TOTP(enrolment.secret)
    services.factors.confirm_totp(user_id, enrolment.id, totp.at(clock()))
    clock.advance(30)
    return totp


def test_a_factor_counts_only_once_confirmed(
    services: Services, alice: int, clock: ManualClock
) -> None:
    enrolment = services.factors.begin_totp(alice, "alice", "Phone")
    assert services.factors.methods(alice) == []
    with pytest.raises(InvalidCode):
        services.factors.confirm_totp(alice, enrolment.id, "000000")
    totp = pyotp.TOTP(enrolment.secret)
    codes = services.factors.confirm_totp(alice, enrolment.id, totp.at(clock()))
    assert codes is not None and len(codes) == 10
    assert services.factors.methods(alice) == ["totp", "recovery"]
    with pytest.raises(InvalidCode):  # confirmed already
        services.factors.confirm_totp(alice, enrolment.id, totp.at(clock()))


def test_a_second_factor_brings_no_new_recovery_codes(
    services: Services, alice: int, clock: ManualClock
) -> None:
    enrol(services, alice, clock)
    enrolment = services.factors.begin_totp(alice, "alice", "Tablet")
    totp = pyotp.TOTP(enrolment.secret)
    assert services.factors.confirm_totp(alice, enrolment.id, totp.at(clock())) is None
    assert services.factors.recovery_codes_left(alice) == 10


def test_steps_within_one_either_side_are_accepted_once_each(
    services: Services, alice: int, clock: ManualClock
) -> None:
    totp = enrol(services, alice, clock)
    clock.advance(60)
    check = services.factors.check
    assert check(alice, "alice", "totp", totp.at(clock() - 30)) == "otp"
    with pytest.raises(InvalidCode):  # that step again
        check(alice, "alice", "totp", totp.at(clock() - 30))
    with pytest.raises(InvalidCode):  # an earlier step than the last accepted
        check(alice, "alice", "totp", totp.at(clock() - 60))
    with pytest.raises(InvalidCode):
        check(alice, "alice", "totp", totp.at(clock() + 60))
    assert check(
        alice, "alice", "totp", f" {totp.at(clock() + 30)[:3]} {totp.at(clock() + 30)[3:]}"
    )


def test_one_code_raced_in_threads_passes_once(
    services: Services, alice: int, clock: ManualClock
) -> None:
    totp = enrol(services, alice, clock)
    code = totp.at(clock())
    start = threading.Barrier(8)

    def attempt(_: int) -> bool:
        start.wait()
        try:
            services.factors.check(alice, "alice", "totp", code)
        except (InvalidCode, Throttled):
            return False
        return True

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(attempt, range(8)))
    assert results.count(True) == 1


def test_recovery_codes_work_once_and_a_new_set_kills_the_old(
    services: Services, alice: int, clock: ManualClock
) -> None:
    enrol(services, alice, clock)
    first = services.factors.new_recovery_codes(alice)
    assert services.factors.check(alice, "alice", "recovery", first[0]) == "recovery"
    with pytest.raises(InvalidCode):
        services.factors.check(alice, "alice", "recovery", first[0])
    assert services.factors.recovery_codes_left(alice) == 9
    second = services.factors.new_recovery_codes(alice)
    with pytest.raises(InvalidCode):
        services.factors.check(alice, "alice", "recovery", first[1])
    assert services.factors.check(alice, "alice", "recovery", second[1]) == "recovery"


def test_removing_the_last_factor_takes_the_recovery_codes(
    services: Services, alice: int, clock: ManualClock
) -> None:
    enrol(services, alice, clock)
    [factor] = services.factors.factors(alice)
    assert services.factors.remove(alice, factor.id)
    assert services.factors.methods(alice) == []
    assert services.factors.recovery_codes_left(alice) == 0
    assert not services.factors.remove(alice, factor.id)


def test_reset_removes_everything_and_moves_the_stamp(
    services: Services, alice: int, clock: ManualClock
) -> None:
    enrol(services, alice, clock)
    before = services.stamps.current(str(alice))
    assert services.factors.reset(alice) == 1
    assert services.factors.methods(alice) == []
    assert services.stamps.current(str(alice)) > before


def test_the_secret_is_sealed_and_a_lost_key_opens_nothing(
    services: Services, alice: int, clock: ManualClock
) -> None:
    enrolment = services.factors.begin_totp(alice, "alice", "Phone")
    [stored] = services.users.factors.of_user(alice, confirmed=False)
    assert stored.secret is not None and enrolment.secret not in stored.secret
    assert services.factor_sealer.open(stored.secret) == enrolment.secret.encode()
    other = Sealer([b"another key of thirty-two bytes!"], "totp")
    assert other.open(stored.secret) is None


def test_sealed_values_open_under_a_fallback_key_and_not_for_another_purpose() -> None:
    old, new = b"the old key, thirty-two bytes...", b"the new key, thirty-two bytes..."
    sealed = Sealer([old], "totp").seal(b"JBSWY3DPEHPK3PXP")
    assert Sealer([old, new], "totp").open(sealed) == b"JBSWY3DPEHPK3PXP"
    assert Sealer([new], "totp").open(sealed) is None
    assert Sealer([old], "other").open(sealed) is None
    assert Sealer([old], "totp").open(sealed[:-2] + "AA") is None
    assert Sealer([old], "totp").open("garbage") is None


@given(st.text(max_size=80))
def test_any_text_is_a_recovery_code_or_none(text: str) -> None:
    found = recovery_code_hash(text)
    assert found is None or (len(found) == 64 and all(c in "0123456789abcdef" for c in found))


@given(st.data())
def test_a_recovery_code_matches_in_any_case_and_spacing(data: st.DataObject) -> None:
    code = new_recovery_code()
    typed = data.draw(
        st.sampled_from(
            [code, code.upper(), code.replace("-", ""), code.replace("-", " "), f" {code} "]
        )
    )
    assert recovery_code_hash(typed) == recovery_code_hash(code) is not None

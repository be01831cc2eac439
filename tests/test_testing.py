"""coatcheck.testing: a third party's store proves itself with the shipped suite."""

from __future__ import annotations

import copy
import subprocess
import sys
import threading
from collections.abc import Iterator, Set

import pytest

from coatcheck.core.clock import Clock, ManualClock, system_clock
from coatcheck.core.records import RecordKind, SessionRecord
from coatcheck.stores.base import SessionStore, check_record, check_save_arguments, merge
from coatcheck.testing import SessionStoreContract


class DictSessionStore(SessionStore):
    """A store as someone outside coatcheck would write it: one dict and a lock."""

    def __init__(self, *, clock: Clock = system_clock) -> None:
        super().__init__(clock=clock)
        self.records: dict[str, SessionRecord] = {}
        self.lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, *, clock: Clock = system_clock) -> DictSessionStore:
        return cls(clock=clock)

    def _live(self) -> list[SessionRecord]:
        now = self.clock()
        return [copy.deepcopy(r) for r in self.records.values() if r.expires_at > now]

    def get(self, key: str) -> SessionRecord | None:
        with self.lock:
            return copy.deepcopy(self.records.get(key))

    def save(
        self,
        record: SessionRecord,
        changed: Set[str] | None = None,
        *,
        changed_meta: Set[str] = frozenset(),
        expect: tuple[str, str] | None = None,
    ) -> bool:
        check_save_arguments(changed, expect)
        check_record(record)
        new = copy.deepcopy(record)
        with self.lock:
            old = self.records.get(record.key)
            if changed is not None:
                if old is None or (expect and old.data.get(expect[0]) != expect[1]):
                    return False
                new.data = merge(old.data, record.data, changed)
                new.meta = merge(old.meta, record.meta, changed_meta)
            self.records[record.key] = new
        return True

    def add(self, record: SessionRecord) -> bool:
        check_record(record)
        with self.lock:
            old = self.records.get(record.key)
            if old is not None and old.expires_at > self.clock():
                return False
            self.records[record.key] = copy.deepcopy(record)
        return True

    def count(self, kind: RecordKind) -> int:
        with self.lock:
            return sum(1 for r in self._live() if r.kind is kind)

    def touch(self, key: str, last_seen_at: float, expires_at: float) -> None:
        with self.lock:
            if key in self.records:
                self.records[key].last_seen_at = last_seen_at
                self.records[key].expires_at = expires_at

    def delete(self, key: str) -> None:
        with self.lock:
            self.records.pop(key, None)

    def list_by_user(self, user_id: str) -> list[SessionRecord]:
        with self.lock:
            mine = [r for r in self._live() if r.user_id == user_id]
        return sorted(mine, key=lambda r: r.created_at)

    def list_all(self, limit: int = 1000) -> list[SessionRecord]:
        with self.lock:
            return sorted(self._live(), key=lambda r: r.last_seen_at, reverse=True)[:limit]

    def delete_by_user(self, user_id: str, *, keep: str | None = None) -> int:
        with self.lock:
            doomed = [k for k, r in self.records.items() if r.user_id == user_id and k != keep]
            for key in doomed:
                del self.records[key]
        return len(doomed)

    def purge_expired(self) -> int:
        now = self.clock()
        with self.lock:
            doomed = [k for k, r in self.records.items() if r.expires_at <= now]
            for key in doomed:
                del self.records[key]
        return len(doomed)


class TestDictSessionStore(SessionStoreContract):
    """All it takes: a subclass and a ``store`` fixture."""

    @pytest.fixture
    def store(self, clock: ManualClock) -> Iterator[SessionStore]:
        store = DictSessionStore(clock=clock)
        yield store
        store.close()


class AddsOverAnything(DictSessionStore):
    def add(self, record: SessionRecord) -> bool:
        self.records[record.key] = copy.deepcopy(record)
        return True


class CountsTheExpired(DictSessionStore):
    def count(self, kind: RecordKind) -> int:
        return sum(1 for r in self.records.values() if r.kind is kind)


class ForgetsKinds(DictSessionStore):
    def get(self, key: str) -> SessionRecord | None:
        record = super().get(key)
        if record is not None:
            record.kind = RecordKind.SESSION
        return record


@pytest.mark.parametrize(
    ("broken", "test"),
    [
        (AddsOverAnything, "test_add_creates_only_when_absent"),
        (AddsOverAnything, "test_stamps_are_never_listed_or_deleted_by_user"),
        (CountsTheExpired, "test_count_leaves_out_expired_and_deleted"),
        (ForgetsKinds, "test_every_kind_round_trips"),
    ],
)
def test_the_suite_fails_a_broken_store(broken: type[DictSessionStore], test: str) -> None:
    clock = ManualClock()
    run = getattr(SessionStoreContract(), test)
    arguments = {"kind": RecordKind.REMEMBER} if test == "test_every_kind_round_trips" else {}
    with pytest.raises(AssertionError):
        run(store=broken(clock=clock), clock=clock, **arguments)
    run(store=DictSessionStore(clock=clock), clock=clock, **arguments)  # the sound one passes


def test_importing_coatcheck_does_not_import_pytest() -> None:
    code = (
        "import sys, coatcheck, coatcheck.stores.memory, coatcheck.stores.sqlite, "
        "coatcheck.stores.redis\n"
        "assert 'pytest' not in sys.modules, 'pytest was imported'\n"
        "import coatcheck.testing\n"
        "assert 'pytest' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr

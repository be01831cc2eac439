"""The Redis store on a real Redis Cluster (three masters) and behind Redis Sentinel.

Every server is the test's own, on free loopback ports: a cluster and a
Sentinel with its master for the whole module, a master, replica and
Sentinel for each failover test; all stopped at the end. The whole store
contract (``coatcheck.testing``, with the Redis additions of
``test_contract.py``) runs again here against both.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask

from coatcheck import CoatCheck
from coatcheck.auth.throttle import ratelimit_url_for
from coatcheck.core.clock import ManualClock
from coatcheck.core.errors import ConfigurationError, StoreUnavailable
from coatcheck.core.passwords import PasswordHasher
from coatcheck.core.records import SessionRecord
from coatcheck.stores.base import SessionStore, open_store
from coatcheck.stores.redis import RedisSessionStore
from coatcheck.testing import make_record

from ..conftest import TEST_SECRET_KEY, free_port, unavailable, wait_for_port
from ..ext.auth_app import PASSWORD, Browser, build_auth_app
from .test_contract import RedisContract

SERVICE = "coatcheck-test"
SENTINEL_PASSWORD = "sentinel-test-password"
WAIT = 15.0  # seconds, for anything the servers do on their own


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} is not installed")
        raise AssertionError  # unreachable: unavailable() skips or fails
    return path


def sentinel_command(config: Path) -> list[str]:
    found = shutil.which("redis-sentinel")
    return [found, str(config)] if found else [binary("redis-server"), str(config), "--sentinel"]


def wait_until(check: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except redis.RedisError:
            pass  # not up yet
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not happen within {timeout}s")


class Servers:
    """Processes of the test's own, stopped together."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, command: list[str], port: int) -> None:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        wait_for_port(port, proc, timeout=WAIT)

    def redis_server(self, port: int, *options: str) -> None:
        base = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.start([binary("redis-server"), *base, "--dir", str(self.workdir), *options], port)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def admin(port: int, password: str | None = None) -> redis.Redis:
    return redis.Redis(port=port, password=password, decode_responses=True, socket_timeout=2)


def start_cluster(servers: Servers) -> list[int]:
    """Start three masters and join them into one cluster; return their ports."""
    ports = [free_port() for _ in range(3)]
    for port in ports:
        servers.redis_server(
            port,
            "--cluster-enabled",
            "yes",
            # The bus port would be port + 10000 by default, maybe past 65535.
            "--cluster-port",
            str(free_port()),
            "--cluster-config-file",
            str(servers.workdir / f"nodes-{port}.conf"),
        )
    nodes = [f"127.0.0.1:{port}" for port in ports]
    command = [binary("redis-cli"), "--cluster", "create", *nodes]
    created = subprocess.run(
        [*command, "--cluster-replicas", "0", "--cluster-yes"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert created.returncode == 0, created.stdout + created.stderr
    for port in ports:
        with admin(port) as node:
            wait_until(
                lambda node=node: node.cluster("info")["cluster_state"] == "ok",
                f"cluster_state:ok on port {port}",
            )
    return ports


def start_sentinel(servers: Servers, master: int, *replicas: int) -> int:
    """Start one Sentinel watching ``master`` (quorum 1); return its port."""
    port = free_port()
    config = servers.workdir / f"sentinel-{port}.conf"
    lines = [
        f"port {port}",
        "bind 127.0.0.1",
        f"dir {servers.workdir}",
        f"requirepass {SENTINEL_PASSWORD}",
        f"sentinel monitor {SERVICE} 127.0.0.1 {master} 1",
        f"sentinel auth-pass {SERVICE} {SENTINEL_PASSWORD}",
        f"sentinel down-after-milliseconds {SERVICE} 5000",
        f"sentinel failover-timeout {SERVICE} 10000",
        *(f"sentinel known-replica {SERVICE} 127.0.0.1 {replica}" for replica in replicas),
    ]
    config.write_text("\n".join(lines) + "\n")
    servers.start(sentinel_command(config), port)
    with admin(port, SENTINEL_PASSWORD) as sentinel:
        wait_until(
            lambda: sentinel.sentinel_get_master_addr_by_name(SERVICE) is not None,
            "the Sentinel knowing its master",
        )
    return port


def sentinel_url(sentinel_port: int, db: int = 0) -> str:
    return f"redis+sentinel://:{SENTINEL_PASSWORD}@127.0.0.1:{sentinel_port}/{SERVICE}/{db}"


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    servers = Servers(tmp_path_factory.mktemp("cluster"))
    try:
        ports = start_cluster(servers)
        yield "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in ports[:2])
    finally:
        servers.stop()


@pytest.fixture(scope="module")
def sentinel_store_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    servers = Servers(tmp_path_factory.mktemp("sentinel"))
    try:
        master = free_port()
        servers.redis_server(master, "--requirepass", SENTINEL_PASSWORD)
        yield sentinel_url(start_sentinel(servers, master), db=3)
    finally:
        servers.stop()


@pytest.fixture(params=["cluster", "sentinel"])
def redis_kind_url(
    request: pytest.FixtureRequest, cluster_url: str, sentinel_store_url: str
) -> Iterator[str]:
    """A store URL on the cluster or behind the Sentinel, with a prefix of its own."""
    base = cluster_url if request.param == "cluster" else sentinel_store_url
    prefix = f"cctest:{uuid.uuid4().hex[:12]}:"
    yield f"{base}?prefix={prefix}"
    cleaner = RedisSessionStore.from_url(base)
    for key in list(cleaner.client.scan_iter(match=f"{prefix}*", count=1000)):
        cleaner.client.delete(key)  # one at a time: the keys are in different slots
    cleaner.close()


class TestClusterAndSentinel(RedisContract):
    """Every contract test, on the cluster and behind the Sentinel."""

    @pytest.fixture
    def store(self, redis_kind_url: str, clock: ManualClock) -> Iterator[SessionStore]:
        opened = open_store(redis_kind_url, clock=clock)
        yield opened
        opened.close()


def test_the_contract_runs_here_against_both(request: pytest.FixtureRequest) -> None:
    module = request.node.parent
    assert isinstance(module, pytest.Module)
    (suite,) = [node for node in module.collect() if node.name == "TestClusterAndSentinel"]
    assert isinstance(suite, pytest.Class)
    collected = [item.name for item in suite.collect()]
    contract = [name for name in dir(RedisContract) if name.startswith("test_")]
    assert len(contract) > 25
    assert "test_list_all" in contract and "test_the_kind_indexes_hold_only_live_keys" in contract
    for name in contract:
        for where in ("cluster", "sentinel"):
            assert any(n.startswith(f"{name}[") and where in n for n in collected), (name, where)


def test_sessions_and_indexes_are_spread_over_the_nodes(
    cluster_url: str, clock: ManualClock
) -> None:
    store = RedisSessionStore.from_url(f"{cluster_url}?prefix=spread{uuid.uuid4().hex[:8]}:")
    client = store.client
    assert isinstance(client, redis.RedisCluster)

    def node(name: str) -> str:
        found: str = client.get_node_from_key(name).name
        return found

    # Users whose indexes are on all three nodes...
    users: list[str] = []
    while len({node(store._user_key(user)) for user in users}) < 3:
        assert len(users) < 100
        users.append(f"user{len(users)}")
    # ...and sessions on all three nodes, the first user's on two nodes at least.
    records: dict[str, list[SessionRecord]] = {user: [] for user in users}
    for user in users:
        records[user].append(make_record(clock, user_id=user))
        clock.advance(1)
    first = records[users[0]]
    while (
        len({node(store._session_key(r.key)) for r in first}) < 2
        or len({node(store._session_key(r.key)) for rs in records.values() for r in rs}) < 3
    ):
        assert len(first) < 100
        first.append(make_record(clock, user_id=users[0]))
        clock.advance(1)
    for rs in records.values():
        for record in rs:
            store.save(record)
    sessions = {store._session_key(r.key) for rs in records.values() for r in rs}
    # Each primary holds some of them itself, not through a redirection.
    for primary in client.get_primaries():
        with admin(primary.port) as direct:
            assert set(direct.scan_iter(match=f"{store.prefix}s:*")) & sessions
    for user, rs in records.items():
        assert [r.key for r in store.list_by_user(user)] == [r.key for r in rs]
    assert len(store.list_all()) == len(sessions)
    assert store.delete_by_user(users[0], keep=first[-1].key) == len(first) - 1
    assert [r.key for r in store.list_by_user(users[0])] == [first[-1].key]
    assert all(store.get(r.key) is None for r in first[:-1])
    for user in users:
        assert store.delete_by_user(user) == 1
    assert store.list_all() == []
    assert not list(client.scan_iter(match=f"{store.prefix}*"))
    store.ping()
    store.close()


def test_a_cluster_has_only_db_0(cluster_url: str) -> None:
    with pytest.raises(ConfigurationError, match="one database"):
        open_store(f"{cluster_url}/2")
    with pytest.raises(ConfigurationError, match="one database"):
        open_store(f"{cluster_url}?db=1")
    open_store(f"{cluster_url}/0").close()


def test_an_unreachable_cluster_is_unavailable() -> None:
    with pytest.raises(StoreUnavailable):
        open_store(f"redis+cluster://127.0.0.1:{free_port()}")


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://127.0.0.1:26379",
        "redis+sentinel://127.0.0.1:26379/",
        "redis+sentinel://127.0.0.1:26379/service/x",
        "redis+sentinel://127.0.0.1:26379/service/0/extra",
        "redis+sentinel://127.0.0.1:notaport/service",
        "redis+sentinel://127.0.0.1:26379/service?socket_timeout=soon",
        "redis+cluster://127.0.0.1:1,:7000",
        "redis+cluster://127.0.0.1:1?socket_timeout=soon",
        "rediss+sentinel://127.0.0.1:26379/service",
        "redis+unix:///tmp/redis.sock",
    ],
)
def test_bad_cluster_and_sentinel_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigurationError):
        RedisSessionStore.from_url(url)


@pytest.mark.parametrize(
    ("store_url", "limits_url"),
    [
        ("redis://h:1/2?prefix=a:", "redis://h:1/2"),
        ("redis+cluster://h:1,k:2/?prefix=a:", "redis+cluster://h:1,k:2"),
        ("redis+cluster://:pw@h:1,k:2/0", "redis+cluster://:pw@h:1,k:2"),
        ("redis+sentinel://h:1,k:2/svc/4?prefix=a:", "redis+sentinel://h:1,k:2/svc"),
        ("redis+sentinel://:pw@h:1/svc", "redis+sentinel://:pw@h:1/svc"),
    ],
)
def test_throttle_counters_follow_the_store(store_url: str, limits_url: str) -> None:
    prefix = "a:" if "prefix=a:" in store_url else "coatcheck:"
    assert ratelimit_url_for(store_url) == (limits_url, f"{prefix}throttle")


def test_a_sentinel_store_takes_the_db_and_options_of_its_url(sentinel_store_url: str) -> None:
    store = RedisSessionStore.from_url(f"{sentinel_store_url}?socket_timeout=0.5")
    options = store.client.connection_pool.connection_kwargs  # type: ignore[union-attr]
    assert options["db"] == 3 and options["socket_timeout"] == 0.5
    assert options["socket_connect_timeout"] == 0.5  # ours, where the URL says nothing
    store.client.set(f"{store.prefix}probe", "1", px=1000)
    assert store.client.client_info()["db"] == 3
    store.close()


@pytest.mark.parametrize("old_master", ["demoted", "stopped"])
def test_the_master_is_found_again_after_a_failover(
    old_master: str, tmp_path: Path, clock: ManualClock
) -> None:
    servers = Servers(tmp_path)
    try:
        master, replica = free_port(), free_port()
        auth = ["--requirepass", SENTINEL_PASSWORD, "--masterauth", SENTINEL_PASSWORD]
        # The first sync of the replica starts at once, not after 5 seconds.
        servers.redis_server(master, *auth, "--repl-diskless-sync-delay", "0")
        servers.redis_server(replica, *auth, "--replicaof", "127.0.0.1", str(master))
        sentinel = start_sentinel(servers, master, replica)
        store = RedisSessionStore.from_url(sentinel_url(sentinel))
        record = make_record(clock, user_id="alice", a='"1"')
        store.save(record)  # the store now holds a connection to the old master
        with admin(master, SENTINEL_PASSWORD) as old:
            assert old.wait(1, 5000) == 1  # the replica has the record
        with admin(sentinel, SENTINEL_PASSWORD) as asked:
            asked.execute_command("SENTINEL", "FAILOVER", SERVICE)
            # SENTINEL MASTER, which redis-py reads, names the new master a
            # little after GET-MASTER-ADDR-BY-NAME does.
            wait_until(lambda: asked.sentinel_master(SERVICE)["port"] == replica, "the failover")
        if old_master == "stopped":
            servers.procs[0].terminate()
            servers.procs[0].wait(timeout=10)
        else:
            # What the Sentinel does itself at its next look at the old
            # master, up to ten seconds later.
            with admin(master, SENTINEL_PASSWORD) as old:
                old.replicaof("127.0.0.1", replica)
                old.client_kill_filter(_type="normal", skipme=True)
        record.data["a"] = '"2"'
        assert store.save(record, {"a"}) is True
        with admin(replica, SENTINEL_PASSWORD) as new:
            assert new.hget(store._session_key(record.key), "d:a") == '"2"'
        loaded = store.get(record.key)
        assert loaded is not None and loaded.data == {"a": '"2"'}
        assert [r.key for r in store.list_by_user("alice")] == [record.key]
        store.close()
    finally:
        servers.stop()


def make_app_factory(url: str, clock: ManualClock, tmp_path: Path) -> Callable[..., Flask]:
    """Return a factory of small apps using coatcheck on ``url`` (as conftest's make_app)."""

    def factory(**config: Any) -> Flask:
        app = Flask(__name__, instance_path=str(tmp_path / "instance"))
        app.config.update(
            {
                "TESTING": True,
                "SECRET_KEY": TEST_SECRET_KEY,
                "COATCHECK_STORE_URL": url,
                "COATCHECK_DATABASE_URL": f"sqlite:///{tmp_path / 'users.db'}",
                **config,
            }
        )
        CoatCheck(app, clock=clock, hasher=PasswordHasher.fast_for_tests())
        return app

    return factory


def test_a_flask_app_keeps_sessions_and_throttles_logins(
    redis_kind_url: str, clock: ManualClock, tmp_path: Path
) -> None:
    app = build_auth_app(make_app_factory(redis_kind_url, clock, tmp_path))
    state = CoatCheck.state(app)
    assert isinstance(state.store, RedisSessionStore)
    browser = Browser(app)
    assert browser.register("alice").status_code == 201
    for _ in range(2):
        me = browser.get("/api/me")
        assert me.status_code == 200 and me.json["user"]["username"] == "alice"  # type: ignore[index]
    user_id = str(me.json["user"]["id"])  # type: ignore[index]
    assert len(state.store.list_by_user(user_id)) == 1
    assert browser.post("/change").json == {"changes": 1}
    # Five failures lock the account, even for the right password.
    for _ in range(5):
        assert Browser(app).login("alice", "wrong password here").status_code == 401
    locked = Browser(app).login("alice", PASSWORD)
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
    # The counters are in Redis, under the store's prefix (in db 0 behind a
    # Sentinel: the limits library takes no db there).
    limits_client = state.throttle.storage.storage  # type: ignore[union-attr]
    assert isinstance(limits_client, redis.Redis | redis.RedisCluster)
    assert list(limits_client.scan_iter(match=f"{state.store.prefix}throttle*"))
    if isinstance(state.store.client, redis.RedisCluster):
        assert list(state.store.client.scan_iter(match=f"{state.store.prefix}throttle*"))
    # The logged-in browser is not affected.
    assert browser.get("/api/me").status_code == 200
    assert browser.post("/api/logout").status_code == 204
    assert browser.get("/api/me").status_code == 401
    assert state.store.list_by_user(user_id) == []
    state.store.close()

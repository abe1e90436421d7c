"""The online feature store, both backends against the real thing: a ``redis-server`` process
(harness/redis.py) and a SQLite file.

What scoring relies on: a lookup gives exactly numpy's statistics of the stored amounts ∪ {the new one}
(and the summary is exactly :meth:`History.add` folded in ingestion order); ingestion is idempotent,
validates a whole batch before writing any of it, loses no update under real concurrency (tasks and
processes); lookups never write; any string is a valid id; an unreachable store is one exception naming
the URL without its password, and the same store object works again once Redis is back.
"""

from __future__ import annotations

import asyncio
import functools
import operator
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import closing
from itertools import pairwise
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.crc import key_slot

from credit_features.definition import History, extend
from harness import ROOT
from harness.net import free_port
from harness.redis import redis_server
from serving.transformer import store as store_module
from serving.transformer.store import (
    FeatureStore,
    IngestConflict,
    IngestResult,
    Key,
    RedisStore,
    StoreUnavailable,
    median_from_window,
    median_window,
    open_store,
)

T = TypeVar("T")


class Backend:
    """One store URL and two ways of seeing its data from outside the store: a full dump, and a counter
    that moves on every write (Redis's dirty counter; SQLite's ``data_version`` on an observer)."""

    def __init__(self, name: str, url: str) -> None:
        self.name, self.url = name, url
        self._observer: sqlite3.Connection | None = None
        if name == "sqlite":
            self._observer = sqlite3.connect(self.path, isolation_level=None)

    @property
    def path(self) -> str:
        return self.url.removeprefix("sqlite://")

    def dump(self) -> object:
        if self._observer is not None:
            return list(self._observer.iterdump())
        with closing(redis.Redis.from_url(self.url)) as client:
            return {key: client.dump(key) for key in sorted(client.keys("*"))}

    def writes(self) -> int:
        if self._observer is not None:
            return self._observer.execute("PRAGMA data_version").fetchone()[0]
        with closing(redis.Redis.from_url(self.url)) as client:
            return client.info("persistence")["rdb_changes_since_last_save"]


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as server:
        yield server.url


@pytest.fixture(scope="module", params=["redis", "sqlite"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Backend:
    if request.param == "redis":
        return Backend("redis", request.getfixturevalue("redis_url"))
    return Backend("sqlite", f"sqlite://{tmp_path_factory.mktemp('store') / 'features.db'}")


def using(url: str, work: Callable[[FeatureStore], Awaitable[T]], **options: float) -> T:
    """Run ``work`` with a store opened on ``url`` in a fresh event loop, closing the store after."""

    async def main() -> T:
        store = open_store(url, **options)
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(main())


def customer() -> str:
    """A customer no other test (or example) has used: the backends are shared by the module."""
    return f"CustomerId_{uuid.uuid4().hex[:12]}"


def folded(amounts: list[float]) -> History:
    return functools.reduce(extend, amounts[1:], History.first(amounts[0]))


# ----- the pure median -----


def test_the_median_window_gives_the_median_of_every_small_case() -> None:
    rng = np.random.default_rng(3)
    for count in range(0, 9):
        for _ in range(30):
            stored = sorted(rng.integers(-3, 4, count).astype(float).tolist())
            new = float(rng.integers(-4, 5))
            first, last = median_window(count, True)
            window = {r: stored[r] for r in range(first, last + 1)}
            assert median_from_window(count, window, new) == np.median([*stored, new])
            if count:
                first, last = median_window(count, False)
                assert median_from_window(count, {r: stored[r] for r in range(first, last + 1)}, None) == (
                    np.median(stored)
                )


# ----- lookups give exactly the statistics training computes -----

amounts = st.one_of(
    st.integers(-5, 5).map(float),  # many ties, zero and negatives (refunds are negative in Xente)
    st.integers(-1_000_000, 10_000_000).map(float),
    st.integers(-100_000_000, 100_000_000).map(lambda cents: cents / 100),
)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stored=st.lists(amounts, min_size=1, max_size=40), new=amounts, data=st.data())
def test_a_lookup_gives_numpys_statistics_of_the_history(
    backend: Backend, stored: list[float], new: float, data: st.DataObject
) -> None:
    who = customer()
    keys = [Key(who, f"TransactionId_{i}", amount) for i, amount in enumerate(stored)]
    cuts = sorted(data.draw(st.sets(st.integers(1, len(keys) - 1), max_size=4)) if len(keys) > 1 else set())
    batches = [keys[a:b] for a, b in pairwise([0, *cuts, len(keys)])]
    known = data.draw(st.sampled_from(keys))

    async def work(store: FeatureStore) -> list:
        for batch in batches:
            assert await store.ingest(batch) == IngestResult(len(batch), 0)
        return await store.lookup([Key(who, "TransactionId_new", new), known])

    fresh, again = using(backend.url, work)
    assert not fresh.stored and again.stored
    assert fresh.history == again.history == folded(stored)  # History.add, bit for bit, in ingestion order

    everything = [*stored, new]
    scored = extend(fresh.history, new)
    assert scored.count == len(everything)
    assert scored.total == functools.reduce(operator.add, everything)  # the sequential sum
    assert (scored.minimum, scored.maximum) == (min(everything), max(everything))
    assert fresh.median == np.median(everything)
    # numpy's two-pass std of equal amounts is not exactly 0 ([0.35] * 3 gives 7e-17): below the amounts'
    # resolution only an absolute tolerance is meaningful
    resolution = 1e-12 * max(abs(a) for a in everything)
    assert scored.std == pytest.approx(np.std(everything, ddof=1), rel=1e-9, abs=resolution)
    assert again.median == np.median(stored)
    assert again.history.std == pytest.approx(
        np.std(stored, ddof=1) if len(stored) > 1 else 0.0, rel=1e-9, abs=resolution
    )


def test_a_first_seen_customer_has_no_history(backend: Backend) -> None:
    (snapshot,) = using(backend.url, lambda store: store.lookup([Key(customer(), "t", -250.0)]))
    assert snapshot.history is None and not snapshot.stored and snapshot.median == -250.0


def test_keys_of_one_customer_in_one_lookup_are_each_looked_up_against_the_stored_state(
    backend: Backend,
) -> None:
    who = customer()

    async def work(store: FeatureStore) -> list:
        await store.ingest([Key(who, "a", 10.0)])
        return await store.lookup([Key(who, "b", 20.0), Key(who, "c", 30.0), Key(who, "a", 10.0)])

    b, c, a = using(backend.url, work)
    assert b.history == c.history == a.history == History.first(10.0)
    assert (b.median, c.median, a.median) == (15.0, 20.0, 10.0)
    assert (b.stored, c.stored, a.stored) == (False, False, True)


# ----- ingestion -----


def test_replaying_a_batch_changes_nothing(backend: Backend) -> None:
    who = customer()
    batch = [Key(who, f"t{i}", float(i * 7 % 5)) for i in range(10)]
    assert using(backend.url, lambda store: store.ingest(batch)) == IngestResult(10, 0)
    before, writes = backend.dump(), backend.writes()
    assert using(backend.url, lambda store: store.ingest(batch)) == IngestResult(0, 10)
    assert using(
        backend.url, lambda store: store.ingest(batch[3:5] + [Key(who, "t10", 1.0)])
    ) == IngestResult(1, 2)
    (snapshot,) = using(backend.url, lambda store: store.lookup([Key(who, "t0", 0.0)]))
    assert snapshot.history == folded([k.amount for k in batch] + [1.0])
    assert before != backend.dump() and writes != backend.writes()  # the one new key was written


def test_keys_repeated_in_a_batch_count_once(backend: Backend) -> None:
    who = customer()
    a, b = Key(who, "a", 1.0), Key(who, "b", 2.0)
    assert using(backend.url, lambda store: store.ingest([a, a, b, a])) == IngestResult(2, 0)
    assert using(backend.url, lambda store: store.ingest([a, Key(who, "c", 3.0), a, b])) == IngestResult(1, 2)
    (snapshot,) = using(backend.url, lambda store: store.lookup([a]))
    assert snapshot.history == folded([1.0, 2.0, 3.0]) and snapshot.median == 2.0


def test_a_conflicting_amount_raises_and_writes_nothing_of_the_batch(backend: Backend) -> None:
    who, other = customer(), customer()
    using(backend.url, lambda store: store.ingest([Key(who, "TransactionId_1", 500.0)]))
    before, writes = backend.dump(), backend.writes()
    batch = [Key(other, "x", 1.0), Key(who, "TransactionId_2", 7.0), Key(who, "TransactionId_1", -500.0)]
    with pytest.raises(IngestConflict, match=r"'TransactionId_1'.*500\.0.*-500\.0") as caught:
        using(backend.url, lambda store: store.ingest(batch))
    assert (caught.value.stored, caught.value.amount) == (500.0, -500.0)
    with pytest.raises(IngestConflict, match="'y'"):  # the same id twice in one batch, two amounts
        using(backend.url, lambda store: store.ingest([Key(other, "y", 1.0), Key(other, "y", 2.0)]))
    assert backend.dump() == before and backend.writes() == writes


def test_a_lookup_never_writes(backend: Backend) -> None:
    who = customer()
    using(backend.url, lambda store: store.ingest([Key(who, f"t{i}", float(i)) for i in range(5)]))
    before, writes = backend.dump(), backend.writes()
    keys = [Key(who, "t1", 1.0), Key(who, "new", 9.0), Key(customer(), "first", 3.0)]
    snapshots = using(backend.url, lambda store: store.lookup(keys))
    assert [s.median for s in snapshots] == [2.0, 2.5, 3.0]
    assert backend.writes() == writes and backend.dump() == before


ODD = ["a{b}c", "{", "}", "}{", "a:b", "a%3Ab", "with space", "ü€😀", "{x}:{y}", "%", "line\nbreak", "\x00"]


def test_any_string_is_an_id(backend: Backend) -> None:
    run = uuid.uuid4().hex[:6]
    keys = [Key(f"{odd}{run}", odd, float(i)) for i, odd in enumerate(ODD)]
    keys += [Key(f"{ODD[0]}{run}", f"{odd}!", 100.0 + i) for i, odd in enumerate(ODD)]

    async def work(store: FeatureStore) -> list:
        assert await store.ingest(keys) == IngestResult(len(keys), 0)
        assert await store.ingest(keys) == IngestResult(0, len(keys))
        return await store.lookup(keys)

    snapshots = using(backend.url, work)
    assert all(s.stored for s in snapshots)
    assert snapshots[0].history == folded([0.0, *(100.0 + i for i in range(len(ODD)))])
    assert [s.history.count for s in snapshots[1 : len(ODD)]] == [1] * (len(ODD) - 1)  # no two ids collide
    assert [s.history.total for s in snapshots[1 : len(ODD)]] == [float(i) for i in range(1, len(ODD))]


def test_redis_keys_put_a_customer_in_one_slot_whatever_its_id() -> None:
    store = RedisStore("redis://127.0.0.1:1", key_prefix="credit-risk")
    for odd in ODD:
        amounts, summary = store.keys_of(odd)
        assert amounts.startswith("credit-risk:{") and amounts.endswith("}:amounts")
        assert key_slot(amounts.encode()) == key_slot(summary.encode())
        assert amounts[len("credit-risk:{") : -len("}:amounts")].count("{") == 0
    assert len({store.keys_of(odd) for odd in ODD}) == len(ODD)
    with pytest.raises(ValueError, match="braces"):
        RedisStore("redis://127.0.0.1:1", key_prefix="a{b}")


# ----- concurrency: no lost update -----


def check_one_customer(url: str, who: str, amounts: list[float]) -> None:
    (snapshot,) = using(url, lambda store: store.lookup([Key(who, "never-stored", 0.0)]))
    history = snapshot.history
    assert history.count == len(amounts)
    assert history.total == sum(amounts)  # integers: exact in any order
    assert (history.minimum, history.maximum) == (min(amounts), max(amounts))
    assert snapshot.median == np.median([*amounts, 0.0])
    assert history.std == pytest.approx(np.std(amounts, ddof=1), rel=1e-9)


def amount_of(i: int) -> float:
    return float((i * 7919) % 1001 - 400)


def test_fifty_tasks_ingesting_one_customer_lose_no_update(backend: Backend) -> None:
    who = customer()

    async def work(store: FeatureStore) -> None:
        async def task(t: int) -> None:
            for b in range(4):
                ids = range(t * 20 + b * 5, t * 20 + b * 5 + 5)
                assert await store.ingest([Key(who, f"t{i}", amount_of(i)) for i in ids]) == IngestResult(
                    5, 0
                )

        await asyncio.gather(*(task(t) for t in range(50)))

    using(backend.url, work, timeout_seconds=10)
    check_one_customer(backend.url, who, [amount_of(i) for i in range(1000)])


_CHILD = """
import asyncio, os, sys, time
from serving.transformer.store import Key, IngestResult, open_store
url, who, first, count, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
amount = lambda i: float((i * 7919) % 1001 - 400)
async def main():
    store = open_store(url, timeout_seconds=10)
    await store.ping()
    open(f"{go}.{first}", "w").close()  # at the start line
    while not os.path.exists(go):
        time.sleep(0.002)
    for start in range(first, first + count, 5):
        keys = [Key(who, f"t{i}", amount(i)) for i in range(start, start + 5)]
        assert await store.ingest(keys) == IngestResult(5, 0)
    await store.close()
asyncio.run(main())
"""


def test_eight_processes_ingesting_one_customer_lose_no_update(backend: Backend, tmp_path: Path) -> None:
    who, go, per_process = customer(), tmp_path / "go", 100
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, backend.url, who, str(p * per_process), str(per_process), str(go)],
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for p in range(8)
    ]
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("go.*"))) < len(children):  # every child connected, waiting for the start
        assert time.monotonic() < deadline and all(c.poll() is None for c in children), (
            "a child did not start"
        )
        time.sleep(0.01)
    go.touch()
    for child in children:
        _, error = child.communicate(timeout=60)
        assert child.returncode == 0, error
    check_one_customer(backend.url, who, [amount_of(i) for i in range(8 * per_process)])


# ----- failures -----


def test_redis_comes_back_after_a_restart_with_the_same_store_object(tmp_path: Path) -> None:
    with redis_server(tmp_path / "data", appendonly=True) as server:
        who = customer()

        async def work(store: FeatureStore) -> None:
            await store.ingest([Key(who, "a", 1.0), Key(who, "b", 3.0)])
            server.stop()
            started = time.monotonic()
            with pytest.raises(StoreUnavailable, match=f"feature store redis://127.0.0.1:{server.port}/0"):
                await store.lookup([Key(who, "c", 2.0)])
            with pytest.raises(StoreUnavailable):
                await store.ingest([Key(who, "c", 2.0)])
            assert time.monotonic() - started < 5
            server.start()  # the same port and directory: the append-only file brings the data back
            (snapshot,) = await store.lookup([Key(who, "c", 2.0)])  # the script cache is empty: NOSCRIPT
            assert snapshot.history == folded([1.0, 3.0]) and snapshot.median == 2.0
            assert await store.ingest([Key(who, "c", 2.0)]) == IngestResult(1, 0)

        using(server.url, work)


def test_a_dead_redis_is_unavailable_with_the_password_masked() -> None:
    port = free_port()
    url = f"redis://scorer:s3cret@127.0.0.1:{port}/0"
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:
        using(url, lambda store: store.lookup([Key("c", "t", 1.0)]), timeout_seconds=0.5)
    assert time.monotonic() - started < 3
    message = str(caught.value)
    assert message.startswith(f"feature store redis://scorer:***@127.0.0.1:{port}/0 is unavailable: ")
    assert "s3cret" not in message
    with pytest.raises(StoreUnavailable, match=r"\*\*\*"):
        using(url, lambda store: store.ping())


def test_a_wrong_redis_password_is_unavailable() -> None:
    with redis_server(password="right horse") as server:
        using(server.url, lambda store: store.ping())
        wrong = server.url.replace("right%20horse", "wrong")
        with pytest.raises(StoreUnavailable, match=r"redis://:\*\*\*@127\.0\.0\.1.*unavailable"):
            using(wrong, lambda store: store.lookup([Key("c", "t", 1.0)]))
        with pytest.raises(StoreUnavailable):
            using(server.url.replace(":right%20horse@", ""), lambda store: store.ping())


def test_sqlite_that_cannot_open_or_stays_locked_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(
        StoreUnavailable, match="sqlite:///.*/missing/features.db is unavailable: unable to open"
    ):
        using(f"sqlite://{tmp_path}/missing/features.db", lambda store: store.ping())
    url = f"sqlite://{tmp_path}/features.db"
    using(url, lambda store: store.ping())
    with closing(sqlite3.connect(tmp_path / "features.db", isolation_level=None)) as holder:
        holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock for longer than the timeout
        with pytest.raises(StoreUnavailable, match="locked"):
            using(url, lambda store: store.ingest([Key("c", "t", 1.0)]), timeout_seconds=0.2)
        assert using(url, lambda store: store.lookup([Key("c", "t", 1.0)]))[0].history is None  # reads go on
        holder.execute("ROLLBACK")
    assert using(url, lambda store: store.ingest([Key("c", "t", 1.0)])) == IngestResult(1, 0)


def test_open_store_names_the_accepted_schemes() -> None:
    with pytest.raises(ValueError) as caught:
        open_store("postgres://user:pw@db:5432/features")
    message = str(caught.value)
    assert "\n" not in message and "pw" not in message and "user:***@db" in message
    for scheme in ("redis://", "rediss://", "unix://", "sqlite:///"):
        assert scheme in message
    with pytest.raises(ValueError, match="absolute path"):
        open_store("sqlite://relative.db")


def test_keys_must_be_nonempty_strings_with_a_finite_amount() -> None:
    for bad in (("", "t", 1.0), ("c", "", 1.0), ("c", "t", float("nan")), ("c", "t", float("inf"))):
        with pytest.raises(ValueError):
            Key(*bad)


def test_the_masked_url_hides_every_password() -> None:
    mask = store_module.mask_url
    assert mask("redis://:pw@h:6379/0") == "redis://:***@h:6379/0"
    assert mask("rediss://u:p%40ss@h:6380") == "rediss://u:***@h:6380"
    assert mask("unix:///run/redis.sock?db=1&password=pw") == "unix:///run/redis.sock?db=1&password=***"
    assert mask("redis://h:6379/0") == "redis://h:6379/0"


# ----- bounded time -----


def test_sqlite_reads_every_median_through_an_index() -> None:
    """O(log n) per lookup and per ingestion: each statement is an index search, never a scan or a sort."""
    with closing(sqlite3.connect(":memory:")) as connection:
        connection.executescript(store_module._SCHEMA)
        statements = [
            (store_module._SUMMARY, ("c",)), (store_module._AMOUNT, ("c", "t")),
            (store_module._LOWER_TOP, ("c", 2)), (store_module._UPPER_BOTTOM, ("c",)),
            ("UPDATE amounts SET upper = ? WHERE customer = ? AND transaction_id = ?", (1, "c", "t")),
        ]  # fmt: skip
        for sql, args in statements:
            plan = " ".join(row[3] for row in connection.execute(f"EXPLAIN QUERY PLAN {sql}", args))
            assert plan.startswith("SEARCH") and "TEMP B-TREE" not in plan, (sql, plan)


def test_memory_is_reported(backend: Backend) -> None:
    who = customer()

    async def work(store: FeatureStore) -> int | None:
        await store.ingest([Key(who, f"t{i}", float(i)) for i in range(50)])
        return await store.memory_bytes()

    assert using(backend.url, work) > 0

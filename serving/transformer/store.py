"""The online feature store: each customer's Amount history, summarised for point-in-time aggregates.

Scoring a transaction needs seven aggregates of the customer's Amounts up to and including it
(:mod:`credit_features.definition`). Six follow exactly from the six numbers of
:class:`~credit_features.definition.History` (count, total, Welford's mean and m2, minimum, maximum); the
median needs the amounts themselves, as an order statistic. The store therefore keeps, per customer,

* the **summary**: the six History numbers, updated on ingestion with exactly :meth:`History.add`'s IEEE-754
  operations in the same order, so online features equal the offline (training) ones bit for bit;
* the **amounts** in an ordered structure keyed by TransactionId, which also makes ingestion idempotent:
  a TransactionId already stored for the customer is a duplicate (same Amount) or a conflict (another one).

**Median in O(log n).** Of ``n`` stored amounts ``s[0] ≤ … ≤ s[n-1]`` and one new amount ``x``, the value at
rank ``r`` of the union is ``clamp(x, s[r-1], s[r])`` (with ``s[-1] = -inf``, ``s[n] = +inf``), so the union's
median needs at most the three stored values at ranks ``⌊n/2⌋-1 … ⌊(n+1)/2⌋`` (:func:`median_window`), read by
rank in O(log n), and nothing is written to compute it (:func:`median_from_window`).

**Backends** (:func:`open_store`):

* :class:`RedisStore` (production): per customer a sorted set ``<prefix>:{<id>}:amounts`` (member
  TransactionId, score Amount: rank reads are O(log n)) and a hash ``<prefix>:{<id>}:summary``. The hash tag
  ``{<id>}`` (the URL-quoted customer id, so ``{``, ``}``, ``:``, spaces and ``%`` in ids are safe) keeps a
  customer's two keys in one cluster slot. A whole batch is ONE ``EVALSHA`` (redis-py's ``register_script``
  reloads the script after ``NOSCRIPT``): lookups run a read-only script (``flags=no-writes``, so a replica
  may serve them), ingestion a script that validates the batch, then writes it, atomically. Numbers cross
  Lua as ``%.17g`` strings (exact for doubles; Lua's ``tostring`` keeps 14 digits) and are parsed with
  ``float()``. A batch spanning many customers spans many slots: this targets a standalone (or Sentinel)
  Redis, not Redis Cluster.
* :class:`SqliteStore` (one machine, no server): the classic two-heaps median in one indexed table: each
  customer's amounts are split into a lower half (``upper = 0``, ``⌈n/2⌉`` rows) and an upper half, every
  lower amount ≤ every upper amount; the index ``(customer, upper, amount)`` gives the top two of the lower
  half and the bottom of the upper half, which is the window above, in O(log n). Each ingestion inserts
  into one half and moves at most one row to rebalance. Ingestion is one ``BEGIN IMMEDIATE`` transaction;
  lookups one read transaction (a consistent snapshot); WAL mode lets them run beside a writer, in this
  process or another one using the same file. SQLite is synchronous: its work runs on the store's own
  small thread pool, one connection per thread.

**Concurrency.** Ingesting is atomic per batch in both backends (a Lua script runs alone; ``BEGIN
IMMEDIATE`` takes SQLite's write lock, waiting up to ``timeout_seconds``), so concurrent ingestion for one
customer from many tasks or processes loses no update.

**Failures.** A store that cannot be reached (refused, reset, timed out, authentication failed, loading,
SQLite file locked or not openable) raises :class:`StoreUnavailable`, naming the URL with its password
masked. redis-py reconnects by itself: the same store object works again once the server is back. Each
Redis command gets at most two attempts (one retry, without backoff, for a pooled connection the server
closed), each bounded by ``timeout_seconds``; retrying is safe because lookups only read and ingestion is
idempotent (a retried batch whose first attempt did run reports its keys as duplicates).
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TypeVar
from urllib.parse import quote, unquote, urlsplit

from credit_features.definition import History, extend, median_of

T = TypeVar("T")

ACCEPTED_URLS = (
    "redis://[user:password@]host:port[/db], rediss://… (TLS), unix:///path/to/redis.sock, "
    "sqlite:///absolute/path.db (or sqlite:///:memory:)"
)


@dataclass(frozen=True)
class Key:
    """One transaction to look up or ingest: non-empty UTF-8 ids, a finite Amount (may be negative)."""

    customer_id: str
    transaction_id: str
    amount: float

    def __post_init__(self) -> None:
        for name in ("customer_id", "transaction_id"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty string, not {value!r}")
            value.encode("utf-8")  # a lone surrogate is no UTF-8: UnicodeEncodeError (a ValueError)
        if not math.isfinite(self.amount):
            raise ValueError(
                f"Amount of transaction {self.transaction_id!r} must be finite, not {self.amount!r}"
            )


@dataclass(frozen=True)
class Snapshot:
    """What scoring needs for one :class:`Key`.

    ``history``: the customer's stored summary (None: the customer was never seen). Without this
    transaction, unless ``stored``: then this TransactionId is already stored for the customer and
    ``history`` includes it. ``median``: of the stored amounts ∪ {amount}, or of the stored amounts alone
    when ``stored``.
    """

    history: History | None
    stored: bool
    median: float


@dataclass(frozen=True)
class IngestResult:
    """Distinct (customer, TransactionId) pairs of a batch: ``added``, or ``duplicates`` (already stored
    with the same Amount: nothing changed). A key repeated within the batch counts once."""

    added: int
    duplicates: int


class StoreUnavailable(Exception):
    """The feature store cannot be reached (refused, reset, timed out, authentication, locked)."""


class IngestConflict(Exception):
    """A TransactionId is already stored for the customer (or repeated in the batch) with another Amount.
    Raised before anything of the batch is written."""

    def __init__(self, customer_id: str, transaction_id: str, stored: float, amount: float) -> None:
        self.customer_id, self.transaction_id = customer_id, transaction_id
        self.stored, self.amount = stored, amount
        super().__init__(
            f"transaction {transaction_id!r} of customer {customer_id!r} has Amount {stored!r} in the feature "
            f"store, the batch has Amount {amount!r}: nothing of the batch was written"
        )


# ----- pure parts: URLs, batches, the median -----


def mask_url(url: str) -> str:
    """``url`` with its password (in the authority or a ``password=`` query parameter) shown as ``***``."""
    parts = urlsplit(url)
    masked = url
    if parts.password is not None:
        userinfo, _, host = parts.netloc.rpartition("@")
        masked = masked.replace(f"//{parts.netloc}", f"//{userinfo.partition(':')[0]}:***@{host}", 1)
    if parts.query:
        fields = [
            "password=***" if unquote(field.partition("=")[0]) == "password" else field
            for field in parts.query.split("&")
        ]
        masked = masked.replace(f"?{parts.query}", f"?{'&'.join(fields)}", 1)
    return masked


def distinct(keys: Sequence[Key]) -> list[Key]:
    """The batch's keys without repeats, in first-seen order; a repeat with another Amount is a conflict."""
    seen: dict[tuple[str, str], Key] = {}
    for key in keys:
        first = seen.setdefault((key.customer_id, key.transaction_id), key)
        if first.amount != key.amount:
            raise IngestConflict(key.customer_id, key.transaction_id, first.amount, key.amount)
    return list(seen.values())


def customer_index(keys: Sequence[Key]) -> dict[str, int]:
    """Each customer of the batch and its 1-based position (the Lua scripts' ``KEYS`` pairs)."""
    index: dict[str, int] = {}
    for key in keys:
        index.setdefault(key.customer_id, len(index) + 1)
    return index


def middle_ranks(count: int) -> tuple[int] | tuple[int, int]:
    """The 0-based ranks of the middle value(s) of ``count`` sorted values."""
    half = count // 2
    return (half,) if count % 2 else (half - 1, half)


def median_window(count: int, with_new: bool) -> tuple[int, int]:
    """The ranks ``(first, last)`` of the ``count`` stored amounts the median needs: of them alone, or of
    them ∪ {one new amount} (``with_new``). Empty (``first > last``) for a new amount and no stored one."""
    if not with_new:
        ranks = middle_ranks(count)
        return ranks[0], ranks[-1]
    ranks = middle_ranks(count + 1)
    return max(ranks[0] - 1, 0), min(ranks[-1], count - 1)


def median_from_window(count: int, values: Mapping[int, float], amount: float | None) -> float:
    """The median of the ``count`` stored amounts (``amount`` None) or of them ∪ {amount}, from the stored
    values at the ranks of :func:`median_window` (``values[rank]``)."""
    if amount is None:
        return median_of(tuple(values[r] for r in middle_ranks(count)))  # type: ignore[arg-type]

    def union_at(rank: int) -> float:
        below = values[rank - 1] if rank > 0 else -math.inf
        above = values[rank] if rank < count else math.inf
        return min(max(amount, below), above)

    return median_of(tuple(union_at(r) for r in middle_ranks(count + 1)))  # type: ignore[arg-type]


def snapshot(history: History | None, stored: bool, values: Mapping[int, float], amount: float) -> Snapshot:
    """The :class:`Snapshot` of one key from what the store read for it."""
    count = history.count if history else 0
    return Snapshot(history, stored, median_from_window(count, values, None if stored else amount))


# ----- the interface -----


class FeatureStore(ABC):
    """Per-customer Amount histories. Every method may raise :class:`StoreUnavailable`.

    ``url`` is the store's URL with its password masked (for messages).
    """

    url: str

    @abstractmethod
    async def lookup(self, keys: Sequence[Key]) -> list[Snapshot]:
        """One :class:`Snapshot` per key, in order. Read only: never changes the store.

        Each key is looked up on its own against the stored state, also when the batch holds several keys
        of one customer: the second of two new transactions of a customer does not see the first (the
        caller orders a batch's transactions and extends the history itself).
        """

    @abstractmethod
    async def ingest(self, keys: Sequence[Key]) -> IngestResult:
        """Store the keys not stored yet, in order (idempotent by customer and TransactionId), atomically.

        Raises :class:`IngestConflict`, writing nothing, when a TransactionId is stored (or repeated in the
        batch) with another Amount.
        """

    @abstractmethod
    async def ping(self) -> None:
        """Return when the store answers; raise :class:`StoreUnavailable` otherwise."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections and threads."""

    @abstractmethod
    async def memory_bytes(self) -> int | None:
        """Bytes the store's data uses (None when unknown): for measurements, not the hot path."""


def open_store(url: str, timeout_seconds: float = 1.0, key_prefix: str = "credit-risk") -> FeatureStore:
    """The store at ``url``: ``redis://[user:password@]host:port[/db]``, ``rediss://…`` (TLS),
    ``unix:///path.sock`` (Redis on a Unix socket), ``sqlite:///absolute/path.db`` or ``sqlite:///:memory:``.
    Nothing is connected yet: the first call does (:meth:`FeatureStore.ping` checks)."""
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("redis", "rediss", "unix"):
        return RedisStore(url, timeout_seconds, key_prefix)
    if scheme == "sqlite":
        parts = urlsplit(url)
        path = unquote(parts.path)
        if parts.netloc or not path.startswith("/"):
            raise ValueError(
                f"feature store URL {mask_url(url)!r} needs an absolute path: sqlite:///absolute/path.db"
            )
        return SqliteStore(url, ":memory:" if path == "/:memory:" else path, timeout_seconds)
    raise ValueError(f"unsupported feature store URL {mask_url(url)!r}: use {ACCEPTED_URLS}")


# ----- Redis -----

# Shared by both scripts: KEYS holds (amounts, summary) per customer, ARGV a triple per key: the customer's
# 1-based index into KEYS pairs, the TransactionId, the Amount (Python's repr: exact).
_LOOKUP_LUA = """#!lua flags=no-writes
-- The answer is one string, a line per key: "0" (customer never seen) or "<stored 0/1> <the six summary
-- numbers> <first rank> <the window's amounts>" (a reply of nested arrays costs redis-py's parser more
-- than the whole script). What only depends on the customer is read once per batch.
local function window(amounts, count, stored)
  local first, last
  if stored then
    first, last = math.floor((count - 1) / 2), math.floor(count / 2)
  else
    first, last = math.max(math.floor(count / 2) - 1, 0), math.min(math.floor((count + 1) / 2), count - 1)
  end
  local range = redis.call('ZRANGE', amounts, first, last, 'WITHSCORES')
  local parts = {first}
  for j = 2, #range, 2 do parts[#parts + 1] = range[j] end
  return table.concat(parts, ' ')
end
local customers, lines = {}, {}
for i = 0, #ARGV / 3 - 1 do
  local c = tonumber(ARGV[3 * i + 1])
  local amounts = KEYS[2 * c - 1]
  local known = customers[c]
  if known == nil then
    local count = redis.call('ZCARD', amounts)
    known = false
    if count > 0 then
      local summary = redis.call('HMGET', KEYS[2 * c], 'count', 'total', 'mean', 'm2', 'min', 'max')
      known = {count = count, summary = table.concat(summary, ' '), new = window(amounts, count, false)}
    end
    customers[c] = known
  end
  if not known then
    lines[#lines + 1] = '0'
  elseif redis.call('ZSCORE', amounts, ARGV[3 * i + 2]) then
    known.stored = known.stored or window(amounts, known.count, true)
    lines[#lines + 1] = '1 ' .. known.summary .. ' ' .. known.stored
  else
    lines[#lines + 1] = '0 ' .. known.summary .. ' ' .. known.new
  end
end
return table.concat(lines, '\\n')
"""

_INGEST_LUA = """
local n = #ARGV / 3
local present = {}
for i = 0, n - 1 do
  local c = tonumber(ARGV[3 * i + 1])
  local score = redis.call('ZSCORE', KEYS[2 * c - 1], ARGV[3 * i + 2])
  if score then
    if tonumber(score) ~= tonumber(ARGV[3 * i + 3]) then return {0, i, score} end
    present[i] = true
  end
end
local state, added, duplicates = {}, 0, 0
for i = 0, n - 1 do
  if present[i] then
    duplicates = duplicates + 1
  else
    local c = tonumber(ARGV[3 * i + 1])
    local x = tonumber(ARGV[3 * i + 3])
    local s = state[c]
    if s == nil then
      local f = redis.call('HMGET', KEYS[2 * c], 'count', 'total', 'mean', 'm2', 'min', 'max')
      if f[1] then
        s = {tonumber(f[1]), tonumber(f[2]), tonumber(f[3]), tonumber(f[4]), tonumber(f[5]), tonumber(f[6])}
      end
    end
    if s == nil then
      s = {1, x, x, 0, x, x}  -- History.first
    else  -- History.add, the same IEEE operations in the same order
      local count = s[1] + 1
      local delta = x - s[3]
      local mean = s[3] + delta / count
      local low, high = s[5], s[6]
      if x < low then low = x end
      if x > high then high = x end
      s = {count, s[2] + x, mean, s[4] + delta * (x - mean), low, high}
    end
    state[c] = s
    redis.call('ZADD', KEYS[2 * c - 1], ARGV[3 * i + 3], ARGV[3 * i + 2])
    added = added + 1
  end
end
local function g(x) return string.format('%.17g', x) end
for c, s in pairs(state) do
  redis.call('HSET', KEYS[2 * c], 'count', g(s[1]), 'total', g(s[2]), 'mean', g(s[3]), 'm2', g(s[4]),
    'min', g(s[5]), 'max', g(s[6]))
end
return {1, added, duplicates}
"""


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


def parse_lookup(line: str, amount: float) -> Snapshot:
    """One key's :class:`Snapshot` from its line of the lookup script's answer."""
    tokens = line.split(" ")
    if len(tokens) == 1:
        return snapshot(None, False, {}, amount)
    count, total, mean, m2, minimum, maximum = map(float, tokens[1:7])
    first = int(tokens[7])
    values = {first + j: float(v) for j, v in enumerate(tokens[8:])}
    return snapshot(History(int(count), total, mean, m2, minimum, maximum), tokens[0] == "1", values, amount)


class RedisStore(FeatureStore):
    """The feature store in Redis (see the module docstring for the layout)."""

    def __init__(self, url: str, timeout_seconds: float = 1.0, key_prefix: str = "credit-risk") -> None:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        if "{" in key_prefix or "}" in key_prefix:
            raise ValueError(f"key_prefix {key_prefix!r} may not contain braces (they delimit the hash tag)")
        self.url = mask_url(url)
        self.prefix = key_prefix
        self._client = Redis.from_url(
            url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds,
            retry=Retry(NoBackoff(), 1), decode_responses=True,
        )  # fmt: skip
        self._lookup = self._client.register_script(_LOOKUP_LUA)
        self._ingest = self._client.register_script(_INGEST_LUA)

    def keys_of(self, customer_id: str) -> tuple[str, str]:
        """The customer's sorted set of amounts and summary hash."""
        tag = f"{self.prefix}:{{{quote(customer_id, safe='')}}}"
        return f"{tag}:amounts", f"{tag}:summary"

    def _script_input(self, keys: Sequence[Key]) -> tuple[list[str], list[str | int]]:
        index = customer_index(keys)
        redis_keys = [k for customer in index for k in self.keys_of(customer)]
        args: list[str | int] = []
        for key in keys:
            args += (index[key.customer_id], key.transaction_id, repr(float(key.amount)))
        return redis_keys, args

    async def _call(self, operation: Callable[[], Awaitable[T]]) -> T:
        from redis import exceptions

        try:
            return await operation()
        except (
            exceptions.ConnectionError,  # also AuthenticationError, BusyLoadingError
            exceptions.TimeoutError,
            exceptions.ReadOnlyError,  # ingesting into a replica, e.g. during a failover
            OSError,
        ) as error:
            reason = f"{type(error).__name__}: {error}"
            raise StoreUnavailable(f"feature store {self.url} is unavailable: {reason}") from error

    async def lookup(self, keys: Sequence[Key]) -> list[Snapshot]:
        if not keys:
            return []
        redis_keys, args = self._script_input(keys)
        answer = await self._call(partial(self._lookup, keys=redis_keys, args=args))
        return [parse_lookup(line, key.amount) for key, line in zip(keys, answer.split("\n"), strict=True)]

    async def ingest(self, keys: Sequence[Key]) -> IngestResult:
        batch = distinct(keys)
        if not batch:
            return IngestResult(0, 0)
        redis_keys, args = self._script_input(batch)
        ok, first, second = await self._call(partial(self._ingest, keys=redis_keys, args=args))
        if not ok:
            key = batch[first]
            raise IngestConflict(key.customer_id, key.transaction_id, float(second), key.amount)
        return IngestResult(first, second)

    async def ping(self) -> None:
        await self._call(self._client.ping)

    async def close(self) -> None:
        await self._client.aclose()

    async def memory_bytes(self) -> int | None:
        """``MEMORY USAGE`` (all elements sampled) summed over the store's keys."""

        async def total() -> int:
            used = 0
            keys = [
                k async for k in self._client.scan_iter(match=f"{_glob_escape(self.prefix)}:*", count=1000)
            ]
            for start in range(0, len(keys), 1000):
                pipe = self._client.pipeline(transaction=False)
                for key in keys[start : start + 1000]:
                    pipe.memory_usage(key, samples=0)
                used += sum(n or 0 for n in await pipe.execute())
            return used

        return await self._call(total)


# ----- SQLite -----

_SCHEMA = """
CREATE TABLE IF NOT EXISTS amounts (
    customer TEXT NOT NULL,
    transaction_id TEXT NOT NULL,
    amount REAL NOT NULL,
    upper INTEGER NOT NULL,  -- 0: the lower half of the customer's amounts, 1: the upper half
    PRIMARY KEY (customer, transaction_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS amounts_by_half ON amounts (customer, upper, amount);
CREATE TABLE IF NOT EXISTS summaries (
    customer TEXT PRIMARY KEY,
    count INTEGER NOT NULL,
    total REAL NOT NULL,
    mean REAL NOT NULL,
    m2 REAL NOT NULL,
    minimum REAL NOT NULL,
    maximum REAL NOT NULL,
    lower_count INTEGER NOT NULL  -- rows with upper = 0: always (count + 1) // 2
) WITHOUT ROWID;
"""

_SUMMARY = "SELECT count, total, mean, m2, minimum, maximum, lower_count FROM summaries WHERE customer = ?"
_AMOUNT = "SELECT amount FROM amounts WHERE customer = ? AND transaction_id = ?"
_LOWER_TOP = (
    "SELECT amount, transaction_id FROM amounts WHERE customer = ? AND upper = 0 ORDER BY amount DESC LIMIT ?"
)
_UPPER_BOTTOM = (
    "SELECT amount, transaction_id FROM amounts WHERE customer = ? AND upper = 1 ORDER BY amount LIMIT 1"
)


@dataclass
class _Customer:
    """One customer's summary and lower-half size, as read (and updated) within one transaction."""

    history: History | None
    lower: int

    @classmethod
    def read(cls, connection: sqlite3.Connection, customer: str) -> _Customer:
        row = connection.execute(_SUMMARY, (customer,)).fetchone()
        if row is None:
            return cls(None, 0)
        return cls(History(row[0], *row[1:6]), row[6])


def _window(connection: sqlite3.Connection, customer: str, lower: int) -> dict[int, float]:
    """The stored amounts at ranks ``lower-2 … lower``: the top two of the lower half, the upper's bottom."""
    top = connection.execute(_LOWER_TOP, (customer, 2)).fetchall()
    bottom = connection.execute(_UPPER_BOTTOM, (customer,)).fetchone()
    values = {lower - 1 - j: amount for j, (amount, _) in enumerate(top)}
    if bottom is not None:
        values[lower] = bottom[0]
    return values


def _lookup(connection: sqlite3.Connection, keys: Sequence[Key]) -> list[Snapshot]:
    customers: dict[str, tuple[_Customer, dict[int, float]]] = {}
    out = []
    connection.execute("BEGIN")  # one read transaction: every key sees the same state
    try:
        for key in keys:
            if key.customer_id not in customers:
                state = _Customer.read(connection, key.customer_id)
                window = _window(connection, key.customer_id, state.lower) if state.history else {}
                customers[key.customer_id] = state, window
            state, window = customers[key.customer_id]
            stored = (
                state.history is not None
                and connection.execute(_AMOUNT, (key.customer_id, key.transaction_id)).fetchone() is not None
            )
            out.append(snapshot(state.history, stored, window, key.amount))
    finally:
        connection.execute("COMMIT")
    return out


def _insert(connection: sqlite3.Connection, key: Key, state: _Customer) -> None:
    """Add one new amount to its half, rebalance the halves, extend the summary (in ``state``)."""
    customer, amount = key.customer_id, key.amount
    top = connection.execute(_LOWER_TOP, (customer, 1)).fetchone() if state.lower else None
    upper = top is not None and amount > top[0]
    connection.execute(
        "INSERT INTO amounts (customer, transaction_id, amount, upper) VALUES (?, ?, ?, ?)",
        (customer, key.transaction_id, amount, int(upper)),
    )
    state.history = extend(state.history, amount)
    state.lower += 0 if upper else 1
    target = (state.history.count + 1) // 2
    if state.lower != target:  # off by one: move the lower's top up, or the upper's bottom down
        query, side = (_LOWER_TOP, 1) if state.lower > target else (_UPPER_BOTTOM, 0)
        args = (customer, 1) if side else (customer,)
        _, moved = connection.execute(query, args).fetchone()
        connection.execute(
            "UPDATE amounts SET upper = ? WHERE customer = ? AND transaction_id = ?", (side, customer, moved)
        )
        state.lower += -1 if side else 1


def _ingest(connection: sqlite3.Connection, keys: Sequence[Key]) -> IngestResult:
    batch = distinct(keys)
    if not batch:
        return IngestResult(0, 0)
    connection.execute("BEGIN IMMEDIATE")  # the write lock first: the checks below stay true until COMMIT
    try:
        new = []
        for key in batch:
            row = connection.execute(_AMOUNT, (key.customer_id, key.transaction_id)).fetchone()
            if row is None:
                new.append(key)
            elif row[0] != key.amount:
                raise IngestConflict(key.customer_id, key.transaction_id, row[0], key.amount)
        customers: dict[str, _Customer] = {}
        for key in new:
            if key.customer_id not in customers:
                customers[key.customer_id] = _Customer.read(connection, key.customer_id)
            _insert(connection, key, customers[key.customer_id])
        connection.executemany(
            "INSERT INTO summaries (customer, count, total, mean, m2, minimum, maximum, lower_count)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (customer) DO UPDATE SET count = excluded.count,"
            " total = excluded.total, mean = excluded.mean, m2 = excluded.m2, minimum = excluded.minimum,"
            " maximum = excluded.maximum, lower_count = excluded.lower_count",
            [
                (customer, h.count, h.total, h.mean, h.m2, h.minimum, h.maximum, state.lower)
                for customer, state in customers.items()
                if (h := state.history) is not None
            ],
        )
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    return IngestResult(len(new), len(batch) - len(new))


def _memory_bytes(connection: sqlite3.Connection) -> int:
    (pages,) = connection.execute("PRAGMA page_count").fetchone()
    (free,) = connection.execute("PRAGMA freelist_count").fetchone()
    (size,) = connection.execute("PRAGMA page_size").fetchone()
    return (pages - free) * size


class SqliteStore(FeatureStore):
    """The feature store in one SQLite file (see the module docstring for the layout)."""

    def __init__(self, url: str, path: str, timeout_seconds: float = 1.0, threads: int = 4) -> None:
        self.url = mask_url(url)
        self.path = path
        self._timeout = timeout_seconds
        memory = path == ":memory:"  # one connection only: each new one would be another, empty database
        self._executor = ThreadPoolExecutor(
            1 if memory else threads, thread_name_prefix="feature-store-sqlite"
        )
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection, opened (and the schema created when missing) on first use."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(
                self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False
            )
            try:
                connection.execute("PRAGMA journal_mode = WAL")
                connection.execute("PRAGMA synchronous = NORMAL")  # WAL: durable against a process crash
                present = connection.execute(
                    "SELECT count(*) FROM sqlite_master WHERE name IN ('amounts', 'summaries')"
                ).fetchone()[0]
                if present < 2:  # only a fresh file is written to: opening for lookups changes nothing
                    connection.executescript(f"BEGIN IMMEDIATE;{_SCHEMA}COMMIT;")
            except BaseException:
                connection.close()
                raise
            with self._lock:
                self._connections.append(connection)
            self._local.connection = connection
        return connection

    def _in_thread(self, work: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return work(self._connection())
        except sqlite3.OperationalError as error:  # cannot open, locked beyond the timeout, disk I/O
            raise StoreUnavailable(f"feature store {self.url} is unavailable: {error}") from error

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._in_thread, work)

    async def lookup(self, keys: Sequence[Key]) -> list[Snapshot]:
        if not keys:
            return []
        return await self._run(partial(_lookup, keys=list(keys)))

    async def ingest(self, keys: Sequence[Key]) -> IngestResult:
        return await self._run(partial(_ingest, keys=list(keys)))

    async def ping(self) -> None:
        await self._run(lambda connection: connection.execute("SELECT 1 FROM summaries LIMIT 1").fetchall())

    async def close(self) -> None:
        await asyncio.to_thread(self._executor.shutdown, wait=True)
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()

    async def memory_bytes(self) -> int | None:
        """Pages in use times the page size (the WAL's pages included)."""
        return await self._run(_memory_bytes)

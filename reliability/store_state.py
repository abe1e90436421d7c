"""What the transformer's feature store holds, read after a run to check that it is exactly what the
acknowledged ingestion requests wrote (the fuzz: a rejected request writes nothing; the SIGTERM experiment:
an acknowledged batch is never lost).

* :func:`stored` reads every customer's transactions from Redis (the layout of
  :class:`serving.transformer.store.RedisStore`: a sorted set per customer, member TransactionId, score
  Amount), and :func:`summaries` reads each customer's summary through the store's own ``lookup``;
* :func:`transaction_keys` reads an ingestion body as the transformer does (``orjson``, then the shared
  validator :func:`credit_features.records.from_records`: ids stripped, amounts as floats);
* :class:`Ledger` keeps every ingestion request and its answer; :func:`compare` sets the store against the
  union of the acknowledged ones and says what differs.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote

import orjson

from credit_features import records
from serving.transformer.store import Key, RedisStore, Snapshot, open_store

PREFIX = "credit-risk"  # the transformer's default key prefix
PROBE = "TransactionId_reliability_probe"  # a TransactionId no run sends: lookups of the summary alone

Transaction = tuple[str, str, float]  # (CustomerId, TransactionId, Amount) as stored


def transaction_keys(body: bytes) -> list[Transaction]:
    """The transactions of an ingestion body as the transformer stores them; ``records.InvalidTransaction``
    or ``orjson.JSONDecodeError`` when it holds none it would accept."""
    parsed = records.from_records(orjson.loads(body))
    columns = parsed.columns
    return list(
        zip(
            columns["CustomerId"].tolist(),
            columns["TransactionId"].tolist(),
            [float(a) for a in columns["Amount"].tolist()],
            strict=True,
        )
    )


def stored(url: str, prefix: str = PREFIX) -> dict[str, dict[str, float]]:
    """Every customer's stored transactions, ``{customer: {TransactionId: Amount}}``, read from Redis."""
    import redis

    client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=30)
    layout = RedisStore(url, key_prefix=prefix)  # its key names (nothing is connected)
    head, tail = f"{prefix}:{{", "}:amounts"
    out: dict[str, dict[str, float]] = {}
    try:
        pattern = "".join("\\" + c if c in "*?[]\\" else c for c in prefix) + ":{*}:amounts"
        for key in client.scan_iter(match=pattern, count=1_000):
            customer = unquote(key[len(head) : -len(tail)])
            if layout.keys_of(customer)[0] != key:
                raise AssertionError(f"key {key!r} does not follow the store's layout")
            out[customer] = {
                member: float(score) for member, score in client.zrange(key, 0, -1, withscores=True)
            }
    finally:
        client.close()
    return out


def summaries(url: str, customers: Sequence[str], chunk: int = 500) -> dict[str, Snapshot]:
    """Each customer's :class:`~serving.transformer.store.Snapshot` (its summary; ``history`` None for a
    customer never seen) through the store's own lookup, for a TransactionId never sent."""

    async def read() -> dict[str, Snapshot]:
        store = open_store(url, timeout_seconds=30)
        out: dict[str, Snapshot] = {}
        try:
            for start in range(0, len(customers), chunk):
                part = list(customers[start : start + chunk])
                out.update(zip(part, await store.lookup([Key(c, PROBE, 0.0) for c in part]), strict=True))
        finally:
            await store.close()
        return out

    return asyncio.run(read())


@dataclass
class Entry:
    status: int | None
    body: bytes  # the body as the server read it
    answer: bytes


@dataclass
class Ledger:
    """Every ingestion request of a run with its answer (thread-safe)."""

    entries: list[Entry] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, status: int | None, body: bytes, answer: bytes) -> None:
        with self.lock:
            self.entries.append(Entry(status, body, answer))


def expected_state(
    acknowledged: Iterable[Sequence[Transaction]],
) -> tuple[dict[str, dict[str, float]], list[dict]]:
    """The store the acknowledged batches make: ``{customer: {TransactionId: Amount}}``, and the
    TransactionIds acknowledged with two Amounts (each is a failure: one of them was refused 409)."""
    state: dict[str, dict[str, float]] = {}
    twice: list[dict] = []
    for batch in acknowledged:
        for customer, transaction, amount in batch:
            known = state.setdefault(customer, {})
            if transaction in known and known[transaction] != amount:
                twice.append({"customer": customer, "transaction": transaction,
                              "amounts": [known[transaction], amount]})  # fmt: skip
            known.setdefault(transaction, amount)
    return state, twice


def differences(expected: dict[str, dict[str, float]], actual: dict[str, dict[str, float]],
                keep: int = 10) -> dict[str, object]:  # fmt: skip
    """What ``actual`` (the store) has that ``expected`` has not, and the reverse: customers, TransactionIds,
    Amounts (examples kept)."""
    extra_customers = sorted(set(actual) - set(expected))
    missing_customers = sorted(set(expected) - set(actual))
    extra, missing, changed = [], [], []
    for customer in set(actual) | set(expected):
        have, want = actual.get(customer, {}), expected.get(customer, {})
        extra += [(customer, t, have[t]) for t in set(have) - set(want)]
        missing += [(customer, t, want[t]) for t in set(want) - set(have)]
        changed += [(customer, t, want[t], have[t]) for t in set(have) & set(want) if have[t] != want[t]]
    return {
        "customers_not_acknowledged": len(extra_customers),
        "customers_missing": len(missing_customers),
        "transactions_not_acknowledged": len(extra),
        "transactions_missing": len(missing),
        "amounts_changed": len(changed),
        "examples": {
            "customers_not_acknowledged": [c[:80] for c in extra_customers[:keep]],
            "customers_missing": [c[:80] for c in missing_customers[:keep]],
            "transactions_not_acknowledged": [[c[:80], t[:80], a] for c, t, a in sorted(extra)[:keep]],
            "transactions_missing": [[c[:80], t[:80], a] for c, t, a in sorted(missing)[:keep]],
            "amounts_changed": [[c[:80], t[:80], w, h] for c, t, w, h in sorted(changed)[:keep]],
        },
    }


def summary_mismatches(state: dict[str, dict[str, float]], snapshots: dict[str, Snapshot]) -> list[dict]:
    """Customers whose summary (count, minimum, maximum) disagrees with their stored transactions."""
    wrong = []
    for customer, transactions in state.items():
        history = snapshots[customer].history
        amounts = list(transactions.values())
        seen = None if history is None else (history.count, history.minimum, history.maximum)
        if seen != (len(amounts), min(amounts), max(amounts)):
            wrong.append({"customer": customer[:80], "summary": seen,
                          "transactions": (len(amounts), min(amounts), max(amounts))})  # fmt: skip
    return wrong


def compare(ledger: Ledger, url: str, keep: int = 10) -> dict[str, object]:
    """The store at ``url`` against the acknowledged (200) ingestion requests of ``ledger``: it must hold
    exactly their transactions (every customer, TransactionId and Amount; each summary agreeing), and the
    answers must add up (``received`` the batch's size, ``added`` + ``duplicates`` its transactions, the
    ``added`` of all answers the store's size). Returns the report; ``failures`` lists what does not hold."""
    failures: list[str] = []
    acknowledged: list[list[Transaction]] = []
    unreadable, bad_answers = [], []
    added_total = duplicates_total = 0
    rejected: Counter[str] = Counter()
    rejected_transactions: list[Transaction] = []
    for entry in ledger.entries:
        if entry.status != 200:
            rejected[str(entry.status)] += 1
            with contextlib.suppress(records.InvalidTransaction, orjson.JSONDecodeError):
                rejected_transactions += transaction_keys(entry.body)
            continue
        try:
            batch = transaction_keys(entry.body)
        except (records.InvalidTransaction, orjson.JSONDecodeError) as exc:
            unreadable.append({"error": str(exc)[:200], "body": entry.body[:300].decode("utf-8", "replace")})
            continue
        acknowledged.append(batch)
        try:
            answer = orjson.loads(entry.answer)
            received, added, duplicates = answer["received"], answer["added"], answer["duplicates"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            bad_answers.append({"answer": entry.answer[:200].decode("utf-8", "replace")})
            continue
        added_total, duplicates_total = added_total + added, duplicates_total + duplicates
        if received != len(batch) or added + duplicates != len(batch):
            bad_answers.append({"answer": answer, "transactions": len(batch)})
    expected, twice = expected_state(acknowledged)
    actual = stored(url)
    diff = differences(expected, actual, keep)
    snapshots = summaries(url, sorted(actual))
    wrong_summaries = summary_mismatches(actual, snapshots)
    stored_total = sum(len(t) for t in actual.values())
    acknowledged_keys = {(c, t) for batch in acknowledged for c, t, _ in batch}
    rejected_only = {(c, t) for c, t, _ in rejected_transactions} - acknowledged_keys
    written_rejected = [(c, t) for c, t in rejected_only if t in actual.get(c, {})]

    if unreadable:
        failures.append(f"{len(unreadable)} acknowledged ingestion(s) whose body holds no valid transactions")
    if bad_answers:
        failures.append(f"{len(bad_answers)} acknowledged ingestion(s) whose answer does not add up")
    if twice:
        failures.append(f"{len(twice)} TransactionId(s) acknowledged with two different Amounts")
    if any(diff[k] for k in ("customers_not_acknowledged", "transactions_not_acknowledged")):
        failures.append(
            f"the store holds {diff['transactions_not_acknowledged']} transaction(s) of "
            f"{diff['customers_not_acknowledged']} customer(s) no acknowledged ingestion sent"
        )
    if any(diff[k] for k in ("customers_missing", "transactions_missing", "amounts_changed")):
        failures.append(
            f"acknowledged transactions missing from the store: {diff['transactions_missing']} "
            f"({diff['customers_missing']} whole customers), Amounts changed: {diff['amounts_changed']}"
        )
    if wrong_summaries:
        failures.append(f"{len(wrong_summaries)} customer summaries disagree with their transactions")
    if added_total != stored_total:
        failures.append(f"the answers added {added_total} transactions, the store holds {stored_total}")
    return {
        "passed": not failures,
        "failures": failures,
        "ingestion_requests": len(ledger.entries),
        "acknowledged_requests": len(acknowledged),
        "acknowledged_transactions": sum(len(b) for b in acknowledged),
        "answers": {"added": added_total, "duplicates": duplicates_total},
        "stored": {"customers": len(actual), "transactions": stored_total},
        "rejected_requests_by_status": dict(sorted(rejected.items())),
        "rejected_valid_transactions": len(rejected_transactions),
        "rejected_transactions_never_acknowledged": len(rejected_only),
        "rejected_transactions_found_in_the_store": len(written_rejected),
        "differences": diff,
        "summaries_disagreeing": wrong_summaries[:keep],
        "acknowledged_with_two_amounts": twice[:keep],
        "unreadable_acknowledged": unreadable[:keep],
        "answers_not_adding_up": bad_answers[:keep],
        "what": "the Redis store (every customer's sorted set, and its summary through the store's lookup) "
        "against the union of the transactions of every ingestion answered 200",
    }

"""The families of hostile HTTP requests for the transformer (``python -m serving.transformer``): raw Xente
transactions to ``POST /score``, ingestion batches to ``POST /v1/transactions`` with and without the
producer's bearer token, raw transaction tensors to ``POST /v2/models/credit-risk/infer``, random paths and
methods; and, aimed at those three routes through :class:`~reliability.http_requests.Routes`, the
route-independent families of :mod:`reliability.http_requests` (content types, random bytes, damaged valid
bodies, deep nesting, oversized bodies, HTTP framing) and its V2 documents (the transformer's V2 route reads
them with the same codec). :func:`families` lists them with their share of a run.

Transactions draw their customers and TransactionIds from a small :class:`Pool`, so that batches repeat
transactions (a duplicate with the same Amount, a 409 conflict with another one) and score customers with a
stored history; a few of its customer ids hold the characters the store's keys must quote (``{``, ``}``,
``:``, ``%``, ``*``, spaces, non-ASCII). Then some fields are damaged: junk values, hostile numbers (finite
but beyond float32 too), timestamps that are not ISO 8601, ids padded with blanks, unknown or missing
fields, repeated keys.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import numpy as np
from hypothesis import strategies as st

from credit_features.records import OPTIONAL_FIELDS
from credit_features.schema import AMOUNT_COLUMNS, INTEGER_COLUMNS, PRODUCT_CATEGORIES, RAW_COLUMNS
from reliability.http_client import Request
from reliability.http_requests import (
    Headers,
    Routes,
    content_types,
    deep_nesting,
    http_framing,
    oversized,
    random_bodies,
    text_mutations,
    v2_binary,
    v2_json,
)
from reliability.json_text import Dup, Raw, dump, to_bytes
from reliability.strategies import (
    RAW_NUMBERS,
    SPECIAL_FLOATS,
    SPECIAL_INTS,
    any_json,
    datatype_strategy,
    hostile_number,
    junk_scalar,
    weird_text,
)
from reliability.target import INFER, MODEL

SCORE = "/score"
INGEST = "/v1/transactions"
SCORED_OUTPUTS = ("probability", "prediction", "risk_level", "decision", "features")
STRING_DATATYPE, AMOUNT_DATATYPE, INTEGER_DATATYPE = "BYTES", "FP64", "INT64"
MAX_BATCH_ROWS = 1_000  # the transformer's default --max-batch-rows
JSON = (("Content-Type", "application/json"),)

# Customer ids the store's Redis keys must quote (the hash tag, the separators, glob characters) or that
# are just unusual; every one is a valid id.
AWKWARD_CUSTOMERS = (
    "Customer {a}", "Customer}{b", "Customer:c:d", "Customer%20e", "Customer*?[f]\\", "Kundé_ß_ü",
    "客户_7343", "\U0001f4b3 card", "C" * 2_000,
)  # fmt: skip
PLAIN_AMOUNTS = (1000.0, 500.0, -500.0, 2500.0, 20000.0, 250.5, -67.25, 9880000.0, -1000000.0, 1.0, 0.0)
# Finite, so ingestion takes them; the last ones are beyond float32 (3.4e38), or sum beyond float64.
EXTREME_AMOUNTS = (
    5e-324, -0.0, 1e-300, 3.4028234663852886e38, -3.4e38, 3.5e38, 1e39, -1e39, 1e308, -1e308,
    1.7976931348623157e308, 2.0**63, 2**53 + 1, 10**18,
)  # fmt: skip
HOSTILE_TIMES = (
    "15/11/2018", "2018-11-15", "2018-11-15 02:18:49", "2018-11-15T02:18:49", "2018-11-15T02:18:49+03:00",
    "2018-11-15T02:18:49.123456Z", " 2018-11-15T02:18:49Z ", "2018-13-01T00:00:00Z", "2018-02-30T00:00:00Z",
    "2018-11-15T25:00:00Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2018-11-15T02:18:49+25:00",
    "2018-W46-4", "20181115T021849Z", "", " ", "now", "1542248329", "2018-11-15T02:18:49Z\x00",
    "\u0662\u0660\u0661\u0668-11-15T02:18:49Z",
)  # fmt: skip


def percentile(draw: st.DrawFn) -> int:
    """0-99 for choosing among cases by their share; hypothesis draws the ends of a range (0, 99) far more
    often than their share, so they are moved to the middle, where the common cases are."""
    return (draw(st.integers(0, 99)) + 50) % 100


@dataclass(frozen=True)
class Pool:
    """``customers`` customers with ``ids`` TransactionIds each (``tag`` keeps runs apart); the Amount of
    each TransactionId, so that a transaction drawn twice is a duplicate unless its Amount is changed."""

    tag: str
    customers: int = 48
    ids: int = 40

    def customer(self, i: int) -> str:
        if i < len(AWKWARD_CUSTOMERS):
            return f"{AWKWARD_CUSTOMERS[i]}_{self.tag}"
        return f"CustomerId_{self.tag}_{i}"

    def transaction_id(self, i: int, j: int) -> str:
        return f"TransactionId_{self.tag}_{i}_{j}"

    def amount(self, i: int, j: int) -> float:
        return PLAIN_AMOUNTS[(i * 7 + j) % len(PLAIN_AMOUNTS)]

    def record(self, i: int, j: int, **fields: object) -> dict[str, object]:
        """The valid transaction ``j`` of customer ``i``, with its own Amount unless ``fields`` say else."""
        amount = self.amount(i, j)
        record: dict[str, object] = {
            "TransactionId": self.transaction_id(i, j), "BatchId": f"BatchId_{j}", "AccountId": f"AccountId_{i}",
            "SubscriptionId": f"SubscriptionId_{i}", "CustomerId": self.customer(i), "CurrencyCode": "UGX",
            "CountryCode": 256, "ProviderId": f"ProviderId_{1 + j % 6}", "ProductId": f"ProductId_{1 + j % 23}",
            "ProductCategory": PRODUCT_CATEGORIES[(i + j) % len(PRODUCT_CATEGORIES)],
            "ChannelId": f"ChannelId_{1 + j % 4}", "Amount": amount, "Value": abs(amount),
            "TransactionStartTime": f"2018-{11 + j % 2:02d}-{1 + (i + j) % 28:02d}T{j % 24:02d}:{i % 60:02d}:07Z",
            "PricingStrategy": j % 5, "FraudResult": int(j % 97 == 0),
        }  # fmt: skip
        record.update(fields)
        return record


@st.composite
def pool_transaction(draw: st.DrawFn, pool: Pool) -> dict[str, object]:
    """A valid transaction of the pool: mostly as stored (a duplicate when seen before), now and then with
    another Amount (a conflict when seen before), or with an extreme but finite one."""
    i, j = draw(st.integers(0, pool.customers - 1)), draw(st.integers(0, pool.ids - 1))
    record = pool.record(i, j)
    roll = percentile(draw)
    if roll < 8:
        amount = draw(st.sampled_from(PLAIN_AMOUNTS))
        record.update(Amount=amount, Value=abs(amount))
    elif roll < 11:
        amount = draw(st.sampled_from(EXTREME_AMOUNTS))
        record.update(Amount=amount, Value=abs(amount))
    return record


HOSTILE_VALUE = junk_scalar | hostile_number | weird_text | any_json


@st.composite
def damaged(draw: st.DrawFn, record: dict[str, object]) -> object:
    """``record`` with one to three kinds of damage (or, rarely, replaced by a non-object)."""
    record = dict(record)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(
            ["junk", "junk", "number", "time", "time", "id", "id", "missing", "unknown", "category", "integer",
             "value", "extreme", "duplicate-key", "not-an-object"]
        ))  # fmt: skip
        name = draw(st.sampled_from(RAW_COLUMNS))
        if kind == "junk":
            record[name] = draw(HOSTILE_VALUE)
        elif kind == "number":
            record[draw(st.sampled_from([*AMOUNT_COLUMNS, *INTEGER_COLUMNS]))] = draw(
                hostile_number
                | st.sampled_from([Raw(r) for r in RAW_NUMBERS])
                | st.sampled_from(SPECIAL_INTS)
            )
        elif kind == "time":
            record["TransactionStartTime"] = draw(st.sampled_from(HOSTILE_TIMES) | weird_text)
        elif kind == "id":
            field = draw(st.sampled_from(["CustomerId", "TransactionId", "CustomerId", "AccountId"]))
            value = str(record.get(field, "x"))
            record[field] = draw(st.sampled_from(
                [f"  {value}  ", f"\t{value}\n", value.upper(), value + "\u200b", "", " ", value * 50]
            ) | weird_text)  # fmt: skip
        elif kind == "missing" and name in record:
            del record[name]
        elif kind == "unknown":
            record[draw(weird_text | st.sampled_from(["Amuont", "customerid", "CustomerID", "amount"]))] = 1
        elif kind == "category":
            record["ProductCategory"] = draw(
                st.sampled_from(["Airtime", "airtime ", "groceries", "AIRTIME", "", "utility bill"])
                | weird_text
            )
        elif kind == "integer":
            record[draw(st.sampled_from(INTEGER_COLUMNS))] = draw(
                st.sampled_from([256.5, "256", 2, -1, 3, 2**63, 2**64, 1e19, True, None, 0.5, 1.0])
            )
        elif kind == "value":
            record["Value"] = draw(st.sampled_from([-1, -0.0, -1e-300, "1000", None, 1e39]))
        elif kind == "extreme":
            record["Amount"] = draw(st.sampled_from(EXTREME_AMOUNTS) | st.sampled_from(SPECIAL_FLOATS))
        elif kind == "duplicate-key":
            key = draw(st.sampled_from(["Amount", "CustomerId", "TransactionId", "Value"]))
            items = [(k, v) for k, v in record.items() if k != key]
            first, last = draw(HOSTILE_VALUE), record.get(key, 1)
            if draw(st.booleans()):
                first, last = last, first
            return Dup([(key, first), *items, (key, last)])  # orjson keeps the last
        elif kind == "not-an-object":
            return draw(junk_scalar | st.lists(st.just(record), max_size=2))
    return record


@st.composite
def transactions(draw: st.DrawFn, pool: Pool, hostility: int | None = None) -> list[object]:
    """A batch: 1-40 transactions (rarely none, or just over the batch limit), each damaged with
    probability ``hostility`` percent (drawn when None)."""
    hostility = draw(st.sampled_from([0, 0, 0, 5, 30, 100])) if hostility is None else hostility
    left_out = draw(st.sampled_from(OPTIONAL_FIELDS)) if draw(st.integers(0, 99)) < 10 else None
    roll = percentile(draw)
    if roll < 2:  # just over the limit: distinct valid transactions
        return [
            pool.record(k % pool.customers, k // pool.customers % pool.ids) for k in range(MAX_BATCH_ROWS + 1)
        ]
    if roll < 4:
        return []
    size = draw(st.sampled_from([1, 1, 1, 2, 3, 5, 10]) | st.integers(1, 40))
    batch: list[object] = []
    for _ in range(size):
        record = draw(pool_transaction(pool))
        record.pop(left_out, None)  # a field the features do not read may be left out (by every transaction)
        batch.append(draw(damaged(record)) if draw(st.integers(0, 99)) < hostility else record)
    return batch


def valid_token_headers(token: str) -> st.SearchStrategy[Headers]:
    """``Authorization`` with the producer's token, as clients may spell it (the scheme in any case,
    blanks around the token)."""
    return st.sampled_from(
        [f"Bearer {token}"] * 6
        + [f"bearer {token}", f"BEARER {token}", f"Bearer   {token}", f"Bearer {token} "]
    ).map(lambda value: (("Authorization", value),))


def invalid_token_headers(token: str) -> st.SearchStrategy[Headers]:
    """No ``Authorization``, or one without the producer's token."""
    values = st.sampled_from(
        ["", "Bearer", "Bearer ", f"Bearer {token[:-1]}", f"Bearer {token}x", f"Bearer x{token}", f"Basic {token}",
         f"Token {token}", token, f"Bearer {token.upper()}", f"Bearer {token} {token}", "Bearer null",
         f"Bearer\t{token}", f"Bearer{token}", "Bearer " + "a" * 10_000, f"Bearer {token[: len(token) // 2]}",
         b"Bearer \xff\xfe" + token.encode(), f"Bearer {token}\u00e9".encode()]
    ) | st.text(st.characters(exclude_characters="\r\n\x00"), max_size=40).map(
        lambda t: f"Bearer {t}".encode("utf-8", "surrogatepass")
    )  # fmt: skip
    return st.none() | values.map(lambda value: (("Authorization", value),))


@st.composite
def score_requests(draw: st.DrawFn, pool: Pool) -> Request:
    """``POST /score``: one transaction object, or a list of them (some damaged), or junk."""
    batch = draw(transactions(pool))
    roll = percentile(draw)
    if roll < 45 and batch:
        payload: object = batch[0]  # a single object
    elif roll < 90:
        payload = batch
    elif roll < 95:
        payload = draw(any_json | junk_scalar)
    else:
        payload = {"transactions": batch}
    headers = JSON if draw(st.integers(0, 9)) else ()
    return Request("score", "POST", SCORE, to_bytes(payload, ascii_only=draw(st.booleans())), headers)


@st.composite
def ingest_requests(draw: st.DrawFn, pool: Pool, token: str) -> Request:
    """``POST /v1/transactions`` with the producer's token: a batch (some damaged), rarely a single object
    (refused: ingestion takes a list), a wrapper or junk."""
    batch = draw(transactions(pool))
    roll = percentile(draw)
    payload: object = batch
    if roll < 4 and batch:
        payload = batch[0]
    elif roll < 7:
        payload = draw(any_json | junk_scalar)
    elif roll < 9:
        payload = {"transactions": batch}
    headers = (*draw(valid_token_headers(token)), *(JSON if draw(st.integers(0, 9)) else ()))
    return Request("ingest", "POST", INGEST, to_bytes(payload, ascii_only=draw(st.booleans())), headers)


@st.composite
def unauthorized_ingest(draw: st.DrawFn, pool: Pool, token: str) -> Request:
    """``POST /v1/transactions`` without the producer's token: mostly valid batches (which must not be
    written), some damaged."""
    batch = draw(transactions(pool, hostility=draw(st.sampled_from([0, 0, 0, 30]))))
    headers = (*(draw(invalid_token_headers(token)) or ()), *JSON)
    return Request("ingest-unauthorized", "POST", INGEST, to_bytes(batch), headers)


def _field_datatype(name: str) -> str:
    if name in AMOUNT_COLUMNS:
        return AMOUNT_DATATYPE
    return INTEGER_DATATYPE if name in INTEGER_COLUMNS else STRING_DATATYPE


NP_OF = {"FP16": "<f2", "FP32": "<f4", "FP64": "<f8", "INT8": "<i1", "INT16": "<i2", "INT32": "<i4",
         "INT64": "<i8", "UINT8": "<u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8"}  # fmt: skip


def bytes_elements(values: list[object]) -> bytes:
    """BYTES elements in the binary tensor extension: each a 4-byte little-endian length, then the bytes."""
    out = b""
    for value in values:
        raw = value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogatepass")
        out += len(raw).to_bytes(4, "little") + raw
    return out


def numeric_bytes(values: list[object], datatype: str) -> bytes:
    """The values as ``datatype``'s little-endian bytes (what does not convert becomes 0)."""
    numbers = []
    for value in values:
        try:
            numbers.append(float(value))  # type: ignore[arg-type]
        except (TypeError, ValueError, OverflowError):
            numbers.append(0.0)
    with np.errstate(all="ignore"):
        return np.asarray(numbers, dtype=np.float64).astype(NP_OF.get(datatype, "<f8")).tobytes()


@st.composite
def v2_raw(draw: st.DrawFn, pool: Pool) -> Request:
    """``POST /v2/models/credit-risk/infer`` with one tensor per Xente field (``[N]`` or ``[N, 1]``): right
    or wrong datatypes, shapes, lengths and names, damaged values, requested outputs (``features`` among
    them); as JSON or, now and then, the binary tensor extension (BYTES length-prefixed)."""
    rows = [
        r
        for r in draw(transactions(pool, hostility=draw(st.sampled_from([0, 0, 0, 20]))))
        if isinstance(r, dict)
    ]
    rows = rows[: draw(st.sampled_from([1, 2, 5, 40, 2_000]))] or [pool.record(0, 0)]
    names = [n for n in RAW_COLUMNS if all(n in r for r in rows)]
    # At most one mistake of structure per request (half have none): a field missing, repeated or unknown,
    # the fields in another order (allowed), or one column's datatype, length, shape or binary size.
    mistake = draw(
        st.sampled_from(["none"] * 8 + ["missing", "extra", "order", "datatype", "length", "shape", "size"])
    )
    wrong = draw(st.sampled_from(names)) if names else None
    if mistake == "missing" and names:
        names.remove(wrong)
    elif mistake == "extra":
        names.append(draw(st.sampled_from(names) | weird_text | st.sampled_from(["features", "amount"])))
    elif mistake == "order":
        names = list(draw(st.permutations(names)))
    binary = draw(st.integers(0, 99)) < 20
    as_matrix = draw(st.booleans())
    inputs: list[dict[str, object]] = []
    blobs: list[bytes] = []
    for name in names:
        values = [r.get(name) for r in rows] if name in RAW_COLUMNS else [1] * len(rows)
        datatype: object = _field_datatype(name) if name in RAW_COLUMNS else "FP64"
        count, hit = len(values), name == wrong
        if hit and mistake == "datatype":
            datatype = draw(datatype_strategy | st.sampled_from(["BYTES", "FP64", "INT64", "BOOL"]))
        if hit and mistake == "length":
            values = values[: max(0, count - 1)] if draw(st.booleans()) else [*values, values[0]]
        shape: object = [len(values), 1] if as_matrix else [len(values)]
        if hit and mistake == "shape":
            shape = draw(
                st.sampled_from(
                    [[len(values), 2], [1, len(values)], [], [0], [-1], [2**63], [len(values), 1, 1]]
                )
            )
        tensor: dict[str, object] = {"name": name, "datatype": datatype, "shape": shape}
        if binary:
            blob = (
                bytes_elements(values) if datatype == "BYTES" or not isinstance(datatype, str)
                else numeric_bytes(values, datatype)
            )  # fmt: skip
            size: object = len(blob)
            if hit and mistake == "size":
                size = draw(st.sampled_from([len(blob) + 1, len(blob) - 1, 0, -1, 2**63, "8", None]))
            tensor["parameters"] = {"binary_data_size": size}
            blobs.append(blob)
        else:
            tensor["data"] = [[v] for v in values] if as_matrix else values
        inputs.append(tensor)
    document: dict[str, object] = {"inputs": inputs}
    if draw(st.integers(0, 99)) < 40:
        wanted = draw(
            st.lists(st.sampled_from(SCORED_OUTPUTS), unique=True, max_size=5)
            | st.lists(st.sampled_from(SCORED_OUTPUTS) | weird_text | junk_scalar, min_size=1, max_size=6)
        )
        document["outputs"] = [{"name": n} for n in wanted]
    if draw(st.integers(0, 99)) < 15:
        document["id"] = draw(weird_text | junk_scalar)
    if draw(st.integers(0, 99)) < 10:
        document["parameters"] = draw(st.fixed_dictionaries({"binary_data_output": any_json}) | any_json)
    if not binary:
        return Request("v2-raw", "POST", INFER, to_bytes(document), JSON)
    header = to_bytes(document)
    length: str = str(len(header))
    if draw(st.integers(0, 99)) < 10:
        length = draw(st.sampled_from([str(len(header) + 1), str(len(header) - 1), "0", "-1", "abc"]))
    return Request("v2-raw", "POST", INFER, header + b"".join(blobs),
                   (("Inference-Header-Content-Length", length), ("Content-Type", "application/octet-stream")))  # fmt: skip


@st.composite
def paths_and_methods(draw: st.DrawFn, token: str) -> Request:
    """Other methods on the served routes, lookalike and unserved paths (kserve's V1, the model repository,
    the versioned infer path, other models), with and without the token."""
    method = draw(
        st.sampled_from(["POST", "POST", "POST", "GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"])
    )
    name = quote(draw(st.text(max_size=30) | st.sampled_from(["CREDIT-RISK", "credit_risk", "credit-risk "])),
                 safe="", errors="surrogatepass")  # fmt: skip
    path = draw(st.sampled_from(
        [SCORE, INGEST, INFER, "/score/", "/SCORE", "//score", "/score%00", "/score?transaction=1", "/score/../score",
         "/v1/transactions/", "/v1/Transactions", "/v1/transactions;x=1", "/v1/transactions?replay=1",
         "/v2/transactions", f"/v2/models/{MODEL}/versions/1/infer", f"/v2/models/{MODEL}/infer/",
         f"/v1/models/{MODEL}:predict", f"/v2/repository/models/{MODEL}/unload", f"/v2/models/{name}/infer",
         f"/v2/models/{name}", f"/v2/models/{name}/ready", "/metrics/", "/docs", "/openapi.json", "/v2/health/ready",
         SCORE + "?" + "a=" + "x" * 8_000]
    ))  # fmt: skip
    body = to_bytes(draw(st.sampled_from([[], {}, [{"TransactionId": "T"}]])))
    headers = (*JSON, *(draw(valid_token_headers(token)) if draw(st.booleans()) else ()))
    if method in ("GET", "HEAD", "OPTIONS") and draw(st.booleans()):
        body = b""
    return Request("path-method", method, path, body, headers)


def routes(pool: Pool, token: str) -> Routes:
    """The transformer's three routes for the route-independent families: a valid transaction (ingestion
    with the producer's token) and, for the mutations, a valid batch's JSON text."""
    fixed = pool.record(pool.customers - 1, pool.ids - 1)

    def valid_body(path: str) -> bytes:
        if path == INFER:
            return to_bytes(columns([fixed]))
        return to_bytes(fixed if path == SCORE else [fixed])

    def document(draw: st.DrawFn, path: str) -> str:
        batch = draw(st.lists(pool_transaction(pool), min_size=1, max_size=4))
        unique = list({r["TransactionId"]: r for r in batch}.values())
        if path == INFER:
            return dump(columns(unique))
        return dump(unique[0] if path == SCORE and len(unique) == 1 else unique)

    return Routes(
        paths=(SCORE, INGEST, INFER),
        valid_body=valid_body,
        document=document,
        dup_key=lambda path: '"inputs"' if path == INFER else '"CustomerId"',
        headers=lambda path: (("Authorization", f"Bearer {token}"),) if path == INGEST else (),
    )


def columns(rows: list[dict[str, Any]]) -> dict[str, object]:
    """A valid V2 request of raw transaction tensors: one ``[N]`` tensor per field of ``rows``."""
    names = [n for n in RAW_COLUMNS if all(n in r for r in rows)]
    return {"inputs": [{"name": n, "datatype": _field_datatype(n), "shape": [len(rows)], "data": [r[n] for r in rows]}
                       for n in names]}  # fmt: skip


Family = tuple[str, float, st.SearchStrategy[Request]]


def families(limit: int, pool: Pool, token: str) -> list[Family]:
    """(name, share of the requests, strategy)."""
    shared = routes(pool, token)
    out: list[Family] = [
        ("ingest", 0.22, ingest_requests(pool, token)),
        ("score", 0.18, score_requests(pool)),
        ("v2-raw", 0.12, v2_raw(pool)),
        ("ingest-unauthorized", 0.08, unauthorized_ingest(pool, token)),
    ]
    aimed: Callable[[Routes], st.SearchStrategy[Request]]
    for name, share, aimed in (
        ("text-mutation", 0.08, text_mutations), ("random-bytes", 0.05, random_bodies),
        ("content-type", 0.04, content_types), ("deep-nesting", 0.04, deep_nesting),
        ("http-framing", 0.04, http_framing),
    ):  # fmt: skip
        out.append((name, share, aimed(shared)))
    out += [
        ("oversized", 0.04, oversized(limit, shared)),
        ("path-method", 0.04, paths_and_methods(token)),
        ("v2-json", 0.04, v2_json()),
        ("v2-binary", 0.03, v2_binary()),
    ]
    return out

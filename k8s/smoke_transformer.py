#!/usr/bin/env python3
"""Smoke test of a running credit-risk transformer (``python -m serving.transformer``) and the predictor
behind it, with a customer no store has seen (a fresh id per run).

    python3 k8s/smoke_transformer.py --url http://127.0.0.1:8080 --ingest-url http://127.0.0.1:8082 \\
        --token-file /tmp/ingest-token

Standard library only (runs on a CI runner, a laptop or inside the image). Checks, in order:

1. ``GET /v2/health/live`` and ``/v2/health/ready`` answer 200 (retried until ``--wait`` seconds: the
   store, the predictor or a port-forward may still be starting); ``GET /v2/models/NAME`` names the model;
2. ``POST /score`` with the customer's first transaction: the answer's fields, a probability in [0, 1],
   risk level and decision, and all 26 features as the feature definition gives them for a first
   transaction (pass-through, calendar in UTC, aggregates over that one transaction, category indicators);
   a list of two transactions answers a list of two in order;
3. ``POST /v2/models/NAME/infer`` with the same transaction as raw V2 tensors (BYTES ids and time, FP64
   amounts, INT64 codes): the same probability and decision; with the requested output ``features`` an
   FP32 [1, 26] tensor equal to /score's features in the contract's order;
4. ``POST /v1/transactions`` on the ingest URL: 401 without a token and with a wrong one, then with the
   token ``{"received": 1, "added": 1, "duplicates": 0}``, the same again a duplicate; then the customer's
   second transaction scored: the aggregates now cover both (count 2, total, mean, sample std, min, max,
   median) and its category indicator is set;
5. ``GET /metrics``: credit_risk_transformer_requests_total counted /score, scored and ingested
   transactions counted, credit_risk_transformer_store_up is 1.

Prints one line per check; on the first mismatch prints ``SMOKE FAIL: <what>`` and exits 1.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time

# The HTTP helpers of k8s/smoke.py, beside this script (it runs by path, so its folder is on sys.path).
from smoke import SmokeFailure, check, request, wait_until_ok

# The public 26-feature contract, in order (credit_features.schema.FEATURE_NAMES; the deployment tests
# check this copy against it).
FEATURE_NAMES = (
    "CountryCode", "Amount", "Value", "PricingStrategy", "FraudResult",
    "transaction_hour", "transaction_day", "transaction_month", "transaction_year", "transaction_dayofweek",
    "transaction_week",
    "total_transaction_amount", "avg_transaction_amount", "transaction_count", "std_transaction_amount",
    "min_transaction_amount", "max_transaction_amount", "median_transaction_amount",
    "ProductCategory_data_bundles", "ProductCategory_financial_services", "ProductCategory_movies",
    "ProductCategory_other", "ProductCategory_ticket", "ProductCategory_transport", "ProductCategory_tv",
    "ProductCategory_utility_bill",
)  # fmt: skip
STRING_COLUMNS = ("TransactionId", "BatchId", "AccountId", "SubscriptionId", "CustomerId", "CurrencyCode",
                  "ProviderId", "ProductId", "ProductCategory", "ChannelId", "TransactionStartTime")  # fmt: skip
FLOAT_COLUMNS = ("Amount", "Value")
INTEGER_COLUMNS = ("CountryCode", "PricingStrategy", "FraudResult")
FIELDS = {"transaction_id", "probability", "risk_level", "decision", "model_version", "features"}
LEVELS = {"low": "approve", "medium": "review", "high": "reject"}


def post_json(url: str, body: object, what: str, headers: dict[str, str] | None = None) -> object:
    status, _, raw = request("POST", url, body, headers=headers)
    check(status == 200, f"{what}: POST {url} answered {status}: {raw[:500]!r}")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise SmokeFailure(f"{what}: POST {url} did not answer JSON ({exc}): {raw[:500]!r}") from exc


def close(a: float, b: float) -> bool:
    """Equal as float32 features are (the model input is FP32)."""
    return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-6)


def transactions(run: str) -> tuple[dict, dict]:
    """Two transactions of one new customer, a day apart: airtime, then financial services."""
    base = {"BatchId": f"BatchId_{run}", "AccountId": f"AccountId_{run}", "SubscriptionId": f"SubscriptionId_{run}",
            "CustomerId": f"CustomerId_{run}", "CurrencyCode": "UGX", "CountryCode": 256, "PricingStrategy": 2,
            "FraudResult": 0}  # fmt: skip
    first = {**base, "TransactionId": f"TransactionId_{run}-1", "ProviderId": "ProviderId_6",
             "ProductId": "ProductId_10", "ProductCategory": "airtime", "ChannelId": "ChannelId_3",
             "Amount": 1000.0, "Value": 1000, "TransactionStartTime": "2018-11-15T02:18:49Z"}  # fmt: skip
    second = {**base, "TransactionId": f"TransactionId_{run}-2", "ProviderId": "ProviderId_4",
              "ProductId": "ProductId_6", "ProductCategory": "financial_services", "ChannelId": "ChannelId_2",
              "Amount": 500.0, "Value": 500, "TransactionStartTime": "2018-11-16T10:00:00Z"}  # fmt: skip
    return first, second


def expected_features(transaction: dict, amounts: list[float], category: str | None) -> dict[str, float]:
    """The feature definition for a transaction whose customer's amounts so far (this one included) are
    ``amounts``; the calendar of the two fixed times is written out (2018-11-15 is a Thursday, ISO week 46)."""
    calendar = {
        "2018-11-15T02:18:49Z": (2, 15, 11, 2018, 3, 46),
        "2018-11-16T10:00:00Z": (10, 16, 11, 2018, 4, 46),
    }
    n = len(amounts)
    mean = sum(amounts) / n
    ordered = sorted(amounts)
    median = ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
    std = math.sqrt(sum((a - mean) ** 2 for a in amounts) / (n - 1)) if n > 1 else 0.0
    values = [transaction["CountryCode"], transaction["Amount"], transaction["Value"], transaction["PricingStrategy"],
              transaction["FraudResult"], *calendar[transaction["TransactionStartTime"]],
              sum(amounts), mean, n, std, min(amounts), max(amounts), median]  # fmt: skip
    indicators = [1.0 if name == f"ProductCategory_{category}" else 0.0 for name in FEATURE_NAMES[18:]]
    return dict(zip(FEATURE_NAMES, [float(v) for v in values] + indicators, strict=True))


def check_answer(answer: object, transaction: dict, expected: dict[str, float], what: str) -> dict:
    check(isinstance(answer, dict), f"{what}: answer {answer!r}, expected one object")
    check(set(answer) >= FIELDS, f"{what}: fields {sorted(answer)}, expected {sorted(FIELDS)}")
    check(answer["transaction_id"] == transaction["TransactionId"],
          f"{what}: transaction_id {answer['transaction_id']!r}, expected {transaction['TransactionId']!r}")  # fmt: skip
    p = answer["probability"]
    check(isinstance(p, (int, float)) and 0.0 <= p <= 1.0, f"{what}: probability {p!r}")
    check(LEVELS.get(answer["risk_level"]) == answer["decision"],
          f"{what}: risk_level {answer['risk_level']!r} with decision {answer['decision']!r}")  # fmt: skip
    check(str(answer["model_version"]) != "", f"{what}: no model_version")
    features = answer["features"]
    check(isinstance(features, dict) and set(features) == set(FEATURE_NAMES),
          f"{what}: features {sorted(features) if isinstance(features, dict) else features!r}")  # fmt: skip
    wrong = {k: (features[k], v) for k, v in expected.items() if not close(features[k], v)}
    check(not wrong, f"{what}: features (served, expected) differ: {wrong}")
    return answer


def v2_inputs(rows: list[dict]) -> list[dict]:
    inputs = []
    for name in STRING_COLUMNS:
        inputs.append(
            {"name": name, "datatype": "BYTES", "shape": [len(rows)], "data": [r[name] for r in rows]}
        )
    for name in FLOAT_COLUMNS:
        inputs.append(
            {"name": name, "datatype": "FP64", "shape": [len(rows)], "data": [float(r[name]) for r in rows]}
        )
    for name in INTEGER_COLUMNS:
        inputs.append(
            {"name": name, "datatype": "INT64", "shape": [len(rows)], "data": [int(r[name]) for r in rows]}
        )
    return inputs


def metric_total(text: str, name: str, route_suffix: str = "", **labels: str) -> float:
    """Sum of the samples of ``name`` with these labels (and a route ending in ``route_suffix``)."""
    total, found = 0.0, False
    for line in text.splitlines():
        if not (line.startswith(name + "{") or line.startswith(name + " ")):
            continue
        inside = line[line.index("{") + 1 : line.rindex("}")] if "{" in line else ""
        got = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', inside))
        if all(got.get(k) == v for k, v in labels.items()) and got.get("route", "").endswith(route_suffix):
            total, found = total + float(line.rsplit(" ", 1)[-1]), True
    check(found, f"metrics: no {name}{labels or ''} sample")
    return total


def run(base: str, ingest: str, token: str, name: str, wait: float) -> None:
    wait_until_ok(f"{base}/v2/health/live", wait)
    wait_until_ok(f"{base}/v2/health/ready", wait)
    print("ok   health    /v2/health/live and /v2/health/ready -> 200")
    status, _, raw = request("GET", f"{base}/v2/models/{name}")
    check(
        status == 200 and json.loads(raw).get("name") == name,
        f"metadata: GET /v2/models/{name} -> {status} {raw[:300]!r}",
    )
    print(f"ok   metadata  /v2/models/{name}")

    run_id = f"smoke-{int(time.time() * 1000)}"
    first, second = transactions(run_id)
    one = check_answer(post_json(f"{base}/score", first, "score"), first,
                       expected_features(first, [1000.0], None), "score")  # fmt: skip
    print(f"ok   score     first transaction of a new customer: probability {one['probability']:.6f}, "
          f"{one['risk_level']}/{one['decision']}, model v{one['model_version']}, 26 features as defined")  # fmt: skip
    both = post_json(f"{base}/score", [first, second], "score list")
    check(isinstance(both, list) and [a.get("transaction_id") for a in both] == [first["TransactionId"], second["TransactionId"]],
          f"score list: {json.dumps(both)[:500]}")  # fmt: skip
    check(
        close(both[0]["probability"], one["probability"]),
        "score list: the first answer differs from the single one",
    )
    print("ok   score     a list of two -> two answers in order")

    infer_url = f"{base}/v2/models/{name}/infer"
    answer = post_json(infer_url, {"id": run_id, "inputs": v2_inputs([first])}, "v2 infer")
    outputs = {o["name"]: o for o in answer.get("outputs", [])}
    check(answer.get("id") == run_id, f"v2 infer: id {answer.get('id')!r}, expected {run_id!r}")
    check({"probability", "decision"} <= set(outputs), f"v2 infer: outputs {sorted(outputs)}")
    check(close(outputs["probability"]["data"][0], one["probability"]) and outputs["decision"]["data"][0] == one["decision"],
          f"v2 infer: {outputs['probability']['data']}/{outputs['decision']['data']}, /score said {one['probability']}/{one['decision']}")  # fmt: skip
    answer = post_json(
        infer_url, {"inputs": v2_inputs([first]), "outputs": [{"name": "features"}]}, "v2 features"
    )
    outputs = {o["name"]: o for o in answer.get("outputs", [])}
    check("features" in outputs, f"v2 features: requested output features missing: {sorted(outputs)}")
    tensor = outputs["features"]
    check(tensor.get("datatype") == "FP32" and tensor.get("shape") == [1, len(FEATURE_NAMES)],
          f"v2 features: {tensor.get('datatype')} {tensor.get('shape')}, expected FP32 [1, 26]")  # fmt: skip
    row = tensor["data"][0] if tensor["data"] and isinstance(tensor["data"][0], list) else tensor["data"]
    wrong = [
        (n, v, one["features"][n])
        for n, v in zip(FEATURE_NAMES, row, strict=True)
        if not close(v, one["features"][n])
    ]
    check(not wrong, f"v2 features: (name, V2, /score) differ: {wrong}")
    print(
        "ok   v2        raw transaction tensors: same probability and decision; features FP32 [1, 26] = /score's"
    )

    ingest_url = f"{ingest}/v1/transactions"
    for headers, what in (({}, "no token"), ({"Authorization": "Bearer not-the-token"}, "a wrong token")):
        status, _, raw = request("POST", ingest_url, [first], headers=headers)
        check(status == 401, f"ingest with {what}: {status}, expected 401: {raw[:300]!r}")
    auth = {"Authorization": f"Bearer {token}"}
    added = post_json(ingest_url, [first], "ingest", auth)
    check(added == {"received": 1, "added": 1, "duplicates": 0}, f"ingest: {added}")
    again = post_json(ingest_url, [first], "ingest again", auth)
    check(again == {"received": 1, "added": 0, "duplicates": 1}, f"ingest again: {again}")
    print("ok   ingest    401 without or with a wrong token; added 1, then the same a duplicate")

    after = check_answer(post_json(f"{base}/score", second, "score after ingest"), second,
                         expected_features(second, [1000.0, 500.0], "financial_services"), "score after ingest")  # fmt: skip
    print(f"ok   history   second transaction: count 2, total 1500, std {after['features']['std_transaction_amount']:.3f}"
          f" -> probability {after['probability']:.6f}")  # fmt: skip

    status, _, raw = request("GET", f"{base}/metrics")
    check(status == 200, f"metrics: GET /metrics answered {status}")
    text = raw.decode(errors="replace")
    scores = metric_total(
        text, "credit_risk_transformer_requests_total", status_code="200", route_suffix="/score"
    )
    check(scores >= 3, f"metrics: {scores:.0f} successful /score requests counted, expected >= 3")
    scored = metric_total(text, "credit_risk_transformer_scored_transactions_total")
    check(scored >= 4, f"metrics: {scored:.0f} scored transactions counted, expected >= 4")
    check(metric_total(text, "credit_risk_transformer_store_up") == 1, "metrics: store_up is not 1")
    # Ingestion may have its own port and listener: its counters are on the HTTP port's /metrics all the same.
    check(metric_total(text, "credit_risk_transformer_ingested_transactions_total", result="added") >= 1,
          "metrics: no added transaction counted")  # fmt: skip
    print("ok   metrics   requests, scored and ingested transactions, store_up 1")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="base URL of the transformer's HTTP port")
    parser.add_argument("--ingest-url", help="base URL of its ingest port (default: --url)")
    parser.add_argument("--token-file", required=True, help="file holding the ingestion bearer token")
    parser.add_argument("--model-name", default="credit-risk")
    parser.add_argument("--wait", type=float, default=60, help="seconds to wait for live/ready (default 60)")
    args = parser.parse_args(argv)
    with open(args.token_file, encoding="utf-8") as handle:
        token = handle.read().strip()
    base = args.url.rstrip("/")
    try:
        run(base, (args.ingest_url or base).rstrip("/"), token, args.model_name, args.wait)
    except SmokeFailure as failure:
        print(f"SMOKE FAIL: {failure}", file=sys.stderr, flush=True)
        return 1
    print(f"SMOKE OK: {base}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The transformer as a client meets it: a real process in front of a real predictor and a real Redis."""

from __future__ import annotations

import json
import re
import signal
import ssl
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import trustme

from harness.net import free_port, http, stop, wait_ready
from harness.predictor import Server
from harness.redis import RedisServer, redis_server
from harness.transformer import Transformer, running_transformer, transaction
from ml.schema import FEATURE_NAMES


@pytest.fixture(scope="module")
def transformer(predictor_host: str, redis: RedisServer, tmp_path_factory) -> Iterator[Transformer]:
    with running_transformer(predictor_host, redis.url, workdir=tmp_path_factory.mktemp("transformer")) as t:
        yield t


def score(t: Transformer, body: object) -> tuple[int, object]:
    status, _, content = http("POST", f"{t.url}/score", body)
    return status, json.loads(content)


def ingest(t: Transformer, body: object, headers: dict | None = None) -> tuple[int, dict, object]:
    status, answer_headers, content = http("POST", f"{t.ingest_url}/v1/transactions", body,
                                           headers=t.auth if headers is None else headers)  # fmt: skip
    return status, answer_headers, json.loads(content)


def metric(t: Transformer, name: str, labels: str = "") -> float:
    text = http("GET", f"{t.url}/metrics").body.decode()
    pattern = re.escape(name) + (r"\{" + re.escape(labels) + r"\}" if labels else r"(\{\})?") + r" (\S+)"
    match = re.search("^" + pattern + "$", text, re.M)
    assert match, f"{name}{{{labels}}} not in /metrics"
    return float(match.group(match.lastindex))


# ---------------------------------------------------------------------------------------------- scoring


def test_a_first_transaction_is_scored_from_itself(transformer: Transformer, predictor: Server) -> None:
    record = transaction(Amount=5000.0, Value=5000)
    before = metric(transformer, "credit_risk_transformer_first_seen_customers_total")
    status, answer = score(transformer, record)
    assert status == 200, answer
    assert answer["transaction_id"] == record["TransactionId"] and answer["first_seen"] is True
    features = answer["features"]
    assert list(features) == list(FEATURE_NAMES)
    assert features["transaction_count"] == 1 and features["median_transaction_amount"] == 5000.0
    assert features["std_transaction_amount"] == 0.0 and features["transaction_hour"] == 10
    assert metric(transformer, "credit_risk_transformer_first_seen_customers_total") == before + 1
    # the predictor scores exactly these features the same way
    row = [features[n] for n in FEATURE_NAMES]
    direct = json.loads(http("POST", f"{predictor.url}/predict", {"features": row}).body)
    assert answer["probability"] == pytest.approx(direct["probability"], abs=1e-7)
    assert answer["decision"] == direct["decision"] and answer["model_version"] == direct["model_version"]
    low = answer["probability"] < 0.30
    assert (answer["risk_level"], answer["decision"]) == ("low", "approve") or not low


def test_history_counts_once_ingested_and_scoring_writes_nothing(transformer: Transformer) -> None:
    customer = f"CustomerId_h{np.random.default_rng().integers(1e9)}"
    history = [transaction(customer, i) for i in range(3)]  # amounts 1000, 1250, 1500
    status, _, answer = ingest(transformer, history)
    assert (status, answer) == (200, {"received": 3, "added": 3, "duplicates": 0})
    new = transaction(customer, 9, Amount=100.0, Value=100)
    first, second = score(transformer, new)[1], score(transformer, new)[1]
    assert first == second  # scoring never changes the store
    f = first["features"]
    assert first["first_seen"] is False
    assert (f["transaction_count"], f["total_transaction_amount"], f["min_transaction_amount"]) == (
        4,
        3850.0,
        100,
    )
    assert f["median_transaction_amount"] == 1125.0
    assert f["std_transaction_amount"] == pytest.approx(np.std([1000, 1250, 1500, 100], ddof=1), rel=1e-6)
    # a transaction already stored is scored on the stored history, not counted twice
    stored = score(transformer, history[1])[1]["features"]
    assert stored["transaction_count"] == 3 and stored["total_transaction_amount"] == 3750.0


def test_a_list_is_scored_each_against_the_stored_history(transformer: Transformer) -> None:
    customer = f"CustomerId_l{np.random.default_rng().integers(1e9)}"
    status, answers = score(transformer, [transaction(customer, 0), transaction(customer, 1)])
    assert status == 200 and len(answers) == 2
    assert [a["features"]["transaction_count"] for a in answers] == [1, 1]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"TransactionStartTime": "15/11/2018"}, r"transactions\[0\]\.TransactionStartTime.*ISO-8601"),
        ({"ProductCategory": "groceries"}, r"ProductCategory.*not a known category"),
        ({"Value": -1}, r"Value.*negative"),
        ({"Amount": "lots"}, r"Amount.*not a number"),
        ({"FraudResult": 3}, r"FraudResult.*0 or 1"),
        ({"Amuont": 1}, r"unknown field.*Amuont"),
        ({"CustomerId": " "}, r"CustomerId.*blank"),
    ],
)
def test_bad_raw_input_is_a_400_naming_the_field(transformer: Transformer, change: dict, words: str) -> None:
    status, answer = score(transformer, transaction(**change))
    assert status == 400 and re.search(words, answer["error"]), answer


def test_malformed_bodies_are_400(transformer: Transformer) -> None:
    for body in (b"{", b"[]", b"42", b'"x"'):
        status, _, content = http(
            "POST", f"{transformer.url}/score", body, {"Content-Type": "application/json"}
        )
        assert status == 400 and json.loads(content)["error"], body


# ---------------------------------------------------------------------------------------------- V2


def v2_inputs(rows: list[dict]) -> list[dict]:
    inputs = []
    for name in rows[0]:
        values = [r[name] for r in rows]
        datatype = "FP64" if name in ("Amount", "Value") else (
            "INT64" if name in ("CountryCode", "PricingStrategy", "FraudResult") else "BYTES")  # fmt: skip
        inputs.append({"name": name, "datatype": datatype, "shape": [len(rows)], "data": values})
    return inputs


def test_v2_raw_tensors_answer_the_decision_and_the_scored_features(transformer: Transformer) -> None:
    rows = [transaction(index=i) for i in range(3)]
    body = {"id": "req-7", "inputs": v2_inputs(rows),
            "outputs": [{"name": "probability"}, {"name": "decision"}, {"name": "features"}]}  # fmt: skip
    status, _, content = http("POST", f"{transformer.url}/v2/models/credit-risk/infer", body)
    assert status == 200, content
    answer = json.loads(content)
    assert answer["id"] == "req-7" and answer["model_name"] == "credit-risk" and answer["model_version"]
    outputs = {o["name"]: o for o in answer["outputs"]}
    assert list(outputs) == ["probability", "decision", "features"]
    assert outputs["features"]["datatype"] == "FP32" and outputs["features"]["shape"] == [3, 26]
    via_score = [score(transformer, r)[1] for r in rows]
    features = np.array(outputs["features"]["data"]).reshape(3, 26)
    for i, expected in enumerate(via_score):
        assert features[i].tolist() == [expected["features"][n] for n in FEATURE_NAMES]
        assert outputs["probability"]["data"][i] == pytest.approx(expected["probability"], abs=1e-7)
    default = json.loads(http("POST", f"{transformer.url}/v2/models/credit-risk/infer",
                              {"inputs": v2_inputs(rows)}).body)  # fmt: skip
    assert [o["name"] for o in default["outputs"]] == ["probability", "prediction", "risk_level", "decision"]


def test_v2_refuses_a_wrong_datatype_or_an_unknown_output(transformer: Transformer) -> None:
    inputs = v2_inputs([transaction()])
    for tensor in inputs:
        if tensor["name"] == "Amount":
            tensor.update(datatype="BYTES", data=["1000"])
    status, _, content = http("POST", f"{transformer.url}/v2/models/credit-risk/infer", {"inputs": inputs})
    assert status == 400 and "Amount" in json.loads(content)["error"]
    body = {"inputs": v2_inputs([transaction()]), "outputs": [{"name": "shap"}]}
    status, _, content = http("POST", f"{transformer.url}/v2/models/credit-risk/infer", body)
    assert status == 400 and "unknown output 'shap'" in json.loads(content)["error"]


def test_v2_over_grpc_scores_raw_tensors(transformer: Transformer) -> None:
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

    record = transaction()
    tensors = []
    for name, value in record.items():
        tensor = pb.ModelInferRequest.InferInputTensor(name=name, shape=[1])
        if name in ("Amount", "Value"):
            tensor.datatype = "FP64"
            tensor.contents.fp64_contents.append(float(value))
        elif name in ("CountryCode", "PricingStrategy", "FraudResult"):
            tensor.datatype = "INT64"
            tensor.contents.int64_contents.append(int(value))
        else:
            tensor.datatype = "BYTES"
            tensor.contents.bytes_contents.append(str(value).encode())
        tensors.append(tensor)
    request = pb.ModelInferRequest(model_name="credit-risk", inputs=tensors,
                                   outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name="features")])  # fmt: skip
    with grpc.insecure_channel(transformer.grpc) as channel:
        answer = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=10)
    features = np.frombuffer(answer.raw_output_contents[0], dtype="<f4")
    expected = score(transformer, record)[1]["features"]
    assert features.tolist() == pytest.approx([expected[n] for n in FEATURE_NAMES])
    assert answer.model_version


def test_metadata_lists_the_raw_fields(transformer: Transformer) -> None:
    document = json.loads(http("GET", f"{transformer.url}/v2/models/credit-risk").body)
    inputs = {i["name"]: i["datatype"] for i in document["inputs"]}
    assert inputs["CustomerId"] == "BYTES" and inputs["Amount"] == "FP64" and inputs["FraudResult"] == "INT64"
    assert {"name": "features", "datatype": "FP32", "shape": [-1, 26]} in document["outputs"]


# ---------------------------------------------------------------------------------------------- ingestion


def test_ingestion_is_idempotent_and_refuses_a_changed_amount(transformer: Transformer) -> None:
    batch = [transaction(index=i) for i in range(4)]
    assert ingest(transformer, batch)[2] == {"received": 4, "added": 4, "duplicates": 0}
    assert ingest(transformer, batch)[2] == {"received": 4, "added": 0, "duplicates": 4}
    changed = {**batch[0], "Amount": 1.0, "Value": 1}
    status, _, answer = ingest(transformer, [changed, transaction()])
    assert status == 409 and batch[0]["TransactionId"] in answer["error"]
    assert (
        metric(transformer, "credit_risk_transformer_ingested_transactions_total", 'result="duplicate"') >= 4
    )


def test_ingestion_needs_the_producers_bearer_token(transformer: Transformer) -> None:
    before = metric(transformer, "credit_risk_transformer_ingest_rejected_total", 'reason="unauthorized"')
    record = transaction()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {transformer.token}"}):
        status, answer_headers, answer = ingest(transformer, [record], headers)
        assert status == 401 and "token" in answer["error"]
        assert answer_headers.get("www-authenticate", answer_headers.get("WWW-Authenticate", "")).startswith(
            "Bearer"
        )
    assert (
        metric(transformer, "credit_risk_transformer_ingest_rejected_total", 'reason="unauthorized"')
        == before + 3
    )
    assert score(transformer, record)[1]["first_seen"] is True  # nothing was written


def test_invalid_ingestion_writes_nothing_of_the_batch(transformer: Transformer) -> None:
    good, bad = transaction(), transaction(FraudResult=7)
    status, _, answer = ingest(transformer, [good, bad])
    assert status == 400 and "transactions[1].FraudResult" in answer["error"]
    assert score(transformer, good)[1]["first_seen"] is True


def test_without_a_token_file_ingestion_is_refused(
    predictor_host: str, sqlite_url: str, tmp_path: Path
) -> None:
    with running_transformer(predictor_host, sqlite_url, workdir=tmp_path, token=None) as t:
        status, _, content = http("POST", f"{t.url}/v1/transactions", [transaction()],
                                  headers={"Authorization": "Bearer anything"})  # fmt: skip
        assert status == 403 and "--ingest-token-file" in json.loads(content)["error"]


def test_a_separate_ingest_port_serves_ingestion_only_there(
    predictor_host: str, sqlite_url: str, tmp_path: Path
) -> None:
    with running_transformer(predictor_host, sqlite_url, workdir=tmp_path, separate_ingest=True) as t:
        assert t.ingest_url != t.url
        assert http("POST", f"{t.url}/v1/transactions", [transaction()], headers=t.auth).status == 404
        assert http("POST", f"{t.ingest_url}/score", transaction()).status == 404
        assert http("GET", f"{t.ingest_url}/v2/health/ready").status == 200
        assert ingest(t, [transaction()])[0] == 200


def test_mutual_tls_on_the_ingest_port(predictor_host: str, sqlite_url: str, tmp_path: Path) -> None:
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1")
    paths = {}
    for name, blob in (
        ("cert", server.cert_chain_pems[0]),
        ("key", server.private_key_pem),
        ("ca", ca.cert_pem),
    ):
        paths[name] = tmp_path / f"{name}.pem"
        blob.write_to_path(str(paths[name]))
    args = ("--ingest-ssl-certfile", str(paths["cert"]), "--ingest-ssl-keyfile", str(paths["key"]),
            "--ingest-ssl-ca-certs", str(paths["ca"]))  # fmt: skip
    with running_transformer(predictor_host, sqlite_url, *args, workdir=tmp_path, separate_ingest=True) as t:
        url = t.ingest_url.replace("http://", "https://") + "/v1/transactions"
        anonymous = ssl.create_default_context(cafile=str(paths["ca"]))
        with pytest.raises(OSError):  # no client certificate: the handshake fails
            http("POST", url, [transaction()], headers=t.auth, context=anonymous)
        producer = ssl.create_default_context(cafile=str(paths["ca"]))
        ca.issue_cert("producer.example").configure_cert(producer)
        status, _, content = http("POST", url, [transaction()], headers=t.auth, context=producer)
        assert status == 200 and json.loads(content)["added"] == 1


# ---------------------------------------------------------------------------------------------- failures


def test_store_down_is_503_not_ready_and_recovers_without_restart(
    predictor_host: str, tmp_path: Path
) -> None:
    with (
        redis_server(tmp_path / "redis") as store,
        running_transformer(predictor_host, store.url, workdir=tmp_path) as t,
    ):
        assert http("GET", f"{t.url}/v2/health/ready").status == 200
        store.stop()
        status, answer = score(t, transaction())
        assert status == 503 and "feature store" in answer["error"] and str(store.port) in answer["error"]
        ready = http("GET", f"{t.url}/v2/health/ready")
        assert ready.status == 503 and "feature store" in json.loads(ready.body)["error"]
        assert ingest(t, [transaction()])[0] == 503
        assert metric(t, "credit_risk_transformer_store_up") == 0
        assert metric(t, "credit_risk_transformer_store_errors_total", 'operation="lookup"') >= 1
        store.start()
        assert http("GET", f"{t.url}/v2/health/ready").status == 200
        assert score(t, transaction())[0] == 200
        assert metric(t, "credit_risk_transformer_store_up") == 1


@pytest.mark.parametrize("protocol", ["v2", "grpc-v2"])
def test_predictor_down_is_503_naming_it(protocol: str, sqlite_url: str, tmp_path: Path) -> None:
    dead = f"127.0.0.1:{free_port()}"
    with running_transformer(dead, sqlite_url, "--predictor-protocol", protocol,
                             "--predictor-timeout-seconds", "2", workdir=tmp_path) as t:  # fmt: skip
        status, answer = score(t, transaction())
        assert status == 503 and "predictor" in answer["error"] and dead in answer["error"]
        assert (
            http("GET", f"{t.url}/v2/health/ready").status == 200
        )  # the store is fine: ingestion still works
        assert ingest(t, [transaction()])[0] == 200
        assert metric(t, "credit_risk_transformer_predictor_errors_total", 'reason="unavailable"') == 1


def test_the_stage_latencies_are_measured(transformer: Transformer) -> None:
    score(transformer, transaction())
    for stage in ("store_lookup", "predictor"):
        assert (
            metric(transformer, "credit_risk_transformer_stage_duration_seconds_count", f'stage="{stage}"')
            >= 1
        )


def test_kserve_spellings_and_sigterm(predictor_host: str, sqlite_url: str, tmp_path: Path) -> None:
    """KServe starts a transformer with --model_name, --predictor_host, --http_port; SIGTERM drains (exit 0)."""
    import os
    import subprocess
    import sys

    from harness import ROOT

    port = free_port()
    log = tmp_path / "t.log"
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "serving.transformer", "--model_name", "credit-risk", "--predictor_host",
             predictor_host, f"--http_port={port}", "--grpc-port", "0", "--store", sqlite_url],
            stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
    try:
        wait_ready(f"http://127.0.0.1:{port}/v2/health/ready", "transformer", 60, process, log)
        assert http("POST", f"http://127.0.0.1:{port}/score", transaction()).status == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, log.read_text()
    finally:
        stop(process)


def test_bad_flags_exit_2_with_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    from harness import ROOT

    result = subprocess.run(
        [sys.executable, "-m", "serving.transformer", "--predictor-host", "p:80", "--store", "mongodb://x"],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2 and "--store" in result.stderr and "redis://" in result.stderr


def test_openapi_documents_every_route_and_the_transaction(transformer: Transformer) -> None:
    import jsonschema

    document = json.loads(http("GET", f"{transformer.url}/openapi.json").body)
    for path in ("/score", "/v1/transactions", "/v2/models/{model_name}/infer", "/v2/health/ready"):
        assert path in document["paths"], path
    assert document["paths"]["/v1/transactions"]["post"]["security"] == [{"producer": []}]
    schema = document["components"]["schemas"]["Transaction"]
    jsonschema.validate(transaction(), schema)
    for bad in (transaction(FraudResult=2), transaction(ProductCategory="groceries"), transaction(Amuont=1),
                transaction(CustomerId=""), transaction(Value=-1)):  # fmt: skip
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
        assert score(transformer, bad)[0] == 400  # the server refuses what the document refuses


def test_metadata_names_the_predictors_version_before_any_score(
    predictor: Server, predictor_host: str, sqlite_url: str, tmp_path: Path
) -> None:
    with running_transformer(predictor_host, sqlite_url, workdir=tmp_path) as t:
        assert http("GET", f"{t.url}/v2/health/ready").status == 200
        versions = json.loads(http("GET", f"{t.url}/v2/models/credit-risk").body)["versions"]
        expected = json.loads(http("GET", f"{predictor.url}/v2/models/credit-risk").body)["versions"]
        assert versions == expected and expected

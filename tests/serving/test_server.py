"""The real predictor on a loopback port, called the ways clients call it: raw HTTP JSON, tritonclient
(binary and JSON) and the original /predict API. Two workers throughout, so every check also proves the
multi-process paths (pickled model, aggregated metrics)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as triton
from prometheus_client.parser import text_string_to_metric_families

from harness.net import http
from harness.predictor import Server, TrainedModel, running_server
from harness.triton_grpc import run_triton_grpc

MAX_ROWS = 500
MAX_BYTES = 2_000_000
FLUSH = 0.2  # --metrics-flush-seconds of the servers here: per-row counts reach /metrics this often


@pytest.fixture(scope="module")
def server(trained: TrainedModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(
        "--model-uri", str(trained.path), "--workers", "2", "--max-batch-rows", str(MAX_ROWS),
        "--max-request-bytes", str(MAX_BYTES), workdir=tmp_path_factory.mktemp("server"),
    ) as running:  # fmt: skip
        yield running


def _infer(server: Server, body: object, path: str = "/v2/models/credit-risk/infer", **headers: str):
    status, _, content = http("POST", server.url + path, body, headers=headers or None)
    return status, json.loads(content) if content else None


def _features_body(rows: np.ndarray, **extra: object) -> dict:
    return {
        "inputs": [
            {"name": "features", "shape": list(rows.shape), "datatype": "FP32", "data": rows.tolist()}
        ],
        **extra,
    }


def metrics(server: Server) -> dict[tuple[str, tuple], float]:
    time.sleep(2.5 * FLUSH)  # every worker has pushed its per-row counts
    status, _, content = http("GET", server.url + "/metrics")
    assert status == 200
    out = {}
    for family in text_string_to_metric_families(content.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _sum(samples: dict, name: str, **labels: str) -> float:
    return sum(
        v for (n, ls), v in samples.items() if n == name and all((k, w) in ls for k, w in labels.items())
    )


# ---------------------------------------------------------------------------------------------- endpoints


def test_health_and_metadata_endpoints(server: Server) -> None:
    """Each route's answers are pinned in process (test_app.py); here, that both workers give them."""

    def get(path: str) -> tuple[int, dict]:
        status, _, content = http("GET", server.url + path)
        return status, json.loads(content)

    for _ in range(4):  # whichever worker answers
        assert get("/v2/health/ready") == (200, {"ready": True})
        status, model = get("/v2/models/credit-risk/versions/1")
        assert status == 200 and model["versions"] == ["1"] and model["inputs"][0]["shape"] == [-1, 26]
        assert get("/v2/models/credit-risk/ready?model_version=2")[0] == 404
        assert get("/health")[1]["model_version"] == "1"


def test_no_http_call_can_unload_the_model(server: Server) -> None:
    """No model repository extension: one model, loaded at start-up; no explainer route either."""
    for path in ("/v2/repository/models/credit-risk/unload", "/v2/repository/models/credit-risk/load",
                 "/v1/models/credit-risk:explain"):  # fmt: skip
        status, _, content = http("POST", server.url + path, b"")
        assert status == 404 and json.loads(content) == {
            "error": f"no route {path}: see /openapi.json for the served routes"
        }
    assert http("GET", server.url + "/v2/models/credit-risk/ready")[0] == 200


def test_openapi_describes_the_served_routes(server: Server) -> None:
    status, _, content = http("GET", server.url + "/openapi.json")
    paths = json.loads(content)["paths"]
    assert status == 200 and not [p for p in paths if "repository" in p or "explain" in p]
    for path in ("/v2/models/{model_name}/infer", "/v2/models/{model_name}/versions/{model_version}/infer"):
        operation = paths[path]["post"]
        assert {"200", "400", "404", "413", "503"} <= set(operation["responses"]), operation["responses"]
        assert "422" not in operation["responses"]
        assert {"application/json", "application/octet-stream"} <= set(operation["requestBody"]["content"])
    body = paths["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["features"]
    assert body["properties"]["features"]["oneOf"][0]["minItems"] == 26


def test_json_infer_matches_onnxruntime_and_sklearn(server: Server, trained: TrainedModel) -> None:
    rows = trained.X_test[:MAX_ROWS]
    status, body = _infer(server, _features_body(rows, id="req-1"))
    assert status == 200
    assert body["id"] == "req-1" and body["model_name"] == "credit-risk" and body["model_version"] == "1"
    outputs = {o["name"]: o for o in body["outputs"]}
    assert {n: (o["datatype"], o["shape"]) for n, o in outputs.items()} == {
        "probability": ("FP32", [len(rows)]), "prediction": ("INT64", [len(rows)]),
        "risk_level": ("BYTES", [len(rows)]), "decision": ("BYTES", [len(rows)]),
    }  # fmt: skip
    probability = np.asarray(outputs["probability"]["data"])
    direct = ort.InferenceSession(str(trained.path), providers=["CPUExecutionProvider"]).run(
        None, {"features": rows}
    )[0]
    np.testing.assert_allclose(probability, direct, atol=1e-5)
    np.testing.assert_allclose(probability, trained.pipeline.predict_proba(rows)[:, 1], atol=1e-5)
    assert outputs["prediction"]["data"] == (probability >= 0.5).astype(int).tolist()
    expected_level = np.where(probability < 0.3, "low", np.where(probability > 0.6, "high", "medium"))
    assert outputs["risk_level"]["data"] == expected_level.tolist()
    decision = {"low": "approve", "medium": "review", "high": "reject"}
    assert outputs["decision"]["data"] == [decision[v] for v in expected_level]
    status, body = _infer(server, _features_body(rows[:1]))
    assert status == 200 and len(body["id"]) > 8  # an id is always set


def test_one_tensor_per_feature_and_other_datatypes(server: Server, trained: TrainedModel) -> None:
    rows = trained.X_test[:7]
    names = json.loads(
        http("GET", server.url + "/v2/models/credit-risk")[2]
    )  # metadata lists 'features' only
    assert names["inputs"][0]["name"] == "features"
    from ml.schema import FEATURE_NAMES  # the test knows the contract; the server reads it from the model

    per_feature = {"inputs": [
        {"name": n, "shape": [7, 1] if i % 2 else [7], "datatype": "FP64", "data": rows[:, i].astype(float).tolist()}
        for i, n in enumerate(FEATURE_NAMES)
    ]}  # fmt: skip
    status, body = _infer(server, per_feature)
    assert status == 200
    reference = _infer(server, _features_body(rows))[1]
    assert body["outputs"][0]["data"] == reference["outputs"][0]["data"]
    as_int = {
        "inputs": [
            {
                "name": "features",
                "shape": [7, 26],
                "datatype": "INT64",
                "data": np.round(rows).astype(int).tolist(),
            }
        ]
    }
    status, body = _infer(server, as_int)
    assert status == 200 and len(body["outputs"][0]["data"]) == 7


@pytest.mark.parametrize("binary", [True, False])
def test_tritonclient(server: Server, trained: TrainedModel, binary: bool) -> None:
    client = triton.InferenceServerClient(server.url.removeprefix("http://"))
    assert client.is_server_live() and client.is_model_ready("credit-risk")
    rows = trained.X_test[:50]
    tensor = triton.InferInput("features", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows, binary_data=binary)
    outputs = [triton.InferRequestedOutput(n, binary_data=binary) for n in ("probability", "risk_level")]
    headers = None if binary else {"Content-Type": "application/json"}
    result = client.infer("credit-risk", [tensor], outputs=outputs, headers=headers)
    np.testing.assert_allclose(
        result.as_numpy("probability"), trained.pipeline.predict_proba(rows)[:, 1], atol=1e-5
    )
    levels = result.as_numpy("risk_level")
    assert {v.decode() if isinstance(v, bytes) else v for v in levels} <= {"low", "medium", "high"}
    assert result.as_numpy("decision") is None  # only what was requested
    assert result.get_response()["model_version"] == "1"


def test_original_predict_api(server: Server, trained: TrainedModel) -> None:
    row = trained.X_test[0].tolist()
    status, body = _infer(server, {"features": row}, path="/predict")
    assert status == 200 and set(body) == {
        "prediction",
        "probability",
        "risk_level",
        "decision",
        "model_version",
    }
    assert body["probability"] == pytest.approx(
        float(trained.pipeline.predict_proba(trained.X_test[:1])[0, 1]), abs=1e-5
    )
    assert body["model_version"] == "1" and isinstance(body["prediction"], int)
    status, batch = _infer(server, {"features": trained.X_test[:3].tolist()}, path="/predict")
    assert status == 200 and len(batch["probability"]) == 3 and batch["probability"][0] == body["probability"]


# ---------------------------------------------------------------------------------------------- bad input

ROW = [1.0] * 26


def _binary_body(rows: np.ndarray) -> tuple[bytes, dict[str, str]]:
    header = json.dumps({"inputs": [{"name": "features", "shape": list(rows.shape), "datatype": "FP32",
                                      "parameters": {"binary_data_size": rows.nbytes}}]}).encode()  # fmt: skip
    return header + rows.tobytes(), {"Inference-Header-Content-Length": str(len(header)),
                                     "Content-Type": "application/octet-stream"}  # fmt: skip


BAD_V2 = [
    ({"inputs": [{"name": "features", "shape": [1, 25], "datatype": "FP32", "data": ROW[:25]}]}, r"must have shape [N, 26]"),
    ({"inputs": [{"name": "features", "shape": [2, 13], "datatype": "FP32", "data": ROW}]}, "got [2, 13]"),
    ({"inputs": [{"name": "feature", "shape": [1, 26], "datatype": "FP32", "data": ROW}]}, "unknown input(s) feature"),
    ({"inputs": [{"name": "Amount", "shape": [1], "datatype": "FP32", "data": [1.0]}]}, "missing 25 of the 26 feature inputs"),
    ({"inputs": [{"name": "features", "shape": [1, 26], "datatype": "FP32", "data": ["x"] * 26}]}, "element 0 is \"x\", not a number"),
    ({"inputs": [{"name": "features", "shape": [1, 26], "datatype": "BYTES", "data": ["x"] * 26}]}, "datatype BYTES"),
    ({"inputs": [{"name": "features", "shape": [1, 26], "datatype": "FP64", "data": [1e300] * 26}]}, "beyond float32 range"),
    ({"inputs": [{"name": "features", "shape": [0, 26], "datatype": "FP32", "data": []}]}, "the batch is empty"),
    ({"inputs": []}, "the request has no inputs"),
    (_features_body(np.ones((MAX_ROWS + 1, 26))), f"more than the limit of {MAX_ROWS}"),
    ({"inputs": [{"name": "features", "shape": [1, 26], "datatype": "FP32", "data": ROW}], "outputs": [{"name": "x"}]}, "unknown output 'x'"),
    ({"inputs": [{"name": "features", "shape": [1, 26], "datatype": "FP32"}]}, "inputs[0] 'features': 'data' is required"),
    ({"inputs": [{"name": "features", "datatype": "FP32", "data": ROW}]}, "inputs[0]: 'shape' is required"),
    ({"foo": 1}, "'inputs' is required"),
    ([1, 2, 3], "invalid inference request"),
    (b'{"inputs": [', "malformed JSON"),
    (b'{"inputs": [{"name": "features", "shape": [1, 26], "datatype": "FP32", "data": [NaN' + b", 1" * 25 + b"]}]}", "malformed JSON"),
    (b"", "invalid inference request"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "message"), BAD_V2, ids=[m for _, m in BAD_V2])
def test_bad_v2_requests_get_400_and_say_why(server: Server, body: object, message: str) -> None:
    status, answer = _infer(
        server, body, **({"Content-Type": "application/json"} if isinstance(body, bytes) else {})
    )
    assert status == 400, answer
    assert set(answer) == {"error"} and message in answer["error"]


def test_nan_in_binary_tensor_gets_400(server: Server) -> None:
    rows = np.ones((2, 26), dtype=np.float32)
    rows[1, 4] = np.nan
    body, headers = _binary_body(rows)
    status, _, content = http("POST", server.url + "/v2/models/credit-risk/infer", body, headers=headers)
    assert status == 400 and "first at row 1, feature 'FraudResult'" in json.loads(content)["error"]
    truncated, headers = _binary_body(np.ones((2, 26), dtype=np.float32))
    status, _, content = http(
        "POST", server.url + "/v2/models/credit-risk/infer", truncated[:-8], headers=headers
    )
    assert status == 400 and "error" in json.loads(content)


BAD_PREDICT = [
    ({"features": ROW[:25]}, "row 0 must be a list of 26 numbers"),
    ({"features": ROW[:25] + ["x"]}, "is not a number: 'x'"),
    ({"rows": [ROW]}, "expected a JSON object"),
    ({"features": [ROW] * (MAX_ROWS + 1)}, f"more than the limit of {MAX_ROWS}"),
    (b"{", "not valid JSON"),
]


@pytest.mark.parametrize(("body", "message"), BAD_PREDICT, ids=[m for _, m in BAD_PREDICT])
def test_bad_predict_requests_get_400_and_say_why(server: Server, body: object, message: str) -> None:
    status, answer = _infer(
        server,
        body,
        path="/predict",
        **({"Content-Type": "application/json"} if isinstance(body, bytes) else {}),
    )
    assert status == 400 and message in answer["error"]


def test_oversized_bodies_get_413(server: Server) -> None:
    body = b'{"features": [' + b"1.0, " * (MAX_BYTES // 5) + b"1.0]}"
    for path in ("/predict", "/v2/models/credit-risk/infer"):
        status, _, content = http(
            "POST", server.url + path, body, headers={"Content-Type": "application/json"}
        )
        assert status == 413 and f"exceeds the limit of {MAX_BYTES:,} bytes" in json.loads(content)["error"]


def test_wrong_version_and_model(server: Server) -> None:
    status, body = _infer(
        server, _features_body(np.ones((1, 26))), path="/v2/models/credit-risk/versions/9/infer"
    )
    assert status == 404 and "version 9 is not served here" in body["error"]
    status, body = _infer(
        server, _features_body(np.ones((1, 26))), path="/v2/models/credit-risk/versions/1/infer"
    )
    assert status == 200 and body["model_version"] == "1"
    status, body = _infer(server, _features_body(np.ones((1, 26))), path="/v2/models/nope/infer")
    assert status == 404 and "error" in body


def test_server_is_still_up_after_bad_input(server: Server) -> None:
    assert server.process.poll() is None
    assert http("GET", server.url + "/v2/health/ready")[0] == 200
    assert "Traceback" not in server.logs()


# ---------------------------------------------------------------------------------------------- metrics


def test_metrics_are_aggregated_across_workers(trained: TrainedModel, tmp_path: Path) -> None:
    with running_server(
        "--model-uri",
        str(trained.path),
        "--workers",
        "2",
        "--metrics-flush-seconds",
        str(FLUSH),
        workdir=tmp_path,
    ) as fresh:
        for _ in range(40):
            assert _infer(fresh, {"features": ROW}, path="/predict")[0] == 200
        assert _infer(fresh, _features_body(trained.X_test[:100]))[0] == 200
        assert _infer(fresh, {"features": ROW[:3]}, path="/predict")[0] == 400
        for name in ("nope-1", "nope-2"):
            assert (
                _infer(fresh, _features_body(trained.X_test[:1]), path=f"/v2/models/{name}/infer")[0] == 404
            )
        scrapes = [metrics(fresh) for _ in range(6)]  # whichever worker answers, the totals are the same
        for samples in scrapes:
            assert _sum(samples, "credit_risk_requests_total", route="/predict", status_code="200") == 40
            assert _sum(samples, "credit_risk_requests_total", route="/predict", status_code="400") == 1
            assert (
                _sum(
                    samples,
                    "credit_risk_requests_total",
                    route="/v2/models/{model_name}/infer",
                    status_code="200",
                )
                == 1
            )
            assert _sum(samples, "credit_risk_score_count") == 140
            assert _sum(samples, "credit_risk_request_rows_count") == 41
            assert _sum(samples, "credit_risk_request_rows_sum") == 140
            assert _sum(samples, "credit_risk_predictions_total") == 140
            assert _sum(samples, "credit_risk_score_bin_total") == 140
            assert _sum(samples, "credit_risk_feature_bin_total", feature="Amount") == 140
            assert (
                _sum(samples, "request_predict_seconds_count") == 1
            )  # kserve's built-in histogram, aggregated
            assert _sum(samples, "credit_risk_request_duration_seconds_count", route="/predict") == 41
            assert _sum(samples, "credit_risk_model_info", model_version="1") == 1
            assert _sum(samples, "credit_risk_drift_window_rows") == 140
            # Model names typed into URLs share one label value: clients cannot grow the series count.
            assert _sum(samples, "credit_risk_requests_total", model_name="unknown", status_code="404") == 2
            assert not [ls for (n, ls) in samples if ("model_name", "nope-1") in ls]
        assert len({_sum(s, "credit_risk_score_psi") for s in scrapes}) == 1  # both workers agree
        buckets = sorted(
            (float(dict(ls)["le"]), v) for (n, ls), v in scrapes[0].items() if n == "credit_risk_request_duration_seconds_bucket"
            and dict(ls)["route"] == "/predict"
        )  # fmt: skip
        assert buckets[0][0] == 0.0001 and buckets[-1] == (float("inf"), 41)


def _shifted(trained: TrainedModel, n: int) -> np.ndarray:
    """A riskier population: high-risk customers' transactions, smaller amounts, at night."""
    from ml.schema import FEATURE_NAMES

    risky = trained.X_train[trained.y_train == 1]
    rows = risky[np.random.default_rng(1).integers(0, len(risky), n)].copy()
    for name in (
        "Amount",
        "Value",
        "total_transaction_amount",
        "avg_transaction_amount",
        "median_transaction_amount",
    ):
        rows[:, FEATURE_NAMES.index(name)] *= 0.05
    rows[:, FEATURE_NAMES.index("transaction_hour")] = 2
    rows[:, FEATURE_NAMES.index("transaction_count")] = 1
    return rows


def _counter_psi(before: dict, after: dict, family: str, reference: str, **labels: str) -> float:
    """PSI from the exported bin counters and reference gauges: what a PromQL rule computes over a window."""

    def per_bin(samples: dict, name: str) -> dict[str, float]:
        return {
            dict(ls)["bin"]: v
            for (n, ls), v in samples.items()
            if n == name and all(dict(ls).get(k) == w for k, w in labels.items())
        }

    now, then = per_bin(after, family), per_bin(before, family)
    ref = per_bin(after, reference)
    counts = np.array([now[b] - then.get(b, 0.0) for b in ref])
    live = np.maximum(counts / counts.sum(), 1e-4)
    expected = np.maximum(np.array(list(ref.values())), 1e-4)
    return float(np.sum((live - expected) * np.log(live / expected)))


def test_score_drift_stays_low_for_reference_like_traffic_and_rises_for_a_shift(
    trained: TrainedModel, tmp_path: Path
) -> None:
    window = 3
    with running_server(
        "--model-uri",
        str(trained.path),
        "--workers",
        "2",
        "--drift-window-seconds",
        str(window),
        "--metrics-flush-seconds",
        str(FLUSH),
        workdir=tmp_path,
    ) as fresh:
        reference_like = trained.X_fresh[np.random.default_rng(0).integers(0, len(trained.X_fresh), 1_500)]
        for batch in np.array_split(reference_like, 30):
            assert _infer(fresh, _features_body(batch))[0] == 200
        phase1 = metrics(fresh)
        assert _sum(phase1, "credit_risk_drift_window_rows") == 1_500
        assert _sum(phase1, "credit_risk_score_psi") < 0.1
        assert (
            _counter_psi({}, phase1, "credit_risk_score_bin_total", "credit_risk_score_reference_ratio") < 0.1
        )
        time.sleep(window + 0.5)

        for batch in np.array_split(_shifted(trained, 600), 12):
            assert _infer(fresh, _features_body(batch))[0] == 200
        phase2 = metrics(fresh)
        # The sliding window now holds the shifted rows only (the previous scrape is its baseline).
        assert _sum(phase2, "credit_risk_drift_window_rows") == 600
        assert _sum(phase2, "credit_risk_score_psi") > 0.25
        assert (
            _counter_psi(phase1, phase2, "credit_risk_score_bin_total", "credit_risk_score_reference_ratio")
            > 0.25
        )
        assert _sum(phase2, "credit_risk_feature_psi", feature="Amount") > 0.25
        assert _sum(phase1, "credit_risk_feature_psi", feature="Amount") < 0.1
        assert (
            _counter_psi(
                phase1,
                phase2,
                "credit_risk_feature_bin_total",
                "credit_risk_feature_reference_ratio",
                feature="Amount",
            )
            > 0.25
        )
        high = _sum(phase2, "credit_risk_predictions_total", risk_level="high") - _sum(
            phase1, "credit_risk_predictions_total", risk_level="high"
        )
        assert high / 600 > _sum(phase1, "credit_risk_predictions_total", risk_level="high") / 1_500


def test_a_chunked_body_over_the_limit_gets_413(server: Server) -> None:
    from http.client import HTTPConnection
    from urllib.parse import urlparse

    target = urlparse(server.url)
    connection = HTTPConnection(target.hostname, target.port, timeout=30)
    chunks = (b"1.0, " * 20_000 for _ in range(MAX_BYTES // 100_000 + 2))
    connection.request(
        "POST", "/predict", body=chunks, headers={"Content-Type": "application/json"}, encode_chunked=True
    )
    response = connection.getresponse()
    assert response.status == 413 and "exceeds the limit" in json.loads(response.read())["error"]
    connection.close()
    assert http("GET", server.url + "/v2/health/live")[0] == 200


# ---------------------------------------------------------------------------------------------- gRPC and TLS


def test_grpc_on_its_own_port_answers_like_http_and_is_counted(server: Server, trained: TrainedModel) -> None:
    """tritonclient.grpc (in its own process: its protos clash with kserve's) against both workers."""
    rows = trained.X_test[:40].astype(np.float32)
    answer = run_triton_grpc(server.grpc, rows, request_id="")
    assert answer["live"] and answer["ready"] and answer["model_ready"], answer
    assert answer["server_metadata"]["name"] == "credit-risk-predictor"
    assert answer["model_metadata"]["versions"] == ["1"]
    expected = trained.pipeline.predict_proba(rows)[:, 1]
    for way in ("infer_raw", "infer_contents"):
        result = answer[way]
        assert result["id"] == "" and result["model_version"] == "1", result
        np.testing.assert_allclose(result["outputs"]["probability"]["data"], expected, atol=1e-5)
        assert set(result["outputs"]["decision"]["data"]) <= {"approve", "review", "reject"}
    samples = metrics(server)
    assert _sum(samples, "credit_risk_requests_total", route="/inference.GRPCInferenceService/ModelInfer",
                status_code="200") == 2  # fmt: skip
    http_answer = _infer(server, _features_body(rows))[1]
    http_scores = next(o["data"] for o in http_answer["outputs"] if o["name"] == "probability")
    np.testing.assert_array_equal(  # the same float32 scores, whichever protocol carried them
        np.float32(answer["infer_raw"]["outputs"]["probability"]["data"]), np.float32(http_scores)
    )


def test_tls_on_both_ports(trained: TrainedModel, tmp_path: Path) -> None:
    import trustme

    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    cert, key, bundle = tmp_path / "tls.crt", tmp_path / "tls.key", tmp_path / "ca.pem"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(bundle))
    with running_server("--model-uri", str(trained.path), "--workers", "2", "--ssl-certfile", str(cert),
                        "--ssl-keyfile", str(key), workdir=tmp_path, ca_file=bundle) as tls:  # fmt: skip
        assert tls.url.startswith("https://")
        status, _, body = http(
            "POST", tls.url + "/predict", {"features": trained.X_test[0].tolist()}, context=tls.context
        )
        assert status == 200 and json.loads(body)["model_version"] == "1"
        with pytest.raises(OSError):  # plain HTTP on the TLS port is refused
            http("GET", tls.url.replace("https://", "http://") + "/v2/health/live", timeout=5)
        answer = run_triton_grpc(tls.grpc, trained.X_test[:3].astype(np.float32), ca_file=bundle)
        assert answer["ready"] and len(answer["infer_raw"]["outputs"]["probability"]["data"]) == 3, answer

"""Every route of the application, in process through its ASGI interface (no server, no sockets)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import onnxruntime as ort
import pytest
from starlette.testclient import TestClient

from harness.predictor import TrainedModel
from serving.app import create_app
from serving.model import CreditRiskModel
from serving.settings import ServingSettings

INFER = "/v2/models/credit-risk/infer"


@pytest.fixture(scope="module")
def model(trained: TrainedModel) -> CreditRiskModel:
    loaded = CreditRiskModel(
        ServingSettings(model_uri=str(trained.path), max_batch_rows=50, max_request_bytes=50_000)
    )
    loaded.load()
    return loaded


@pytest.fixture(scope="module")
def client(model: CreditRiskModel) -> Iterator[TestClient]:
    with TestClient(create_app(model), raise_server_exceptions=False) as test_client:
        yield test_client


def _features(rows: np.ndarray, **extra: object) -> dict:
    return {"inputs": [{"name": "features", "shape": list(rows.shape), "datatype": "FP32", "data": rows.tolist()}],
            **extra}  # fmt: skip


def test_health_and_server_metadata(client: TestClient) -> None:
    assert client.get("/").json() == {"live": True}
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2").json() == {
        "name": "credit-risk-predictor", "version": "0.2.0", "extensions": ["binary_tensor_data"],
    }  # fmt: skip
    assert client.get("/health").json() == {
        "status": "alive", "ready": True, "model_name": "credit-risk", "model_version": "1",
    }  # fmt: skip


def test_model_metadata_and_readiness_plain_and_versioned(client: TestClient) -> None:
    metadata = client.get("/v2/models/credit-risk").json()
    assert metadata == {
        "name": "credit-risk", "versions": ["1"], "platform": "onnxruntime_onnx",
        "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, 26]}],
        "outputs": [
            {"name": "probability", "datatype": "FP32", "shape": [-1]},
            {"name": "prediction", "datatype": "INT64", "shape": [-1]},
            {"name": "risk_level", "datatype": "BYTES", "shape": [-1]},
            {"name": "decision", "datatype": "BYTES", "shape": [-1]},
        ],
    }  # fmt: skip
    assert client.get("/v2/models/credit-risk/versions/1").json() == metadata
    ready = {"name": "credit-risk", "ready": True}
    assert client.get("/v2/models/credit-risk/ready").json() == ready
    assert client.get("/v2/models/credit-risk/versions/1/ready").json() == ready
    assert client.get("/v2/models/credit-risk/ready?model_version=1").json() == ready
    for path in ("/v2/models/credit-risk/versions/2/ready", "/v2/models/credit-risk/ready?model_version=2",
                 "/v2/models/credit-risk/versions/2"):  # fmt: skip
        answer = client.get(path)
        assert answer.status_code == 404
        assert answer.json() == {
            "error": "model credit-risk version 2 is not served here; this server serves version 1"
        }
    answer = client.get("/v2/models/other/ready")
    assert answer.status_code == 404
    assert answer.json() == {"error": "model 'other' is not served here; this server serves 'credit-risk'"}


def test_infer_matches_onnxruntime(client: TestClient, trained: TrainedModel) -> None:
    rows = trained.X_test[:20].astype(np.float32)
    answer = client.post(INFER, json=_features(rows, id="req-1"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["id"] == "req-1" and body["model_name"] == "credit-risk" and body["model_version"] == "1"
    outputs = {o["name"]: o for o in body["outputs"]}
    expected = ort.InferenceSession(str(trained.path)).run(["probability"], {"features": rows})[0]
    np.testing.assert_allclose(outputs["probability"]["data"], expected, rtol=1e-6)
    assert outputs["probability"]["shape"] == [20] and outputs["decision"]["datatype"] == "BYTES"
    versioned = client.post("/v2/models/credit-risk/versions/1/infer", json=_features(rows[:1]))
    assert versioned.status_code == 200
    assert client.post("/v2/models/credit-risk/versions/7/infer", json=_features(rows[:1])).status_code == 404


def test_the_given_id_is_echoed_even_empty(client: TestClient, row: list[float]) -> None:
    rows = np.array([row], dtype=np.float32)
    assert client.post(INFER, json=_features(rows, id="")).json()["id"] == ""
    generated = client.post(INFER, json=_features(rows)).json()["id"]
    assert len(generated) == 36  # a fresh UUID when none is given


def test_binary_output_when_asked(client: TestClient, row: list[float]) -> None:
    body = _features(np.array([row] * 3, dtype=np.float32), parameters={"binary_data_output": True})
    answer = client.post(INFER, json=body)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/octet-stream"
    length = int(answer.headers["inference-header-content-length"])
    header = json.loads(answer.content[:length])
    sizes = [o["parameters"]["binary_data_size"] for o in header["outputs"]]
    assert sizes[0] == 12 and len(answer.content) == length + sum(sizes)


def test_predict_single_and_batch(client: TestClient, row: list[float]) -> None:
    single = client.post("/predict", json={"features": row}).json()
    assert set(single) == {"prediction", "probability", "risk_level", "decision", "model_version"}
    assert isinstance(single["probability"], float)
    batch = client.post("/predict", json={"features": [row, row]}).json()
    assert batch["probability"] == [single["probability"]] * 2


@pytest.mark.parametrize(
    ("method", "path", "status", "message"),
    [
        ("GET", "/nope", 404, "no route /nope"),
        ("GET", "/v1/models/credit-risk", 404, "no route /v1/models/credit-risk"),
        ("POST", "/v2/repository/models/credit-risk/unload", 404, "no route"),
        ("POST", "/v2/repository/models/credit-risk/load", 404, "no route"),
        ("DELETE", "/predict", 405, "DELETE is not allowed on /predict; allowed: POST"),
        ("GET", INFER, 405, "GET is not allowed"),
        ("POST", "/v2/health/ready", 405, "POST is not allowed"),
    ],
)
def test_routing_errors_are_v2_error_bodies(
    client: TestClient, method: str, path: str, status: int, message: str
) -> None:
    answer = client.request(method, path)
    assert answer.status_code == status and message in answer.json()["error"]
    assert set(answer.json()) == {"error"}
    if status == 405:
        assert answer.headers["allow"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "malformed JSON"),
        ({"inputs": []}, "inputs"),
        ({"inputs": [{"name": "features", "shape": [1, 26], "datatype": "FP32"}]}, "data"),
        (
            {"inputs": [{"name": "features", "shape": [1, 25], "datatype": "FP32", "data": [0.0] * 25}]},
            "[N, 26]",
        ),
    ],
)
def test_bad_infer_requests_get_400_naming_the_problem(
    client: TestClient, body: object, message: str
) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    answer = client.post(INFER, content=content, headers={"content-type": "application/json"})
    assert answer.status_code == 400 and message in answer.json()["error"], answer.text


def test_limits_apply_in_process_too(client: TestClient, row: list[float]) -> None:
    too_many = client.post(INFER, json=_features(np.array([row] * 51, dtype=np.float32)))
    assert too_many.status_code == 400 and "limit of 50" in too_many.json()["error"]
    huge = client.post("/predict", content=b"[" + b"1.0," * 20_000 + b"1]")
    assert huge.status_code == 413 and "exceeds the limit of 50,000 bytes" in huge.json()["error"]


def test_a_model_not_loaded_answers_503(trained: TrainedModel) -> None:
    unloaded = CreditRiskModel(ServingSettings(model_uri=str(trained.path)))
    with TestClient(create_app(unloaded), raise_server_exceptions=False) as test_client:
        assert test_client.get("/v2/health/live").status_code == 200
        assert test_client.get("/v2/health/ready").status_code == 503
        answer = test_client.post(INFER, json={"inputs": []})
        assert answer.status_code == 503 and "not ready" in answer.json()["error"]
        assert test_client.get("/metrics").status_code == 503


def test_metrics_count_requests_by_route_and_status(client: TestClient, row: list[float]) -> None:
    client.post("/predict", json={"features": row})
    client.post("/predict", json={"features": [1]})
    client.get("/v2/models/typo/ready")
    text = client.get("/metrics").text
    assert 'credit_risk_requests_total{model_name="credit-risk",route="/predict",status_code="400"}' in text
    assert (
        'route="/v2/models/{model_name}/ready",status_code="404"' in text and 'model_name="typo"' not in text
    )


def test_openapi_describes_the_served_routes(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    paths = document["paths"]
    assert not [p for p in paths if "repository" in p or "explain" in p or p.startswith("/v1")]
    for path in ("/v2/models/{model_name}/infer", "/v2/models/{model_name}/versions/{model_version}/infer"):
        operation = paths[path]["post"]
        assert {"200", "400", "404", "413", "503"} <= set(operation["responses"]) and "422" not in operation[
            "responses"
        ]
        assert {"application/json", "application/octet-stream"} <= set(operation["requestBody"]["content"])
        schema = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
        assert "inputs" in document["components"]["schemas"][schema]["properties"]
    body = paths["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["features"] and body["properties"]["features"]["oneOf"][0]["minItems"] == 26
    assert "422" not in json.dumps({p: v for p, v in paths.items() if p.startswith("/v2/models")})

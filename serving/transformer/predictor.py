"""Calling the predictor over the Open Inference Protocol (V2): HTTP (:class:`HttpPredictor`) or gRPC
(:class:`GrpcPredictor`), one kept-alive connection pool per transformer process.

The request is one FP32 tensor ``features`` ``[N, 26]`` (gRPC: ``raw_input_contents``); the answer's four
outputs become :class:`Scores`, with the model version the predictor reports (during a rollout two versions
answer, and each decision names the one that made it). Failures say which side failed:

* the predictor cannot be reached, times out, or answers 503 → :class:`PredictorUnavailable` (503: retry);
* it answers anything else that is not a score → :class:`PredictorFailed` (502): the transformer built a
  request its predictor refused — a version skew between the two, never the caller's fault.

A thin client over aiohttp (HTTP) and kserve's generated gRPC stub rather than kserve's
``InferenceRESTClient``: that one converts through kserve's ``InferRequest``/``InferResponse`` on every call,
goes through httpx (which cost ~1 ms per call here, against aiohttp's ~0.2 ms) and maps every failure to
the same exception; here the two failure kinds must reach the caller as different statuses, and the
transformer's latency budget is a millisecond.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from http import HTTPStatus

import aiohttp
import grpc
import numpy as np
import orjson
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

from serving.errors import ServingError
from serving.protocol import v2

OUTPUTS = ("probability", "prediction", "risk_level", "decision")


class PredictorUnavailable(ServingError):
    """The predictor cannot be reached, timed out, or is not ready: retry shortly."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
    grpc_code = grpc.StatusCode.UNAVAILABLE

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason  # the metrics label: unavailable | timeout


class PredictorFailed(ServingError):
    """The predictor answered, but not with scores."""

    status = HTTPStatus.BAD_GATEWAY
    grpc_code = grpc.StatusCode.INTERNAL
    reason = "refused"


@dataclass(frozen=True)
class Scores:
    probability: np.ndarray  # float32 [N]
    prediction: np.ndarray  # int64 [N]
    risk_level: np.ndarray  # object [N] of str
    decision: np.ndarray  # object [N] of str
    model_version: str

    def __len__(self) -> int:
        return len(self.probability)

    def __getitem__(self, rows: slice) -> Scores:
        """The scores of ``rows`` (a slice): one request's share of a shared call."""
        return Scores(self.probability[rows], self.prediction[rows], self.risk_level[rows], self.decision[rows],
                      self.model_version)  # fmt: skip


class Predictor(ABC):
    """A V2 client of one predictor (``address`` = HOST:PORT) for one model name."""

    def __init__(self, address: str, model_name: str, timeout_seconds: float) -> None:
        self.address = address
        self.model_name = model_name
        self.timeout_seconds = timeout_seconds

    @abstractmethod
    async def infer(self, features: np.ndarray) -> Scores:
        """Scores of the float32 ``[N, F]`` rows (of one request or several: no request id is forwarded)."""

    @abstractmethod
    async def ready(self) -> bool:
        """Whether the predictor says its model is ready (False when it cannot be reached)."""

    @abstractmethod
    async def served_version(self) -> str:
        """The model version the predictor's metadata names ("" when it cannot be reached)."""

    @abstractmethod
    async def close(self) -> None: ...

    def _scores(self, outputs: dict[str, np.ndarray], version: str, n: int) -> Scores:
        missing = [name for name in OUTPUTS if name not in outputs]
        if missing:
            raise PredictorFailed(f"the predictor at {self.address} answered without {', '.join(missing)}")
        for name in OUTPUTS:
            if outputs[name].shape != (n,):
                raise PredictorFailed(
                    f"the predictor at {self.address} answered {name} of shape {list(outputs[name].shape)} "
                    f"for {n} transaction(s)"
                )
        text = {name: np.array([_str(v) for v in outputs[name].tolist()], dtype=object)
                for name in ("risk_level", "decision")}  # fmt: skip
        return Scores(
            probability=outputs["probability"].astype(np.float32, copy=False),
            prediction=outputs["prediction"].astype(np.int64, copy=False),
            risk_level=text["risk_level"],
            decision=text["decision"],
            model_version=version,
        )


def _str(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class HttpPredictor(Predictor):
    """V2 over HTTP/1.1 (JSON), through aiohttp's kept-alive connection pool (opened in the running loop)."""

    def __init__(self, address: str, model_name: str, timeout_seconds: float) -> None:
        super().__init__(address, model_name, timeout_seconds)
        self.url = f"http://{address}/v2/models/{model_name}"
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=256, keepalive_timeout=30),
                timeout=aiohttp.ClientTimeout(total=self.timeout_seconds),
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def infer(self, features: np.ndarray) -> Scores:
        n, width = features.shape
        body = orjson.dumps(
            {
                "inputs": [{"name": v2.INPUT_NAME, "datatype": "FP32", "shape": [n, width],
                            "data": features.ravel()}],
            },
            option=orjson.OPT_SERIALIZE_NUMPY,
        )  # fmt: skip
        try:
            async with self.session.post(
                self.url + "/infer", data=body, headers={"content-type": "application/json"}
            ) as answer:
                status, content = answer.status, await answer.read()
        except TimeoutError as exc:
            raise PredictorUnavailable(
                f"the predictor at {self.address} did not answer within {self.timeout_seconds:g}s", "timeout"
            ) from exc
        except aiohttp.ClientError as exc:
            raise PredictorUnavailable(
                f"the predictor at {self.address} is unavailable: {exc or type(exc).__name__}", "unavailable"
            ) from exc
        if status == HTTPStatus.SERVICE_UNAVAILABLE:
            raise PredictorUnavailable(
                f"the predictor at {self.address} is not ready (503: {_error(content)})", "unavailable"
            )
        if status != HTTPStatus.OK:
            raise PredictorFailed(
                f"the predictor at {self.address} refused the features ({status}: {_error(content)})"
            )
        try:
            document = orjson.loads(content)
            outputs = {o["name"]: np.asarray(o["data"]).reshape(o["shape"]) for o in document["outputs"]}
            version = str(document.get("model_version") or "")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise PredictorFailed(
                f"the predictor at {self.address} answered an unreadable body: {exc}"
            ) from exc
        return self._scores(outputs, version, n)

    async def ready(self) -> bool:
        try:
            async with self.session.get(self.url + "/ready") as answer:
                return answer.status == HTTPStatus.OK
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def served_version(self) -> str:
        try:
            async with self.session.get(self.url) as answer:
                document = orjson.loads(await answer.read()) if answer.status == HTTPStatus.OK else {}
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError):
            return ""
        versions = document.get("versions") if isinstance(document, dict) else None
        return str(versions[0]) if isinstance(versions, list) and versions else ""

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _error(content: bytes) -> str:
    try:
        return str(orjson.loads(content)["error"])[:300]
    except Exception:
        return content[:300].decode(errors="replace") or "(empty body)"


class GrpcPredictor(Predictor):
    """V2 over gRPC (``raw_input_contents``), one HTTP/2 channel."""

    def __init__(self, address: str, model_name: str, timeout_seconds: float) -> None:
        super().__init__(address, model_name, timeout_seconds)
        self._channel: grpc.aio.Channel | None = None
        self._stub: pb_grpc.GRPCInferenceServiceStub | None = None

    @property
    def stub(self) -> pb_grpc.GRPCInferenceServiceStub:
        """The stub, on a channel opened in the running event loop (a grpc.aio channel belongs to one loop)."""
        if self._stub is None:
            self._channel = grpc.aio.insecure_channel(
                self.address, options=[("grpc.max_receive_message_length", -1)]
            )
            self._stub = pb_grpc.GRPCInferenceServiceStub(self._channel)
        return self._stub

    async def infer(self, features: np.ndarray) -> Scores:
        n, width = features.shape
        request = pb.ModelInferRequest(
            model_name=self.model_name,
            inputs=[pb.ModelInferRequest.InferInputTensor(name=v2.INPUT_NAME, datatype="FP32", shape=[n, width])],
            raw_input_contents=[np.ascontiguousarray(features, dtype="<f4").tobytes()],
        )  # fmt: skip
        try:
            answer = await self.stub.ModelInfer(request, timeout=self.timeout_seconds)
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise PredictorUnavailable(
                    f"the predictor at {self.address} did not answer within {self.timeout_seconds:g}s",
                    "timeout",
                ) from exc
            if code == grpc.StatusCode.UNAVAILABLE:
                raise PredictorUnavailable(
                    f"the predictor at {self.address} is unavailable: {exc.details()}", "unavailable"
                ) from exc
            raise PredictorFailed(
                f"the predictor at {self.address} refused the features ({code.name}: {exc.details()})"
            ) from exc
        try:
            outputs = {
                o.name: v2.tensor_from_bytes(o.name, o.datatype, list(o.shape), raw, f"outputs[{i}]").data
                for i, (o, raw) in enumerate(zip(answer.outputs, answer.raw_output_contents, strict=True))
            }
        except (ValueError, ServingError) as exc:
            raise PredictorFailed(
                f"the predictor at {self.address} answered unreadable outputs: {exc}"
            ) from exc
        return self._scores(outputs, answer.model_version, n)

    async def ready(self) -> bool:
        try:
            answer = await self.stub.ModelReady(
                pb.ModelReadyRequest(name=self.model_name), timeout=self.timeout_seconds
            )
        except grpc.aio.AioRpcError:
            return False
        return bool(answer.ready)

    async def served_version(self) -> str:
        try:
            answer = await self.stub.ModelMetadata(
                pb.ModelMetadataRequest(name=self.model_name), timeout=self.timeout_seconds
            )
        except grpc.aio.AioRpcError:
            return ""
        return answer.versions[0] if answer.versions else ""

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()


def connect(protocol: str, address: str, model_name: str, timeout_seconds: float) -> Predictor:
    """The client for ``protocol`` (``v2``: HTTP, ``grpc-v2``: gRPC)."""
    kind = {"v2": HttpPredictor, "grpc-v2": GrpcPredictor}[protocol]
    return kind(address, model_name, timeout_seconds)

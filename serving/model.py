"""The credit-risk predictor: a ``kserve.Model`` that runs the ONNX model with onnxruntime.

Override points, in the order a request meets them: :meth:`CreditRiskModel.load` (resolve the URI,
open the session, read the contract), :meth:`predict` (V2 request → rows → :meth:`score` → V2 response),
:meth:`score` (the one scoring path both protocols share: probabilities, prediction, bands, metrics).

``--workers N`` pickles the model into each spawned worker (:mod:`serving.workers`): the onnxruntime session and the
metrics cannot cross a process boundary, so :meth:`__getstate__` drops them and :meth:`__setstate__`
rebuilds them from the model bytes in the worker.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from kserve import Model

from serving.artifact import resolve
from serving.contract import ModelContract
from serving.errors import ModelLoadError
from serving.metrics import DECISIONS, RISK_LEVELS, ModelMetrics
from serving.protocol import v2
from serving.settings import ServingSettings

log = logging.getLogger(__name__)

OUTPUT_NAME = "probability"
PLATFORM = "onnxruntime_onnx"
_LEVELS = np.array(RISK_LEVELS, dtype=object)
_DECISIONS = np.array(DECISIONS, dtype=object)


class CreditRiskModel(Model):
    """P(high risk) for transactions described by the 26-feature contract."""

    def __init__(self, settings: ServingSettings) -> None:
        super().__init__(settings.model_name)
        self.settings = settings
        self.contract: ModelContract | None = None
        self.version = ""
        self.source = ""
        self.threshold = 0.5
        self.load_seconds = 0.0
        self._content: bytes | None = None
        self._session: ort.InferenceSession | None = None
        self._input_name = ""
        self.metrics: ModelMetrics | None = None

    # ------------------------------------------------------------------------------------------ loading

    def load(self) -> bool:
        """Resolve the model URI, open the session, read and check the contract. Raises :class:`ModelLoadError`."""
        started = time.perf_counter()
        resolved = resolve(
            self.settings.model_uri, self.settings.registry_retries, self.settings.registry_timeout_seconds
        )
        self._content = resolved.content
        self.source = resolved.source
        self._open()
        assert self.contract is not None
        if resolved.registry_version and resolved.registry_version != self.contract.version:
            log.warning(
                "registry version %s differs from the version in the model's metadata (%s); reporting %s",
                resolved.registry_version, self.contract.version, resolved.registry_version,
            )  # fmt: skip
        self.version = resolved.registry_version or self.contract.version
        self.threshold = (
            self.settings.threshold if self.settings.threshold is not None else self.contract.threshold
        )
        self.load_seconds = time.perf_counter() - started
        self._start_metrics()
        self.ready = True
        log.info(
            "loaded %s v%s (%s, %s target) from %s in %.3fs: %d features, threshold %.2f, bands <%.2f low, >%.2f high",
            self.contract.name, self.version, self.contract.model_type, self.contract.target_mode, self.source,
            self.load_seconds, len(self.contract.feature_names), self.threshold, self.contract.low_below, self.contract.high_above,
        )  # fmt: skip
        return self.ready

    def _open(self) -> None:
        """Build the onnxruntime session and the contract from the model bytes (in each process)."""
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.settings.intra_op_threads
        options.inter_op_num_threads = 1
        try:
            session = ort.InferenceSession(self._content, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for corrupt files
            raise ModelLoadError(f"{self.source} is not a loadable ONNX model: {exc}") from exc
        contract = ModelContract.from_metadata(session.get_modelmeta().custom_metadata_map)
        inputs, outputs = session.get_inputs(), session.get_outputs()
        width = len(contract.feature_names)
        if (
            len(inputs) != 1
            or len(inputs[0].shape) != 2
            or inputs[0].shape[1] not in (width, None, "N")
            or (inputs[0].type != "tensor(float)")
        ):
            described = [(i.name, i.type, i.shape) for i in inputs]
            raise ModelLoadError(f"the model must take one float tensor [N, {width}]; it takes {described}")
        if OUTPUT_NAME not in {o.name for o in outputs}:
            raise ModelLoadError(
                f"the model has no '{OUTPUT_NAME}' output (outputs: {[o.name for o in outputs]}): export it with "
                "the credit-risk training package"
            )
        self._session, self._input_name, self.contract = session, inputs[0].name, contract

    def _start_metrics(self) -> None:
        assert self.contract is not None
        self.metrics = ModelMetrics(
            self.contract,
            self.version,
            self.load_seconds,
            self.settings.drift_window_seconds,
            self.settings.metrics_flush_seconds,
        )

    def __getstate__(self) -> dict[str, Any]:
        """What a worker receives: everything but the session and metrics, and the model as a file path.

        The model bytes stay out of the pickle on purpose: multiprocessing writes it into a pipe the
        parent itself holds open until the write ends, so a worker killed while starting (a SIGTERM in
        the first seconds) left the parent blocked forever once the payload exceeded the pipe buffer.
        """
        spilled = self._spill() if self._content is not None else None
        state = self.__dict__.copy()
        state.update(_session=None, metrics=None, _content=None, _content_file=spilled)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        path = state.pop("_content_file", None)
        self.__dict__.update(state)
        if path is not None:
            content = Path(path).read_bytes()
            if hashlib.sha256(content).hexdigest() != self._digest:
                raise ModelLoadError(
                    f"the model file handed to this worker ({path}) changed since it was loaded"
                )
            self._content = content
            self._open()
            self._start_metrics()

    def _spill(self) -> str:
        """The model bytes in a private file (created once, removed at exit) for the workers to read."""
        if self.__dict__.get("_spilled") is None:
            handle, path = tempfile.mkstemp(prefix="credit-risk-model-", suffix=".onnx")
            with os.fdopen(handle, "wb") as out:
                out.write(self._content)
            atexit.register(Path(path).unlink, missing_ok=True)
            self.__dict__["_spilled"] = path
            self.__dict__["_digest"] = hashlib.sha256(self._content).hexdigest()
        return self.__dict__["_spilled"]

    # ------------------------------------------------------------------------------------------ metadata

    def get_input_types(self) -> list[dict[str, Any]]:
        width = len(self.contract.feature_names) if self.contract else -1
        return [{"name": v2.INPUT_NAME, "datatype": "FP32", "shape": [-1, width]}]

    def get_output_types(self) -> list[dict[str, Any]]:
        return [dict(o) for o in v2.OUTPUT_TYPES]

    def metadata(self) -> dict[str, Any]:
        """V2 model metadata, the same over HTTP and gRPC (answered before the model is loaded, too)."""
        return {
            "name": self.name,
            "versions": [self.version] if self.version else [],
            "platform": PLATFORM,
            "inputs": self.get_input_types(),
            "outputs": self.get_output_types(),
        }

    # ------------------------------------------------------------------------------------------ inference

    def predict(self, payload: v2.Request, headers: dict[str, str] | None = None) -> v2.Outputs:
        """Score a decoded V2 request (HTTP or gRPC); called through ``Model.__call__``, which times it."""
        assert self.contract is not None
        return self.score(v2.decode(payload, self.contract.feature_names, self.settings.max_batch_rows))

    def score(self, rows: np.ndarray) -> v2.Outputs:
        """Score a float32 ``[N, F]`` matrix (already validated) and record the metrics."""
        assert self._session is not None and self.contract is not None
        probability = self._session.run([OUTPUT_NAME], {self._input_name: rows})[0].astype(
            np.float32, copy=False
        )
        level = (probability >= self.contract.low_below).astype(np.intp) + (
            probability > self.contract.high_above
        )
        if self.metrics is not None:
            self.metrics.observe(rows, probability, level)
        return v2.Outputs(
            probability=probability,
            prediction=(probability >= self.threshold).astype(np.int64),
            risk_level=_LEVELS[level],
            decision=_DECISIONS[level],
        )

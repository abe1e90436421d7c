"""The transformer: a ``kserve.Model`` whose pre-processing builds the 26 features of raw transactions from
the online feature store, whose predict calls the predictor, and whose post-processing returns the decision.

Override points, in the order a scoring request meets them (``Model.__call__`` runs and times them):

* :meth:`TransactionTransformer.preprocess` — a V2 request of raw transaction tensors, or the JSON objects
  of ``/score``, → validated :class:`credit_features.records.Transactions` → one store lookup for the batch
  → the float32 ``[N, 26]`` features (:func:`online_features`, the training rules of
  :mod:`credit_features.definition`);
* :meth:`predict` — the features to the predictor over V2 (:mod:`serving.transformer.predictor`).

Concurrent requests share their store lookup and their predictor call (:mod:`serving.transformer.batching`:
whatever queued while the previous call was in flight goes out in the next; a lone request never waits),
so the stage histograms time each shared call;
* :meth:`postprocess` — :class:`ScoredTransactions`: the predictor's four outputs, the features (the V2
  output ``features``) and the version of the model that scored them.

:meth:`ingest` writes completed transactions (``POST /v1/transactions``, the backfill).

Scoring never writes the store. Each transaction of a batch is scored against the stored history plus
itself — not plus the other transactions of the same batch, which are not completed yet; one already stored
(the same TransactionId) is scored on the stored history, without counting it twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, ClassVar

import grpc
import numpy as np
from kserve import Model

from credit_features import records
from credit_features.definition import aggregates, extend, feature_matrix
from credit_features.schema import FEATURE_NAMES, INTEGER_COLUMNS, RAW_COLUMNS
from serving.errors import InvalidRequest, ServingError
from serving.protocol import v2
from serving.transformer.batching import Coalescer
from serving.transformer.metrics import TransformerMetrics
from serving.transformer.predictor import Predictor, PredictorFailed, PredictorUnavailable, Scores
from serving.transformer.settings import TransformerSettings
from serving.transformer.store import (
    FeatureStore,
    IngestConflict,
    IngestResult,
    Key,
    Snapshot,
    StoreUnavailable,
)

log = logging.getLogger(__name__)

FEATURES_OUTPUT = "features"
NUMERIC = v2.NUMERIC_DATATYPES
INTEGER_DATATYPES = frozenset(d for d in NUMERIC if d.startswith(("INT", "UINT")))


class FeatureStoreUnavailable(ServingError):
    """The online feature store cannot be reached: nothing can be scored or ingested until it is back."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
    grpc_code = grpc.StatusCode.UNAVAILABLE


class TransactionConflict(ServingError):
    """A TransactionId already stored with a different amount: the producer sent two versions of it."""

    status = HTTPStatus.CONFLICT
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION


@dataclass(frozen=True)
class ScoredTransactions(v2.Outputs):
    """The predictor's outputs for each transaction, the features it was given, and who scored it."""

    features: np.ndarray  # float32 [N, 26], exactly what the predictor scored
    first_seen: np.ndarray  # bool [N]: the customer had no stored history
    transaction_id: np.ndarray  # object [N]
    scored_by: str  # the model version the predictor answered with

    DATATYPES: ClassVar[dict[str, str]] = {**v2.Outputs.DATATYPES, FEATURES_OUTPUT: "FP32"}

    def model_version(self, served: str) -> str:
        return self.scored_by or served

    def answers(self) -> list[dict[str, Any]]:
        """One ``/score`` answer per transaction."""
        features = self.features.astype(float).tolist()
        return [
            {
                "transaction_id": self.transaction_id[i],
                "probability": float(self.probability[i]),
                "risk_level": self.risk_level[i],
                "decision": self.decision[i],
                "model_version": self.scored_by,
                "first_seen": bool(self.first_seen[i]),
                "features": dict(zip(FEATURE_NAMES, features[i], strict=True)),
            }
            for i in range(len(self.probability))
        ]


@dataclass(frozen=True)
class Batch:
    """A validated batch on its way to the predictor."""

    transactions: records.Transactions
    features: np.ndarray  # float32 [N, 26]
    first_seen: np.ndarray  # bool [N]


def online_features(transactions: records.Transactions, snapshots: Sequence[Snapshot]) -> np.ndarray:
    """The float64 ``[N, 26]`` features of ``transactions`` given each one's store snapshot."""
    amounts = transactions.column("Amount").tolist()
    rows = np.array(
        [
            aggregates(s.history if s.stored else extend(s.history, amount), s.median)
            for s, amount in zip(snapshots, amounts, strict=True)
        ],
        dtype=np.float64,
    )
    return feature_matrix(transactions.columns, transactions.seconds, rows)


def keys_of(transactions: records.Transactions) -> list[Key]:
    columns = transactions.columns
    return [
        Key(customer, transaction, amount)
        for customer, transaction, amount in zip(
            columns["CustomerId"].tolist(), columns["TransactionId"].tolist(), columns["Amount"].tolist(),
            strict=True,
        )
    ]  # fmt: skip


class TransactionTransformer(Model):
    """Raw Xente transactions in, the predictor's decision out, features from the online store."""

    def __init__(
        self,
        settings: TransformerSettings,
        store: FeatureStore,
        predictor: Predictor,
        metrics: TransformerMetrics | None = None,
    ) -> None:
        super().__init__(settings.model_name)
        self.settings = settings
        self.store = store
        self.predictor = predictor
        self.metrics = metrics or TransformerMetrics(settings.model_name)
        self.version = ""  # the predictor's, as last answered
        self.ready = False
        # Concurrent requests share store lookups and predictor calls (serving.transformer.batching).
        self.lookups = Coalescer(self._lookup, settings.max_batch_rows, max_in_flight=2)
        self.scorer = Coalescer(self._score, settings.max_batch_rows, max_in_flight=2, merge=np.concatenate)

    # ------------------------------------------------------------------------------------------ health

    async def check_ready(self) -> bool:
        """Ready while the store answers (set by each readiness probe; the store gauge follows)."""
        try:
            await self.store.ping()
        except StoreUnavailable as exc:
            if self.ready:
                log.warning("not ready: %s", exc)
            self.metrics.store_errors.labels("ping").inc()
            self._store_answers(False)
            return False
        if not self.ready:
            log.info("ready: feature store %s answers", self.store.url)
        self._store_answers(True)
        if not self.version:  # metadata names it before the first score does; never holds up the probe
            with contextlib.suppress(TimeoutError):
                self.version = await asyncio.wait_for(self.predictor.served_version(), 0.5)
        return True

    def _store_answers(self, up: bool) -> None:
        """Readiness and the store gauge follow the last store call (a probe's ping or real work)."""
        self.ready = up
        self.metrics.store_up.set(1 if up else 0)

    def metadata(self) -> dict[str, Any]:
        """V2 model metadata: the raw transaction fields in, the decision (and the features) out."""
        inputs = []
        for name in RAW_COLUMNS:
            datatype = (
                "FP64" if name in ("Amount", "Value") else "INT64" if name in INTEGER_COLUMNS else "BYTES"
            )
            inputs.append({"name": name, "datatype": datatype, "shape": [-1]})
        outputs = [dict(o) for o in v2.OUTPUT_TYPES]
        outputs.append({"name": FEATURES_OUTPUT, "datatype": "FP32", "shape": [-1, len(FEATURE_NAMES)]})
        return {
            "name": self.name,
            "versions": [self.version] if self.version else [],
            "platform": "credit-risk-transformer",
            "inputs": inputs,
            "outputs": outputs,
        }

    # ------------------------------------------------------------------------------------------ scoring

    async def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> Batch:
        """Raw transactions (a V2 request, or ``/score``'s list of objects) → features from the store."""
        if isinstance(payload, v2.Request):
            v2.check_requested_outputs(payload, ScoredTransactions.DATATYPES)
            transactions = self._check_size(transactions_of(payload))
        else:
            transactions = self._records(payload)
        snapshots = await self.lookups.submit(keys_of(transactions))
        features = v2.finite_float32(online_features(transactions, snapshots), FEATURE_NAMES)
        first_seen = np.array([s.history is None for s in snapshots], dtype=bool)
        if first_seen.any():
            self.metrics.first_seen.inc(int(first_seen.sum()))
        return Batch(transactions, features, first_seen)

    async def predict(self, payload: Batch, headers: dict[str, str] | None = None) -> tuple[Batch, Scores]:
        try:
            scores = await self.scorer.submit(payload.features)
        except (PredictorUnavailable, PredictorFailed) as exc:  # counted per request, as the requests are
            self.metrics.predictor_errors.labels(exc.reason).inc()
            raise
        return payload, scores

    async def _lookup(self, keys: list[Key]) -> list[Snapshot]:
        """One store lookup for every request queued meanwhile."""
        return await self._store_call("lookup", self.store.lookup(keys))

    async def _score(self, rows: np.ndarray) -> Scores:
        """One predictor call for the rows of every request queued meanwhile."""
        started = time.perf_counter()
        try:
            return await self.predictor.infer(rows)
        finally:
            self.metrics.stage["predictor"].observe(time.perf_counter() - started)

    async def postprocess(self, result: Any, headers: dict[str, str] | None = None, response_headers=None):
        batch, scores = result
        self.version = scores.model_version or self.version
        self.metrics.scored.inc(len(batch.features))
        return ScoredTransactions(
            probability=scores.probability,
            prediction=scores.prediction,
            risk_level=scores.risk_level,
            decision=scores.decision,
            features=batch.features,
            first_seen=batch.first_seen,
            transaction_id=batch.transactions.column("TransactionId"),
            scored_by=scores.model_version,
        )

    # ------------------------------------------------------------------------------------------ ingestion

    async def ingest(self, payload: object) -> tuple[int, IngestResult]:
        """Validate completed transactions (all of them first), then write them: ``(received, result)``."""
        try:
            transactions = self._records(payload)
        except InvalidRequest:
            self.metrics.ingest_rejected.labels("invalid").inc()
            raise
        try:
            result = await self._store_call("ingest", self.store.ingest(keys_of(transactions)))
        except IngestConflict as exc:
            self.metrics.ingest_rejected.labels("conflict").inc()
            raise TransactionConflict(str(exc)) from exc
        self.metrics.added.inc(result.added)
        self.metrics.duplicates.inc(result.duplicates)
        return len(transactions), result

    def _records(self, payload: object) -> records.Transactions:
        """JSON transaction objects, validated (:class:`InvalidRequest` naming the transaction and field)."""
        try:
            transactions = records.from_records(payload)
        except records.InvalidTransaction as exc:
            raise InvalidRequest(str(exc)) from exc
        return self._check_size(transactions)

    def _check_size(self, transactions: records.Transactions) -> records.Transactions:
        if len(transactions) > self.settings.max_batch_rows:
            raise InvalidRequest(
                f"the batch has {len(transactions):,} transactions, more than the limit of "
                f"{self.settings.max_batch_rows:,}: split it"
            )
        return transactions

    async def _store_call(self, operation: str, call):
        stage = self.metrics.stage["store_lookup" if operation == "lookup" else "store_ingest"]
        started = time.perf_counter()
        try:
            result = await call
        except StoreUnavailable as exc:
            self.metrics.store_errors.labels(operation).inc()
            self._store_answers(False)
            raise FeatureStoreUnavailable(str(exc)) from exc
        finally:
            stage.observe(time.perf_counter() - started)
        self._store_answers(True)
        return result

    async def close(self) -> None:
        await self.predictor.close()
        await self.store.close()


def transactions_of(request: v2.Request) -> records.Transactions:
    """The transactions of a V2 request: one tensor per Xente field, each ``[N]`` or ``[N, 1]``; BYTES for
    ids, categories and the time, a numeric datatype for Amount and Value, an integer one for CountryCode,
    PricingStrategy and FraudResult."""
    columns: dict[str, list] = {}
    for i, tensor in enumerate(request.inputs):
        label = f"inputs[{i}] {v2.quoted_name(tensor.name)}"
        if tensor.name in columns:
            raise InvalidRequest(f"{label}: given more than once")
        if tensor.name not in RAW_COLUMNS:
            raise InvalidRequest(
                f"{label}: not a Xente field; send one tensor per field: {', '.join(records.REQUIRED_FIELDS)} "
                f"(and optionally {', '.join(records.OPTIONAL_FIELDS)})"
            )
        if tensor.name in records.STRING_FIELDS:
            wanted, allowed = "BYTES", {"BYTES"}
        elif tensor.name in INTEGER_COLUMNS:
            wanted, allowed = "INT64 (or another integer type)", INTEGER_DATATYPES
        else:
            wanted, allowed = "FP64 (or another numeric type)", NUMERIC
        if tensor.datatype not in allowed:
            raise InvalidRequest(f"{label}: datatype {tensor.datatype}; {tensor.name} is {wanted}")
        data = tensor.data
        if data.ndim == 2 and data.shape[1] == 1:
            data = data[:, 0]
        if data.ndim != 1:
            raise InvalidRequest(f"{label}: shape must be [N] or [N, 1], got {list(tensor.shape)}")
        columns[tensor.name] = data.tolist()
    try:
        return records.from_columns(columns)
    except records.InvalidTransaction as exc:
        raise InvalidRequest(str(exc)) from exc

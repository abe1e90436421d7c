"""Prometheus metrics of the transformer (one process; scale with replicas).

A request's latency is split into its stages — the feature store lookup, the predictor call, the store
write of an ingestion — so a slow answer says which dependency made it slow. Store and predictor failures
are counted by kind, the store's health is a gauge (set by every readiness probe and every store call),
customers scored with no history are counted (a rising share means the store lost data or ingestion
stopped), and ingestion is counted by outcome, refusals by reason (an unauthorized attempt may be a forged
history). ``monitoring/`` holds the dashboard row and the alerts over these names.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, exposition

from serving.metrics import LATENCY_BUCKETS

STAGES = ("store_lookup", "predictor", "store_ingest")


class TransformerMetrics:
    def __init__(self, model_name: str) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.model_name = model_name
        self.requests = Counter(
            "credit_risk_transformer_requests", "Transformer requests by route and status code.",
            ["route", "status_code"], registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "credit_risk_transformer_request_duration_seconds", "End-to-end request latency in the transformer.",
            ["route"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        stages = Histogram(
            "credit_risk_transformer_stage_duration_seconds",
            "Time of each stage of a request: feature store lookup, predictor call, feature store write.",
            ["stage"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.stage = {stage: stages.labels(stage) for stage in STAGES}
        self.store_errors = Counter(
            "credit_risk_transformer_store_errors", "Failed feature store calls by operation.",
            ["operation"], registry=r,
        )  # fmt: skip
        self.store_up = Gauge(
            "credit_risk_transformer_store_up", "1 when the last feature store call succeeded.", registry=r
        )
        self.predictor_errors = Counter(
            "credit_risk_transformer_predictor_errors", "Failed predictor calls by reason.",
            ["reason"], registry=r,
        )  # fmt: skip
        self.first_seen = Counter(
            "credit_risk_transformer_first_seen_customers",
            "Transactions scored for a customer the store has no history of (scored as a first transaction).",
            registry=r,
        )
        self.scored = Counter(
            "credit_risk_transformer_scored_transactions", "Transactions scored.", registry=r
        )
        ingested = Counter(
            "credit_risk_transformer_ingested_transactions",
            "Ingested transactions: added to the store, or already there (a replay).",
            ["result"], registry=r,
        )  # fmt: skip
        self.added, self.duplicates = ingested.labels("added"), ingested.labels("duplicate")
        self.ingest_rejected = Counter(
            "credit_risk_transformer_ingest_rejected", "Refused ingestion requests by reason.",
            ["reason"], registry=r,
        )  # fmt: skip
        for reason in ("unauthorized", "invalid", "conflict"):
            self.ingest_rejected.labels(reason)
        for operation in ("lookup", "ingest", "ping"):
            self.store_errors.labels(operation)
        for reason in ("unavailable", "timeout", "refused"):
            self.predictor_errors.labels(reason)

    def record(self, route: str, model_name: str, status: int, seconds: float) -> None:
        """One answered request (the shape :class:`serving.metrics.RequestMetricsMiddleware` and the gRPC
        servicer report with; the model name is the transformer's own)."""
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """``/metrics``: these and kserve's (its pre/post-process and predict histograms)."""
        encoder, content_type = exposition.choose_encoder(accept or "")
        return encoder(_Joined(self.registry, REGISTRY)), content_type


class _Joined:
    """Two registries exposed as one (one ``# EOF`` in OpenMetrics)."""

    def __init__(self, *registries: CollectorRegistry) -> None:
        self.registries = registries

    def collect(self):
        for registry in self.registries:
            yield from registry.collect()

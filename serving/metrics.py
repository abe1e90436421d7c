"""Prometheus metrics of the predictor, correct with any number of workers.

Multi-process design. ``python -m serving`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder before
anything imports ``prometheus_client``, so every worker (kserve spawns them) writes its samples to
memory-mapped files there, and ``/metrics`` — whichever worker answers — aggregates all of them
(``MultiProcessCollector``): counters and histograms are summed across workers, kserve's built-in
histograms included. Without the variable (an in-process test) the same code reads the live registries.

Drift, two complementary ways:

* **For Prometheus** (exact, any window): live counters per bin — ``credit_risk_score_bin_total`` and
  ``credit_risk_feature_bin_total`` — next to gauges holding the training reference on the same bins
  (``credit_risk_score_reference_ratio``, ``credit_risk_feature_reference_ratio``). PSI over any window is a
  PromQL expression of the two (see ``monitoring/``).
* **In process** (a ready number): ``credit_risk_score_psi`` and ``credit_risk_feature_psi``, computed at
  scrape time over a sliding window from the *aggregated* bin counters. Each scrape stores a snapshot of
  the aggregated counts in a small shared file in the metrics folder; the window is the difference between
  now and the newest snapshot at least ``window`` old (before one exists: everything since start). All
  workers read the same snapshots, so they report the same PSI. ``credit_risk_drift_window_rows`` says
  how many rows the window holds: PSI on a handful of rows is noise.

Bins are right-closed on the reference's interior edges (Prometheus ``le`` semantics); ``bin`` labels are
the upper edges (``"+Inf"`` last). PSI = Σ (live − ref) · ln(live / ref), proportions floored at 1e-4.
"""

from __future__ import annotations

import atexit
import math
import multiprocessing.util
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

import numpy as np
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, exposition
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.requests import ClientDisconnect

from serving.contract import ModelContract
from serving.drift import DriftWindow, psi

LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
ROW_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000)
RISK_LEVELS = ("low", "medium", "high")
DECISIONS = ("approve", "review", "reject")


def multiprocess_dir() -> Path | None:
    value = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return Path(value) if value else None


class ModelMetrics:
    """The model's metrics in this process. Created at load and again in every worker after unpickling."""

    def __init__(
        self,
        contract: ModelContract,
        version: str,
        load_seconds: float,
        drift_window_seconds: int,
        flush_seconds: float = 1.0,
    ) -> None:
        self.contract = contract
        self.version = version
        self.window_seconds = drift_window_seconds
        self.window = DriftWindow(drift_window_seconds)
        self.registry = CollectorRegistry(auto_describe=True)
        name = contract.name
        r = self.registry
        # Everything that describes what the model saw carries model_version: during a rollout two versions
        # serve at once, and a drift sum over both would compare one version's traffic with another's reference.

        self.requests = Counter(
            "credit_risk_requests", "HTTP requests by route, model and status code.",
            ["route", "model_name", "status_code"], registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "credit_risk_request_duration_seconds", "End-to-end request latency inside the server.",
            ["route", "model_name"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.rows = Histogram(
            "credit_risk_request_rows",
            "Rows scored per request.",
            ["model_name"],
            buckets=ROW_BUCKETS,
            registry=r,
        ).labels(name)
        score = Histogram(
            "credit_risk_score", "P(high risk) of scored rows, on the training reference's bins.",
            ["model_name", "model_version"], buckets=(*contract.score.edges.tolist(), math.inf), registry=r,
        )  # fmt: skip
        self.score = score.labels(name, version)
        predictions = Counter(
            "credit_risk_predictions", "Scored rows by risk level and decision.",
            ["model_name", "model_version", "risk_level", "decision"], registry=r,
        )  # fmt: skip
        self.predictions = [
            predictions.labels(name, version, level, d)
            for level, d in zip(RISK_LEVELS, DECISIONS, strict=True)
        ]

        score_bins = Counter(
            "credit_risk_score_bin", "Scored rows per score bin (non-cumulative; bin = upper edge).",
            ["model_name", "model_version", "bin"], registry=r,
        )  # fmt: skip
        self.score_bins = [score_bins.labels(name, version, b) for b in contract.score.labels]
        feature_bins = Counter(
            "credit_risk_feature_bin", "Scored rows per feature bin (non-cumulative; bin = upper edge).",
            ["model_name", "model_version", "feature", "bin"], registry=r,
        )  # fmt: skip
        self.feature_bins = [
            [feature_bins.labels(name, version, f, b) for b in contract.features[f].labels]
            for f in contract.feature_names
        ]

        constant = {"registry": r, "multiprocess_mode": "max"}
        reference = Gauge(
            "credit_risk_score_reference_ratio", "Training reference share of each score bin.",
            ["model_name", "model_version", "bin"], **constant,
        )  # fmt: skip
        for label, share in zip(contract.score.labels, contract.score.proportions, strict=True):
            reference.labels(name, version, label).set(share)
        feature_reference = Gauge(
            "credit_risk_feature_reference_ratio", "Training reference share of each feature bin.",
            ["model_name", "model_version", "feature", "bin"], **constant,
        )  # fmt: skip
        for feature in contract.feature_names:
            ref = contract.features[feature]
            for label, share in zip(ref.labels, ref.proportions, strict=True):
                feature_reference.labels(name, version, feature, label).set(share)
        Gauge(
            "credit_risk_model_info", "The model being served (value 1).",
            ["model_name", "model_version", "model_type", "target_mode", "data_digest"], **constant,
        ).labels(name, version, contract.model_type, contract.target_mode, contract.data_digest).set(1)  # fmt: skip
        Gauge("credit_risk_model_load_seconds", "Time to load the model.", ["model_name"], **constant).labels(
            name
        ).set(load_seconds)
        Gauge(
            "credit_risk_model_loaded_timestamp_seconds", "When the model was loaded (Unix time).", ["model_name"],
            **constant,
        ).labels(name).set(time.time())  # fmt: skip
        Gauge(
            "credit_risk_drift_reference_rows", "Held-out rows behind the training score reference.",
            ["model_name", "model_version"], **constant,
        ).labels(name, version).set(contract.score.count)  # fmt: skip
        self._start_pending(flush_seconds)

    def record(self, route: str, model_name: str, status: int, seconds: float) -> None:
        """One answered request, HTTP or gRPC (``status``: the HTTP status, or a gRPC code's HTTP equivalent)."""
        self.requests.labels(route, model_name, str(status)).inc()
        self.latency.labels(route, model_name).observe(seconds)

    # ------------------------------------------------------------------------------------------ hot path

    def _start_pending(self, flush_seconds: float) -> None:
        """Per-row counts accumulate in one numpy vector, pushed to the Prometheus counters by
        :meth:`flush` — every ``flush_seconds`` from a background thread, before each scrape this worker
        answers, and at exit. Laid out as: score bins | each feature's bins | the three risk levels."""
        contract = self.contract
        self._children = [
            *self.score_bins,
            *(c for children in self.feature_bins for c in children),
            *self.predictions,
        ]
        widths = [len(contract.features[f].labels) for f in contract.feature_names]
        self._feature_offsets = len(self.score_bins) + np.concatenate([[0], np.cumsum(widths)[:-1]]).astype(
            np.intp
        )
        self._level_offset = len(self._children) - len(self.predictions)
        # Every feature's interior edges in one matrix, padded with +inf: the number of edges below a value
        # is its right-closed bin, for all features in one vectorised comparison.
        edges = np.full((len(widths), max(widths) - 1 if widths else 0), np.inf)
        for j, feature in enumerate(contract.feature_names):
            edges[j, : widths[j] - 1] = contract.features[feature].edges
        self._edges = edges
        self._pending = np.zeros(len(self._children), dtype=np.int64)
        self._pending_score_sum = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        threading.Thread(
            target=self._flush_every, args=(flush_seconds,), name="metrics-flush", daemon=True
        ).start()
        atexit.register(self.flush)
        multiprocessing.util.Finalize(self, self.flush, exitpriority=10)  # worker processes skip atexit

    def observe(self, X: np.ndarray, probability: np.ndarray, level: np.ndarray) -> None:
        """Record one scored batch: rows per request now; scores, bins and risk levels via the pending counts."""
        n = len(probability)
        self.rows.observe(n)
        if n <= 64:
            feature_bins = (X[:, :, None] > self._edges[None, :, :]).sum(axis=2)
        else:
            feature_bins = np.column_stack(
                [np.searchsorted(self._edges[j], X[:, j], side="left") for j in range(X.shape[1])]
            )
        index = np.concatenate(
            [
                self.contract.score.bin_of(probability),
                (feature_bins + self._feature_offsets).ravel(),
                level + self._level_offset,
            ]
        )
        counts = np.bincount(index, minlength=len(self._pending))
        total = float(probability.sum(dtype=np.float64))
        with self._lock:
            self._pending += counts
            self._pending_score_sum += total

    def flush(self) -> None:
        """Push the pending counts to the (multi-process) Prometheus counters and the score histogram."""
        with self._lock:
            pending, self._pending = self._pending, np.zeros_like(self._pending)
            score_sum, self._pending_score_sum = self._pending_score_sum, 0.0
        nonzero = np.flatnonzero(pending)
        if not len(nonzero):
            return
        for i in nonzero.tolist():
            self._children[i].inc(int(pending[i]))
        score_counts = pending[: len(self.score_bins)]
        for bucket, count in zip(self.score._buckets, score_counts.tolist(), strict=True):  # type: ignore[attr-defined]
            if count:
                bucket.inc(count)
        self.score._sum.inc(score_sum)  # type: ignore[attr-defined]

    def _flush_every(self, seconds: float) -> None:
        while not self._stop.wait(seconds):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        self.flush()

    # ------------------------------------------------------------------------------------------ exposition

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """The ``/metrics`` body: every worker's samples plus the sliding-window drift gauges."""
        self.flush()
        folder = multiprocess_dir()
        if folder is not None:
            families = list(MultiProcessCollector(CollectorRegistry(), path=str(folder)).collect())
        else:
            families = [*REGISTRY.collect(), *self.registry.collect()]
        families.extend(self._drift_families(families, folder))
        encoder, content_type = exposition.choose_encoder(accept or "")
        return encoder(_Static(families)), content_type

    def _drift_families(self, families: list[Metric], folder: Path | None) -> Iterable[Metric]:
        contract, name = self.contract, self.contract.name
        ours = {"model_name": name, "model_version": self.version}
        score_now = np.zeros(len(contract.score.labels))
        feature_now = {f: np.zeros(len(contract.features[f].labels)) for f in contract.feature_names}
        score_index = {label: i for i, label in enumerate(contract.score.labels)}
        feature_index = {
            f: {label: i for i, label in enumerate(contract.features[f].labels)}
            for f in contract.feature_names
        }
        for family in families:
            if family.name == "credit_risk_score_bin":
                for sample in family.samples:
                    if sample.name.endswith("_total") and _matches(sample.labels, ours):
                        score_now[score_index[sample.labels["bin"]]] += sample.value
            elif family.name == "credit_risk_feature_bin":
                for sample in family.samples:
                    labels = sample.labels
                    if sample.name.endswith("_total") and _matches(labels, ours):
                        feature_now[labels["feature"]][feature_index[labels["feature"]][labels["bin"]]] += (
                            sample.value
                        )
        current = np.concatenate([score_now, *feature_now.values()])
        baseline, span = self.window.baseline(current, folder)
        delta = current - baseline
        score_delta = delta[: len(score_now)]
        window = f"{self.window_seconds}s"

        score_psi = GaugeMetricFamily(
            "credit_risk_score_psi", "PSI of scores in the sliding window against the training reference.",
            labels=["model_name", "model_version", "window"],
        )  # fmt: skip
        score_psi.add_metric([name, self.version, window], psi(score_delta, contract.score.proportions))
        feature_psi = GaugeMetricFamily(
            "credit_risk_feature_psi", "PSI of each feature in the sliding window against the training reference.",
            labels=["model_name", "model_version", "feature", "window"],
        )  # fmt: skip
        offset = len(score_now)
        for feature in contract.feature_names:
            width = len(contract.features[feature].labels)
            counts = delta[offset : offset + width]
            offset += width
            feature_psi.add_metric(
                [name, self.version, feature, window], psi(counts, contract.features[feature].proportions)
            )
        rows = GaugeMetricFamily(
            "credit_risk_drift_window_rows",
            "Rows scored in the sliding drift window.",
            labels=["model_name", "model_version", "window"],
        )
        rows.add_metric([name, self.version, window], float(score_delta.sum()))
        seconds = GaugeMetricFamily(
            "credit_risk_drift_window_seconds", "Time the sliding drift window actually spans.",
            labels=["model_name", "model_version", "window"],
        )  # fmt: skip
        seconds.add_metric([name, self.version, window], span)
        return [score_psi, feature_psi, rows, seconds]


def _matches(labels: dict[str, str], wanted: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in wanted.items())


class _Static:
    """A registry-like object that yields already-collected families (for ``generate_latest``)."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return iter(self._families)


# ---------------------------------------------------------------------------------------------- ASGI

ASGIApp = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]


# nginx's code for a client that closed the connection before the answer (e.g. mid-body): not a server error,
# so it never counts towards the error-ratio alert.
CLIENT_CLOSED_REQUEST = 499


class RequestMetricsMiddleware:
    """Counts requests by route template, model and status code (499 when the client left before any
    answer), and times them end to end."""

    def __init__(self, app: ASGIApp, metrics: Callable[[], ModelMetrics | None], default_model: str) -> None:
        self.app = app
        self.metrics = metrics
        self.default_model = default_model

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]  # unless a response starts, or the client leaves first

        async def receive_wrapper() -> dict:
            message = await receive()
            if message["type"] == "http.disconnect" and status[0] == 500:
                status[0] = CLIENT_CLOSED_REQUEST
            return message

        async def send_wrapper(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        except ClientDisconnect:  # the client left mid-body: nobody to answer, nothing wrong with the server
            status[0] = CLIENT_CLOSED_REQUEST
        finally:
            metrics = self.metrics()
            if metrics is not None:
                route = _route_template(scope)
                model = scope.get("path_params", {}).get("model_name", self.default_model)
                if (
                    model != self.default_model
                ):  # a name from the URL: never a new label value per client typo
                    model = "unknown"
                metrics.record(route, model, status[0], time.perf_counter() - started)


def _route_template(scope: dict) -> str:
    """The matched route's path template (a bounded label), e.g. ``/v2/models/{model_name}/infer``.

    FastAPI records the route object for its own routes; for plain Starlette routes only the endpoint and
    the path parameters reach this scope, so the template is rebuilt from them.
    """
    route = scope.get("route")
    if route is not None:
        return route.path
    if "endpoint" not in scope:
        return "unmatched"
    names = {str(value): name for name, value in (scope.get("path_params") or {}).items()}
    return "/".join("{" + names[part] + "}" if part in names else part for part in scope["path"].split("/"))

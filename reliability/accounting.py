"""The count of every answer a fuzz run got, and the evidence for every failure, whatever the protocol:
a fuzz target (:mod:`reliability.fuzz_http`, :mod:`reliability.fuzz_grpc`) judges each answer — a server
error? an error body of the wrong shape? an answer other than the protocol promises? silence where an
answer was due? — and records it in :class:`Stats`, which turns the counts into the report's sections and
failures. :func:`summary` prints a whole run, :func:`table` the counts of one."""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from collections.abc import Callable

import numpy as np


class Stats:
    """Thread-safe counts of outcomes, and the evidence for every failure."""

    def __init__(self, keep: int = 50) -> None:
        self.lock = threading.Lock()
        self.keep = keep
        self.by_status: Counter[str] = Counter()
        self.by_route: dict[str, Counter[str]] = defaultdict(Counter)
        self.by_family: dict[str, Counter[str]] = defaultdict(Counter)
        self.by_source: Counter[str] = Counter()
        self.server_errors: list[dict] = []
        self.server_errors_by_answer: Counter[str] = Counter()
        self.server_error_count = 0
        self.no_response: Counter[str] = Counter()
        self.no_response_examples: list[dict] = []
        self.unexpected_no_response = 0
        self.error_body_violations: Counter[str] = Counter()
        self.error_body_examples: list[dict] = []
        self.wrong_answers: Counter[str] = Counter()
        self.wrong_answer_examples: list[dict] = []
        self.seconds: list[float] = []
        self.body_bytes = 0
        self.retried: Counter[str] = Counter()

    @property
    def total(self) -> int:
        return sum(self.by_source.values())

    def record(self, source: str, family: str, route: str, status: int | str | None, content: bytes, *,
               error: str | None = None, seconds: float, body_bytes: int, evidence: Callable[[], dict],
               server_error: bool, bad_error_body: bool = False, wrong_answer: str | None = None,
               retried: bool = False, silence_is_failure: bool = False) -> None:  # fmt: skip
        """One answer: ``status`` as the protocol spells it (None: no answer, ``error`` says why), the
        target's judgement of it, and ``evidence()`` — the request, called only when it is kept as an
        example. ``wrong_answer``: why the answer is not what the protocol promises (a status other than
        the one due, a malformed result), short and the same for answers wrong the same way; ``retried``:
        sent a second time on a new connection; ``silence_is_failure``: no answer is a failure here (the
        client broke nothing)."""
        key = str(status) if status is not None else "no response"
        with self.lock:
            self.by_source[source] += 1
            self.by_status[key] += 1
            self.by_route[route][key] += 1
            self.by_family[family][key] += 1
            self.seconds.append(seconds)
            self.body_bytes += body_bytes
            if retried:
                self.retried[family] += 1
            if server_error:
                self.server_error_count += 1
                self.server_errors_by_answer[
                    f"{status} {route}: {content[:120].decode('utf-8', 'replace')}"
                ] += 1
                if len(self.server_errors) < self.keep:
                    self.server_errors.append(
                        {"status": status, "response": content[:600].decode("utf-8", "replace"), **evidence()}
                    )
            if status is None:
                self.no_response[f"{family}: {error}"] += 1
                if len(self.no_response_examples) < 10:
                    self.no_response_examples.append({"error": error, **evidence()})
                if silence_is_failure:
                    self.unexpected_no_response += 1
            if bad_error_body:
                self.error_body_violations[f"{status} {route}"] += 1
                if len(self.error_body_examples) < 10:
                    self.error_body_examples.append(
                        {"status": status, "response": content[:300].decode("utf-8", "replace"), **evidence()}
                    )
            if wrong_answer is not None:
                self.wrong_answers[f"{route}: {wrong_answer}"] += 1
                if len(self.wrong_answer_examples) < 10:
                    self.wrong_answer_examples.append(
                        {"status": status, "wrong": wrong_answer,
                         "response": content[:600].decode("utf-8", "replace"), **evidence()}
                    )  # fmt: skip

    def failures(self) -> list[str]:
        failures = []
        if self.server_error_count:
            failures.append(f"{self.server_error_count} responses with a 5xx status")
        if self.unexpected_no_response:
            failures.append(f"{self.unexpected_no_response} well-formed requests got no HTTP response")
        if self.wrong_answers:
            failures.append(f"{sum(self.wrong_answers.values())} answers other than the protocol promises")
        return failures

    def report(self, generated: dict[str, int]) -> dict[str, dict]:
        """The report's sections on the answers: ``requests`` (``generated``: requests drawn per family),
        ``server_errors``, ``retried_on_a_new_connection``, ``no_response``, ``error_body_violations``,
        ``wrong_answers``."""
        latencies = np.asarray(self.seconds) * 1000 if self.seconds else np.zeros(1)
        return {
            "requests": {
                "total": self.total,
                "by_source": dict(self.by_source),
                "by_status": dict(sorted(self.by_status.items())),
                "by_route": {k: dict(sorted(v.items())) for k, v in sorted(self.by_route.items())},
                "by_family": {k: dict(sorted(v.items())) for k, v in sorted(self.by_family.items())},
                "generated_per_family": generated,
                "body_megabytes_sent": round(self.body_bytes / 1e6, 1),
                "latency_ms": {
                    "p50": round(float(np.percentile(latencies, 50)), 2),
                    "p99": round(float(np.percentile(latencies, 99)), 2),
                    "max": round(float(latencies.max()), 2),
                },
            },
            "server_errors": {
                "count": self.server_error_count,
                "by_answer": dict(self.server_errors_by_answer.most_common()),
                "examples": self.server_errors,
            },
            "retried_on_a_new_connection": {
                "by_family": dict(self.retried),
                "why": "the server had closed the reused keep-alive connection (it does so after an unhandled "
                "exception, i.e. after a 500)",
            },
            "no_response": {
                "by_family": dict(self.no_response),
                "unexpected": self.unexpected_no_response,
                "examples": self.no_response_examples,
            },
            "error_body_violations": {
                "by_status_route": dict(self.error_body_violations),
                "examples": self.error_body_examples,
            },
            "wrong_answers": {
                "by_route": dict(self.wrong_answers.most_common()),
                "examples": self.wrong_answer_examples,
            },
        }


def table(requests: dict) -> list[str]:
    """The ``requests`` section of a report as a table: answers by status, per route and per family."""
    lines = []
    statuses = sorted(requests["by_status"])
    widths = [max(12, len(s) + 2) for s in statuses]  # gRPC's code names are long

    def row(name: str, counts: dict, total: int) -> str:
        cells = "".join(f"{counts.get(s, 0):>{w}}" for s, w in zip(statuses, widths, strict=True))
        return f"{name[:59]:<60}{cells}{total:>9}"

    lines.append(f"{'route / family':<60}" + "".join(f"{s:>{w}}" for s, w in zip(statuses, widths, strict=True))
                 + f"{'total':>9}")  # fmt: skip
    for group in ("by_route", "by_family"):
        for name, counts in requests[group].items():
            lines.append(row(name, counts, sum(counts.values())))
        lines.append("-" * (60 + sum(widths) + 9))
    lines.append(row("all", requests["by_status"], requests["total"]))
    return lines


def summary(result: dict) -> str:
    requests = result["requests"]
    lines = table(requests)
    memory, live, workers = result["memory_mb"], result["liveness"], result["workers"]
    lines += [
        "",
        f"requests: {requests['total']} ({', '.join(f'{k} {v}' for k, v in requests['by_source'].items())}), "
        f"{requests['body_megabytes_sent']} MB of bodies, {result['duration_seconds']} s; latency p50 "
        f"{requests['latency_ms']['p50']} ms, p99 {requests['latency_ms']['p99']} ms",
        f"5xx: {result['server_errors']['count']}; retried on a new connection: "
        f"{sum(result['retried_on_a_new_connection']['by_family'].values())}; no response: {sum(result['no_response']['by_family'].values())} "
        f'(unexpected {result["no_response"]["unexpected"]}); 4xx without an {{"error"}} body: '
        f"{sum(result['error_body_violations']['by_status_route'].values())}",
        *(
            f"  {count:>5} x {answer}"
            for answer, count in list(result["server_errors"]["by_answer"].items())[:10]
        ),
        f"memory (RSS, server + workers): start {memory['start']} MB, peak {memory['peak']} MB, end {memory['end']} MB, "
        f"growth {memory['growth']} MB (bound {memory['bound']} MB)",
        f"server side: 5xx counted in /metrics {result['server_side']['5xx_counted_in_metrics'] or 0}; "
        f"tracebacks logged {result['server_side']['tracebacks_logged']}",
        f"liveness: {live['checks']} checks, {len(live['failures'])} failures, final {live['final_status']}, "
        f"slowest {live['max_latency_ms']} ms",
        f"workers: {workers['initial']} -> {workers['final']} (CPU s during the run: {workers['cpu_seconds_during_run']})",
        "PASSED" if result["passed"] else "FAILED: " + "; ".join(result["failures"]),
    ]
    return "\n".join(lines)

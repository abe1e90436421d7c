"""Short versions of ``reliability/load.py``: sustained load on ``--workers 2`` with no failed request, and
SIGTERM under load — to the parent and to the process group, with 1-row requests, 10,000-row batches and
one stalled request: requests in flight answered, new connections refused, the exit within the grace
period (the chart's margin past it when a request cannot finish), no process left behind.

Each experiment runs once per module (a fresh server each) and several tests read its result. Two defects
these tests found are fixed in ``serving/server.py`` (``DrainingServer`` and the multi-process parent
closing its listening socket first): uvicorn reset kept-alive connections whose next request it had not
read yet, and new connections hung until the parent exited instead of being refused.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from harness.net import http
from harness.predictor import TrainedModel, train_small_model
from reliability.load import (
    INFER_PATH,
    ShutdownResult,
    ShutdownSpec,
    Wrk,
    chart_termination,
    check_answers,
    measured_wrk,
    mixed_requests,
    server,
    shutdown_experiment,
)

GRACE = 30  # the chart's default
STALL_GRACE = 3


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} — required in CI (the CI environment variable is set)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainedModel:
    return train_small_model(tmp_path_factory.mktemp("model"), rows=8_000)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("reliability")


@pytest.fixture(scope="module")
def experiments(trained: TrainedModel, workdir: Path):
    """Runs each shutdown experiment the first time a test asks for it, then hands out the result."""
    specs = {
        "parent": ShutdownSpec("parent-1row", "parent", grace=GRACE, connections=32, load_seconds=1.5),
        "group": ShutdownSpec("group-1row", "group", grace=GRACE, connections=32, load_seconds=1.5),
        "batches": ShutdownSpec(
            "parent-10k-rows",
            "parent",
            grace=GRACE,
            connections=32,
            rows=10_000,
            load_seconds=2.0,
            check_new_connections=False,
        ),  # fmt: skip
        "stalled": ShutdownSpec(
            "parent-stalled", "parent", grace=STALL_GRACE, connections=8, load_seconds=1.0, stall=True
        ),  # fmt: skip
        "stalled-workers1": ShutdownSpec(
            "parent-stalled-workers1",
            "parent",
            workers=1,
            grace=STALL_GRACE,
            connections=8,
            load_seconds=1.0,
            stall=True,
        ),  # fmt: skip
    }
    done: dict[str, ShutdownResult] = {}

    def get(name: str) -> ShutdownResult:
        if name not in done:
            done[name] = shutdown_experiment(specs[name], trained.path, workdir, trained.X_fresh)
        return done[name]

    return get


def _explain(result: ShutdownResult) -> str:
    return (
        f"{result.name}: in flight {result.in_flight_ok}/{result.in_flight_at_sigterm} ok, failed "
        f"{result.in_flight_failed}; before SIGTERM failed {result.before_sigterm_failed}; after SIGTERM "
        f"{result.after_sigterm} {result.after_sigterm_failures}; exit {result.exit_seconds}s code "
        f"{result.exit_code}; left {result.survivors}; server log {result.server_log_events}; "
        f"examples {result.examples[:3]}"
    )


# ---------------------------------------------------------------------------------------------- load


def test_two_workers_sustain_load_without_a_failed_request(trained: TrainedModel, workdir: Path) -> None:
    """wrk (a separate process) for 5 s at concurrency 8: 1-row V2 bodies of unseen rows, one in ten a
    /predict — no non-2xx, socket error or timeout, and the server still ready afterwards."""
    if shutil.which("wrk") is None:
        _unavailable("`wrk` is not installed (bash .ci/tools.sh)")
    requests = mixed_requests(trained.X_fresh, 1000)
    assert {r.path for r in requests} == {INFER_PATH, "/predict"}
    wrk = Wrk(workdir, requests)
    with server(trained.path, workdir, "--workers", "2") as srv:
        check_answers(srv.url, requests[:10])
        point = measured_wrk(wrk, srv.url, srv.process.pid, 8, 5)
        assert http("GET", srv.url + "/v2/health/ready")[0] == 200
    assert point["failed"] == 0, point
    assert point["requests"] > 1_000, point
    workers = point["server"]["cpu_percent_workers"]
    assert len(workers) == 2, point["server"]


# ---------------------------------------------------------------------------------------------- SIGTERM


@pytest.mark.parametrize("target", ["parent", "group"])
def test_sigterm_during_load_stops_cleanly(experiments, target: str) -> None:
    """SIGTERM to the parent (PID 1 of the container) or to the whole process group while 32 kept-alive
    connections load the server: nothing failed before the signal, requests in flight were answered, new
    connections afterwards are refused (not held), and the server exits well within the grace period, with
    exit code 0 and no process left."""
    result = experiments(target)
    assert result.in_flight_at_sigterm > 0 and result.in_flight_ok > 0, _explain(result)
    assert result.checks["no_failure_before_sigterm"], _explain(result)
    assert result.checks["new_connections_not_held"], _explain(result)
    assert result.after_sigterm["new_connection"].get("refused", 0) > 0, _explain(result)
    assert result.exit_seconds is not None and result.exit_seconds < 5, _explain(result)
    assert result.exit_code == 0 and not result.survivors, _explain(result)


def test_sigterm_during_slow_batches_exits_when_the_work_is_done(experiments) -> None:
    """10,000-row batches on 32 connections (about a second of queued work per worker): the server waits
    for it, then exits — within the grace period, code 0, nothing left."""
    result = experiments("batches")
    assert result.in_flight_ok > 0, _explain(result)
    assert result.checks["no_failure_before_sigterm"], _explain(result)
    assert result.exit_seconds is not None and 0.5 < result.exit_seconds < GRACE, _explain(result)
    assert result.exit_code == 0 and not result.survivors, _explain(result)


@pytest.mark.parametrize("experiment", ["stalled", "stalled-workers1"])
def test_a_stalled_request_holds_the_exit_for_the_grace_period_and_no_longer(
    experiments, experiment: str
) -> None:
    """One request stalled half-way through its body cannot finish: the server waits the whole grace
    period for it, then stops anyway — within the chart's margin (terminationMarginSeconds) past it.
    Requests in flight on the other connections are answered. (With one worker the wait once took twice
    the grace period: the drain and uvicorn's own wait each took all of it.)"""
    result = experiments(experiment)
    assert result.in_flight_ok > 0 and result.checks["no_failure_before_sigterm"], _explain(result)
    assert result.exit_seconds is not None, _explain(result)
    assert STALL_GRACE - 0.5 <= result.exit_seconds <= STALL_GRACE + 2, _explain(result)
    assert result.exit_code == 0 and not result.survivors, _explain(result)
    if shutil.which("helm") is None:
        _unavailable("`helm` is not on PATH (bash .ci/tools.sh)")
    chart = chart_termination(result.exit_seconds - STALL_GRACE)
    assert all(chart["checks"].values()), chart


@pytest.mark.parametrize("experiment", ["parent", "group", "batches"])
def test_requests_on_open_connections_are_never_reset(experiments, experiment: str) -> None:
    """Every request written before the SIGTERM is answered 200; one written after it on a connection kept
    alive from before is answered, or its connection closed knowingly — never reset. (Kubernetes stops
    sending new connections to a terminating pod, but kept-alive ones go on carrying requests.)"""
    result = experiments(experiment)
    assert result.checks["in_flight_all_ok"], _explain(result)
    assert result.checks["kept_alive_requests_not_reset"], _explain(result)


def test_new_connections_are_not_held_while_a_request_stalls_the_exit(experiments) -> None:
    result = experiments("stalled")
    assert result.checks["new_connections_not_held"], _explain(result)

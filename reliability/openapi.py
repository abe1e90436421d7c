"""Schemathesis against the server's ``/openapi.json`` as served: positive and negative requests generated
from the document for every operation (most on the scoring routes), its "not a server error" check on every
answer, each answer counted with the HTTP judgement of :mod:`reliability.fuzz_http`; and
:func:`openapi_gaps`, what the document fails to describe of what is served.

Tested with schemathesis 4.32.5 (``pip install schemathesis==4.32.5``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from reliability.accounting import Stats
from reliability.fuzz_http import record
from reliability.target import MODEL, PREDICT, VERSION


def openapi_gaps(document: dict) -> list[str]:
    """What ``document`` (the served ``/openapi.json``) gets wrong about what is served: the /predict body,
    the versioned infer path, the 400/404/413 error answers, the binary tensor extension, and no
    repository (load / unload) or explain operations."""
    paths = document.get("paths", {})
    gaps = []
    predict = paths.get(PREDICT, {}).get("post", {})
    if "requestBody" not in predict:
        gaps.append("POST /predict declares no request body: schemathesis cannot generate bodies for it")
    if not any(re.fullmatch(r"/v2/models/\{[^}]+\}/versions/\{[^}]+\}/infer", p) for p in paths):
        gaps.append(
            "POST /v2/models/{model_name}/versions/{model_version}/infer (served) is not in the document"
        )
    infer = paths.get("/v2/models/{model_name}/infer", {}).get("post", {})
    documented = set(infer.get("responses", {}))
    if not {"400", "404", "413"} <= documented:
        gaps.append(
            f"POST /v2/models/{{model_name}}/infer documents responses {sorted(documented)} (kserve's route: 422) "
            'but the served route answers 400, 404 and 413 with {"error": ...}'
        )
    if "application/octet-stream" not in (infer.get("requestBody", {}).get("content", {})):
        gaps.append("the binary tensor extension (Inference-Header-Content-Length) is not described")
    for path in paths:
        if path.startswith("/v2/repository/") or path.endswith(":explain"):
            gaps.append(f"a disabled operation is documented: POST {path}")
    return gaps


def schemathesis_plan(total: int) -> list[tuple[str, str, int, dict[str, str]]]:
    """(path, method, examples, fixed path parameters) — most examples on the scoring routes."""
    plan = [
        ("/v2/models/{model_name}/infer", "POST", 0.40, {"model_name": MODEL}),
        ("/v2/models/{model_name}/versions/{model_version}/infer", "POST", 0.22,
         {"model_name": MODEL, "model_version": VERSION}),
        ("/predict", "POST", 0.22, {}),
        ("/v2/models/{model_name}/infer", "POST", 0.04, {}),  # random model names
        ("/v2/models/{model_name}/versions/{model_version}/infer", "POST", 0.04, {}),  # random names, versions
    ]  # fmt: skip
    reads = [
        "/v2/models/{model_name}", "/v2/models/{model_name}/versions/{model_version}",
        "/v2/models/{model_name}/versions/{model_version}/ready", "/v2/models/{model_name}/ready", "/health", "/",
        "/v2", "/v2/health/live", "/v2/health/ready",
    ]  # fmt: skip
    rest = max(len(reads), int(total * 0.08))
    out = [(path, method, max(1, int(total * share)), fixed) for path, method, share, fixed in plan]
    out += [(path, "GET", max(1, rest // len(reads)), {}) for path in reads]
    return out


def run_schemathesis(base_url: str, examples: int, seed: int, stats: Stats) -> dict[str, Any]:
    """Schemathesis against /openapi.json as served, positive and negative data,
    its "not a server error" check on every response. Sequential: the fuzzing threads are done by then."""
    import requests
    import schemathesis
    from schemathesis.checks import not_a_server_error

    document = requests.get(base_url + "/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(document)
    listed = sorted(f"{m.upper()} {p}" for p, ops in document["paths"].items() for m in ops)
    session = requests.Session()
    failures: list[dict] = []
    per_operation: dict[str, int] = {}
    for path, method, count, fixed in schemathesis_plan(examples):
        operation = schema[path][method]
        modes = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
        strategy = st.one_of(
            *[operation.as_strategy(generation_mode=mode, path_parameters=fixed or None) for mode in modes]
        )
        label = f"{method} {path}" + (" (random path parameters)" if not fixed and "{" in path else "")
        sent = 0

        def call(case: Any, label: str = label, count: int = count) -> None:
            nonlocal sent
            if sent >= count:
                return
            sent += 1
            started = time.perf_counter()
            try:
                response = case.call(base_url=base_url, session=session, timeout=60)
            except Exception as exc:  # no response at all
                record(
                    stats, "schemathesis", f"schemathesis {label}", case.formatted_path, None, b"",
                    error=type(exc).__name__, seconds=time.perf_counter() - started, body_bytes=0,
                    evidence=lambda: {"curl": case.as_curl_command()},
                )  # fmt: skip
                return
            status = response.status_code
            record(
                stats, "schemathesis", f"schemathesis {label}", case.formatted_path, status, response.content,
                seconds=time.perf_counter() - started, body_bytes=len(response.request.body or b""),
                evidence=lambda: {"curl": case.as_curl_command(), "family": f"schemathesis {label}"},
            )  # fmt: skip
            try:
                case.validate_response(response, checks=[not_a_server_error])
            except (Exception, BaseExceptionGroup) as exc:  # schemathesis' FailureGroup, with a curl line
                if len(failures) < 20:
                    failures.append({"operation": label, "status": status, "report": str(exc)[:1500]})

        _drive(strategy, count, seed, call)
        per_operation[label] = per_operation.get(label, 0) + sent
    session.close()
    return {
        "operations_listed": listed,
        "gaps": openapi_gaps(document),
        "requests_per_operation": per_operation,
        "not_a_server_error_failures": failures,
    }


def _drive(strategy: st.SearchStrategy[Any], count: int, seed: int, call: Callable[[Any], None]) -> None:
    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis_seed(seed)
    @given(strategy)
    def run(case: Any) -> None:
        call(case)

    run()

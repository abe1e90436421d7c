#!/usr/bin/env python3
"""Smoke test of a running credit-risk predictor, against the answers its model must give.

    python3 k8s/smoke.py --url http://127.0.0.1:8080 --expected /tmp/credit-risk-model/expected.json

Standard library only (runs on a CI runner, a laptop or inside the image). ``expected.json`` comes from
``k8s/make_model.py``, written when the served model was made. Checks, in order:

1. ``GET /v2/health/live`` and ``/v2/health/ready`` answer 200 (retried until ``--wait`` seconds:
   a port-forward or a pod may still be starting);
2. ``GET /v2/models/NAME``: the name, the expected version, one ``features`` FP32 input [-1, 26] and the
   outputs probability, prediction, risk_level, decision; ``/v2/models/NAME/ready`` answers 200;
3. ``POST /v2/models/NAME/infer`` with the expected rows: the request id echoed, the model version, each
   probability within the tolerance (1e-5) of onnxruntime's, and prediction / risk_level / decision
   consistent with the threshold and the risk bands;
4. a bad request (25 features instead of 26) answers 400 with a JSON ``{"error": ...}`` body;
5. ``GET /metrics``: ``credit_risk_requests_total`` counted the infer request, ``credit_risk_score_bucket``
   observed the scored rows, ``credit_risk_model_info`` names the model with the expected version.

Prints one line per check; on the first mismatch prints ``SMOKE FAIL: <what>`` and exits 1.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import urllib.error
import urllib.request

OUTPUTS = ("probability", "prediction", "risk_level", "decision")


class SmokeFailure(Exception):
    pass


def request(method: str, url: str, body: object | None = None, timeout: float = 30,
            headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:  # fmt: skip
    """One HTTP request: status, content type and body, whatever the status. A body is sent as JSON."""
    data = None if body is None else json.dumps(body).encode()
    sent = ({} if body is None else {"Content-Type": "application/json"}) | (headers or {})
    req = urllib.request.Request(url, data=data, method=method, headers=sent)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read()


def check(condition: bool, message: str) -> None:
    if not condition:
        raise SmokeFailure(message)


def get_json(url: str, what: str) -> dict:
    status, _, body = request("GET", url)
    check(status == 200, f"{what}: GET {url} answered {status}: {body[:500]!r}")
    try:
        return json.loads(body)
    except ValueError as exc:
        raise SmokeFailure(f"{what}: GET {url} did not answer JSON ({exc}): {body[:500]!r}") from exc


def wait_until_ok(url: str, wait: float) -> None:
    deadline = time.monotonic() + wait
    last = "no answer"
    while True:
        try:
            status, _, body = request("GET", url, timeout=5)
            if status == 200:
                return
            last = f"HTTP {status}: {body[:200]!r}"
        except OSError as exc:  # refused / reset while a port-forward or the server starts
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() > deadline:
            raise SmokeFailure(f"GET {url} did not answer 200 within {wait:.0f}s (last: {last})")
        time.sleep(1)


def band(p: float, bands: dict) -> tuple[str, str]:
    if p < bands["low_below"]:
        return "low", "approve"
    if p > bands["high_above"]:
        return "high", "reject"
    return "medium", "review"


def metric_lines(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(name + "{") or line.startswith(name + " ")]


def labels_of(line: str) -> dict[str, str]:
    inside = line[line.index("{") + 1 : line.rindex("}")] if "{" in line else ""
    return dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', inside))


def value_of(line: str) -> float:
    return float(line.rsplit(" ", 1)[-1])


def run(base: str, expected: dict, model_name: str | None, wait: float) -> None:
    name = model_name or expected["model_name"]
    version = str(expected["model_version"])
    rows, probabilities = expected["rows"], expected["probabilities"]
    tolerance = float(expected.get("tolerance", 1e-5))
    width = len(expected["feature_names"])

    wait_until_ok(f"{base}/v2/health/live", wait)
    print("ok   live      GET /v2/health/live -> 200")
    wait_until_ok(f"{base}/v2/health/ready", wait)
    print("ok   ready     GET /v2/health/ready -> 200")

    meta = get_json(f"{base}/v2/models/{name}", "model metadata")
    check(meta.get("name") == name, f"model metadata: name {meta.get('name')!r}, expected {name!r}")
    check(version in [str(v) for v in meta.get("versions", [])],
          f"model metadata: versions {meta.get('versions')}, expected {version}")  # fmt: skip
    inputs = meta.get("inputs", [])
    check(
        len(inputs) == 1 and inputs[0].get("name") == "features" and inputs[0].get("datatype") == "FP32"
        and list(inputs[0].get("shape", []))[-1:] == [width],
        f"model metadata: inputs {inputs}, expected one 'features' FP32 [-1, {width}]",
    )  # fmt: skip
    outputs = [o.get("name") for o in meta.get("outputs", [])]
    check(sorted(outputs) == sorted(OUTPUTS), f"model metadata: outputs {outputs}, expected {list(OUTPUTS)}")
    status, _, body = request("GET", f"{base}/v2/models/{name}/ready")
    check(status == 200, f"model ready: GET /v2/models/{name}/ready answered {status}: {body[:300]!r}")
    print(f"ok   metadata  {name} v{version}: features FP32 [-1, {width}] -> {', '.join(outputs)}")

    request_id = f"smoke-{int(time.time())}"
    infer = {
        "id": request_id,
        "inputs": [{"name": "features", "datatype": "FP32", "shape": [len(rows), width], "data": rows}],
    }
    status, _, body = request("POST", f"{base}/v2/models/{name}/infer", infer)
    check(status == 200, f"infer: POST /v2/models/{name}/infer answered {status}: {body[:500]!r}")
    answer = json.loads(body)
    check(answer.get("id") == request_id, f"infer: id {answer.get('id')!r}, expected {request_id!r}")
    check(str(answer.get("model_version")) == version,
          f"infer: model_version {answer.get('model_version')!r}, expected {version}")  # fmt: skip
    got = {o["name"]: o for o in answer.get("outputs", [])}
    check(sorted(got) == sorted(OUTPUTS), f"infer: outputs {sorted(got)}, expected {list(OUTPUTS)}")
    for output in OUTPUTS:
        check(got[output].get("shape") == [len(rows)],
              f"infer: {output} shape {got[output].get('shape')}, expected [{len(rows)}]")  # fmt: skip
    served = [float(p) for p in got["probability"]["data"]]
    worst = max(abs(s - e) for s, e in zip(served, probabilities, strict=True))
    check(worst <= tolerance,
          f"infer: probabilities {served} differ from the expected {probabilities} by up to {worst:.3g} "
          f"(tolerance {tolerance:g}): is the served model the one expected.json was written for?")  # fmt: skip
    threshold, bands = float(expected["threshold"]), expected["risk_bands"]
    for i, p in enumerate(served):
        level, decision = band(p, bands)
        check(int(got["prediction"]["data"][i]) == int(p >= threshold),
              f"infer: row {i} prediction {got['prediction']['data'][i]} for probability {p} (threshold {threshold})")  # fmt: skip
        check((got["risk_level"]["data"][i], got["decision"]["data"][i]) == (level, decision),
              f"infer: row {i} probability {p}: {got['risk_level']['data'][i]}/{got['decision']['data'][i]}, "
              f"expected {level}/{decision}")  # fmt: skip
    print(f"ok   infer     {len(rows)} rows, max |served - expected| = {worst:.2g} <= {tolerance:g}; "
          f"decisions {got['decision']['data']}")  # fmt: skip

    bad = {
        "inputs": [{"name": "features", "datatype": "FP32", "shape": [1, width - 1], "data": rows[0][:-1]}]
    }
    status, content_type, body = request("POST", f"{base}/v2/models/{name}/infer", bad)
    check(status == 400, f"bad request: {width - 1} features answered {status}, expected 400: {body[:300]!r}")
    try:
        error = json.loads(body)
    except ValueError:
        error = None
    check(isinstance(error, dict) and isinstance(error.get("error"), str) and error["error"],
          f"bad request: body {body[:300]!r} ({content_type}), expected JSON {{\"error\": \"...\"}}")  # fmt: skip
    print(f'ok   400       {width - 1} features -> 400 {{"error": {error["error"][:80]!r}...}}')

    status, _, body = request("GET", f"{base}/metrics")
    check(status == 200, f"metrics: GET /metrics answered {status}")
    text = body.decode(errors="replace")
    infer_requests = [
        line for line in metric_lines(text, "credit_risk_requests_total")
        if labels_of(line).get("route", "").endswith("/infer") and labels_of(line).get("status_code") == "200"
    ]  # fmt: skip
    check(infer_requests and sum(value_of(line) for line in infer_requests) >= 1,
          "metrics: credit_risk_requests_total has no successful /infer request")  # fmt: skip
    scored = [
        value_of(line) for line in metric_lines(text, "credit_risk_score_bucket")
        if labels_of(line).get("le") == "+Inf" and labels_of(line).get("model_name") == name
    ]  # fmt: skip
    check(scored and sum(scored) >= len(rows),
          f"metrics: credit_risk_score_bucket{{le=\"+Inf\"}} counts {sum(scored) if scored else 'nothing'}, "
          f"expected >= {len(rows)} scored rows")  # fmt: skip
    info = [labels_of(line) for line in metric_lines(text, "credit_risk_model_info")]
    check(any(i.get("model_name") == name and i.get("model_version") == version for i in info),
          f"metrics: credit_risk_model_info {info}, expected model_name={name} model_version={version}")  # fmt: skip
    print(f"ok   metrics   requests_total, score_bucket (+Inf {sum(scored):.0f}), model_info v{version}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="base URL of the predictor, e.g. http://127.0.0.1:8080")
    parser.add_argument("--expected", required=True, help="expected.json written by k8s/make_model.py")
    parser.add_argument("--model-name", help="V2 model name (default: the one in expected.json)")
    parser.add_argument("--wait", type=float, default=60, help="seconds to wait for live/ready (default 60)")
    args = parser.parse_args(argv)
    with open(args.expected, encoding="utf-8") as handle:
        expected = json.load(handle)
    base = args.url.rstrip("/")
    try:
        run(base, expected, args.model_name, args.wait)
    except SmokeFailure as failure:
        print(f"SMOKE FAIL: {failure}", file=sys.stderr, flush=True)
        return 1
    print(f"SMOKE OK: {base}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

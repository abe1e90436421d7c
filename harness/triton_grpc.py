"""``tritonclient.grpc`` against a V2 gRPC server, in a process of its own.

tritonclient's generated protos and kserve's declare the same proto names (``inference.*``); protobuf
refuses the second registration in one process, so whoever imports kserve (the tests, the predictor)
calls :func:`run_triton_grpc`, which runs this module as ``python -m harness.triton_grpc`` and parses the
one JSON document it prints:

.. code-block:: text

    {"target": ..., "live": true, "ready": true, "model_ready": true,
     "server_metadata": {...}, "model_metadata": {...},
     "infer_raw": {"id", "model_name", "model_version", "outputs": {name: {"datatype", "shape", "data"}},
                   "order": [output names as answered], "requested": [names asked, [] for all]},
     "infer_contents": {...the same...}}

``infer_raw`` goes through tritonclient's own ``InferenceServerClient.infer`` (``raw_input_contents``, its
default); ``infer_contents`` sends the same rows as typed ``contents.fp32_contents`` (the JSON-like form)
through tritonclient's generated stub, and reads the answer with tritonclient's ``InferResult``. Any step
that fails holds ``{"error": {"code": "INVALID_ARGUMENT", "message": ...}}`` instead of its result.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from harness import ROOT


def run_triton_grpc(
    target: str,
    rows: np.ndarray,
    *,
    model: str = "credit-risk",
    model_version: str = "",
    request_id: str = "triton-grpc",
    outputs: list[str] | None = None,
    ca_file: str | Path | None = None,
    timeout: float = 120,
) -> dict[str, Any]:
    """Run tritonclient.grpc against ``target`` (``host:port``) in a subprocess and return its result
    document (see the module docstring). ``rows`` is sent as one FP32 tensor ``features`` of its shape;
    ``ca_file`` switches to TLS with that root certificate."""
    with tempfile.TemporaryDirectory(prefix="triton-grpc-") as folder:
        path = Path(folder) / "rows.npy"
        np.save(path, np.asarray(rows))
        command = [sys.executable, "-m", "harness.triton_grpc", "--target", target, "--rows", str(path),
                   "--model", model, "--model-version", model_version, "--request-id", request_id]  # fmt: skip
        if outputs is not None:
            command += ["--outputs", ",".join(outputs)]
        if ca_file is not None:
            command += ["--ca-file", str(ca_file)]
        search = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        environment = {**os.environ, "PYTHONPATH": search}
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, env=environment, cwd=ROOT
        )
    if done.returncode != 0:
        raise RuntimeError(f"harness.triton_grpc exited {done.returncode}:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout)


# ---------------------------------------------------------------------------------------------- the child


def _error(exc: Exception) -> dict[str, Any]:
    """tritonclient's InferenceServerException or a grpc.RpcError as {code, message}."""
    import grpc

    if isinstance(exc, grpc.RpcError):
        return {"error": {"code": exc.code().name, "message": exc.details()}}
    status = getattr(exc, "status", None)
    message = getattr(exc, "message", None)
    if callable(status) and callable(message):
        code = str(status() or "")
        return {"error": {"code": code.removeprefix("StatusCode."), "message": message()}}
    return {"error": {"code": type(exc).__name__, "message": str(exc)}}


def _step(function, *args, **kwargs) -> Any:
    try:
        return function(*args, **kwargs)
    except Exception as exc:  # the point is to report what the client saw
        return _error(exc)


def _result(result: Any, names: list[str]) -> dict[str, Any]:
    """An InferResult as plain JSON: each output's datatype, shape and data (BYTES decoded as UTF-8)."""
    response = result.get_response()
    found = {}
    for output in response.outputs:
        data = result.as_numpy(output.name)
        values = [v.decode() if isinstance(v, bytes) else v for v in data.ravel().tolist()]
        found[output.name] = {"datatype": output.datatype, "shape": list(output.shape), "data": values}
    return {
        "id": response.id,
        "model_name": response.model_name,
        "model_version": response.model_version,
        "outputs": found,
        "order": [o.name for o in response.outputs],
        "requested": names,
    }


def run(target: str, rows: np.ndarray, model: str, model_version: str, request_id: str,
        outputs: list[str] | None, ca_file: str | None) -> dict[str, Any]:  # fmt: skip
    import grpc
    import tritonclient.grpc as triton
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    rows = np.ascontiguousarray(rows, dtype=np.float32)
    client = triton.InferenceServerClient(target, ssl=ca_file is not None, root_certificates=ca_file)
    document: dict[str, Any] = {"target": target}
    document["live"] = _step(client.is_server_live)
    document["ready"] = _step(client.is_server_ready)
    document["model_ready"] = _step(client.is_model_ready, model, model_version)
    document["server_metadata"] = _step(client.get_server_metadata, as_json=True)
    document["model_metadata"] = _step(client.get_model_metadata, model, model_version, as_json=True)

    requested = [triton.InferRequestedOutput(n) for n in outputs] if outputs is not None else None
    names = outputs if outputs is not None else []

    def raw() -> dict[str, Any]:
        tensor = triton.InferInput("features", list(rows.shape), "FP32")
        tensor.set_data_from_numpy(rows)  # raw_input_contents, tritonclient's only way
        result = client.infer(
            model, [tensor], model_version=model_version, outputs=requested, request_id=request_id
        )
        return _result(result, names)

    def contents() -> dict[str, Any]:
        request = service_pb2.ModelInferRequest(model_name=model, model_version=model_version, id=request_id)
        tensor = request.inputs.add(name="features", datatype="FP32", shape=list(rows.shape))
        tensor.contents.fp32_contents.extend(rows.ravel().tolist())
        for name in names:
            request.outputs.add(name=name)
        if ca_file is not None:
            credentials = grpc.ssl_channel_credentials(Path(ca_file).read_bytes())
            channel = grpc.secure_channel(target, credentials)
        else:
            channel = grpc.insecure_channel(target)
        with channel:
            response = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=60)
        return _result(triton.InferResult(response), names)

    document["infer_raw"] = _step(raw)
    document["infer_contents"] = _step(contents)
    client.close()
    return document


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.triton_grpc", description=__doc__.split("\n")[0])
    parser.add_argument("--target", required=True, help="host:port of the gRPC server")
    parser.add_argument("--rows", required=True, type=Path, help=".npy file of an [N, 26] matrix")
    parser.add_argument("--model", default="credit-risk")
    parser.add_argument("--model-version", default="")
    parser.add_argument("--request-id", default="triton-grpc")
    parser.add_argument("--outputs", help="comma-separated outputs to request (default: none named)")
    parser.add_argument("--ca-file", help="TLS: the root certificate (PEM) to trust")
    args = parser.parse_args(argv)
    outputs = args.outputs.split(",") if args.outputs is not None else None
    document = run(args.target, np.load(args.rows), args.model, args.model_version, args.request_id,
                   outputs, args.ca_file)  # fmt: skip
    json.dump(document, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
